#!/usr/bin/env bash
# Builds with cargo (release) and prints the path of the executable that cargo built for the
# target NAME, as cargo reports it: right wherever CARGO_TARGET_DIR (or a cargo config's
# build.target-dir) puts the build.
#
#   scripts/cargo-exe.sh NAME [cargo build options...]
#   scripts/cargo-exe.sh userphoto -p userphoto-cli            # the CLI
#   scripts/cargo-exe.sh bench_inputs --example bench_inputs   # a library example
#
# Build errors go to stderr (rendered as usual); exit 1 when cargo built no executable NAME.
#
# CARGO_EXE_TEST=1: the executable as `cargo test` builds it (`cargo test --no-run`), for
# the integration tests: with the dev-dependencies' features, so a script that ran the
# tests reuses that build instead of compiling the library and the CLI once more.
set -euo pipefail
[ $# -ge 1 ] || { echo "usage: scripts/cargo-exe.sh NAME [cargo build options...]" >&2; exit 2; }
name=$1
shift
if [ "${CARGO_EXE_TEST:-0}" = 1 ]; then
  json=$(cargo test --release --quiet --no-run --message-format=json-render-diagnostics "$@")
else
  json=$(cargo build --release --quiet --message-format=json-render-diagnostics "$@")
fi
# One compiler-artifact line per target built; an executable's has "executable":"PATH"
# (a library's has "executable":null).
# (`"test":false`: the program itself, not a unit-test harness built from the same target)
exe=$(grep '"reason":"compiler-artifact"' <<<"$json" | grep -F "\"name\":\"$name\"" |
  grep -F '"test":false' |
  sed -n 's/.*"executable":"\([^"]*\)".*/\1/p' | tail -n 1 || true)
if [ -z "$exe" ] || [ ! -x "$exe" ]; then
  echo "cargo-exe.sh: cargo built no executable named $name (cargo build --release $*)" >&2
  exit 1
fi
printf '%s\n' "$exe"
