#!/usr/bin/env bash
# The AD sink's speed against the test DC (Samba AD DC on loopback), next to `ldapmodify -f`
# on the same server in the same run:
#
#   1. 2,000 users in OU=bench-ad below the tests' OU (created once, reused);
#   2. sources pre-normalized: 2,000 generated photos normalized to ad-thumbnail once, so
#      the runs measure the directory work, not the JPEG work;
#   3. first run: `userphoto sync --sink ad` writes all 2,000 photos (none before);
#   4. the same 2,000 photos (read back from AD, byte for byte) applied with
#      `ldapmodify -f` as one LDIF of replace records, again onto users without photos;
#   5. re-runs of userphoto with the state store of the last first run (`--state`, which
#      holds the sink's snapshot): the first after step 4 rewrote every photo (the same
#      bytes, but 4,000 changes by someone else, so it reads all 2,000 users again), then
#      ROUNDS with nothing changed since (they read only the changes: none).
#
# Steps 3 and 4 alternate ROUNDS times (the DC is shared and noisy); prints every time, the
# medians and the ratios of the medians (targets: ours / ldapmodify <= 1.0; first run /
# re-run with nothing changed >= 20).
# Usage: benches/ad_sync.sh [USERS] [CONCURRENCY] [ROUNDS]  (defaults 2000, 4, 5). Starts the
# DC when it is not running (root needed) and leaves it as it found it. Work files go to
# target/ad-bench (kept between runs: the photos are made once).
set -euo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd -P)
N=${1:-2000}
CONC=${2:-4}
ROUNDS=${3:-5}
WORK=$REPO/target/ad-bench
mkdir -p "$WORK"
cd "$WORK"

say() { printf 'ad_sync: %s\n' "$*" >&2; }
now() { date +%s.%N; }
secs() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", b - a }'; }

started_dc=no
if ! "$REPO/scripts/samba-dc.sh" status >/dev/null 2>&1; then
  "$REPO/scripts/samba-dc.sh" start >&2
  started_dc=yes
fi
cleanup() { if [ "$started_dc" = yes ]; then "$REPO/scripts/samba-dc.sh" stop >&2 || true; fi; }
trap cleanup EXIT
eval "$("$REPO/scripts/samba-dc.sh" env)"
export LDAPTLS_CACERT=$USERPHOTO_AD_CA LDAPTLS_REQCERT=demand
OU="OU=bench-ad,$USERPHOTO_AD_TEST_OU"
LDAP=(-H "$USERPHOTO_AD_LDAPS_URL" -x -D "$USERPHOTO_AD_ADMIN_DN" -y "$USERPHOTO_AD_ADMIN_PASSWORD_FILE")

say "building the CLI (release)"
CLI=$(cd "$REPO" && scripts/cargo-exe.sh userphoto -p userphoto-cli)

# 1. Users, once.
have=$(ldapsearch -LLL -E pr=1000/noprompt "${LDAP[@]}" -b "$OU" -s one '(objectClass=user)' 1.1 2>/dev/null | grep -c '^dn:' || true)
if [ "$have" -lt "$N" ]; then
  say "creating $N users in $OU (once; 4 ldapadd in parallel)"
  t0=$(now)
  ldapsearch -LLL "${LDAP[@]}" -b "$OU" -s base 1.1 >/dev/null 2>&1 ||
    printf 'dn: %s\nobjectClass: top\nobjectClass: organizationalUnit\n' "$OU" | ldapadd "${LDAP[@]}" >/dev/null
  rm -f users.*.ldif
  for i in $(seq 0 $((N - 1))); do
    u=$(printf 'bench%05d' "$i")
    printf 'dn: CN=%s,%s\nobjectClass: top\nobjectClass: person\nobjectClass: organizationalPerson\nobjectClass: user\nsAMAccountName: %s\n\n' \
      "$u" "$OU" "$u" >>"users.$((i % 4)).ldif"
  done
  for f in users.*.ldif; do ldapadd -c "${LDAP[@]}" -f "$f" >/dev/null 2>>users.err & done
  wait
  say "users ready in $(secs "$t0" "$(now)") s"
fi

# 2. Pre-normalized sources, once: generated BMPs (distinct per user), normalized to
#    ad-thumbnail by the CLI, named by sAMAccountName.
if [ "$(ls photos 2>/dev/null | wc -l)" -lt "$N" ]; then
  say "making $N source photos"
  rm -rf raw photos && mkdir -p raw photos
  python3 - "$N" raw <<'PY'
import struct, sys
n, out = int(sys.argv[1]), sys.argv[2]
w, h = 120, 150
row = (w * 3 + 3) & ~3
for i in range(n):
    r0, g0, b0 = (i * 37) % 256, (i * 91) % 256, (i * 53) % 256
    px = bytearray()
    for y in range(h):
        line = bytearray()
        for x in range(w):
            line += bytes(((b0 + x + y) % 256, (g0 + 2 * y) % 256, (r0 + 3 * x + (x * y) % 17) % 256))
        px += line + b"\0" * (row - w * 3)
    hdr = b"BM" + struct.pack("<IHHI", 54 + len(px), 0, 0, 54)
    dib = struct.pack("<IiiHHIIiiII", 40, w, h, 1, 24, 0, len(px), 2835, 2835, 0, 0)
    open(f"{out}/bench{i:05d}.bmp", "wb").write(hdr + dib + px)
PY
  "$CLI" normalize --profile ad-thumbnail --out photos raw/*.bmp >/dev/null
fi

clear_photos() {
  ldapsearch -LLL "${LDAP[@]}" -b "$OU" -s one '(thumbnailPhoto=*)' 1.1 |
    awk '/^dn:/ { print; print "changetype: modify"; print "replace: thumbnailPhoto"; print "-"; print "" }' >clear.ldif
  [ -s clear.ldif ] && ldapmodify "${LDAP[@]}" -f clear.ldif >/dev/null
  return 0
}

sync_run() {
  "$CLI" sync --source folder:photos --sink ad --ldap-url "$USERPHOTO_AD_LDAPS_URL" \
    --ca-cert "$USERPHOTO_AD_CA" --bind-dn "$USERPHOTO_AD_ADMIN_UPN" \
    --bind-password-file "$USERPHOTO_AD_ADMIN_PASSWORD_FILE" --base-dn "$OU" \
    --concurrency "$CONC" --state state.redb --backup-dir backup --json >"$1"
}

median() { tr ' ' '\n' | grep . | sort -g | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'; }
done_count() { python3 -c 'import json,sys; r=json.load(open(sys.argv[1])); print(sum(1 for o in r["outcomes"] if o["status"]==sys.argv[2]))' "$1" "$2"; }

firsts="" mods="" reruns=""
for round in $(seq 1 "$ROUNDS"); do
  # 3. Ours, first run: all puts onto users without photos.
  clear_photos
  rm -rf state.redb backup
  say "round $round: userphoto sync, first run ($N puts, concurrency $CONC)"
  t0=$(now)
  sync_run first.json
  t=$(secs "$t0" "$(now)")
  firsts="$firsts $t"
  puts=$(done_count first.json done)

  # 4. ldapmodify with the same bytes, read back from AD, onto users without photos.
  ldapsearch -LLL -o ldif-wrap=no "${LDAP[@]}" -b "$OU" -s one '(thumbnailPhoto=*)' thumbnailPhoto |
    awk '/^dn:/ { print; print "changetype: modify"; print "replace: thumbnailPhoto"; next }
         /^thumbnailPhoto::/ { print; print "-"; next }
         /^$/ { print; next }' >changes.ldif
  records=$(grep -c '^changetype: modify' changes.ldif)
  clear_photos
  say "round $round: ldapmodify -f, $records replace records"
  t0=$(now)
  ldapmodify "${LDAP[@]}" -f changes.ldif >/dev/null
  mods="$mods $(secs "$t0" "$(now)")"
done

# 5. Ours again. AD holds the bytes our state store recorded, but ldapmodify wrote them
#    after our last first run: the first re-run reads every changed user again.
say "userphoto sync: re-run after ldapmodify rewrote every photo"
t0=$(now)
sync_run rerun-changed.json
t_rerun_changed=$(secs "$t0" "$(now)")
skipped_changed=$(done_count rerun-changed.json skipped)
for round in $(seq 1 "$ROUNDS"); do
  say "userphoto sync: re-run $round, nothing changed"
  t0=$(now)
  sync_run rerun.json
  reruns="$reruns $(secs "$t0" "$(now)")"
done
skipped=$(done_count rerun.json skipped)
# Leave the users (reused next time) without photos, as the other tests expect a quiet DC.
clear_photos
t_first=$(echo "$firsts" | median)
t_ldapmodify=$(echo "$mods" | median)
t_rerun=$(echo "$reruns" | median)
echo "userphoto first runs (s):$firsts"
echo "ldapmodify -f (s):      $mods"
echo "userphoto re-runs (s):  $reruns"
echo "last re-run's timings:  $(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["timings"])' rerun.json)"
awk -v n="$N" -v c="$CONC" -v puts="$puts" -v rec="$records" -v skipped="$skipped" \
  -v a="$t_first" -v b="$t_ldapmodify" -v r="$t_rerun" -v rc="$t_rerun_changed" -v sc="$skipped_changed" 'BEGIN {
  printf "users %d, concurrency %d; medians:\n", n, c
  printf "userphoto first run:   %7.2f s  (%d puts, %.0f/s)\n", a, puts, puts / a
  printf "ldapmodify -f:         %7.2f s  (%d records, %.0f/s)\n", b, rec, rec / b
  printf "re-run, all changed:   %7.2f s  (%d skipped; every user rewritten by ldapmodify since)\n", rc, sc
  printf "userphoto re-run:      %7.2f s  (%d skipped; nothing changed)\n", r, skipped
  printf "ratio ours/ldapmodify: %7.2f  (target <= 1.0)\n", a / b
  printf "ratio first/re-run:    %7.1f  (target >= 20)\n", a / r
}'
