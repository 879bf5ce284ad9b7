"""The generated service under load, against what users would pick instead.

    .venv/bin/python -m benchmarks.service_load [--duration 10] [--profiles]

wrk (Debian's package) on loopback, one run, same machine, side by side:
(a) the generated service's release binary, default middleware and configuration, JSON
    logs written to a pipe that this script drains;
(b) a bare actix-web hello-world on the same actix-web version and lock, no middleware
    (generated in a temporary directory);
(c) Flask under gunicorn, one sync worker per core (pip into a temporary venv).
Prints requests per second, p99 latency, errors and peak RSS of each, and the ratios.

Then the default answers' cold `cargo build --release --locked` before (the template at
git ref `main`) and after (this working tree), one after the other in one run, with the
compile time of each crate that is new; `--profiles` adds release-profile variants of the
"after" build (binary size, build time, throughput).

`--database` adds (and `--database-only` runs just) the `database=postgres` service's
release binary against a throwaway PostgreSQL (harness.postgres), default pool: GET
/greetings/Pete (one row read) and POST /greetings/Pete (one transaction: an insert and
an upsert of the same row, so every request contends for one row lock), with /Pete on
the same binary as the baseline.
"""

from __future__ import annotations

import argparse
import html
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from harness import TEMPLATE_DIR
from harness.postgres import postgres_server
from harness.processes import free_port
from harness.render import default_answers, render_cookiecutter
from harness.service import Server, service_env

NICE = ["nice", "-n", "10"]
CORES = os.cpu_count() or 1
FLASK_VERSION, GUNICORN_VERSION = "3.1.2", "23.0.0"
BARE_MAIN = """\
use actix_web::{App, HttpServer, get, web};

#[get("/{name}")]
async fn greet(name: web::Path<String>) -> String {
    format!("Hello {name}!")
}

#[actix_web::main]
async fn main() -> std::io::Result<()> {
    let port: u16 = std::env::var("PORT").unwrap().parse().unwrap();
    HttpServer::new(|| App::new().service(greet))
        .bind(("127.0.0.1", port))?
        .run()
        .await
}
"""
FLASK_APP = """\
from flask import Flask

app = Flask(__name__)


@app.get("/<name>")
def greet(name):
    return f"Hello {name}!"
"""
# Release-profile variants for --profiles, as cargo's environment overrides.
PROFILES = {
    "default": {},
    "strip": {"CARGO_PROFILE_RELEASE_STRIP": "symbols"},
    "strip+thin-lto": {
        "CARGO_PROFILE_RELEASE_STRIP": "symbols",
        "CARGO_PROFILE_RELEASE_LTO": "thin",
    },
}


def cargo_build(project: Path, target: Path, extra_env: dict[str, str] | None = None) -> float:
    """A release build into `target`; returns the seconds it took."""
    env = dict(os.environ, CARGO_TARGET_DIR=str(target), **(extra_env or {}))
    started = time.monotonic()
    subprocess.run(
        [*NICE, "cargo", "build", "--release", "--locked", "--timings"],
        cwd=project,
        env=env,
        check=True,
        capture_output=True,
    )
    return time.monotonic() - started


def unit_times(project: Path) -> dict[str, float]:
    """Seconds per crate from cargo's --timings report (its embedded UNIT_DATA)."""
    reports = sorted((project / "target" / "cargo-timings").glob("cargo-timing-*.html"))
    if not reports:
        return {}
    text = reports[-1].read_text()
    match = re.search(r"const UNIT_DATA = (\[.*?\]);\n", text, re.S)
    if not match:
        return {}
    times: dict[str, float] = {}
    for unit in json.loads(html.unescape(match.group(1))):
        times[unit["name"]] = times.get(unit["name"], 0.0) + float(unit["duration"])
    return times


def lock_names(project: Path) -> set[str]:
    return set(re.findall(r'^name = "(.+)"$', (project / "Cargo.lock").read_text(), re.M))


def render_at(ref: str | None, destination: Path) -> Path:
    """The default answers rendered from this tree, or from the template at git `ref`."""
    template = TEMPLATE_DIR
    if ref:
        template = destination.parent / f"template-{ref}"
        template.mkdir()
        archive = subprocess.run(
            ["git", "archive", ref], cwd=TEMPLATE_DIR, check=True, capture_output=True
        ).stdout
        subprocess.run(["tar", "-x", "-C", str(template)], input=archive, check=True)
    return render_cookiecutter(destination, template=template, **default_answers())


# ---------------------------------------------------------------- load


def start(
    cmd: list[str], port: int, env: dict[str, str] | None = None, cwd: Path | None = None
) -> Server:
    """A server whose output goes to a pipe this script drains, once it answers /Pete."""
    server = Server(cmd, port, cwd=cwd, env=env)
    try:
        server.wait_until_answering("/Pete", timeout=60)
    except AssertionError:
        server.stop()
        raise
    return server


def start_service(binary: Path) -> Server:
    """The generated service on a free port: default configuration, JSON logs."""
    port = free_port()
    return start([str(binary)], port, service_env(port))


def wrk(
    port: int,
    duration: int,
    server: Server | None = None,
    path: str = "/Pete",
    script: Path | None = None,
) -> dict[str, float]:
    cpu_before = server.cpu_seconds() if server else 0.0
    out = subprocess.run(
        [
            *NICE,
            "wrk",
            "-t2",
            "-c64",
            f"-d{duration}s",
            "--latency",
            *(["-s", str(script)] if script else []),
            f"http://127.0.0.1:{port}{path}",
        ],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    p99 = re.search(r"^\s+99%\s+([\d.]+)(us|ms|s)\b", out, re.M)
    scale = {"us": 0.001, "ms": 1.0, "s": 1000.0}
    errors = sum(int(n) for n in re.findall(r"(?:connect|read|write|timeout) (\d+)", out))
    non_2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    requests = int(re.search(r"(\d+) requests in", out).group(1))
    cpu_us = (server.cpu_seconds() - cpu_before) * 1e6 / max(requests, 1) if server else 0.0
    return {
        "cpu_us": cpu_us,
        "rps": float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1)),
        "p99_ms": float(p99.group(1)) * scale[p99.group(2)] if p99 else float("nan"),
        "errors": errors + (int(non_2xx.group(1)) if non_2xx else 0),
        "requests": requests,
    }


def report(name: str, result: dict[str, float]) -> None:
    print(
        f"  {name:<40} {result['rps']:>9.0f} req/s  p99 {result['p99_ms']:>7.2f} ms  "
        f"errors {result['errors']:>4.0f}  peak RSS {result['rss_mb']:>6.1f} MB  "
        f"server CPU {result['cpu_us']:>6.1f} us/request",
        flush=True,
    )


def measure(name: str, server: Server, duration: int) -> dict[str, float]:
    try:
        wrk(server.port, 2)  # warm-up: connections, caches, lazily started workers
        result = wrk(server.port, duration, server)
        result["rss_mb"] = server.peak_rss_mb()
    finally:
        server.stop(timeout=30)
    report(name, result)
    return result


def bare_actix(scratch: Path, service: Path) -> Path:
    """A hello-world on the service's actix-web version, resolved from the service's lock."""
    project = scratch / "bare-actix"
    (project / "src").mkdir(parents=True)
    toml = (service / "Cargo.toml").read_text()
    actix = re.search(r"^actix-web = .*$", toml, re.M).group(0)
    (project / "Cargo.toml").write_text(
        f'[package]\nname = "bare-actix"\nversion = "0.1.0"\nedition = "2024"\n'
        f"publish = false\n\n[dependencies]\n{actix}\n"
    )
    (project / "src" / "main.rs").write_text(BARE_MAIN)
    shutil.copy(service / "Cargo.lock", project / "Cargo.lock")
    cargo_build_unlocked(project)
    return project / "target" / "release" / "bare-actix"


def cargo_build_unlocked(project: Path) -> None:
    # Not --locked: cargo drops the service's own crates from the copied lock.
    env = dict(os.environ, CARGO_TARGET_DIR=str(project / "target"))
    subprocess.run(
        [*NICE, "cargo", "build", "--release"],
        cwd=project,
        env=env,
        check=True,
        capture_output=True,
    )


def flask_venv(scratch: Path) -> Path:
    venv = scratch / "flask-venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    subprocess.run(
        [
            str(venv / "bin" / "pip"),
            "install",
            "--quiet",
            f"flask=={FLASK_VERSION}",
            f"gunicorn=={GUNICORN_VERSION}",
        ],
        check=True,
    )
    (scratch / "flask_hello.py").write_text(FLASK_APP)
    return venv


def load_comparison(scratch: Path, service: Path, binary: Path, duration: int) -> None:
    bare = bare_actix(scratch, service)
    venv = flask_venv(scratch)
    print(f"\nwrk -t2 -c64 -d{duration}s on loopback, {CORES} cores:", flush=True)
    a = measure("(a) generated service", start_service(binary), duration)
    port = free_port()
    b = measure(
        "(b) bare actix-web hello",
        start([str(bare)], port, dict(os.environ, PORT=str(port))),
        duration,
    )
    port = free_port()
    gunicorn = [
        str(venv / "bin" / "gunicorn"),
        f"--workers={CORES}",
        f"--bind=127.0.0.1:{port}",
        "--log-level=warning",
        "flask_hello:app",
    ]
    c = measure("(c) Flask + gunicorn, 1 worker/core", start(gunicorn, port, cwd=scratch), duration)
    print(
        f"  (a)/(b) throughput {a['rps'] / b['rps']:.2f} (goal >= 0.85); "
        f"(a)/(c) {a['rps'] / c['rps']:.1f} (goal >= 20); "
        f"errors (a) {a['errors']:.0f} (goal 0); peak RSS (a) {a['rss_mb']:.1f} MB (goal <= 10)"
    )
    # CPU per request is steadier than throughput on a machine shared with other work.
    print(f"  server CPU per request (b)/(a): {b['cpu_us'] / a['cpu_us']:.2f}")


# ---------------------------------------------------------------- the database route

POST_SCRIPT = 'wrk.method = "POST"\n'


def database_load(scratch: Path, duration: int) -> None:
    """The postgres service's release binary, default pool, against a throwaway server."""
    project = render_cookiecutter(scratch / "postgres", **default_answers(database="postgres"))
    # The shared target directory (TEMPLATE_TEST_CARGO_TARGET) keeps this build warm.
    target = Path(os.environ.get("TEMPLATE_TEST_CARGO_TARGET", project / "target"))
    seconds = cargo_build(project, target)
    binary = target / "release" / project.name
    post_script = scratch / "post.lua"
    post_script.write_text(POST_SCRIPT)
    with postgres_server() as postgres:
        url = postgres.create_database("service_load")
        port = free_port()
        server = start([str(binary)], port, service_env(port, DATABASE_URL=url))
        try:
            server.wait_until_answering("/readyz", timeout=60)
            print(
                f"\ndatabase=postgres (release build {seconds:.0f} s), default pool, "
                f"PostgreSQL {postgres.bin_dir.parent.name} on loopback, "
                f"wrk -t2 -c64 -d{duration}s:",
                flush=True,
            )
            runs = (
                ("GET /Pete (no database)", "/Pete", None),
                ("GET /greetings/Pete (one read)", "/greetings/Pete", None),
                ("POST /greetings/Pete (one transaction)", "/greetings/Pete", post_script),
            )
            posted = 0
            for name, path, script in runs:
                warm_up = wrk(port, 2, path=path, script=script)  # the pool's connections
                result = wrk(port, duration, server, path=path, script=script)
                result["rss_mb"] = server.peak_rss_mb()
                report(name, result)
                if script is not None:
                    posted += int(warm_up["requests"] + result["requests"])
        finally:
            server.stop(timeout=30)
        count = postgres.psql(
            "SELECT count FROM greeting_counts WHERE name = 'Pete'", "service_load"
        )
        print(f"  greetings counted for Pete: {count}, POSTs answered by wrk: {posted}")


# ---------------------------------------------------------------- builds


def build_comparison(scratch: Path) -> tuple[Path, Path]:
    before = render_at("main", scratch / "before")
    after = render_at(None, scratch / "after")
    print("cold `cargo build --release --locked` (crates already downloaded):", flush=True)
    before_s = cargo_build(before, before / "target")
    print(f"  before (template at main): {before_s:6.1f} s", flush=True)
    after_s = cargo_build(after, after / "target")
    print(
        f"  after  (this tree):        {after_s:6.1f} s  ({(after_s / before_s - 1) * 100:+.0f} %,"
        " goal < +30 %)",
        flush=True,
    )
    # Summed compile time of every unit: steadier than wall time on a shared machine.
    before_cpu, after_cpu = sum(unit_times(before).values()), sum(unit_times(after).values())
    print(
        f"  summed unit compile time: before {before_cpu:.1f} s, after {after_cpu:.1f} s "
        f"({(after_cpu / before_cpu - 1) * 100:+.0f} %)"
    )
    new = lock_names(after) - lock_names(before)
    gone = lock_names(before) - lock_names(after)
    times = unit_times(after)
    before_times = unit_times(before)
    print("  new crates (compile time, summed over build script and library):")
    for name in sorted(new, key=lambda n: -times.get(n.replace("-", "_"), times.get(n, 0))):
        seconds = times.get(name, times.get(name.replace("-", "_"), 0.0))
        print(f"    {name:<22} {seconds:5.1f} s")
    if gone:
        saved = sum(before_times.get(n, 0.0) for n in gone)
        print(f"  crates no longer built: {', '.join(sorted(gone))} ({saved:.1f} s)")
    # The rendered folder is named after the slug the engine derived.
    return after, after / "target" / "release" / after.name


def profile_comparison(after: Path, duration: int) -> None:
    slug = after.name
    print("\nrelease profile variants of the generated service (cold build each):")
    for name, overrides in PROFILES.items():
        target = after / f"target-{name}"
        seconds = cargo_build(after, target, overrides)
        binary = target / "release" / slug
        size_mb = binary.stat().st_size / 1e6
        server = start_service(binary)
        try:
            wrk(server.port, 2)
            result = wrk(server.port, duration)
        finally:
            server.stop(timeout=30)
        print(
            f"  {name:<20} build {seconds:6.1f} s  binary {size_mb:5.1f} MB  "
            f"{result['rps']:>8.0f} req/s  p99 {result['p99_ms']:.2f} ms",
            flush=True,
        )
        shutil.rmtree(target)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=int, default=10, help="seconds of load per server")
    parser.add_argument("--profiles", action="store_true", help="also compare release profiles")
    parser.add_argument("--database", action="store_true", help="also load the database route")
    parser.add_argument("--database-only", action="store_true", help="only load the database route")
    args = parser.parse_args()
    for tool in ("cargo", "wrk", "git"):
        if not shutil.which(tool):
            sys.exit(f"{tool} is not installed (run harness/install-prerequisites.sh)")
    with tempfile.TemporaryDirectory(prefix="service-load-") as tmp:
        scratch = Path(tmp)
        if not args.database_only:
            after, binary = build_comparison(scratch)
            load_comparison(scratch, after, binary, args.duration)
            if args.profiles:
                profile_comparison(after, args.duration)
        if args.database or args.database_only:
            database_load(scratch, args.duration)


if __name__ == "__main__":
    main()
