#!/usr/bin/env bash
# Peak memory (RSS) of the sync on generated inputs: one bash function per case, each
# printing one `name: peak_rss_mb=N ...` line.
#
#   benches/memory.sh [CASE...]     (default: every case; cases: ldif)
#
# Builds what it needs with cargo (release), generates its inputs in a temp dir (no photo
# corpus needed) and measures with `/usr/bin/time -f %M` (peak RSS in KiB). Respects
# CARGO_TARGET_DIR; USERPHOTO_FEATURES (say `heic`) builds with those features, to reuse a
# build made with them. Targets (issue 10): ldif < 150 MB.
set -euo pipefail
cd "$(dirname "$0")/.."
TARGET_DIR=${CARGO_TARGET_DIR:-target}
WORK=$(mktemp -d "${TMPDIR:-/tmp}/userphoto-memory.XXXXXX")
trap 'rm -rf "$WORK"' EXIT

build() {
  cargo build --release --quiet ${USERPHOTO_FEATURES:+--features "$USERPHOTO_FEATURES"} \
    --example userphoto --example bench_inputs >&2
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
  awk '{ printf "%.1f", $1 / 1024 }' "$log"
}

# 30,000 users on the LDIF path, half of them holding ~6 KB photos in the export (which
# the sync replaces, with backups of the old bytes): issue 10's target is < 150 MB.
case_ldif() {
  local users=${LDIF_USERS:-30000} dir="$WORK/ldif"
  mkdir -p "$dir"
  local gen
  gen=$("$TARGET_DIR/release/examples/bench_inputs" ldif "$users" 6000 "$dir")
  local export_mb
  export_mb=$(awk -v b="${gen#export_bytes=}" 'BEGIN { split(b, a, " "); printf "%.1f", a[1] / 1048576 }')
  local peak
  peak=$(peak_mb "$TARGET_DIR/release/examples/userphoto" sync \
    --source "folder:$dir/photos" --sink "ldif:$dir/export.ldif" --out "$dir/changes.ldif" \
    --backup-dir "$dir/backup" --state "$dir/state.redb")
  local changes_mb
  changes_mb=$(awk -v b="$(stat -c %s "$dir/changes.ldif")" 'BEGIN { printf "%.1f", b / 1048576 }')
  echo "ldif: peak_rss_mb=$peak users=$users export_mb=$export_mb ${gen#* } changes_mb=$changes_mb target_mb=150"
  rm -rf "$dir"
}

main() {
  local cases=("$@")
  [ ${#cases[@]} -eq 0 ] && cases=(ldif)
  build
  for c in "${cases[@]}"; do
    "case_$c"
  done
}

main "$@"
