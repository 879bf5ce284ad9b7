"""The generated compose project and dev container, run on the suite's engine (docker tier).

`devcontainer read-configuration` resolves the dev container to the compose service that
serves the port; the dev loop (compose up) serves an edit without refusing a request and
keeps its caches across `down`/`up`; `devcontainer up` serves /Pete inside the dev
container; with database=postgres, the app counts greetings in compose's db service.
Everything runs on host networking through compose overrides (harness/containers.py,
docs/containers.md).
"""

from __future__ import annotations

import json
import os
import subprocess
import time
import uuid
from pathlib import Path
from typing import Any

import pytest

from harness.containers import (
    ComposeProject,
    Hammer,
    check_host_networking,
    compiled_crates,
    compose_config,
    compose_up,
    ensure_base_images,
    host_network_override,
    render,
    wait_for_http,
)
from harness.engine import docker, docker_cli, docker_env, require_compose
from harness.processes import free_port, http_get, http_post, require
from harness.render import DEFAULT_SLUG, default_answers
from harness.standins import postgres_version

pytestmark = pytest.mark.docker


def read_devcontainer(project: Path) -> dict:
    """`devcontainer read-configuration`: the configuration as editors resolve it (offline)."""
    result = subprocess.run(
        [require("devcontainer"), "read-configuration", "--workspace-folder", str(project),
         "--log-format", "json"],
        capture_output=True, text=True, check=False, env=docker_env(), timeout=120,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr[-3000:]
    return json.loads(result.stdout)


def devcontainer_compose_files(resolved: dict) -> list[Path]:
    """The compose files a resolved configuration names, relative to its devcontainer.json."""
    config = resolved["configuration"]
    folder = Path(config["configFilePath"]["fsPath"]).parent
    files = config["dockerComposeFile"]
    return [(folder / file).resolve() for file in ([files] if isinstance(files, str) else files)]


# read-configuration asks the engine for an existing dev container (`docker ps`) and
# fails when none answers, hence the docker tier.
@pytest.mark.parametrize("answers", [{}, {"project_name": "Desk Two", "port": "8080"}])
def test_devcontainer_opens_the_compose_service_that_serves_the_port(
    answers: dict[str, str], cookies: Any, docker_engine: str
) -> None:
    require_compose()
    project = render(cookies, **answers)
    port = int(default_answers(**answers)["port"])
    resolved = read_devcontainer(project)
    config = resolved["configuration"]
    files = devcontainer_compose_files(resolved)
    assert files == [project / "compose.yaml"], files
    env = {k: v for k, v in docker_env().items() if k != "PORT"}
    compose = compose_config(project, files, "devcontainer-check", env)
    service = compose["services"][config["service"]]
    # The workspace the editor opens is the project, mounted where the service works.
    workspace = resolved["workspace"]["workspaceFolder"]
    mounts = {v["target"]: v for v in service["volumes"]}
    assert mounts[workspace]["type"] == "bind"
    assert Path(mounts[workspace]["source"]) == project
    assert service["working_dir"] == workspace
    # The service keeps its own command (the dev loop) and listens on the forwarded port.
    assert config.get("overrideCommand") is False
    assert service["environment"]["PORT"] == str(port)
    assert [int(p["target"]) for p in service["ports"]] == [port]
    assert config["forwardPorts"] == [port]


# Building the dev image is the tier's most expensive step (cargo install of the
# watcher); the cargo-watch image joins the matrix only when asked for with
# TEMPLATE_TEST_ALL_WATCHERS=1 (not a skip: CI treats skips as missing prerequisites).
WATCHERS = ["watchexec"] + (
    ["cargo-watch"] if os.environ.get("TEMPLATE_TEST_ALL_WATCHERS") == "1" else []
)


@pytest.mark.parametrize("watcher", WATCHERS)
def test_dev_loop_serves_the_edit_without_refusing_a_request(
    watcher: str, base_images: None, tmp_path: Path, cookies: Any
) -> None:
    require_compose()
    project = render(cookies, dev_watcher=watcher)
    port = free_port()
    override = host_network_override(tmp_path / "compose.host-network.yaml", ["app"])
    files = [project / "compose.yaml", override]
    name = f"template-dev-{uuid.uuid4().hex[:8]}"
    compose_env = {"PORT": str(port), "RUST_LOG": "info"}
    dev = None
    try:
        dev = compose_up(project, files, name, compose_env, "--build")
        assert dev.networks() == [], "compose created a network"
        wait_for_http(port, "/Pete", timeout=1800, expect="Hello Pete!")

        routes = project / "src" / "routes.rs"
        original = routes.read_text()
        assert '"Hello {name}!"' in original, "the greeting moved: update this test"
        with Hammer(port) as hammer:
            time.sleep(0.5)
            routes.write_text(original.replace('"Hello {name}!"', '"Howdy {name}!"'))
            wait_for_http(port, "/Pete", timeout=600, expect="Howdy Pete!")
            time.sleep(0.5)
        outcomes = hammer.outcomes()
        assert outcomes.count("refused") == 0, "refused during reload"
        assert set(outcomes) == {"answered"}, [r for r in hammer.results if r[0] != "answered"]
        bodies = {value[1] for kind, value in hammer.results}
        assert bodies <= {"Hello Pete!", "Howdy Pete!"} and "Howdy Pete!" in bodies, bodies
        assert len(outcomes) >= 5

        dev.compose("down")
        assert dev.running_containers() == [], "down left containers behind"

        # The named volumes keep the registry and target/: no dependency is rebuilt.
        dev.compose("up", "-d")
        wait_for_http(port, "/Pete", timeout=600, expect="Howdy Pete!")
        logs = dev.compose("logs", "app").stdout
        assert [c for c in compiled_crates(logs) if c != DEFAULT_SLUG] == [], logs[-3000:]
        dev.compose("down")
        assert dev.running_containers() == []
    finally:
        if dev is not None:
            dev.compose("down", "-v", "--remove-orphans", "--rmi", "local", check=False)


def test_devcontainer_up_serves_pete_inside_the_dev_container(
    base_images: None, tmp_path: Path, cookies: Any
) -> None:
    """What an editor does: `devcontainer up` on the generated project, then a request from
    inside the dev container. The loopback-only compose override is added through an
    override configuration (the user's devcontainer.json plus one more compose file)."""
    devcontainer = require("devcontainer")
    require_compose()
    project = render(cookies)
    port = free_port()
    name = f"template-devc-{uuid.uuid4().hex[:8]}"
    resolved = read_devcontainer(project)
    override = host_network_override(tmp_path / "compose.host-network.yaml", ["app"])
    files = [*devcontainer_compose_files(resolved), override]
    user_config = json.loads((project / ".devcontainer" / "devcontainer.json").read_text())
    override_config = tmp_path / "devcontainer.host-network.json"
    override_config.write_text(
        json.dumps(user_config | {"dockerComposeFile": [str(f) for f in files]})
    )
    # The CLI names the compose project after COMPOSE_PROJECT_NAME; PORT reaches compose.
    env = docker_env() | {"PORT": str(port), "COMPOSE_PROJECT_NAME": name}
    check_host_networking(compose_config(project, files, name, env))
    cli = [
        devcontainer,
        "--workspace-folder", str(project),
        "--override-config", str(override_config),
        "--docker-path", docker_cli(),
    ]  # fmt: skip
    compose = ComposeProject(project, files, name, env)
    try:
        up = subprocess.run(
            [cli[0], "up", *cli[1:], "--log-format", "json"],
            capture_output=True, text=True, check=False, env=env, timeout=3600,
        )  # fmt: skip
        outcome = json.loads(up.stdout.strip().splitlines()[-1]) if up.stdout.strip() else {}
        assert outcome.get("outcome") == "success", up.stdout[-3000:] + up.stderr[-3000:]
        assert outcome["composeProjectName"] == name
        assert outcome["remoteWorkspaceFolder"] == resolved["workspace"]["workspaceFolder"]
        assert compose.networks() == [], "compose created a network"
        # The dev loop compiles the service first; then curl inside the container.
        wait_for_http(port, "/Pete", timeout=1800, expect="Hello Pete!")
        # In the text log format, the command's own output is exec's stdout.
        inside = subprocess.run(
            [cli[0], "exec", *cli[1:], "curl", "-sS", f"http://127.0.0.1:{port}/Pete"],
            capture_output=True, text=True, check=False, env=env, timeout=120,
        )  # fmt: skip
        assert (inside.returncode, inside.stdout) == (0, "Hello Pete!"), inside.stderr[-3000:]
    finally:
        compose.compose("down", "-v", "--remove-orphans", "--rmi", "local", check=False)
        label = f"label=com.docker.compose.project={name}"
        for kind in ("container", "volume"):
            left = docker(kind, "ls", "-aq" if kind == "container" else "-q",
                          "--filter", label, check=False).stdout.split()  # fmt: skip
            if left:
                docker(kind, "rm", "-f", *left, check=False)


def test_postgres_dev_loop_greets_from_the_db_service_and_down_v_removes_it(
    base_images: None, tmp_path: Path, cookies: Any
) -> None:
    """database=postgres: compose.yaml's db (the pinned image; a stand-in of harness/
    standins.py where it cannot be pulled) becomes healthy, the app waits for it, applies
    the migrations and counts greetings in it; `down -v` removes both and the data."""
    require_compose()
    project = render(cookies, database="postgres")
    db_config = compose_config(project, [project / "compose.yaml"], "db-check", docker_env())
    image = db_config["services"]["db"]["image"]
    assert image == f"postgres:{postgres_version()}-{default_answers()['debian_release']}"
    ensure_base_images([image])
    port, db_port = free_port(), free_port()
    override = host_network_override(tmp_path / "compose.host-network.yaml", ["app"])
    # Host networking has no service names: the app reaches db on loopback, db listens
    # there only, on a port of its own (PGPORT; pg_isready in its healthcheck reads it).
    database = override.with_name("compose.db-on-loopback.yaml")
    crate = DEFAULT_SLUG.replace("-", "_")
    database.write_text(
        "services:\n"
        "  app:\n"
        "    environment:\n"
        f"      DATABASE_URL: postgres://postgres:dev@127.0.0.1:{db_port}/{crate}\n"
        "  db:\n"
        "    network_mode: host\n"
        "    ports: !reset []\n"
        "    environment:\n"
        f'      PGPORT: "{db_port}"\n'
        '    command: ["postgres", "-c", "listen_addresses=127.0.0.1"]\n'
    )
    files = [project / "compose.yaml", override, database]
    name = f"template-db-{uuid.uuid4().hex[:8]}"
    dev = None
    try:
        dev = compose_up(project, files, name, {"PORT": str(port)}, "--build")
        assert dev.networks() == [], "compose created a network"
        wait_for_http(port, "/readyz", timeout=1800, expect='{"status":"ready"}')
        (db_container,) = dev.compose("ps", "-q", "db").stdout.split()
        health = docker("inspect", "--format", "{{.State.Health.Status}}", db_container)
        assert health.stdout.strip() == "healthy", health.stdout
        assert http_post(port, "/greetings/Pete") == (201, '{"name":"Pete","count":1}')
        assert http_post(port, "/greetings/Pete") == (201, '{"name":"Pete","count":2}')
        assert http_get(port, "/greetings/Pete") == (200, '{"name":"Pete","count":2}')
        assert http_get(port, "/greetings/Nobody") == (200, '{"name":"Nobody","count":0}')
        rows = dev.compose(
            "exec", "-T", "db", "psql", "-U", "postgres", "-d", crate, "-Atc",
            "SELECT count(*) FROM greetings",
        ).stdout.strip()  # fmt: skip
        assert rows == "2", rows

        dev.compose("down", "-v")
        assert dev.running_containers() == [], "down left containers behind"
        label = f"label=com.docker.compose.project={name}"
        volumes = docker("volume", "ls", "-q", "--filter", label).stdout.split()
        assert volumes == [], f"down -v left volumes behind: {volumes}"
    finally:
        if dev is not None:
            dev.compose("down", "-v", "--remove-orphans", "--rmi", "local", check=False)
