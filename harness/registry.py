"""A throwaway container registry on loopback: Debian's docker-registry (distribution 2.8)
with htpasswd authentication, plain HTTP, storage in a temporary directory.

The generated publish job logs in to it and pushes there (tests/test_pipeline_runs.py);
GitLab's own registry speaks TLS, this one does not, so the clients that talk to it are
told it is insecure (`registries_conf`). `seed` copies images from the suite's engine
into it with skopeo: the job's image builds pull their base images from it through the
docker.io mirror that `registries_conf` declares (the machine cannot reach docker.io).
"""

from __future__ import annotations

import contextlib
import json
import tempfile
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from harness.engine import suite_engine_host
from harness.processes import GiveUp, free_port, require, run, wait_until
from harness.service import Server

USER = "ci-user"


@dataclass(frozen=True)
class Registry:
    host: str  # 127.0.0.1:<port>, what CI_REGISTRY holds
    user: str
    password: str

    def creds(self) -> str:
        return f"{self.user}:{self.password}"

    def registries_conf(self) -> str:
        """containers-registries.conf(5) for clients in a job: this registry over plain
        HTTP, and it as the mirror of docker.io (short names resolve to docker.io)."""
        return f"""unqualified-search-registries = ["docker.io"]

[[registry]]
location = "{self.host}"
insecure = true

[[registry]]
prefix = "docker.io"
location = "docker.io"

[[registry.mirror]]
location = "{self.host}"
insecure = true
"""

    def seed(self, image: str) -> None:
        """Copy `image` (a docker.io name such as debian:bookworm-slim) from the suite's
        engine to where the docker.io mirror looks for it (library/ for official images)."""
        name = image if "/" in image.split(":")[0] else f"library/{image}"
        self.copy_from_engine(image, f"{self.host}/{name}")

    def copy_from_engine(self, image: str, name: str) -> None:
        """Push the suite's engine's `image` to the registry as `name` (host/name:tag)."""
        skopeo(
            "copy",
            "--quiet",
            "--src-daemon-host",
            suite_engine_host(),
            "--dest-tls-verify=false",
            "--dest-creds",
            self.creds(),
            f"docker-daemon:{image}",
            f"docker://{name}",
        )

    def has(self, image: str) -> bool:
        """Whether the registry has a manifest for `image` (host/name:tag)."""
        inspect = [require("skopeo"), "inspect", "--raw", "--tls-verify=false"]
        result = run([*inspect, "--creds", self.creds(), f"docker://{image}"], check=False)
        return result.returncode == 0

    def delete(self, image: str) -> None:
        """Delete `image` (host/name:tag) as a cleanup policy does: its manifest and tag."""
        skopeo("delete", "--tls-verify=false", "--creds", self.creds(), f"docker://{image}")

    def digest(self, image: str) -> str:
        """The manifest digest (sha256:...) the registry holds for `image` (host/name:tag)."""
        out = skopeo("inspect", "--tls-verify=false", "--creds", self.creds(), f"docker://{image}")
        return json.loads(out)["Digest"]

    def copy_to_engine(self, image: str, name: str) -> None:
        """Pull `image` (host/name@digest) from the registry into the suite's engine as `name`."""
        skopeo(
            "copy",
            "--quiet",
            "--src-tls-verify=false",
            "--src-creds",
            self.creds(),
            "--dest-daemon-host",
            suite_engine_host(),
            f"docker://{image}",
            f"docker-daemon:{name}",
        )


def skopeo(*args: str) -> str:
    return run([require("skopeo"), *args], timeout=600).stdout


CONFIG = """version: 0.1
log:
  level: warn
storage:
  filesystem:
    rootdirectory: {root}/data
  # Deleting manifests, as GitLab's cleanup policies delete tags.
  delete:
    enabled: true
http:
  addr: {host}
auth:
  htpasswd:
    realm: template-test
    path: {root}/htpasswd
"""


@contextlib.contextmanager
def registry(password: str = "ci-password", timeout: float = 20) -> Iterator[Registry]:
    """docker-registry on 127.0.0.1 (a free port) with one user until the block ends."""
    binary = require("docker-registry")
    htpasswd = require("htpasswd")
    with tempfile.TemporaryDirectory(prefix="registry-") as tmp:
        root = Path(tmp)
        port = free_port()
        host = f"127.0.0.1:{port}"
        run([htpasswd, "-Bbc", str(root / "htpasswd"), USER, password])
        (root / "config.yml").write_text(CONFIG.format(root=root, host=host))
        command = [binary, "serve", str(root / "config.yml")]
        with Server(command, port, log=root / "registry.log") as server:

            def answers() -> bool | None:
                if server.poll() is not None:
                    raise GiveUp(f"docker-registry exited with {server.popen.returncode}")
                try:
                    urllib.request.urlopen(f"http://{host}/v2/", timeout=1)
                except urllib.error.HTTPError as error:
                    return True if error.code == 401 else None
                return None  # answers without asking for credentials: not this registry

            wait_until(answers, timeout, f"docker-registry on {host}", details=server.output)
            yield Registry(host, USER, password)
