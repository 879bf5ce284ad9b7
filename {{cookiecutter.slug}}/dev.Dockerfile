# Development image for {{ cookiecutter.project_name }}: the official Rust image plus
# systemfd (keeps the listening socket open across rebuilds) and a file watcher.
# compose.yaml runs it with the source mounted; see README.md, "Dev loop".
#
# Versions are pinned here, and only here.
ARG RUST_VERSION={{ cookiecutter.rust_version }}
ARG DEBIAN_RELEASE={{ cookiecutter.debian_release }}

FROM rust:${RUST_VERSION}-${DEBIAN_RELEASE}

ARG SYSTEMFD_VERSION=0.4.6
ARG WATCHER_CRATE={% if cookiecutter.dev_watcher == 'watchexec' %}watchexec-cli{% else %}cargo-watch{% endif %}
ARG WATCHER_VERSION={% if cookiecutter.dev_watcher == 'watchexec' %}2.8.0{% else %}8.5.3{% endif %}

# Only the binaries are kept, not cargo's download caches.
RUN CARGO_HOME=/tmp/cargo-install cargo install --locked --root /usr/local \
        "systemfd@${SYSTEMFD_VERSION}" "${WATCHER_CRATE}@${WATCHER_VERSION}" \
    && rm -rf /tmp/cargo-install \
    && systemfd --version

WORKDIR /app
EXPOSE {{ cookiecutter.port }}
