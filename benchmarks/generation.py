"""Time generation and the post-generation check; print one line per figure.

    .venv/bin/python -m benchmarks.generation [--runs 5]

- generation without verification, with cookiecutter and with copier (median of runs);
- verification with a cold cargo cache (empty CARGO_HOME and target dir: crates are
  downloaded and every dependency compiled) and with a warm one (same caches, a new
  project directory, as when a team generates its second service).
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from harness.render import default_answers, render_cookiecutter, render_copier


def timed(action: Callable[[], object]) -> float:
    started = time.monotonic()
    action()
    return time.monotonic() - started


def median_generation(render: Callable[[Path], object], runs: int) -> float:
    with tempfile.TemporaryDirectory() as scratch:
        return statistics.median(
            timed(lambda i=i: render(Path(scratch) / f"run{i}")) for i in range(runs)
        )


def verification(scratch: Path, name: str) -> float:
    return timed(lambda: render_cookiecutter(scratch / name, **default_answers(verify="cargo")))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    runs = parser.parse_args().runs

    answers = default_answers()
    cookiecutter_s = median_generation(lambda d: render_cookiecutter(d, **answers), runs)
    print(f"generation, cookiecutter, no verification: {cookiecutter_s:.2f} s (median of {runs})")
    copier_s = median_generation(lambda d: render_copier(d / "svc", **answers), runs)
    print(f"generation, copier, no verification:       {copier_s:.2f} s (median of {runs})")

    with tempfile.TemporaryDirectory() as caches:
        os.environ["CARGO_HOME"] = str(Path(caches) / "cargo-home")
        os.environ["CARGO_TARGET_DIR"] = str(Path(caches) / "target")
        cold_s = verification(Path(caches), "cold")
        print(f"generation + verification, cold cargo cache: {cold_s:.1f} s")
        warm_s = verification(Path(caches), "warm")
        print(f"generation + verification, warm cargo cache: {warm_s:.1f} s")
        print(f"warm / cold: {warm_s / cold_s:.2f}")


if __name__ == "__main__":
    main()
