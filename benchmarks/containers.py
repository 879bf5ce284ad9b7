#!/usr/bin/env python3
"""Container figures: image sizes, cold build vs one-line rebuild, dev-loop hot reload.

    .venv/bin/python -m benchmarks.containers            # everything (about 10 minutes on 2 cores)
    .venv/bin/python -m benchmarks.containers --sizes    # only the compressed image sizes

Prints one line per figure; copy the output into docs/containers.md. Uses the test
suite's own engine (harness/docker-engine.sh, started by harness.containers.ensure_engine,
which points DOCKER_HOST at it), the base images the container tests use and host
networking, never the engine on the default socket.
The cold build renders a project under a fresh slug, so its BuildKit cache mounts and
layers start empty (base images excepted); each run leaves that cache behind in the
suite's engine (`DOCKER_HOST=$(harness/docker-engine.sh host) docker builder prune`
reclaims it).
"""

from __future__ import annotations

import argparse
import subprocess
import tempfile
import time
import uuid
from pathlib import Path

from harness.containers import (
    RUNTIME_CELLS,
    Hammer,
    build_image,
    compiled_crates,
    compose_up,
    ensure_base_images,
    ensure_engine,
    host_network_override,
    images_the_tier_uses,
    wait_for_http,
)
from harness.engine import docker_cli, docker_env
from harness.processes import free_port
from harness.render import default_answers, render_cookiecutter

TARGETS_MB = {"debian-slim": 30, "distroless": 15, "scratch": 5}


def say(line: str) -> None:
    print(line, flush=True)


def render(output_dir: Path, **answers: str) -> Path:
    """The default answers with these changes, rendered by cookiecutter into `output_dir`."""
    return render_cookiecutter(output_dir, **default_answers(**answers))


def compressed_size(tag: str) -> int:
    save = subprocess.Popen([docker_cli(), "save", tag], stdout=subprocess.PIPE)
    gzip = subprocess.Popen(["gzip", "-c"], stdin=save.stdout, stdout=subprocess.PIPE)
    assert save.stdout is not None and gzip.stdout is not None
    save.stdout.close()
    size = sum(len(chunk) for chunk in iter(lambda: gzip.stdout.read(1 << 20), b""))
    assert gzip.wait() == 0 and save.wait() == 0
    return size


def sizes(root: Path) -> None:
    for release, variant in RUNTIME_CELLS:
        project = render(
            root / f"size-{release}-{variant}", debian_release=release, runtime_image=variant
        )
        tag = f"template-bench/{project.name}:{release}-{variant}"
        build_image(project, tag)
        mb = compressed_size(tag) / 1e6
        target = TARGETS_MB[variant]
        verdict = "ok" if mb <= target else "OVER"
        say(
            f"size {release:8} {variant:11} {mb:6.1f} MB compressed "
            f"(target <= {target} MB: {verdict})"
        )


def rebuild_ratio(root: Path) -> None:
    slug = f"bench-{uuid.uuid4().hex[:8]}"
    project = render(root / "cold", project_name=slug, slug=slug)
    started = time.monotonic()
    build_image(project, f"template-bench/{slug}:cold")
    cold = time.monotonic() - started
    routes = project / "src" / "routes.rs"
    routes.write_text(routes.read_text().replace('"Hello {name}!"', '"Howdy {name}!"'))
    started = time.monotonic()
    rebuilt = build_image(project, f"template-bench/{slug}:rebuild")
    warm = time.monotonic() - started
    ratio = warm / cold
    say(
        f"build cold {cold:6.1f} s, after a one-line change {warm:5.1f} s, "
        f"ratio {ratio:.0%} (target <= 20%: {'ok' if ratio <= 0.2 else 'OVER'}); "
        f"recompiled: {', '.join(compiled_crates(rebuilt.output))}"
    )


def hot_reload(root: Path) -> None:
    project = render(root / "dev")
    port = free_port()
    override = host_network_override(root / "compose.host-network.yaml", ["app"])
    name = f"template-bench-{uuid.uuid4().hex[:8]}"
    dev = None
    try:
        started = time.monotonic()
        dev = compose_up(
            project, [project / "compose.yaml", override], name, {"PORT": str(port)}, "--build"
        )
        wait_for_http(port, "/Pete", timeout=1800, expect="Hello Pete!")
        say(
            f"dev loop first answer after `up --build` {time.monotonic() - started:6.1f} s "
            "(dev image + debug build of the dependencies)"
        )
        routes = project / "src" / "routes.rs"
        with Hammer(port) as hammer:
            time.sleep(0.5)
            saved = time.monotonic()
            routes.write_text(routes.read_text().replace('"Hello {name}!"', '"Howdy {name}!"'))
            wait_for_http(port, "/Pete", timeout=600, expect="Howdy Pete!")
            latency = time.monotonic() - saved
            time.sleep(0.5)
        outcomes = hammer.outcomes()
        refused = outcomes.count("refused")
        say(
            f"hot reload: save to new answer {latency:5.1f} s; requests every 100 ms: "
            f"{len(outcomes)} sent, {outcomes.count('answered')} answered, {refused} refused, "
            f"{outcomes.count('error')} other errors (target: 0 refused: "
            f"{'ok' if refused == 0 else 'OVER'})"
        )
    finally:
        if dev is not None:
            dev.compose("down", "-v", "--remove-orphans", check=False)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", action="store_true", help="only the image sizes")
    args = parser.parse_args()
    ensure_engine()
    ensure_base_images(images_the_tier_uses())
    engine = subprocess.run(
        [docker_cli(), "version", "--format", "{{.Server.Version}}"],
        capture_output=True,
        text=True,
        check=False,
    ).stdout.strip()
    rust = default_answers()["rust_version"]
    say(f"answers: rust {rust}, engine {engine} at {docker_env()['DOCKER_HOST']}")
    with tempfile.TemporaryDirectory(prefix="bench-containers-") as tmp:
        root = Path(tmp)
        sizes(root)
        if not args.sizes:
            rebuild_ratio(root)
            hot_reload(root)


if __name__ == "__main__":
    main()
