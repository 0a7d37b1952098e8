#!/usr/bin/env bash
# The whole test suite of the workspace (the library `userphoto`, the CLI `userphoto-cli` in
# cli/, the test kit in testkit/), from a fresh Debian/Ubuntu machine with only Rust
# installed: installs what the tests need (apt), then runs formatting, lints, docs, every
# test, the examples, a Windows check and a benchmark build. README.md names this script;
# .ci/run calls it. Works with CARGO_TARGET_DIR set: binaries are found through cargo
# (scripts/cargo-exe.sh), never under a literal target/ path.
#
# Environment:
#   USERPHOTO_CORPUS  folder of real photos (default ../shared/corpus)
#   USERPHOTO_REQUIRE_TOOLS=0  let tests that need a tool skip (printing SKIPPED) and
#                     leave out the tests that need the corpus (the summary line says so)
#                     instead of failing; by default this script runs them all
#   SKIP_APT=1        do not install packages (you installed them yourself)
#   (the face detector's oracle test gets onnxruntime from PyPI in target/oracle-venv)
set -euo pipefail
cd "$(dirname "$0")/.."

step() { printf '\n==> [%4ds] %s\n' "$SECONDS" "$*"; }

# --- system packages -------------------------------------------------------------------
# nasm: libjpeg-turbo's SIMD in the mozjpeg-sys build (without it the build still works,
# only slower). pkg-config and a C compiler for the vendored C code.
need=()
command -v nasm >/dev/null 2>&1 || need+=(nasm)
command -v cc >/dev/null 2>&1 || need+=(gcc)
command -v pkg-config >/dev/null 2>&1 || need+=(pkg-config)
# libheif-dev: the `heic` feature links the system libheif.
pkg-config --exists libheif 2>/dev/null || need+=(libheif-dev)
# cjpeg/jpegtran make the progressive, arithmetic and subsampling variants the tests use.
command -v jpegtran >/dev/null 2>&1 || need+=(libjpeg-turbo-progs)
# ldapmodify -n checks that the LDIF sink's change files parse with OpenLDAP's own parser.
command -v ldapmodify >/dev/null 2>&1 || need+=(ldap-utils)
# libkrb5-dev and libclang-dev: the `gssapi` feature (checked by clippy --all-features) builds
# ldap3's Kerberos bindings against the system's MIT Kerberos.
pkg-config --exists krb5-gssapi 2>/dev/null || need+=(libkrb5-dev)
# bindgen (clang-sys) loads libclang.so itself; libclang-cpp.so (a different library, which
# other packages bring) does not do, so look for that exact name (libclang-dev's symlink).
compgen -G "/usr/lib/llvm-*/lib/libclang.so" >/dev/null || need+=(libclang-dev)
# python3 with venv: the breadth test runs Pillow (from PyPI) as the reference decoder.
command -v python3 >/dev/null 2>&1 || need+=(python3)
python3 -m venv --help >/dev/null 2>&1 || need+=(python3-venv)
# chromium and its chromedriver: the review page's browser tests (tests/review_page.rs) drive
# headless Chromium through WebDriver (the test kit's browser.rs finds them on the PATH).
command -v chromium >/dev/null 2>&1 || need+=(chromium)
command -v chromedriver >/dev/null 2>&1 || need+=(chromium-driver)
# The MinGW-w64 cross compiler: the Windows check builds the C code of mozjpeg-sys and aws-lc-sys
# for x86_64-pc-windows-gnu (the target itself comes from rustup, below).
command -v x86_64-w64-mingw32-gcc >/dev/null 2>&1 || need+=(gcc-mingw-w64-x86-64)
if [ ${#need[@]} -gt 0 ] && [ "${SKIP_APT:-0}" != 1 ]; then
  step "installing ${need[*]}"
  SUDO=""
  [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi

# A change to nasm's presence changes the build: make sure mozjpeg-sys sees the new state.
export CARGO_TERM_COLOR=${CARGO_TERM_COLOR:-never}

step "cargo fmt --check (every package)"
cargo fmt --all -- --check

step "cargo clippy (every package, all targets, all features, warnings are errors)"
cargo clippy --workspace --all-targets --all-features --release -- -D warnings

step "cargo clippy (every package, all targets, the default features, warnings are errors)"
cargo clippy --workspace --all-targets --release -- -D warnings

step "the newest compatible dependencies: cargo update in a scratch copy, cargo check (warnings are errors)"
# Cargo.lock pins what the project is tested with; an embedder's build (and `cargo install`
# without --locked) resolves the newest compatible versions instead, where a deprecation
# or a breaking patch release shows first. The scratch copy shares this build's target
# folder, so only what `cargo update` changed is checked again.
scratch=$(mktemp -d)
tar --exclude=./target --exclude=./fuzz --exclude=./.git -cf - . | tar -xf - -C "$scratch"
newest_target=${CARGO_TARGET_DIR:-$PWD/target}
(
  cd "$scratch"
  cargo update --quiet
  git diff --no-index --stat "$OLDPWD/Cargo.lock" Cargo.lock | tail -1 || true
  CARGO_TARGET_DIR=$newest_target cargo check --release --workspace --all-targets \
    --message-format short 2>&1 | tee check.log | grep -E '(^|: )(warning|error)' || true
  if grep -qE '(^|: )(warning|error)' check.log; then
    echo "the build against the newest compatible dependencies has warnings or errors (above)" >&2
    exit 1
  fi
)
rm -rf "$scratch"

step "the offline library builds without the network backends"
# Each backend alone and neither (`ad`: AD sink, LDAP source; `graph`: Graph sink), warnings
# are errors; without both, none of ldap3, hyper, rustls, aws-lc-rs or ring is in the build.
for features in mozjpeg pure-rust mozjpeg,ad mozjpeg,graph; do
  cargo clippy --release -p userphoto --lib --no-default-features --features "$features" -- -D warnings
done
cargo clippy --release -p userphoto --lib -- -D warnings
for features in mozjpeg pure-rust; do
  tree=$(cargo tree -p userphoto --no-default-features --features "$features" -e normal --prefix none)
  if net=$(grep -E '^(ldap3|hyper|hyper-[a-z-]+|rustls|rustls-[a-z-]+|tokio-rustls|aws-lc-rs|aws-lc-sys|ring) v' <<<"$tree"); then
    echo "--no-default-features --features $features still builds network crates:" >&2
    sort -u <<<"$net" >&2
    exit 1
  fi
done

step "a panic = \"abort\" build with the libjpeg codec is refused (its errors unwind)"
# Only the library crate gets -C panic=abort here; the compile_error! fires before codegen.
if out=$(cargo rustc --release --quiet -p userphoto --lib -- -C panic=abort 2>&1); then
  echo "a panic = abort build compiled; it must be refused" >&2
  exit 1
fi
grep -q 'needs panic = "unwind"' <<<"$out" || { echo "$out" >&2; exit 1; }

step "cargo doc (broken links and missing docs are errors)"
# The library and the test kit; the CLI's docs are its --help (its binary `userphoto` would
# collide with the library's doc folder).
RUSTDOCFLAGS="-D warnings" cargo doc --no-deps --all-features --release -p userphoto -p userphoto-testkit

# A real Active Directory for the AD sink's tests: Samba's AD DC on loopback (installed,
# provisioned once into target/samba-dc, started; see scripts/README.md). With
# USERPHOTO_REQUIRE_AD=1 the AD tests fail instead of skipping when the DC is missing.
step "Samba AD DC on loopback"
scripts/samba-dc.sh start
eval "$(scripts/samba-dc.sh env)"
export USERPHOTO_REQUIRE_AD=1
trap 'scripts/samba-dc.sh stop >/dev/null 2>&1 || true' EXIT

# The face detector's oracle (tests/face_oracle.rs): onnxruntime running the ONNX model the
# shipped weights were converted from. With USERPHOTO_REQUIRE_TOOLS=1 that test fails
# instead of skipping when the oracle's Python is missing.
step "onnxruntime for the face detector's oracle test (a venv in target/)"
ORACLE_VENV=target/oracle-venv
if ! "$ORACLE_VENV/bin/python" -c "import onnxruntime, numpy" >/dev/null 2>&1; then
  python3 -m venv "$ORACLE_VENV"
  "$ORACLE_VENV/bin/pip" install -q --disable-pip-version-check onnxruntime numpy
fi
export USERPHOTO_ORACLE_PYTHON="$PWD/$ORACLE_VENV/bin/python"
# Every test that needs a tool (cjpeg, jpegtran, ldapmodify, the oracle) or the photo corpus
# fails here when it is missing, instead of passing with SKIPPED.
export USERPHOTO_REQUIRE_TOOLS=${USERPHOTO_REQUIRE_TOOLS:-1}

# The tests that need the photo corpus are #[ignore = "needs the photo corpus ..."]: a plain
# `cargo test` lists them as ignored, with the reason. Here they run (--include-ignored),
# and a missing corpus fails the script before any test, unless USERPHOTO_REQUIRE_TOOLS=0.
step "the photo corpus"
export USERPHOTO_CORPUS=${USERPHOTO_CORPUS:-$PWD/../shared/corpus}
corpus_tests=(-- --include-ignored)
if [ -d "$USERPHOTO_CORPUS" ]; then
  echo "corpus: $USERPHOTO_CORPUS ($(find "$USERPHOTO_CORPUS" -maxdepth 1 -type f | wc -l) files)"
elif [ "$USERPHOTO_REQUIRE_TOOLS" = 1 ]; then
  echo "FAILED: no photo corpus at $USERPHOTO_CORPUS (set USERPHOTO_CORPUS, or USERPHOTO_REQUIRE_TOOLS=0 to leave those tests out)" >&2
  exit 1
else
  echo "NOT RUN: the tests that need the photo corpus (none at $USERPHOTO_CORPUS); they show as ignored below"
  corpus_tests=()
fi

# Every build below that can share one feature set does (the library with HEIC and
# Kerberos): each other set compiles the library and its dependents again, which is most of
# this script's time on a fresh machine.
FEATURES=heic,gssapi
CLI_FEATURES=$FEATURES,test-hooks

step "cargo test (the library and the test kit: libjpeg-turbo codec, HEIC through libheif, Kerberos)"
# (gssapi: GSSAPI binds to the Samba DC with its keytab, in tests/sink_ad; the log is kept
# to check below that the Kerberos test ran, a renamed test included)
lib_log=$(mktemp)
cargo test --release -p userphoto -p userphoto-testkit --features "$FEATURES" "${corpus_tests[@]}" 2>&1 | tee "$lib_log"
grep -qE '^test later::gssapi::[a-z0-9_]+ \.\.\. ok' "$lib_log" || {
  echo "the Kerberos (GSSAPI) test of tests/sink_ad did not run" >&2
  exit 1
}
rm -f "$lib_log"

step "cargo test (pure-Rust codec, no C JPEG code)"
# The tests of what the codec does (decode at every scale and sampling, encode, the byte
# budget, hostile input, the corpus) and the CLI's offline tests on the same build. The
# engine, the sources and the sinks use the codec only through the normalizer these test,
# and their tests ran above: building them again for this codec would double the build.
cargo test --release -p userphoto --no-default-features --features pure-rust \
  --test normalize_api --test normalize_corpus --test normalize_hostile \
  --test normalize_jpeg_variants --test normalize_props "${corpus_tests[@]}"
cargo test --release -p userphoto-cli --no-default-features --features pure-rust \
  --test cli "${corpus_tests[@]}"

step "cargo test (the CLI: its unit tests, normalize, the LDIF path, Graph against the fake, AD against the DC)"
# (test-hooks: the crash-test hook that tests/cli_sync.rs needs; never in a released binary)
cargo test --release -p userphoto-cli --features "$CLI_FEATURES" "${corpus_tests[@]}"

step "examples run (the CLI and the library's examples)"
# The CLI as its tests built it: `cargo run`/`cargo build` would build it (and the library)
# once more, without the dev-dependencies' features. The library's examples share the
# library's test build the same way.
CLI_BIN=$(CARGO_EXE_TEST=1 scripts/cargo-exe.sh userphoto -p userphoto-cli --features "$CLI_FEATURES")
demo_dir=$(mktemp -d)
"$CLI_BIN" demo --out "$demo_dir" >"$demo_dir/demo.jsonl"
grep -q '"ok":true' "$demo_dir/demo.jsonl"
rm -rf "$demo_dir"
custom=$(cargo run --release --quiet -p userphoto --features "$FEATURES" --example custom_source)
grep -q "E1001: 96x96 JPEG" <<<"$custom"
# The library's plan-only and normalize examples (the demo directory; a generated photo).
plan=$(cargo run --release --quiet -p userphoto --features "$FEATURES" --example plan_only)
grep -q "planned: 5 to write" <<<"$plan"
norm_dir=$(mktemp -d)
# (output captured first: `cmd | grep -q` lets grep exit at its match, and the example then
# dies of a broken pipe, which pipefail makes a failure)
norm=$(cargo run --release --quiet -p userphoto --features "$FEATURES" --example normalize -- "$norm_dir")
grep -q "ad-thumbnail: 96x96" <<<"$norm"
rm -rf "$norm_dir"
# README's first command (its arguments after `cargo run ... --`), on the shipped demo
# directory, in a scratch folder.
repo=$PWD
sync_dir=$(mktemp -d)
(cd "$sync_dir" && "$CLI_BIN" \
  sync --source "folder:$repo/examples/demo/photos" --sink "ldif:$repo/examples/demo/directory.ldif" \
  --out changes.ldif >summary.txt)
grep -q "5 written" "$sync_dir/summary.txt"
ldapmodify -n -f "$sync_dir/changes.ldif" >/dev/null
rm -rf "$sync_dir"
# The sync bench, small: a re-run with nothing changed decodes nothing.
bench=$(cargo run --release --quiet -p userphoto --features "$FEATURES" --example bench_sync -- 300 "$(mktemp -d)/bench")
grep -q '"rerun_decoded":0' <<<"$bench"

step "breadth: Pillow's test images never crash, hang or blow up; >= 90% of what Pillow opens normalizes"
USERPHOTO_CLI=$CLI_BIN bash scripts/breadth.sh

step "Windows: the library and the CLI check for x86_64-pc-windows-gnu (the default features)"
# Admins run the CLI on Windows servers. rustup's target plus Debian's MinGW-w64 (apt step
# above) are all it takes.
# (A missing piece fails the step unless USERPHOTO_REQUIRE_TOOLS=0.)
missing() {
  if [ "$USERPHOTO_REQUIRE_TOOLS" = 1 ]; then echo "FAILED: $*" >&2; exit 1; fi
  echo "SKIPPED: $*"
}
if ! command -v rustup >/dev/null 2>&1; then
  missing "no rustup to install the x86_64-pc-windows-gnu target"
elif ! rustup target add x86_64-pc-windows-gnu >/dev/null 2>&1; then
  missing "rustup target add x86_64-pc-windows-gnu failed (offline, or a toolchain without it)"
elif ! command -v x86_64-w64-mingw32-gcc >/dev/null 2>&1; then
  missing "x86_64-w64-mingw32-gcc not found (apt install gcc-mingw-w64-x86-64)"
else
  cargo check --release --target x86_64-pc-windows-gnu -p userphoto -p userphoto-cli
  # Kerberos on Windows: cross-krb5 goes through SSPI there (no MIT Kerberos to link), so a
  # scheduled task running as a group managed service account binds with no stored password.
  cargo check --release --target x86_64-pc-windows-gnu -p userphoto --features gssapi
fi

step "benchmarks build"
# (with the release profile, which the tests built already; `cargo bench` itself uses the
# bench profile, whose debug info would rebuild every crate)
cargo build --release --benches --quiet -p userphoto --features "$FEATURES"

step "all tests passed"
