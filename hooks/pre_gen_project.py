"""Validate the answers before cookiecutter writes anything.

Each rule is a function that returns an error line or None. copier.yml's
`validator:` entries state the same rules for copier; tests/test_questions.py
feeds both engines the same inputs and asserts the same verdicts and messages.
"""

from __future__ import annotations

import hashlib
import json
import re
import sys
import tempfile
from pathlib import Path

# Rendered by the engine; tojson escapes quotes, so any answer parses safely.
RENDERED_ANSWERS = r"""{{ cookiecutter | tojson }}"""

# The default slug is derived from project_name (maintainer/slug_rules.py);
# a name it cannot serve (only symbols, a leading digit, a reserved word) ends here.
SLUG_HINT = "choose one with slug=... (the default comes from project_name)"
SLUG_PATTERN = re.compile(r"^[a-z](?:[a-z0-9]|-(?=[a-z0-9])){1,39}$")
RUST_VERSION_PATTERN = re.compile(r"^1[.][0-9]+([.][0-9]+)?$")
# actix-web 4's minimum supported Rust version (its rust-version field).
MIN_RUST_MINOR = 89
# Rust keywords (strict, reserved, 2024 edition), and names cargo refuses or
# reserves: the standard library crates, its artifact folders, Windows devices.
RESERVED_CRATE_NAMES = frozenset(
    """
    as async await break const continue crate dyn else enum extern false fn for if
    impl in let loop match mod move mut pub ref return self static struct super trait
    true type unsafe use where while abstract become box do final gen macro override
    priv try typeof unsized virtual yield std core alloc proc_macro test build deps
    examples incremental con prn aux nul com1 com2 com3 com4 com5 com6 com7 com8 com9
    lpt1 lpt2 lpt3 lpt4 lpt5 lpt6 lpt7 lpt8 lpt9
    """.split()
)
# Every crate in Cargo.lock (hyphens as underscores): a service named like one of
# them clashes with it. Written by maintainer/slug_rules.py from the lock (which
# maintainer/refresh_cargo_lock.py runs); tests/test_questions.py checks they agree.
DEPENDENCY_CRATE_NAMES = frozenset(
    """
    actix_codec actix_http actix_macros actix_router actix_rt actix_server actix_service
    actix_utils actix_web actix_web_codegen aho_corasick allocator_api2 atoi autocfg
    base64 base64ct bitflags block_buffer bumpalo byteorder bytes bytestring cfg_if
    const_oid convert_case core_detect cpufeatures crc crc_catalog crossbeam_queue
    crossbeam_utils crypto_common der deranged derive_more derive_more_impl digest
    displaydoc dotenvy either encoding_rs equivalent errno etcetera event_listener flume
    fnv foldhash form_urlencoded futures_channel futures_core futures_executor
    futures_intrusive futures_io futures_sink futures_task futures_util generic_array
    getrandom hashbrown hashlink heck hex hkdf hmac home http httparse httpdate
    icu_collections icu_locale_core icu_normalizer icu_normalizer_data icu_properties
    icu_properties_data icu_provider idna idna_adapter impl_more indexmap itoa js_sys
    language_tags lazy_static libc libm libredox libsqlite3_sys listenfd litemap
    local_waker lock_api log matchers md_5 memchr mime mio multiversion_no_op
    num_bigint_dig num_conv num_integer num_iter num_traits once_cell parking
    parking_lot parking_lot_core pem_rfc7468 percent_encoding pin_project_lite pkcs1
    pkcs8 pkg_config plain potential_utf powerfmt ppv_lite86 proc_macro2 quote rand
    rand_chacha rand_core redox_syscall regex_automata regex_lite regex_syntax rsa
    rustc_version rustversion ryu scopeguard semver serde serde_core serde_derive
    serde_json serde_urlencoded sha1 sha2 sharded_slab signal_hook_registry signature
    simdutf8 slab smallvec socket2 spin spki sqlx sqlx_core sqlx_macros sqlx_macros_core
    sqlx_mysql sqlx_postgres sqlx_sqlite stable_deref_trait stringprep subtle syn
    synstructure thiserror thiserror_impl thread_local time time_core time_macros
    tinystr tinyvec tokio tokio_macros tokio_stream tokio_util tracing
    tracing_attributes tracing_core tracing_log tracing_subscriber typenum unicode_bidi
    unicode_ident unicode_normalization unicode_properties unicode_segmentation
    unicode_xid url utf8_iter utf_types uuid valuable vcpkg version_check wasi wasite
    wasm_bindgen wasm_bindgen_macro wasm_bindgen_macro_support wasm_bindgen_shared
    whoami winapi winapi_i686_pc_windows_gnu winapi_x86_64_pc_windows_gnu
    windows_aarch64_gnullvm windows_aarch64_msvc windows_i686_gnu windows_i686_msvc
    windows_link windows_sys windows_targets windows_x86_64_gnu windows_x86_64_gnullvm
    windows_x86_64_msvc writeable yoke yoke_derive zerocopy zerocopy_derive zerofrom
    zerofrom_derive zeroize zerotrie zerovec zerovec_derive zmij
    """.split()
)


def one_line_text(field: str, value: str) -> str | None:
    if not value.strip() or any(c in value for c in '"\\\n'):
        return (
            f"{field} '{value}' is invalid: must be one non-empty line "
            "without double quotes or backslashes"
        )
    return None


def check_slug(value: str) -> str | None:
    if not SLUG_PATTERN.match(value):
        return (
            f"slug '{value}' is invalid: use 2-40 lowercase letters, digits and "
            "single hyphens, starting with a letter and ending with a letter or digit; "
            f"{SLUG_HINT}"
        )
    if value.replace("-", "_") in RESERVED_CRATE_NAMES | DEPENDENCY_CRATE_NAMES:
        return (
            f"slug '{value}' is invalid: it is a Rust keyword, a name cargo reserves "
            f"or a crate the service depends on; {SLUG_HINT}"
        )
    return None


def check_port(value: str) -> str | None:
    if not value.isdigit() or not 1024 <= int(value) <= 65535:
        return f"port '{value}' is invalid: must be a whole number from 1024 to 65535"
    return None


def check_rust_version(value: str) -> str | None:
    if not RUST_VERSION_PATTERN.match(value) or int(value.split(".")[1]) < MIN_RUST_MINOR:
        return (
            f"rust_version '{value}' is invalid: must look like 1.95 or 1.95.0 "
            f"and be at least 1.{MIN_RUST_MINOR} (actix-web's minimum)"
        )
    return None


def errors(answers: dict[str, str]) -> list[str]:
    found = [
        one_line_text("project_name", answers["project_name"]),
        check_slug(answers["slug"]),
        one_line_text("description", answers["description"]),
        check_port(str(answers["port"])),
        check_rust_version(answers["rust_version"]),
    ]
    return [error for error in found if error]


# Folders that hold only optional files (OPTIONAL_DIRECTORIES in hooks/post_gen_project.py).
OPTIONAL_DIRECTORIES = tuple(
    ".github/workflows .github ci deploy/base deploy/overlays/staging deploy/overlays/production"
    " deploy/overlays deploy .cargo .sqlx migrations".split()
)


def record_optional_directories_present(project: Path) -> None:
    """With --overwrite-if-exists the project folder may be the user's: note the optional
    folders it already has, so that hooks/post_gen_project.py removes only those the
    template created. The note lives outside the project."""
    digest = hashlib.sha256(str(project).encode()).hexdigest()[:16]
    present = [name for name in OPTIONAL_DIRECTORIES if (project / name).is_dir()]
    note = Path(tempfile.gettempdir()) / f"template-preexisting-{digest}.json"
    note.write_text(json.dumps(present))


def main() -> int:
    problems = errors(json.loads(RENDERED_ANSWERS))
    for problem in problems:
        print(f"ERROR: {problem}", file=sys.stderr)
    if problems:
        return 1
    record_optional_directories_present(Path.cwd())
    return 0


if __name__ == "__main__":
    sys.exit(main())
