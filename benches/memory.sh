#!/usr/bin/env bash
# Peak memory (RSS) of the sync on generated inputs: one bash function per case, each
# printing one `name: peak_rss_mb=N ...` line.
#
#   benches/memory.sh [CASE...]     (default: every case; cases: ldif, ldif_export_only)
#
# Builds what it needs with cargo (release), generates its inputs in a temp dir (no photo
# corpus needed) and measures with `/usr/bin/time -f %M` (peak RSS in KiB). Finds the
# binaries through cargo (so CARGO_TARGET_DIR is respected); USERPHOTO_FEATURES (say `heic`)
# builds with those features, to reuse a build made with them. Targets (issue 10): ldif < 150 MB.
set -euo pipefail
cd "$(dirname "$0")/.."
WORK=$(mktemp -d "${TMPDIR:-/tmp}/userphoto-memory.XXXXXX")
trap 'rm -rf "$WORK"' EXIT

# Sets CLI (the userphoto binary of the CLI package) and BENCH_INPUTS (the library's example).
build() {
  CLI=$(scripts/cargo-exe.sh userphoto -p userphoto-cli \
    ${USERPHOTO_FEATURES:+--features "$USERPHOTO_FEATURES"})
  BENCH_INPUTS=$(scripts/cargo-exe.sh bench_inputs -p userphoto --example bench_inputs \
    ${USERPHOTO_FEATURES:+--features "$USERPHOTO_FEATURES"})
}

# Runs a command under /usr/bin/time; prints the peak RSS in MB (1 decimal).
peak_mb() {
  local log="$WORK/time.$$"
  /usr/bin/time -f %M -o "$log" "$@" >"$WORK/out.log" 2>"$WORK/err.log" || {
    local rc=$?
    # Exit 1 is "some users failed": still a measured run. Anything else is a failure.
    if [ "$rc" -ne 1 ]; then
      echo "memory.sh: $* failed with exit $rc:" >&2
      tail -20 "$WORK/err.log" >&2
      return 1
    fi
  }
  tail -1 "$log" | awk '{ printf "%.1f", $1 / 1024 }'
}

# The LDIF cases' inputs, generated once per script run: USERS source photos and an export
# in which every second user holds a ~6 KB photo. Sets LDIF_DIR and LDIF_GEN.
ldif_inputs() {
  LDIF_DIR="$WORK/ldif"
  if [ ! -f "$LDIF_DIR/export.ldif" ]; then
    mkdir -p "$LDIF_DIR"
    "$BENCH_INPUTS" ldif "${LDIF_USERS:-30000}" 6000 "$LDIF_DIR" \
      >"$LDIF_DIR/gen.txt"
  fi
  LDIF_GEN=$(cat "$LDIF_DIR/gen.txt")
}

mb() { awk -v b="$1" 'BEGIN { printf "%.1f", b / 1048576 }'; }

# 30,000 users on the LDIF path, half of them holding ~6 KB photos in the export (which
# the sync replaces, with backups of the old bytes read again from the export): issue
# 10's target is < 150 MB.
case_ldif() {
  ldif_inputs
  local dir=$LDIF_DIR
  rm -rf "$dir/backup" "$dir/state.redb" "$dir/changes.ldif"
  local peak
  peak=$(peak_mb "$CLI" sync \
    --source "folder:$dir/photos" --sink "ldif:$dir/export.ldif" --out "$dir/changes.ldif" \
    --backup-dir "$dir/backup" --state "$dir/state.redb")
  local export_bytes=${LDIF_GEN%% *}
  export_bytes=${export_bytes#export_bytes=}
  echo "ldif: peak_rss_mb=$peak users=${LDIF_USERS:-30000} export_mb=$(mb "$export_bytes")" \
    "${LDIF_GEN#* } changes_mb=$(mb "$(stat -c %s "$dir/changes.ldif")") target_mb=150"
}

# The LDIF sink's own share: the same export read by a plan whose source is empty (the
# sink reads the whole export; nothing is normalized or planned).
case_ldif_export_only() {
  ldif_inputs
  local dir=$LDIF_DIR
  mkdir -p "$dir/empty"
  local peak
  peak=$(peak_mb "$CLI" plan \
    --source "folder:$dir/empty" --sink "ldif:$dir/export.ldif" --out "$dir/plan-changes.ldif")
  local export_bytes=${LDIF_GEN%% *}
  export_bytes=${export_bytes#export_bytes=}
  echo "ldif_export_only: peak_rss_mb=$peak users=${LDIF_USERS:-30000}" \
    "export_mb=$(mb "$export_bytes") ${LDIF_GEN#* }"
}

main() {
  local cases=("$@")
  [ ${#cases[@]} -eq 0 ] && cases=(ldif ldif_export_only)
  build
  for c in "${cases[@]}"; do
    "case_$c"
  done
}

main "$@"
