"""The README's first command on a stock Linux Python, as a newcomer runs it.

`make service` in a Debian bookworm container that has only Debian's python3, python3-venv
and make: no pip in the system Python (which PEP 668 marks externally managed anyway), no
Rust, no Docker. It must build its own virtual environment, generate the service, and end
with the hook's "how to verify later" message instead of a pip error.

The container gets exactly the template's git-tracked files (what a clone gets). What this
machine needs to reach the package registries (its proxy's CA certificates, proxy variables,
its Debian mirror) goes into the test image and the container's environment only.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import uuid
from pathlib import Path

import pytest

import harness.debian
from harness import IN_CI, TEMPLATE_DIR
from harness.engine import docker
from harness.processes import require

pytestmark = pytest.mark.docker

BASE_IMAGE = "debian:bookworm-slim"
IMAGE = "template-test/first-commands:bookworm"
HOST_CA_DIR = Path("/usr/local/share/ca-certificates")
# Reaching the registries from this machine: passed through when set, never written down.
PASS_THROUGH = (
    "http_proxy",
    "https_proxy",
    "no_proxy",
    "HTTP_PROXY",
    "HTTPS_PROXY",
    "NO_PROXY",
    "PIP_INDEX_URL",
    "PIP_EXTRA_INDEX_URL",
    "PIP_TRUSTED_HOST",
    "PIP_DEFAULT_TIMEOUT",
)
VERIFY_LATER = "nothing to verify with: neither cargo nor a running Docker engine was found."

# The test image's CA certificates trust this machine's proxy and are used only while
# installing its packages; the user's part is the last two lines (a non-root account).
DOCKERFILE = """\
ARG BASE_IMAGE
FROM ${BASE_IMAGE}
ARG DEBIAN_MIRROR
COPY ca/ /usr/local/share/ca-certificates/
RUN rm -f /etc/apt/sources.list.d/* \\
 && echo "deb ${DEBIAN_MIRROR} bookworm main" > /etc/apt/sources.list \\
 && cat /usr/local/share/ca-certificates/*.crt > /tmp/proxy-ca.pem \\
 && apt-get -qq -o Acquire::https::CAInfo=/tmp/proxy-ca.pem update \\
 && DEBIAN_FRONTEND=noninteractive apt-get -qq -o Acquire::https::CAInfo=/tmp/proxy-ca.pem \\
    install -y --no-install-recommends python3 python3-venv make ca-certificates >/dev/null \\
 && update-ca-certificates >/dev/null \\
 && rm -rf /var/lib/apt/lists/* /tmp/proxy-ca.pem
RUN useradd --create-home newcomer
USER newcomer
WORKDIR /home/newcomer
"""


def debian_mirror() -> str:
    """This machine's Debian mirror (harness.debian); none fails under CI=true."""
    mirror = harness.debian.debian_mirror()
    if mirror:
        return mirror
    message = "no Debian mirror found in this machine's apt sources"
    if IN_CI:
        pytest.fail(message)
    pytest.skip(message)


def passed_environment() -> list[str]:
    """`-e NAME` for each variable of PASS_THROUGH that is set (docker copies the value)."""
    return [arg for name in PASS_THROUGH if name in os.environ for arg in ("-e", name)]


@pytest.fixture(scope="session")
def newcomer_image(base_images: None, tmp_path_factory: pytest.TempPathFactory) -> str:
    """Debian bookworm with only python3, python3-venv and make, built once per session."""
    context = tmp_path_factory.mktemp("first-commands-image")
    (context / "ca").mkdir()
    for cert in sorted(HOST_CA_DIR.glob("*.crt")):
        shutil.copy(cert, context / "ca" / cert.name)
    (context / "Dockerfile").write_text(DOCKERFILE)
    proxy_args = [
        arg for name in PASS_THROUGH if name.lower().endswith("proxy") and name in os.environ
        for arg in ("--build-arg", name)
    ]  # fmt: skip
    docker(
        "build",
        "--network",
        "host",
        "--build-arg",
        f"BASE_IMAGE={BASE_IMAGE}",
        "--build-arg",
        f"DEBIAN_MIRROR={debian_mirror()}",
        *proxy_args,
        "-t",
        IMAGE,
        str(context),
        timeout=1200,
    )
    return IMAGE


def tracked_files_archive(path: Path) -> Path:
    """The template's git-tracked files as a tar archive: what a clone holds."""
    git = require("git")
    listing = subprocess.run(
        [git, "ls-files", "-z"], cwd=TEMPLATE_DIR, capture_output=True, check=True
    ).stdout
    subprocess.run(
        ["tar", "--null", "-T", "-", "-cf", str(path)],
        cwd=TEMPLATE_DIR,
        input=listing,
        capture_output=True,
        check=True,
    )
    return path


def test_make_service_on_debian_python_with_only_venv_and_make(
    newcomer_image: str, tmp_path: Path
) -> None:
    archive = tracked_files_archive(tmp_path / "template.tar")
    name = f"template-test-first-commands-{uuid.uuid4().hex[:8]}"
    # The image is what the test claims: no pip for the system Python (PEP 668 marks it
    # externally managed), no Rust, no Docker.
    setting = docker(
        "run", "--rm", "--network", "host", newcomer_image, "sh", "-c",
        "ls /usr/lib/python3*/EXTERNALLY-MANAGED"
        " && ! python3 -m pip --version"
        " && ! command -v cargo && ! command -v rustc && ! command -v docker",
        check=False, timeout=120,
    )  # fmt: skip
    assert setting.returncode == 0, f"the newcomer image is not stock:\n{setting.stdout}"
    try:
        result = docker(
            "run", "--name", name, "--network", "host",
            "-v", f"{archive}:/tmp/template.tar:ro",
            # pip in a venv trusts its own CA bundle, not the system's: this machine's proxy
            # needs the system store (made in the test image).
            "-e", "PIP_CERT=/etc/ssl/certs/ca-certificates.crt",
            *passed_environment(),
            newcomer_image,
            "sh", "-c", "mkdir template && tar -xf /tmp/template.tar -C template"
            " && cd template && exec make service",
            check=False, timeout=1800,
        )  # fmt: skip
        output = result.stdout + result.stderr
        assert result.returncode == 0, f"make service exited {result.returncode}:\n{output[-6000:]}"
        assert "externally-managed-environment" not in output
        assert "Traceback" not in output, output[-6000:]
        assert VERIFY_LATER in output, output[-4000:]
        assert "verify later with: cd hello-service && cargo build" in output, output[-4000:]
        copied = tmp_path / "Cargo.toml"
        docker("cp", f"{name}:/home/newcomer/template/build/hello-service/Cargo.toml", str(copied))
        assert re.search(r'^name = "hello-service"$', copied.read_text(), re.MULTILINE)
    finally:
        docker("rm", "-f", name, check=False)
