#!/usr/bin/env bash
# Peak memory of the AD sink's full read against the test DC (Samba AD DC on loopback):
# USERS users (default 1,200) in OU=bench-mem below the tests' OU, each holding a
# PHOTO_KB-byte thumbnailPhoto (default ~80 KB; created once, reused), read by
# `userphoto sync --sink ad --dry-run` from a folder source with a photo for each of them
# (a run of 1,000 keys or more reads every user below the base DN in one paged search).
#
# The sink keeps each user's DN, match values and photo hash, never the photo: the peak must
# not grow with the photos' bytes (target: under 80 MB for 1,200 users holding 80 KB each,
# 96 MB of photos). Printed as `name: peak_rss_mb=N` lines (GNU time's %M, the maximum
# resident set size), next to the same run over an OU of users without photos, so the
# difference is what the photos cost.
#
# Usage: benches/ad_memory.sh [USERS] [PHOTO_KB]   (USERPHOTO_CLI=path: use that CLI binary
# instead of building one.) Starts the DC when it is not running
# (root needed) and leaves it as it found it. Work files go to target/ad-memory.
set -euo pipefail
shopt -s inherit_errexit

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd -P)
N=${1:-1200}
KB=${2:-80}
WORK=$REPO/target/ad-memory
mkdir -p "$WORK"
cd "$WORK"

say() { printf 'ad_memory: %s\n' "$*" >&2; }
now() { date +%s.%N; }
secs() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.1f", b - a }'; }

started_dc=no
if ! "$REPO/scripts/samba-dc.sh" status >/dev/null 2>&1; then
  "$REPO/scripts/samba-dc.sh" start >&2
  started_dc=yes
fi
cleanup() { if [ "$started_dc" = yes ]; then "$REPO/scripts/samba-dc.sh" stop >&2 || true; fi; }
trap cleanup EXIT
eval "$("$REPO/scripts/samba-dc.sh" env)"
export LDAPTLS_CACERT=$USERPHOTO_AD_CA LDAPTLS_REQCERT=demand
LDAP=(-H "$USERPHOTO_AD_LDAPS_URL" -x -D "$USERPHOTO_AD_ADMIN_DN" -y "$USERPHOTO_AD_ADMIN_PASSWORD_FILE")

# Users PREFIX00000... in OU=$1 below the tests' OU, once; with a $2-byte photo each unless
# $2 is 0. (sAMAccountNames are unique in the domain: each OU has its own prefix, $3.)
make_users() {
  local ou="OU=$1,$USERPHOTO_AD_TEST_OU" bytes=$2 prefix=$3 have t0
  have=$(ldapsearch -LLL -E pr=1000/noprompt "${LDAP[@]}" -b "$ou" -s one '(objectClass=user)' 1.1 2>/dev/null | grep -c '^dn:' || true)
  [ "$have" -ge "$N" ] && return 0
  say "creating $N users in $ou (once), photos of $bytes bytes"
  t0=$(now)
  ldapsearch -LLL "${LDAP[@]}" -b "$ou" -s base 1.1 >/dev/null 2>&1 ||
    printf 'dn: %s\nobjectClass: top\nobjectClass: organizationalUnit\n' "$ou" | ldapadd "${LDAP[@]}" >/dev/null
  python3 - "$N" "$bytes" "$ou" "$prefix" <<'PY'
import base64, random, sys
n, size, ou, prefix = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3], sys.argv[4]
files = [open(f"users.{i}.ldif", "w") for i in range(4)]
for i in range(n):
    u = f"{prefix}{i:05d}"
    rec = (f"dn: CN={u},{ou}\nobjectClass: top\nobjectClass: person\n"
           f"objectClass: organizationalPerson\nobjectClass: user\nsAMAccountName: {u}\n")
    if size:
        # Distinct bytes per user (a JPEG start marker, then noise): the DC stores them as is.
        body = b"\xff\xd8\xff\xe0" + random.Random(i).randbytes(size - 6) + b"\xff\xd9"
        rec += "thumbnailPhoto:: " + base64.b64encode(body).decode() + "\n"
    files[i % 4].write(rec + "\n")
for f in files:
    f.close()
PY
  local f
  for f in users.*.ldif; do ldapadd -c "${LDAP[@]}" -f "$f" >/dev/null 2>>users.err & done
  wait
  rm -f users.*.ldif
  say "users ready in $(secs "$t0" "$(now)") s"
}

make_users bench-mem $((KB * 1000)) mem
make_users bench-mem-empty 0 mze

# Source photos, once: small generated BMPs named by sAMAccountName (the same for both OUs).
if [ "$(ls photos 2>/dev/null | wc -l)" -lt "$N" ]; then
  say "making $N source photos"
  rm -rf photos && mkdir -p photos
  python3 - "$N" photos <<'PY'
import struct, sys
n, out = int(sys.argv[1]), sys.argv[2]
w, h = 32, 40
row = (w * 3 + 3) & ~3
for i in range(n):
    px = bytearray()
    for y in range(h):
        line = bytes(((i + x) % 256, (i * 7 + y) % 256, (x * y + i) % 256)[c] for x in range(w) for c in range(3))
        px += line + b"\0" * (row - w * 3)
    hdr = b"BM" + struct.pack("<IHHI", 54 + len(px), 0, 0, 54)
    dib = struct.pack("<IiiHHIIiiII", 40, w, h, 1, 24, 0, len(px), 2835, 2835, 0, 0)
    open(f"{out}/mem{i:05d}.bmp", "wb").write(hdr + dib + px)
PY
fi
# The same photos for the users without photos.
if [ "$(ls photos-empty 2>/dev/null | wc -l)" -lt "$N" ]; then
  rm -rf photos-empty && mkdir -p photos-empty
  for f in photos/mem*.bmp; do b=${f##*/mem}; ln -s "../$f" "photos-empty/mze$b"; done
fi

# USERPHOTO_CLI: a CLI binary built already (with the features of your build); else built here.
if [ -n "${USERPHOTO_CLI:-}" ]; then
  CLI=$USERPHOTO_CLI
else
  say "building the CLI (release)"
  CLI=$(cd "$REPO" && scripts/cargo-exe.sh userphoto -p userphoto-cli)
fi

# One dry run (a full read of OU=$1, the plan, nothing written) with the source folder $2;
# prints its peak RSS in MB.
peak_mb() {
  local ou="OU=$1,$USERPHOTO_AD_TEST_OU" kb
  kb=$(/usr/bin/time -f %M "$CLI" sync --source "folder:$2" --sink ad \
    --ldap-url "$USERPHOTO_AD_LDAPS_URL" --ca-cert "$USERPHOTO_AD_CA" \
    --bind-dn "$USERPHOTO_AD_ADMIN_UPN" --bind-password-file "$USERPHOTO_AD_ADMIN_PASSWORD_FILE" \
    --base-dn "$ou" --dry-run --json 2>&1 >plan-"$1".json | tail -n 1)
  python3 - "plan-$1.json" "$N" <<'PY' >&2
import json, sys
r = json.load(open(sys.argv[1]))
print(f"ad_memory: {sys.argv[1]}: {len(r['outcomes'])} outcomes (want {sys.argv[2]})")
PY
  [[ $kb =~ ^[0-9]+$ ]] || { say "the run failed: $kb"; exit 1; }
  awk -v k="$kb" 'BEGIN { printf "%.0f", k / 1024 }'
}

with=$(peak_mb bench-mem photos)
without=$(peak_mb bench-mem-empty photos-empty)
echo "ad_full_read_${N}_users_${KB}kb_photos: peak_rss_mb=$with (target < 80)"
echo "ad_full_read_${N}_users_no_photos: peak_rss_mb=$without"
echo "photo bytes in the directory: $((N * KB / 1000)) MB; the photos cost $((with - without)) MB of peak RSS"
