#!/usr/bin/env python3
"""Benchmarks of the generated pipeline's caching (docs/pipeline.md, Measurements). Not run by CI.

    .venv/bin/python -m benchmarks.pipeline caching          cold/warm pairs of the branch pipeline
    .venv/bin/python -m benchmarks.pipeline caching --compare   the same pairs, before and after
    .venv/bin/python -m benchmarks.pipeline caching --no-target-cache   with sccache alone
    .venv/bin/python -m benchmarks.pipeline caching --release-tag   then a cold release tag
    .venv/bin/python -m benchmarks.pipeline redis            two fresh runners sharing Redis
    .venv/bin/python -m benchmarks.pipeline check-cost       the check job's cargo commands

Each run generates the default project, builds the images the pipeline tier uses (the
engine's layer cache makes that instant after the first time) and runs the pipeline
with gitlab-ci-local's docker executor (host networking only). "Cold" starts from a
fresh runner (its own clone and gitlab-ci-local state: empty GitLab cache, cargo home and
target dir); "warm" is the same pipeline again, with what the first run left in GitLab's
cache. Before each run every tracked file gets a new mtime, as a fresh clone on a GitLab
runner does. `--pairs N` cold/warm pairs; each prints its times, their ratio, the warm
run's `sccache --show-stats`, each cache's archive size (zipped as GitLab's runner does)
and a ratio modelled with that archive's transfer (TRANSFER_MB_S each way: a cold run
uploads, a warm one downloads and uploads); then the medians. `--compare` runs, in each
pair, the template's caching before the service crate was cleaned from target/ too
(`before_override`), so both are measured under the same load. `--release-tag` then runs
the v1.0.0 pipeline (deny, build, test, publish, release) on a fresh runner, publishing
to a registry on loopback as the pipeline tier does (harness.pipeline.run_tag_pipeline).

check-cost needs no images: it times the check job's analysis on the host's cargo, with
and without a `cargo check --all-targets` before clippy, each from a fresh target dir
(no sccache), after `cargo fetch` so that downloads are not counted.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import tempfile
import time
import zipfile
from dataclasses import dataclass
from pathlib import Path

import yaml

from harness.git import git
from harness.pipeline import (
    GITLAB_CI,
    Pipeline,
    build_builder_image,
    build_helper_image,
    ensure_engine_and_base_images,
    load_ci,
    output_of,
    pipeline_for,
    project_registry,
    run_tag_pipeline,
    runner_docker,
    sccache_stats,
)
from harness.processes import require, run
from harness.redis import redis_server
from harness.registry import Registry
from harness.render import default_answers, render_cookiecutter

STATS_SHOWN = (
    "Compile requests",
    "Cache hits",
    "Cache misses",
    "Non-cacheable calls",
    "Cache location",
)


def caching_override(repo: Path, name: str, caching: dict) -> str:
    """An include file of the real .gitlab-ci.yml that replaces keys of `.caching_rust`."""
    override = {"include": [{"local": GITLAB_CI}], ".caching_rust": caching}
    path = repo / f".gitlab-ci-local-{name}.yml"
    path.write_text(yaml.safe_dump(override, sort_keys=False))
    return path.name


def no_target_cache_override(repo: Path) -> str:
    """Only the cargo home and sccache cache (no target/)."""
    caching = load_ci(repo / GITLAB_CI)[".caching_rust"]
    kept = [cache for cache in caching["cache"] if "target/" not in cache["paths"]]
    return caching_override(repo, "no-target-cache", {"cache": kept})


def before_override(repo: Path) -> str:
    """The caching before the cargo jobs' after_script cleaned the service crate from
    target/: the same caches, no after_script (an empty list replaces the real one)."""
    return caching_override(repo, "before", {"after_script": []})


# Variants of the caching (--compare, --no-target-cache): an override, or the template's.
VARIANTS = {
    "template": ("sccache + target/, service crate cleaned (the template)", None),
    "before": ("sccache + target/ with the service crate (before)", before_override),
    "no-target": ("sccache alone (target/ not cached)", no_target_cache_override),
}
# The modelled cache transfer: GitLab's runner moves each cache archive to and from its
# cache storage (often object storage) at this rate, each way.
TRANSFER_MB_S = 100
MB = 1_000_000
# The cargo jobs push the caches; deny also pulls the shared one (cargo's registry).
JOBS = ["check", "test"]
PULLING_JOBS = [*JOBS, "deny"]


def fresh_clone_mtimes(repo: Path) -> None:
    """Every tracked file modified now, as a clone on a GitLab runner leaves them: cargo
    then rebuilds the service crate in a warm run too (gitlab-ci-local's copy keeps
    mtimes)."""
    now = time.time()
    for name in git(repo, "ls-files", "-z").stdout.split("\0"):
        if name and (repo / name).is_file():
            os.utime(repo / name, (now, now))


def zip_size(folder: Path, scratch: Path) -> int:
    """The size of `folder` as a zip with deflate at zlib's default level 6: what GitLab's
    runner uploads for a cache (its default archiver, Go's flate at its default level)."""
    archive = scratch / "cache.zip"
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as zipped:
        for path in sorted(folder.rglob("*")):
            if path.is_file() and not path.is_symlink():
                zipped.write(path, path.relative_to(folder))
    size = archive.stat().st_size
    archive.unlink()
    return size


def archive_sizes(repo: Path, scratch: Path) -> dict[str, int]:
    """{cache key: zip size} for every cache gitlab-ci-local kept (one folder per key)."""
    state = repo / ".gitlab-ci-local" / "cache"
    return {folder.name: zip_size(folder, scratch) for folder in sorted(state.iterdir())}


def transfer_s(sizes: dict[str, int], jobs: list[str]) -> float:
    """One pipeline's upload (or download) of its caches by `jobs`: each moves every cache
    it lists; a key naming a job (target-<job>-...) is that job's, the others are shared."""
    total = 0
    for key, size in sizes.items():
        users = [job for job in jobs if f"target-{job}-" in key] or jobs
        total += size * len(users)
    return total / MB / TRANSFER_MB_S


@dataclass
class Pair:
    cold: float
    warm: float
    sizes: dict[str, int]

    @property
    def ratio(self) -> float:
        return self.warm / self.cold

    @property
    def modelled(self) -> tuple[float, float]:
        """Cold uploads the caches; warm downloads them and uploads them again."""
        upload, download = transfer_s(self.sizes, JOBS), transfer_s(self.sizes, PULLING_JOBS)
        return self.cold + upload, self.warm + download + upload

    @property
    def modelled_ratio(self) -> float:
        cold, warm = self.modelled
        return warm / cold


def timed(pipeline: Pipeline, *args: str) -> tuple[float, str]:
    started = time.monotonic()
    result = pipeline.run(*args)
    elapsed = time.monotonic() - started
    output = output_of(result)
    summary = pipeline.result(output)
    if set(summary.values()) != {"PASS"}:
        sys.exit(f"pipeline failed: {summary}\n{output[-4000:]}")
    return elapsed, output


def print_stats(label: str, output: str, jobs: list[str]) -> None:
    for job in jobs:
        stats = sccache_stats(output, job)
        shown = ", ".join(f"{key}: {stats[key]}" for key in STATS_SHOWN if key in stats)
        print(f"  {label} {job}: {shown}")


@dataclass(frozen=True)
class Runners:
    """What every fresh runner of a benchmark gets: the images, the project's registry
    (builder-image finds $BUILDER_IMAGE there; publish pushes there), the runner's docker."""

    builder: str
    helper: str
    registry: Registry
    runner: str

    def fresh(self, project: Path, root: Path) -> Pipeline:
        return pipeline_for(project, root, self.builder, self.helper, self.registry, self.runner)


def caching_pair(work: Path, project: Path, runners: Runners, variant: str) -> Pair:
    """A cold and a warm run of the branch pipeline on a fresh runner."""
    root = work / f"runner-{variant}"
    pipeline = runners.fresh(project, root)
    git(pipeline.repo, "checkout", "-q", "-b", "feature")
    override = VARIANTS[variant][1]
    args = ["--file", override(pipeline.repo)] if override else []
    fresh_clone_mtimes(pipeline.repo)
    cold, _ = timed(pipeline, *args)
    fresh_clone_mtimes(pipeline.repo)
    warm, output = timed(pipeline, *args)
    print_stats(f"  {variant} warm", output, JOBS)
    started = time.monotonic()
    pair = Pair(cold, warm, archive_sizes(pipeline.repo, work))
    zipped = time.monotonic() - started
    for key, size in pair.sizes.items():
        print(f"    {variant} archive {key}: {size / MB:.0f} MB")
    print(f"    {variant} archives zipped in {zipped:.0f} s (deflate, level 6, 1 core)")
    shutil.rmtree(root)
    return pair


def caching(work: Path, project: Path, runners: Runners, variants: list[str], pairs: int) -> None:
    results: dict[str, list[Pair]] = {variant: [] for variant in variants}
    print(
        f"branch pipeline (builder-image, check, deny, test), {pairs} cold/warm pairs, "
        "each on a fresh runner;"
    )
    print(f"modelled: plus every cache archive moved at {TRANSFER_MB_S} MB/s each way")
    for number in range(1, pairs + 1):
        for variant in variants:
            pair = caching_pair(work, project, runners, variant)
            results[variant].append(pair)
            cold, warm = pair.modelled
            print(
                f"  pair {number} {variant}: cold {pair.cold:.0f} s, warm {pair.warm:.0f} s, "
                f"ratio {pair.ratio:.2f}; archives {sum(pair.sizes.values()) / MB:.0f} MB, "
                f"modelled cold {cold:.0f} s, warm {warm:.0f} s, ratio {pair.modelled_ratio:.2f}"
            )
    print("medians:")
    for variant, measured in results.items():
        print(
            f"  {VARIANTS[variant][0]}: "
            f"cold {statistics.median(p.cold for p in measured):.0f} s, "
            f"warm {statistics.median(p.warm for p in measured):.0f} s, "
            f"warm/cold {statistics.median(p.ratio for p in measured):.2f}; "
            f"archives {statistics.median(sum(p.sizes.values()) for p in measured) / MB:.0f} MB, "
            f"modelled warm/cold {statistics.median(p.modelled_ratio for p in measured):.2f}"
        )


def release_tag(work: Path, project: Path, runners: Runners) -> None:
    """A cold release-tag pipeline on a fresh runner: empty GitLab cache, cargo home and
    target dir, the tag's sources with new mtimes."""
    pipeline = runners.fresh(project, work / "runner-tag")
    git(pipeline.repo, "tag", "v1.0.0")
    git(pipeline.repo, "checkout", "-q", "v1.0.0")
    fresh_clone_mtimes(pipeline.repo)
    started = time.monotonic()
    output = run_tag_pipeline(pipeline)
    elapsed = time.monotonic() - started
    summary = pipeline.result(output)
    if set(summary.values()) != {"PASS"}:
        sys.exit(f"tag pipeline failed: {summary}\n{output[-4000:]}")
    print(f"release tag pipeline ({', '.join(summary)}), cold: {elapsed:.0f} s")


def redis(work: Path, builder: str, helper: str) -> None:
    if not shutil.which("redis-server"):
        sys.exit("redis-server is not installed (harness/prerequisites/40-pipeline.sh)")
    with redis_server() as endpoint:
        project = render_cookiecutter(work / "render", **default_answers(sccache_backend="redis"))
        print("check job on two fresh runners sharing one Redis:")
        for runner in ("first", "second"):
            pipeline = pipeline_for(project, work / runner, builder, helper)
            elapsed, output = timed(
                pipeline, "check", "--variable", f"SCCACHE_REDIS_ENDPOINT={endpoint}"
            )
            print(f"  {runner} runner: {elapsed:.0f} s")
            print_stats(runner, output, ["check"])


# The check job's analysis before and after clippy alone replaced `cargo check` + clippy
# in the generated .gitlab-ci.yml (and .github/workflows/ci.yml).
CHECK_COMMANDS = {
    "check + clippy": [
        ["check", "--locked", "--all-targets"],
        ["clippy", "--locked", "--all-targets", "--", "-D", "warnings"],
    ],
    "clippy alone": [["clippy", "--locked", "--all-targets", "--", "-D", "warnings"]],
}


def check_cost(work: Path) -> None:
    cargo = require("cargo")
    project = render_cookiecutter(work / "render", **default_answers())
    env = {key: value for key, value in os.environ.items() if key != "RUSTC_WRAPPER"}
    run([cargo, "fetch", "--locked"], cwd=project, env=env)
    times = {}
    for label, commands in CHECK_COMMANDS.items():
        target = work / f"target-{len(times)}"
        started = time.monotonic()
        for args in commands:
            run([cargo, *args], cwd=project, env={**env, "CARGO_TARGET_DIR": str(target)})
        times[label] = time.monotonic() - started
        print(f"  {label}: {times[label]:.0f} s (fresh target dir)")
    before, after = times.values()
    print(f"  saving: {before - after:.0f} s ({(before - after) / before:.0%})")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("what", choices=["caching", "redis", "check-cost"])
    parser.add_argument(
        "--no-target-cache",
        action="store_true",
        help="cache cargo's home and sccache's dir only, as a comparison",
    )
    parser.add_argument(
        "--compare",
        action="store_true",
        help="in each pair also the caching before the service crate was cleaned",
    )
    parser.add_argument("--pairs", type=int, default=3, help="cold/warm pairs (default 3)")
    parser.add_argument(
        "--release-tag",
        action="store_true",
        help="after the pairs, a cold release-tag pipeline that publishes",
    )
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="pipeline-bench-") as tmp:
        work = Path(tmp)
        if args.what == "check-cost":
            check_cost(work)
            return
        ensure_engine_and_base_images()
        started = time.monotonic()
        builder = build_builder_image(work / "builder")
        helper = build_helper_image(work / "helper")
        print(f"images ready in {time.monotonic() - started:.0f} s")
        if args.what == "caching":
            variants = ["no-target"] if args.no_target_cache else ["template"]
            variants += ["before"] if args.compare else []
            project = render_cookiecutter(work / "render", **default_answers())
            with project_registry(project) as registry:
                runners = Runners(builder, helper, registry, runner_docker(work / "runner"))
                caching(work, project, runners, variants, args.pairs)
                if args.release_tag:
                    release_tag(work, project, runners)
        else:
            redis(work, builder, helper)


if __name__ == "__main__":
    main()
