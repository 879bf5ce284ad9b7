#!/usr/bin/env python3
"""Benchmarks of the generated pipeline's caching (docs/pipeline.md, Measurements). Not run by CI.

    .venv/bin/python -m benchmarks.pipeline caching          cold, then warm branch pipeline
    .venv/bin/python -m benchmarks.pipeline caching --no-target-cache   with sccache alone
    .venv/bin/python -m benchmarks.pipeline redis            two fresh runners sharing Redis
    .venv/bin/python -m benchmarks.pipeline check-cost       the check job's cargo commands

Each run generates the default project, builds the images the pipeline tier uses (the
engine's layer cache makes that instant after the first time) and runs the pipeline
with gitlab-ci-local's docker executor (host networking only). "Cold" starts from an
empty GitLab cache, cargo home and target dir; "warm" is the same pipeline again, with
what the first run left in GitLab's cache. Prints times, their ratio, and the warm
run's `sccache --show-stats`.

check-cost needs no images: it times the check job's analysis on the host's cargo, with
and without a `cargo check --all-targets` before clippy, each from a fresh target dir
(no sccache), after `cargo fetch` so that downloads are not counted.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
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
    sccache_stats,
)
from harness.processes import require, run
from harness.redis import redis_server
from harness.render import default_answers, render_cookiecutter

STATS_SHOWN = (
    "Compile requests",
    "Cache hits",
    "Cache misses",
    "Non-cacheable calls",
    "Cache location",
)


def no_target_cache_override(repo: Path) -> str:
    """An include file that keeps only the cargo home and sccache cache (no target/)."""
    caching = load_ci(repo / GITLAB_CI)[".caching_rust"]
    kept = [cache for cache in caching["cache"] if "target/" not in cache["paths"]]
    override = {"include": [{"local": GITLAB_CI}], ".caching_rust": {"cache": kept}}
    path = repo / ".gitlab-ci-local-no-target-cache.yml"
    path.write_text(yaml.safe_dump(override, sort_keys=False))
    return path.name


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


def caching(work: Path, builder: str, helper: str, target_cache: bool) -> None:
    project = render_cookiecutter(work / "render", **default_answers())
    pipeline = pipeline_for(project, work / "runner", builder, helper)
    git(pipeline.repo, "checkout", "-q", "-b", "feature")
    args = [] if target_cache else ["--file", no_target_cache_override(pipeline.repo)]
    cold, _ = timed(pipeline, *args)
    warm, output = timed(pipeline, *args)
    variant = "sccache + target/ cached" if target_cache else "sccache alone (target/ not cached)"
    print(f"branch pipeline (check + test), {variant}:")
    print(f"  cold {cold:.0f} s, warm {warm:.0f} s, ratio {warm / cold:.2f}")
    print_stats("warm", output, ["check", "test"])
    state = pipeline.repo / ".gitlab-ci-local" / "cache"
    size = subprocess.run(["du", "-sh", str(state)], capture_output=True, text=True).stdout
    print(f"  GitLab cache on disk: {size.split()[0] if size else '?'}")


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
            caching(work, builder, helper, not args.no_target_cache)
        else:
            redis(work, builder, helper)


if __name__ == "__main__":
    main()
