"""Session-wide fixtures and hooks.

One cargo target directory for every build in the run; every docker client pointed at
the suite's own engine; and, after everything, a check that the engine a user works
with holds no stand-in image. For the update tier (tests/test_update_*.py): the template
repository with two release tags, and git, cookiecutter and copier kept out of $HOME.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

# Assertions inside the harness explain themselves as the tests' own do.
pytest.register_assert_rewrite("harness")

from harness import IN_CI, TEMPLATE_DIR
from harness.containers import (
    ContainerRunner,
    EngineUnavailable,
    RuntimeImages,
    ensure_base_images,
    ensure_engine,
    images_the_tier_uses,
    stop_engine,
)
from harness.engine import (
    DEFAULT_DOCKER_SOCKET,
    STANDIN_LABEL,
    docker_cli,
    standin_images_on,
    suite_engine_host,
    suite_engine_socket,
    use_suite_engine,
)
from harness.git import commit_all, git
from harness.pipeline import make_ci_repo
from harness.postgres import Postgres, postgres_server
from harness.releases import two_releases
from harness.render import bake, default_answers
from harness.update import isolated_tools

# The command-line tools of requirements-dev.txt (ruff, check-jsonschema, hadolint, cruft,
# sccache) sit next to the interpreter in .venv/bin: find them as an activated venv would.
os.environ["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), os.environ["PATH"]])


def pytest_configure(config: pytest.Config) -> None:
    """Before collection: DOCKER_HOST names the suite's engine for every subprocess."""
    use_suite_engine()


# The user's engine is checked in pytest_sessionfinish because pytest calls it after the
# last test and after every fixture's teardown (the docker tier's included), also after
# -x stops the run; a finding there turns the exit status into "tests failed".
DEFAULT_ENGINE_AT_START = pytest.StashKey[bool]()
USERS_ENGINE_FINDINGS = pytest.StashKey[list[str]]()


def pytest_sessionstart(session: pytest.Session) -> None:
    session.config.stash[DEFAULT_ENGINE_AT_START] = (
        standin_images_on(DEFAULT_DOCKER_SOCKET) is not None
    )


def users_engine_findings(answered_at_start: bool) -> list[str]:
    """What the suite left in (or did to) the engine on the default socket."""
    suite_socket = suite_engine_socket()
    if suite_socket.resolve() == DEFAULT_DOCKER_SOCKET.resolve():
        return [f"the suite's engine uses the default socket {DEFAULT_DOCKER_SOCKET}"]
    standins = standin_images_on(DEFAULT_DOCKER_SOCKET)
    if standins is None:
        return []
    findings = []
    if not answered_at_start:
        findings.append(f"an engine started answering on {DEFAULT_DOCKER_SOCKET} during the run")
    if standins:
        findings.append(
            f"the engine on {DEFAULT_DOCKER_SOCKET} holds images labelled {STANDIN_LABEL}: "
            f"{'; '.join(standins)} (remove them with `docker image rm`; the suite builds "
            f"stand-ins only in its own engine, {suite_socket})"
        )
    return findings


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    findings = users_engine_findings(session.config.stash.get(DEFAULT_ENGINE_AT_START, True))
    session.config.stash[USERS_ENGINE_FINDINGS] = findings
    if findings:
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


# Seconds spent per tier (setup, call and teardown of its tests, so a session fixture's
# cost lands in the tier that first needs it), printed for docs/results.md.
TIERS = ("update", "pipeline", "docker", "slow")
TIER_SECONDS = pytest.StashKey[dict[str, float]]()
TIER_OF_TEST = pytest.StashKey[str]()


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    config.stash[TIER_SECONDS] = {}
    for item in items:
        item.stash[TIER_OF_TEST] = next(
            (tier for tier in TIERS if item.get_closest_marker(tier)), "fast"
        )


@pytest.hookimpl(wrapper=True)
def pytest_runtest_protocol(item: pytest.Item, nextitem: pytest.Item | None) -> Iterator:
    started = time.monotonic()
    try:
        return (yield)
    finally:
        tier = item.stash.get(TIER_OF_TEST, "fast")
        seconds = item.config.stash.setdefault(TIER_SECONDS, {})
        seconds[tier] = seconds.get(tier, 0.0) + time.monotonic() - started


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    """Printed by pytest after pytest_sessionfinish, just above the final counts."""
    seconds = terminalreporter.config.stash.get(TIER_SECONDS, {})
    if seconds:
        terminalreporter.write_line(
            "time per tier: "
            + ", ".join(f"{tier} {seconds[tier]:.0f} s" for tier in sorted(seconds))
        )
    findings = terminalreporter.config.stash.get(USERS_ENGINE_FINDINGS, [])
    if findings:
        terminalreporter.section("the user's Docker engine was touched", red=True, bold=True)
        for finding in findings:
            terminalreporter.write_line(f"FAILED: {finding}", red=True)


@pytest.fixture(scope="session")
def cargo_target_dir() -> Path:
    """Shared by every cargo build of the session, across generated projects.

    Kept under .cache/ so repeated local runs stay warm; CI starts from empty.
    """
    path = Path(os.environ.get("TEMPLATE_TEST_CARGO_TARGET", TEMPLATE_DIR / ".cache" / "target"))
    path.mkdir(parents=True, exist_ok=True)
    return path


@pytest.fixture(scope="session")
def cargo_env(cargo_target_dir: Path) -> dict[str, str]:
    """Environment for cargo (and the post-generation hook) sharing one target dir."""
    env = dict(os.environ)
    env["CARGO_TARGET_DIR"] = str(cargo_target_dir)
    env.setdefault("CARGO_TERM_COLOR", "never")
    return env


@pytest.fixture(scope="session", autouse=True)
def shared_cargo_target(cargo_target_dir: Path) -> Iterator[None]:
    """Hooks run cargo in subprocesses; they inherit the shared target dir too."""
    previous = os.environ.get("CARGO_TARGET_DIR")
    os.environ["CARGO_TARGET_DIR"] = str(cargo_target_dir)
    yield
    if previous is None:
        os.environ.pop("CARGO_TARGET_DIR", None)
    else:
        os.environ["CARGO_TARGET_DIR"] = previous


@pytest.fixture(scope="session")
def default_project(cookies_session: Any) -> Path:
    """The service generated with the default answers (verification off)."""
    return bake(cookies_session, **default_answers())


@pytest.fixture(scope="session")
def postgres() -> Iterator[Postgres]:
    """One throwaway PostgreSQL cluster (Debian's packages, loopback) for the session; a
    test takes its own database with `postgres.create_database(name)`."""
    with postgres_server() as server:
        yield server


# ---------------------------------------------------------------- the generated CI
# Shared by tests/test_pipeline_files.py, tests/test_pipeline_rules.py and
# tests/test_pipeline_runs.py.
@pytest.fixture(scope="session")
def rendered(cookies_session: Any) -> Callable[..., Path]:
    """Render once per answer set: rendered(ci_provider="both", sccache_backend="redis")."""
    cache: dict[tuple, Path] = {}

    def render(**answers: str) -> Path:
        key = tuple(sorted(answers.items()))
        if key not in cache:
            cache[key] = bake(cookies_session, **default_answers(**answers))
        return cache[key]

    return render


@pytest.fixture(scope="session")
def ci_repo(rendered: Callable[..., Path], tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A git repository of the generated project with an origin, as a runner sees it.

    Branches: main (default, pushed to origin), feature (one commit ahead), lock
    (changes Cargo.lock). Tags: v1.0.0, v1.1.0-rc.1, release/1.0 and foo on main
    (harness.pipeline.PIPELINES uses them all).
    """
    repo = make_ci_repo(rendered(), tmp_path_factory.mktemp("ci-repo"))
    for tag in ("v1.0.0", "v1.1.0-rc.1", "release/1.0", "foo"):
        git(repo, "tag", tag)
    git(repo, "checkout", "-q", "-b", "feature")
    (repo / "src" / "feature.txt").write_text("a feature\n")
    commit_all(repo, "feature")
    git(repo, "checkout", "-q", "-b", "lock", "main")
    with (repo / "Cargo.lock").open("a") as f:
        f.write("# a change to the lock file\n")
    commit_all(repo, "lock change")
    return repo


# ---------------------------------------------------------------- the container tier
# The suite's Docker engine, its base images, runtime images and containers (harness/
# containers.py does the work; benchmarks call the same functions without pytest).


@pytest.fixture(scope="session")
def docker_engine() -> Iterator[str]:
    """The suite's own engine, running; stopped at the end if this session started it.

    Its data (images, build cache) stays for the next session.
    """
    try:
        started = ensure_engine()
    except EngineUnavailable as error:
        if IN_CI:
            pytest.fail(str(error))
        pytest.skip(str(error))
    assert os.environ["DOCKER_HOST"] == suite_engine_host()
    yield docker_cli()
    if started:
        stop_engine()


@pytest.fixture(scope="session")
def base_images(docker_engine: str) -> None:
    """The base images the built cells name, present once per machine."""
    ensure_base_images(images_the_tier_uses())


@pytest.fixture(scope="session")
def runtime_images(base_images: None, cookies_session: Any) -> RuntimeImages:
    """Each (Debian release, runtime variant) image, built once when a test first asks."""
    return RuntimeImages(cookies_session)


@pytest.fixture
def run_container() -> Iterator[ContainerRunner]:
    """Starts containers on host networking with PORT set to a free port; removes them."""
    runner = ContainerRunner()
    yield runner
    runner.remove_all()


# ---------------------------------------------------------------- the update tier
# Shared by tests/test_update_keeps_edits.py, tests/test_update_conflicts.py,
# tests/test_update_from_cookiecutter.py and tests/test_update_previous_release.py.
@pytest.fixture(scope="session")
def template_repo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The template as a git repository with tags v1.0.0 (the working tree) and v1.1.0 (the
    changes of harness.releases.make_version_b)."""
    return two_releases(tmp_path_factory.mktemp("template") / "rust-service-template")


@pytest.fixture(scope="module")
def isolated_update_tools(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """git, cookiecutter and copier kept out of $HOME while an update test module runs."""
    with isolated_tools(tmp_path_factory.mktemp("update-home")) as home:
        yield home
