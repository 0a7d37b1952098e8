#!/usr/bin/env bash
# A throwaway Active Directory domain controller (Samba AD DC) on loopback for the AD sink tests.
#
#   scripts/samba-dc.sh start    install packages if missing, provision once, start, wait until ready
#   scripts/samba-dc.sh env      print the `export USERPHOTO_AD_...=` lines the tests read
#   scripts/samba-dc.sh stop     stop the DC (no error when it is not running)
#   scripts/samba-dc.sh status   exit 0 when the DC runs and answers LDAPS and StartTLS
#
# Domain EXAMPLE.TEST (NetBIOS EXAMPLE), DC `dc1`, listening on 127.0.0.1/::1 only: LDAP 389
# (StartTLS), LDAPS 636, Kerberos 88. Its own CA signs the server certificate (SAN: localhost,
# 127.0.0.1, ::1, the host name). Simple binds over plain ldap:// are refused (rc 8), like a DC requiring
# LDAP signing; GSSAPI works over TLS (SPN ldap/localhost) with the exported admin keytab.
#
# State directory: $USERPHOTO_SAMBA_DIR, default <repo>/target/samba-dc. A complete provision
# there is reused (the paths inside it are absolute: do not move it); an incomplete one is wiped.
# Reset: `rm -rf target/samba-dc` (stop first). Secrets (admin and photo-reader passwords) are
# random, stored in $DIR/secrets/*.password (mode 0600, no trailing newline) and never printed.
# Details go to $DIR/log/samba-dc.log; samba's own log is $DIR/log/samba.log.
#
# Needs root for `start`/`stop` (samba binds ports 88/389/636); apt runs via sudo when not root.
# Safe to call from several processes at once: start and stop hold an flock on $DIR/lock.
# Facts behind the options: shared/reference/samba-ad.md.
set -euo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd -P)
DIR=${USERPHOTO_SAMBA_DIR:-$REPO/target/samba-dc}
case $DIR in /*) ;; *) DIR=$PWD/$DIR ;; esac
DIR=${DIR%/}

REALM=EXAMPLE.TEST
DOMAIN=EXAMPLE
BASE_DN=DC=example,DC=test
TEST_OU=OU=userphoto-tests,$BASE_DN
ADMIN_DN=CN=Administrator,CN=Users,$BASE_DN
ADMIN_UPN=Administrator@example.test
READER=photo-reader
READER_DN=CN=$READER,CN=Users,$BASE_DN
# A least-privilege service account as admins set one up: it may write thumbnailPhoto on the
# users below DELEGATED_OU (an inherited allow on the OU), except on the DENIED users there
# (an explicit deny on each, as AdminSDHolder keeps delegated rights off protected accounts).
DELEGATE=photo-delegate
DELEGATE_DN=CN=$DELEGATE,CN=Users,$BASE_DN
DELEGATED_OU=OU=delegated,$TEST_OU
DENIED=(photo-denied-1 photo-denied-2)
THUMBNAIL_PHOTO_GUID=8d3bca50-1d7e-11d0-a081-00aa006c33ed # schemaIDGUID of thumbnailPhoto
USER_CLASS_GUID=bf967aba-0de6-11d0-a285-00aa003049e2      # schemaIDGUID of the user class
LDAPS_URL=ldaps://127.0.0.1:636
LDAP_URL=ldap://127.0.0.1:389

CONF=$DIR/samba/etc/smb.conf
TLS=$DIR/tls
CA=$TLS/ca.pem
SECRETS=$DIR/secrets
ADMIN_PW=$SECRETS/admin.password
READER_PW=$SECRETS/reader.password
DELEGATE_PW=$SECRETS/delegate.password
KEYTAB=$DIR/admin.keytab
KRB5_CONF=$DIR/krb5.conf
RUN=$DIR/run
PIDFILE=$RUN/samba.pid
LOGDIR=$DIR/log
LOG=$LOGDIR/samba-dc.log
SAMBA_LOG=$LOGDIR/samba.log
DIR_MARK=$DIR/.samba-dc-dir      # "this directory belongs to samba-dc.sh": only then is it wiped
PROV_MARK=$DIR/.provisioned      # written last by provision; holds the directory's real path
FIX_MARK=$DIR/.fixtures          # the fixtures' version made (empty: version 1)
FIXTURES_VERSION=2               # 1: OU + photo-reader; 2: photo-delegate and its OU
READY_TIMEOUT=${USERPHOTO_SAMBA_READY_TIMEOUT:-60}

PACKAGES=(samba samba-ad-dc samba-ad-provision samba-dsdb-modules samba-vfs-modules winbind
  krb5-user ldb-tools ldap-utils libsasl2-modules-gssapi-mit openssl)

# OpenLDAP client tools: verify the server against our CA only, whatever /etc/ldap/ldap.conf says.
export LDAPTLS_CACERT=$CA LDAPTLS_REQCERT=demand

say() { printf 'samba-dc: %s\n' "$*"; }
log() { { mkdir -p "$LOGDIR" && printf '%s %s\n' "$(date '+%F %T')" "$*" >>"$LOG"; } 2>/dev/null || true; }
die() {
  printf 'samba-dc: error: %s\n' "$*" >&2
  [ -d "$LOGDIR" ] && log "error: $*"
  exit 1
}
now() { date +%s.%N; }
since() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.1f", b - a }'; }
# Runs a command with its output appended to the log; on failure shows the log's tail.
run() {
  log "+ $*"
  if ! "$@" >>"$LOG" 2>&1; then
    tail -n 20 "$LOG" >&2
    die "failed: $1 (full log: $LOG)"
  fi
}

need_root() {
  [ "$(id -u)" -eq 0 ] || die "'$1' needs root: samba's AD DC binds ports 88, 389 and 636 and runs as root (run: sudo $0 $1)"
}

# ---------------------------------------------------------------------------------------------
ensure_packages() {
  local missing=() p
  for p in "${PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  local sudo=()
  if [ "$(id -u)" -ne 0 ]; then
    command -v sudo >/dev/null 2>&1 ||
      die "packages missing (${missing[*]}) and not root and no sudo: install them as root"
    sudo=(sudo)
  fi
  say "installing ${missing[*]} (apt)"
  local t0; t0=$(now)
  run "${sudo[@]}" apt-get update -q
  run "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends \
    -o DPkg::Lock::Timeout=600 "${missing[@]}"
  log "apt install took $(since "$t0") s"
}

# A random password that meets AD's complexity rules (upper, lower, digit, symbol) and holds
# nothing a shell, LDIF or `user%password` string cares about.
gen_password() {
  printf 'Up-%s-9x' "$(openssl rand -base64 24 | tr -d '/+=\n')"
}
write_secret() { # file value: mode 0600 from the start, no trailing newline (ldap* -y reads it whole)
  (umask 077 && printf '%s' "$2" >"$1")
}

provision_complete() {
  [ -f "$PROV_MARK" ] && [ "$(cat "$PROV_MARK")" = "$(readlink -f "$DIR")" ] || return 1
  local f
  for f in "$CONF" "$DIR/samba/private/sam.ldb" "$CA" "$TLS/server.pem" "$TLS/server.key" \
    "$ADMIN_PW" "$READER_PW" "$KEYTAB" "$KRB5_CONF"; do
    [ -s "$f" ] || return 1
  done
}

# Empties $DIR except the lock file we hold and the logs, refusing a directory that is not ours.
wipe_dir() {
  if [ -n "$(find "$DIR" -mindepth 1 -maxdepth 1 ! -name lock ! -name log -print -quit)" ] &&
    [ ! -f "$DIR_MARK" ]; then
    die "$DIR is not empty and was not made by samba-dc.sh: refusing to wipe it (choose another USERPHOTO_SAMBA_DIR)"
  fi
  find "$DIR" -mindepth 1 -maxdepth 1 ! -name lock ! -name log -exec rm -rf {} +
  : >"$DIR_MARK"
}

make_certs() {
  mkdir -p "$TLS"
  chmod 700 "$TLS"
  local ext=$TLS/server.ext san="DNS:localhost, IP:127.0.0.1, IP:::1, DNS:dc1.example.test" h
  # OpenLDAP's client (ldapsearch, ldapwhoami) checks a URL host of "localhost" against the
  # machine's own name instead ("TLS: hostname (vm) does not match common name"), so that name
  # goes in too; other clients (rustls, native-tls) check "localhost" itself.
  for h in "$(uname -n)" "$(timeout 5 hostname -f 2>/dev/null || true)"; do
    [[ $h =~ ^[A-Za-z0-9][A-Za-z0-9.-]*$ && $h != localhost && ", $san," != *", DNS:$h,"* ]] &&
      san+=", DNS:$h"
  done
  cat >"$ext" <<EOF
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature, keyEncipherment
extendedKeyUsage = serverAuth
subjectAltName = $san
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid, issuer
EOF
  (
    umask 077
    run openssl req -x509 -newkey rsa:2048 -nodes -sha256 -days 3650 \
      -keyout "$TLS/ca.key" -out "$CA" -subj "/O=userphoto tests/CN=userphoto test CA" \
      -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign" \
      -addext "subjectKeyIdentifier=hash"
    run openssl req -newkey rsa:2048 -nodes -sha256 -keyout "$TLS/server.key" \
      -out "$TLS/server.csr" -subj "/O=userphoto tests/CN=localhost"
    run openssl x509 -req -sha256 -days 3650 -in "$TLS/server.csr" -CA "$CA" -CAkey "$TLS/ca.key" \
      -CAcreateserial -out "$TLS/server.pem" -extfile "$ext"
  )
  chmod 600 "$TLS/server.key" "$TLS/ca.key" # samba refuses a key file readable by others
  chmod 644 "$CA" "$TLS/server.pem"
  chmod 755 "$TLS"                          # the CA must be readable by non-root test processes
}

write_krb5_conf() {
  cat >"$KRB5_CONF" <<EOF
# Kerberos client configuration for the samba-dc.sh test domain (use via KRB5_CONFIG).
[libdefaults]
    default_realm = $REALM
    dns_lookup_kdc = false
    dns_lookup_realm = false
    rdns = false
    dns_canonicalize_hostname = false

[realms]
    $REALM = {
        kdc = 127.0.0.1:88
        admin_server = 127.0.0.1:749
    }

[domain_realm]
    localhost = $REALM
    .example.test = $REALM
    example.test = $REALM
EOF
}

provision() {
  local t0; t0=$(now)
  wipe_dir
  mkdir -p "$LOGDIR" "$RUN" "$SECRETS" "$DIR/samba" "$DIR/ncalrpc" "$DIR/winbindd" "$DIR/ntp_signd"
  chmod 700 "$SECRETS"
  log "provisioning $REALM into $DIR"
  write_secret "$ADMIN_PW" "$(gen_password)"
  write_secret "$READER_PW" "$(gen_password)"
  make_certs
  # samba-tool has no password-file option: the admin password is on its command line for the
  # few seconds provision takes (root-only machine, throwaway domain); it is never echoed.
  local adminpass; adminpass=$(cat "$ADMIN_PW")
  # `-s` an empty base: else provision copies the globals and shares of the machine's
  # /etc/samba/smb.conf (Debian's default, or whatever is there) into the domain's smb.conf.
  printf '# empty base for samba-tool domain provision (see samba-dc.sh)\n' >"$DIR/provision-base.conf"
  log "+ samba-tool domain provision --targetdir=$DIR/samba --realm=$REALM ... (options below)"
  if ! samba-tool domain provision -s "$DIR/provision-base.conf" \
    --targetdir="$DIR/samba" --realm="$REALM" --domain="$DOMAIN" \
    --host-name=dc1 --server-role=dc --dns-backend=NONE --use-rfc2307 --adminpass="$adminpass" \
    --option="interfaces = lo" \
    --option="bind interfaces only = yes" \
    --option="server services = -s3fs, -nbt, -wrepl, -ntp_signd, -kcc, -dnsupdate, -dns" \
    --option="prefork children = 1" \
    --option="ldap server require strong auth = allow_sasl_over_tls" \
    --option="tls enabled = yes" \
    --option="tls keyfile = $TLS/server.key" \
    --option="tls certfile = $TLS/server.pem" \
    --option="tls cafile = $CA" \
    --option="pid directory = $RUN" \
    --option="ncalrpc dir = $DIR/ncalrpc" \
    --option="winbindd socket directory = $DIR/winbindd" \
    --option="ntp signd socket directory = $DIR/ntp_signd" \
    --option="log file = $SAMBA_LOG" \
    >>"$LOG" 2>&1; then
    tail -n 20 "$LOG" >&2
    die "samba-tool domain provision failed (full log: $LOG)"
  fi
  unset adminpass
  # Offline, before the first start: passwords never expire (else the admin password of a cached
  # directory expires after 42 days), SPN for GSSAPI against "localhost", the admin keytab.
  run samba-tool domain passwordsettings set --max-pwd-age=0 -s "$CONF"
  run samba-tool spn add ldap/localhost 'DC1$' -s "$CONF"
  (umask 077 && run samba-tool domain exportkeytab "$KEYTAB" --principal="administrator@$REALM" -s "$CONF")
  chmod 600 "$KEYTAB"
  write_krb5_conf
  readlink -f "$DIR" | tr -d '\n' >"$PROV_MARK"
  PROVISION_SECS=$(since "$t0")
  log "provision took $PROVISION_SECS s"
}

# ---------------------------------------------------------------------------------------------
samba_pid() { # prints the pid of the samba started from this directory, or fails
  local pid
  [ -f "$PIDFILE" ] || return 1
  pid=$(tr -dc 0-9 <"$PIDFILE")
  [ -n "$pid" ] && [ -d "/proc/$pid" ] || return 1
  # Not some other process that reused the pid: samba (it rewrites its command line, so the
  # name), and when /proc lets us see (root), one that has this directory's sam.ldb open.
  [ "$(cat "/proc/$pid/comm" 2>/dev/null)" = samba ] || return 1
  local fds
  if fds=$(find "/proc/$pid/fd" -mindepth 1 -maxdepth 1 -type l -printf '%l\n' 2>/dev/null); then
    grep -qxF "$(readlink -f "$DIR/samba/private/sam.ldb")" <<<"$fds" || return 1
  fi
  printf '%s' "$pid"
}

rootdse_ldaps() {
  ldapsearch -x -LLL -o nettimeout=3 -H "$LDAPS_URL" -b '' -s base defaultNamingContext >/dev/null 2>&1
}
rootdse_starttls() {
  ldapsearch -x -ZZ -LLL -o nettimeout=3 -H "$LDAP_URL" -b '' -s base defaultNamingContext >/dev/null 2>&1
}
answering() { rootdse_ldaps && rootdse_starttls; }

port_busy() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

start_samba() {
  local t0 p
  t0=$(now)
  for p in 389 636 88; do
    port_busy "$p" && die "port $p on 127.0.0.1 is already in use (another DC or LDAP server? one DC per machine)"
  done
  rm -f "$PIDFILE"
  # No `-l`: it would send samba's own log to log.samba, apart from `log file` in smb.conf.
  # `9>&-`: the daemon must not inherit the lock's descriptor, or it would hold the lock forever.
  log "+ samba -D -s $CONF"
  samba -D -s "$CONF" >>"$LOG" 2>&1 9>&- || {
    tail -n 20 "$SAMBA_LOG" >&2 2>/dev/null || true
    die "samba -D failed (see $SAMBA_LOG and $LOG)"
  }
  wait_ready
  START_SECS=$(since "$t0")
  log "samba pid $(samba_pid) answering after $START_SECS s"
}

show_samba_log() {
  echo "--- tail of $SAMBA_LOG" >&2
  tail -n 30 "$SAMBA_LOG" >&2 2>/dev/null || true
}

# `samba -D` runs in a session of its own whose id is the root process's pid; its task processes
# (renamed "ldap[master]", "kdc(0)", ...) stay in it, and can outlive a root process that died.
session_pids() { ps -eo pid=,sid= | awk -v s="$1" '$2 == s && $1 != s { print $1 }'; }
end_session() { # sid: SIGTERM to what is left of that session, SIGKILL after 3 s
  local sid=$1 pids i
  [ -n "$sid" ] || return 0
  pids=$(session_pids "$sid")
  [ -n "$pids" ] || return 0
  log "ending leftover samba processes of session $sid: $(echo "$pids" | tr '\n' ' ')"
  # shellcheck disable=SC2086 # one pid a word
  kill -TERM $pids 2>/dev/null || true
  for ((i = 0; i < 15; i++)); do
    pids=$(session_pids "$sid")
    [ -n "$pids" ] || return 0
    sleep 0.2
  done
  # shellcheck disable=SC2086
  kill -KILL $pids 2>/dev/null || true
}
pidfile_pid() { tr -dc 0-9 <"$PIDFILE" 2>/dev/null || true; }
# A failed start: leave nothing running (else the next start finds the ports taken).
abort_start() {
  local pid; pid=$(pidfile_pid)
  show_samba_log
  if [ -n "$pid" ] && [ -d "/proc/$pid" ] && [ "$(cat "/proc/$pid/comm" 2>/dev/null)" = samba ]; then
    kill -TERM "$pid" 2>/dev/null || true
    sleep 1
  fi
  end_session "$pid"
  die "$@"
}

# Waits until samba runs and answers a CA-verified rootDSE search on LDAPS and on LDAP+StartTLS.
wait_ready() {
  local deadline=$(($(date +%s) + READY_TIMEOUT))
  while :; do
    if samba_pid >/dev/null && answering; then return 0; fi
    if [ -f "$PIDFILE" ] && ! samba_pid >/dev/null; then
      sleep 0.5
      samba_pid >/dev/null || abort_start "samba exited during start-up"
    fi
    if [ "$(date +%s)" -ge "$deadline" ]; then
      abort_start "samba did not answer a CA-verified rootDSE search on $LDAPS_URL and $LDAP_URL (StartTLS) within ${READY_TIMEOUT} s"
    fi
    sleep 0.2
  done
}

# AD wants unicodePwd as the UTF-16LE encoding of the password in double quotes (base64 in LDIF),
# set over an encrypted connection.
unicode_pwd() { printf '"%s"' "$(cat "$1")" | iconv -f UTF-8 -t UTF-16LE | base64 -w0; }

# ldapmodify over LDAPS (CA-verified) as Administrator, LDIF on stdin (never in a file: it may
# hold a password). Prints the rc.
admin_modify() {
  local rc=0
  ldapmodify -x -H "$LDAPS_URL" -D "$ADMIN_DN" -y "$ADMIN_PW" >>"$LOG" 2>&1 || rc=$?
  printf '%s' "$rc"
}

# Fixtures, once per provision. LDAP adds over LDAPS rather than `samba-tool user create`: one
# ldapmodify takes ~0.1 s where each samba-tool run starts Python and loads the samba modules
# (~0.5-1 s). AD accepts the user in a single add when the connection is encrypted: the
# password as unicodePwd (UTF-16LE, quoted, base64) and userAccountControl 512 (NORMAL_ACCOUNT,
# enabled) in the same entry; without a password AD would refuse 512 (rc 53). rc 68
# (alreadyExists) counts as done, so an interrupted first run is simply retried.
ensure_fixtures() {
  local v; v=$(fixtures_version)
  [ "$v" -ge "$FIXTURES_VERSION" ] && return 0
  local t0; t0=$(now)
  [ "$v" -ge 1 ] || fixtures_v1
  [ "$v" -ge 2 ] || fixtures_v2
  printf '%s\n' "$FIXTURES_VERSION" >"$FIX_MARK"
  log "fixtures version $v -> $FIXTURES_VERSION made in $(since "$t0") s"
}

# The version of the fixtures made on this provision: 0 none, 1 for the empty mark of the
# first version, else the number in the mark.
fixtures_version() {
  [ -f "$FIX_MARK" ] || { echo 0; return; }
  local v; v=$(tr -dc 0-9 <"$FIX_MARK")
  echo "${v:-1}"
}

# Adds an entry (LDIF on stdin); rc 68 (alreadyExists) counts as done, so an interrupted
# fixture step is simply retried.
admin_add() { # what
  local rc; rc=$(admin_modify)
  case $rc in 0 | 68) ;; *) tail -n 5 "$LOG" >&2; die "adding $1 failed (rc $rc)" ;; esac
}

# Version 1: the tests' OU and photo-reader.
fixtures_v1() {
  admin_add "$TEST_OU" <<EOF
dn: $TEST_OU
changetype: add
objectClass: organizationalUnit
ou: userphoto-tests
description: users created by the userphoto AD sink tests
EOF
  admin_add "$READER_DN" <<EOF
dn: $READER_DN
changetype: add
objectClass: user
cn: $READER
sAMAccountName: $READER
userPrincipalName: $READER@example.test
description: unprivileged user of the userphoto tests: may bind, may not write others' photos
unicodePwd:: $(unicode_pwd "$READER_PW")
userAccountControl: 512
EOF
  # The reader can really bind (CA-verified LDAPS, its own password) and read its entry. Not
  # ldapwhoami: Samba lacks the WhoAmI extended operation (rc 2, "not supported").
  ldapsearch -x -LLL -H "$LDAPS_URL" -D "$READER_DN" -y "$READER_PW" -b "$READER_DN" -s base dn \
    >>"$LOG" 2>&1 ||
    die "$READER cannot bind over LDAPS"
}

# samba-tool dsacl on the local database (root; no password on a command line).
dsacl_add() { # dn sddl
  run samba-tool dsacl set -H "$DIR/samba/private/sam.ldb" -s "$CONF" --objectdn="$1" --sddl="$2"
}

# Version 2: photo-delegate, delegated "write thumbnailPhoto" on the users below
# $DELEGATED_OU (inherited allow on the OU), with an explicit deny on the users ${DENIED[*]}
# there. It reads what every authenticated user reads (AD's default rights).
fixtures_v2() {
  [ -s "$DELEGATE_PW" ] || write_secret "$DELEGATE_PW" "$(gen_password)"
  admin_add "$DELEGATE_DN" <<EOF
dn: $DELEGATE_DN
changetype: add
objectClass: user
cn: $DELEGATE
sAMAccountName: $DELEGATE
userPrincipalName: $DELEGATE@example.test
description: userphoto tests: may write thumbnailPhoto below $DELEGATED_OU, except on ${DENIED[*]}
unicodePwd:: $(unicode_pwd "$DELEGATE_PW")
userAccountControl: 512
EOF
  # An earlier, interrupted step may have made the account with another password.
  local rc; rc=$(admin_modify <<EOF
dn: $DELEGATE_DN
changetype: modify
replace: unicodePwd
unicodePwd:: $(unicode_pwd "$DELEGATE_PW")
-
EOF
)
  [ "$rc" = 0 ] || die "setting the password of $DELEGATE_DN failed (rc $rc)"
  admin_add "$DELEGATED_OU" <<EOF
dn: $DELEGATED_OU
changetype: add
objectClass: organizationalUnit
ou: delegated
description: userphoto tests: $DELEGATE may write thumbnailPhoto here, except on ${DENIED[*]}
EOF
  local sid
  sid=$(ldbsearch -H "$DIR/samba/private/sam.ldb" -s base -b "$DELEGATE_DN" objectSid 2>>"$LOG" |
    sed -n 's/^objectSid: //p')
  [[ $sid =~ ^S-1-5-21-[0-9-]+$ ]] || die "cannot read the objectSid of $DELEGATE_DN"
  dsacl_add "$DELEGATED_OU" "(OA;CIIO;WP;$THUMBNAIL_PHOTO_GUID;$USER_CLASS_GUID;$sid)"
  local u
  for u in "${DENIED[@]}"; do
    admin_add "CN=$u,$DELEGATED_OU" <<EOF
dn: CN=$u,$DELEGATED_OU
changetype: add
objectClass: user
cn: $u
sAMAccountName: $u
description: userphoto tests: $DELEGATE is denied writing thumbnailPhoto here (as on a protected admin account)
EOF
    dsacl_add "CN=$u,$DELEGATED_OU" "(OD;;WP;$THUMBNAIL_PHOTO_GUID;;$sid)"
  done
  ldapsearch -x -LLL -H "$LDAPS_URL" -D "$DELEGATE_DN" -y "$DELEGATE_PW" -b "$DELEGATED_OU" \
    -s one dn >>"$LOG" 2>&1 ||
    die "$DELEGATE cannot bind over LDAPS and list $DELEGATED_OU"
}

# ---------------------------------------------------------------------------------------------
env_lines() {
  local kv k v
  for kv in \
    "USERPHOTO_AD_LDAPS_URL=$LDAPS_URL" \
    "USERPHOTO_AD_LDAP_URL=$LDAP_URL" \
    "USERPHOTO_AD_CA=$CA" \
    "USERPHOTO_AD_BASE_DN=$BASE_DN" \
    "USERPHOTO_AD_TEST_OU=$TEST_OU" \
    "USERPHOTO_AD_ADMIN_DN=$ADMIN_DN" \
    "USERPHOTO_AD_ADMIN_UPN=$ADMIN_UPN" \
    "USERPHOTO_AD_ADMIN_PASSWORD_FILE=$ADMIN_PW" \
    "USERPHOTO_AD_READER_DN=$READER_DN" \
    "USERPHOTO_AD_READER_PASSWORD_FILE=$READER_PW" \
    "USERPHOTO_AD_DELEGATE_DN=$DELEGATE_DN" \
    "USERPHOTO_AD_DELEGATE_PASSWORD_FILE=$DELEGATE_PW" \
    "USERPHOTO_AD_DELEGATED_OU=$DELEGATED_OU" \
    "USERPHOTO_AD_DENIED_USERS=$(IFS=,; echo "${DENIED[*]}")" \
    "USERPHOTO_AD_KEYTAB=$KEYTAB" \
    "USERPHOTO_AD_KRB5_CONFIG=$KRB5_CONF" \
    "USERPHOTO_AD_REALM=$REALM" \
    "USERPHOTO_AD_SAMBA_DIR=$DIR"; do
    k=${kv%%=*} v=${kv#*=}
    if [[ $v =~ ^[A-Za-z0-9_./:,=@+-]+$ ]]; then
      printf 'export %s=%s\n' "$k" "$v"
    else # quote a path with spaces or other specials
      printf "export %s='%s'\n" "$k" "${v//\'/\'\\\'\'}"
    fi
  done
}

lock() { # holds an exclusive lock on $DIR/lock until the script exits
  mkdir -p "$DIR"
  exec 9>>"$DIR/lock"
  flock -w 1800 9 || die "timed out waiting for $DIR/lock (another samba-dc.sh start/stop?)"
  # A directory that holds nothing but our lock is ours from now on (see wipe_dir).
  [ -n "$(find "$DIR" -mindepth 1 -maxdepth 1 ! -name lock ! -name log -print -quit)" ] || : >"$DIR_MARK"
}

cmd_start() {
  need_root start
  lock
  local pid
  if pid=$(samba_pid) && answering && [ "$(fixtures_version)" -ge "$FIXTURES_VERSION" ]; then
    env_lines >"$DIR/env"
    say "already running (pid $pid, $DIR)"
    return 0
  fi
  if pid=$(samba_pid); then
    wait_ready # running (maybe still starting up, or started by hand) but fixtures missing
  else
    ensure_packages
    command -v samba >/dev/null 2>&1 || die "samba not found after installing packages"
    if provision_complete; then
      log "reusing the provision in $DIR"
    else
      say "provisioning $REALM in $DIR"
      provision
      say "provisioned in $PROVISION_SECS s"
    fi
    start_samba
    pid=$(samba_pid)
  fi
  ensure_fixtures
  env_lines >"$DIR/env"
  say "running (pid $pid${START_SECS:+, answering after $START_SECS s}); env: $DIR/env (or: $0 env)"
}

cmd_stop() {
  need_root stop
  if [ ! -d "$DIR" ]; then
    say "not running (no $DIR)"
    return 0
  fi
  lock
  local pid i
  if ! pid=$(samba_pid); then
    rm -f "$PIDFILE"
    say "not running"
    return 0
  fi
  log "stopping samba pid $pid"
  kill -TERM "$pid" 2>/dev/null || true
  for ((i = 0; i < 150; i++)); do # 30 s
    [ -d "/proc/$pid" ] || break
    sleep 0.2
  done
  if [ -d "/proc/$pid" ]; then
    log "samba pid $pid ignored SIGTERM for 30 s: SIGKILL"
    kill -KILL "$pid" 2>/dev/null || true
    sleep 0.5
  fi
  end_session "$pid" # normally nothing is left: the tasks exit with the root process
  # The pre-fork workers can outlive the root process for a moment: wait until the ports are
  # free, so that a `start` right after this succeeds.
  for ((i = 0; i < 50; i++)); do # 10 s
    port_busy 389 || port_busy 636 || port_busy 88 || break
    sleep 0.2
  done
  rm -f "$PIDFILE"
  say "stopped (pid $pid)"
}

cmd_status() {
  local pid
  if pid=$(samba_pid) && answering; then
    say "running (pid $pid, $DIR)"
    return 0
  fi
  if pid=$(samba_pid); then
    say "process $pid runs but does not answer on $LDAPS_URL and $LDAP_URL (StartTLS)"
  else
    say "not running ($DIR)"
  fi
  return 1
}

case ${1:-} in
  start) cmd_start ;;
  stop) cmd_stop ;;
  status) cmd_status ;;
  env) env_lines ;;
  *)
    echo "usage: $0 start|stop|status|env" >&2
    exit 2
    ;;
esac
