#!/usr/bin/env bash
# Start/stop a throw-away single-node Ceph cluster (1 monitor, 1 in-memory OSD,
# radosgw) that serves a real, SigV4-verifying S3 API on loopback for the tests.
#
# Usage: test/s3-server/ceph.sh install|start|stop|status|env
#
#   install  apt-get install the Ceph packages (only if radosgw is missing)
#   start    (re)start a fresh cluster, create the test user (allowed to get
#            session tokens from STS) and a second, unrelated user (for tests
#            of two isolated accounts), write + print
#            $CEPH_STATE_DIR/env (S3_TEST_ENDPOINT, S3_TEST_ACCESS_KEY, ...,
#            S3_TEST_ACCESS_KEY_2, S3_TEST_SECRET_KEY_2)
#   stop     kill exactly the recorded daemons and delete the state dir
#   status   exit 0 if the gateway answers GET / with 200, else 1
#   env      print the env file of the running cluster
#
# Environment:
#   CEPH_STATE_DIR      everything lives here (default /tmp/nestjs-s3-storage-ceph;
#                       wiped on start and stop - nothing goes to /etc/ceph or /var/lib/ceph)
#   S3_PORT             gateway port (default 7480), on 127.0.0.1 and, if present, [::1]
#   CEPH_MON_PORT       monitor msgr2 port (default 3300); msgr1 uses CEPH_MON_V1_PORT (6789)
#   CEPH_MEMSTORE_BYTES OSD capacity in bytes (default 6 GiB); data is held in RAM
#   CEPH_START_TIMEOUT  seconds to wait for the gateway (default 60)
#   S3_TEST_ACCESS_KEY / S3_TEST_SECRET_KEY  credentials of the S3 test user
#   S3_TEST_ACCESS_KEY_2 / S3_TEST_SECRET_KEY_2  credentials of the second user
#   CEPH_STS_KEY        the gateway's STS key (16 characters) that encrypts the
#                       session tokens of GetSessionToken/AssumeRole (STS is on)
set -euo pipefail

STATE_DIR="${CEPH_STATE_DIR:-/tmp/nestjs-s3-storage-ceph}"
PORT="${S3_PORT:-7480}"
MON_PORT="${CEPH_MON_PORT:-3300}"
MON_V1_PORT="${CEPH_MON_V1_PORT:-6789}"
MEMSTORE_BYTES="${CEPH_MEMSTORE_BYTES:-$((6 * 1024 * 1024 * 1024))}"
START_TIMEOUT="${CEPH_START_TIMEOUT:-60}"
ACCESS_KEY="${S3_TEST_ACCESS_KEY:-nss3testaccess}"
SECRET_KEY="${S3_TEST_SECRET_KEY:-nss3testsecretkey0123456789abcdef}"
ACCESS_KEY_2="${S3_TEST_ACCESS_KEY_2:-nss3testaccess2}"
SECRET_KEY_2="${S3_TEST_SECRET_KEY_2:-nss3testsecretkey2-fedcba9876543210}"
REGION="us-east-1"
STS_KEY="${CEPH_STS_KEY:-nss3stskey012345}"

CONF="$STATE_DIR/ceph.conf"
MARKER="$STATE_DIR/.nestjs-s3-storage-ceph"
PIDS="$STATE_DIR/pids"
ENV_FILE="$STATE_DIR/env"
export CEPH_CONF="$CONF"

log() { echo "ceph.sh: $*" >&2; }
die() { log "ERROR: $*"; exit 1; }

# Tail of every log, for failure messages.
dump_logs() {
  local f
  for f in "$STATE_DIR"/log/*.out "$STATE_DIR"/log/mon.a.log \
    "$STATE_DIR"/log/osd.0.log "$STATE_DIR"/log/client.rgw.a.log; do
    [[ -s "$f" ]] || continue
    echo "----- $f (last 20 lines) -----" >&2
    tail -n 20 "$f" >&2 || true
  done
}

# Start-up failed: show the logs, end the daemons, keep the logs for inspection.
fail() {
  log "ERROR: $*"
  dump_logs
  stop_daemons
  log "daemons stopped; logs kept in $STATE_DIR/log ('$0 stop' removes them)"
  exit 1
}

# Seconds left before the start-up deadline (at least 1).
remaining() {
  local r=$((DEADLINE - SECONDS))
  ((r > 0)) || r=1
  echo "$r"
}

have_ipv6_loopback() {
  # ::1 configured on lo (and IPv6 not disabled) -> beast can bind [::1].
  [[ -r /proc/net/if_inet6 ]] &&
    grep -qE '^0{31}1 .* lo$' /proc/net/if_inet6
}

port_in_use() {
  command -v ss >/dev/null 2>&1 || return 1
  ss -Htln "sport = :$1" 2>/dev/null | grep -q .
}

new_uuid() { cat /proc/sys/kernel/random/uuid; }

gateway_ok() {
  local port="$1"
  [[ "$(curl -s -o /dev/null -m 2 -w '%{http_code}' "http://127.0.0.1:$port/" 2>/dev/null || true)" == 200 ]]
}

# Run the ceph CLI against our cluster, never hanging forever.
ceph_cli() {
  local t
  t=$(remaining)
  timeout "$t" ceph -c "$CONF" --connect-timeout "$t" "$@"
}

cmd_install() {
  if command -v radosgw >/dev/null 2>&1 && command -v ceph-mon >/dev/null 2>&1 &&
     command -v ceph-osd >/dev/null 2>&1 && command -v radosgw-admin >/dev/null 2>&1; then
    log "ceph already installed: $(radosgw --version 2>/dev/null | head -n1)"
    return 0
  fi
  export DEBIAN_FRONTEND=noninteractive
  apt-get update
  apt-get install -y --no-install-recommends ceph-mon ceph-osd radosgw ceph-common
}

# Record a daemon we started: "name pid".
record_pid() { echo "$1 $2" >>"$PIDS"; }

# Start a daemon in the foreground (-f), detached from our stdio, and record its pid.
spawn() {
  local name="$1"; shift
  # setsid: no terminal signals (Ctrl-C of the caller) reach the daemon; it execs
  # in place (a background job is not a process-group leader), so $! is the daemon.
  setsid "$@" </dev/null >>"$STATE_DIR/log/$name.out" 2>&1 &
  record_pid "$name" "$!"
  disown "$!"
}

write_conf() {
  local fsid="$1" frontends
  frontends="beast endpoint=127.0.0.1:$PORT"
  if have_ipv6_loopback; then
    frontends="$frontends endpoint=[::1]:$PORT"
  fi
  cat >"$CONF" <<EOF
[global]
fsid = $fsid
mon host = [v2:127.0.0.1:$MON_PORT,v1:127.0.0.1:$MON_V1_PORT]
mon initial members = a
public addr = 127.0.0.1
cluster addr = 127.0.0.1

# no authentication; "crc secure" lets clients reach the mon with auth off
auth cluster required = none
auth service required = none
auth client required = none
ms mon client mode = crc secure

# everything under the state dir
run dir = $STATE_DIR/run
admin socket = $STATE_DIR/run/\$name.asok
pid file = $STATE_DIR/run/\$name.pid
log file = $STATE_DIR/log/\$name.log
mon cluster log file = $STATE_DIR/log/cluster.log
crash dir = $STATE_DIR/crash
keyring = $STATE_DIR/keyring
log to stderr = false
err to stderr = true
log to syslog = false
debug ms = 0

# fast single-node cluster
paxos propose interval = 0.01
osd pool default size = 1
osd pool default min size = 1
osd pool default pg num = 8
osd pool default pgp num = 8
osd pool default pg autoscale mode = off
osd crush chooseleaf type = 0
mon allow pool size one = true
mon allow pool delete = true
mon warn on pool no redundancy = false

[mon]
mon data = $STATE_DIR/mon/\$cluster-\$id
mon data avail warn = 1
mon data avail crit = 0

[osd]
osd data = $STATE_DIR/osd/\$cluster-\$id
osd objectstore = memstore
memstore device bytes = $MEMSTORE_BYTES
osd crush update on start = true

[client]
rgw data = $STATE_DIR/rgw/\$cluster-\$id
rgw frontends = $frontends
rgw init timeout = 60
# path-style only: no rgw dns name, so any Host (127.0.0.1, localhost) works
rgw dns name =
rgw enable usage log = false
rgw enable ops log = false
rgw dynamic resharding = false
rgw thread pool size = 256
rgw max concurrent requests = 1024
# up to 5 GiB single PUTs, like AWS; multipart part sizes/limits stay AWS-like
rgw max put size = 5368709120
# free deleted objects' data (RAM!) within seconds instead of hours
rgw gc obj min wait = 2
rgw gc processor period = 5
rgw gc processor max time = 5
debug rgw = 1
# STS (GetSessionToken, AssumeRole) so tests can use temporary credentials with a
# session token, as Lambda, CodeBuild and GitHub OIDC deliver them. The key encrypts
# the session tokens RGW issues and must be exactly 16 characters.
rgw s3 auth use sts = true
rgw sts key = $STS_KEY
EOF
}

# Is pid still one of our daemons (not exited, not a zombie, pid not reused)?
# Every daemon was started with our conf path on its command line.
is_ours() {
  local pid="$1"
  [[ "$(awk '{print $3}' "/proc/$pid/stat" 2>/dev/null)" =~ ^[^Z]$ ]] &&
    { tr '\0' ' ' <"/proc/$pid/cmdline"; } 2>/dev/null | grep -qF -- "$CONF"
}

# Send a signal to the recorded daemon `name`, wait up to 5 s, then SIGKILL it.
stop_daemon() {
  local name="$1" sig="$2" pid i
  pid=$(awk -v n="$name" '$1 == n { print $2 }' "$PIDS" 2>/dev/null || true)
  [[ -n "$pid" ]] || return 0
  is_ours "$pid" || return 0
  kill "-$sig" "$pid" 2>/dev/null || true
  for ((i = 0; i < 50; i++)); do
    is_ours "$pid" || return 0
    sleep 0.1
  done
  log "$name (pid $pid) ignored SIG$sig for 5 s; sending SIGKILL"
  kill -KILL "$pid" 2>/dev/null || true
}

stop_daemons() {
  [[ -f "$PIDS" ]] || return 0
  # Gateway first (it shuts down quickly only while the OSD still answers).
  stop_daemon rgw TERM
  # memstore writes its whole RAM content to disk on a clean shutdown; the data
  # is thrown away anyway, so the OSD gets SIGKILL right away.
  stop_daemon osd KILL
  stop_daemon mon TERM
}

# Never wipe a directory this script did not create (e.g. a mistyped CEPH_STATE_DIR).
check_state_dir() {
  [[ -d "$STATE_DIR" ]] || return 0
  [[ -e "$MARKER" ]] && return 0
  [[ -z "$(ls -A "$STATE_DIR")" ]] && return 0
  die "$STATE_DIR exists and was not created by $0; refusing to wipe it (set CEPH_STATE_DIR)"
}

cmd_stop() {
  [[ -d "$STATE_DIR" ]] || return 0
  check_state_dir
  stop_daemons
  rm -rf "$STATE_DIR"
}

# An IAM user policy allowing sts:GetSessionToken (RGW's STS refuses it otherwise); the
# temporary credentials then carry the user's own S3 permissions. Signed by curl (SigV4).
allow_session_tokens() {
  local policy='{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"sts:GetSessionToken","Resource":"*"}]}'
  local code
  code=$(curl -s -o "$STATE_DIR/log/put-user-policy.out" -w '%{http_code}' -m "$(remaining)" \
    --aws-sigv4 "aws:amz:$REGION:iam" --user "$ACCESS_KEY:$SECRET_KEY" \
    --data-urlencode Action=PutUserPolicy --data-urlencode Version=2010-05-08 \
    --data-urlencode UserName=nss3test --data-urlencode PolicyName=nss3-session-tokens \
    --data-urlencode "PolicyDocument=$policy" "http://127.0.0.1:$PORT/" || true)
  [[ "$code" == 200 ]] || fail "PutUserPolicy (sts:GetSessionToken) answered HTTP $code"
}

cmd_start() {
  for c in ceph-mon ceph-osd radosgw radosgw-admin monmaptool ceph curl setsid; do
    command -v "$c" >/dev/null 2>&1 || die "'$c' not found (run '$0 install' first)"
  done

  # A previous cluster in the same state dir: stop it first.
  cmd_stop

  for p in "$PORT" "$MON_PORT" "$MON_V1_PORT"; do
    port_in_use "$p" && die "port $p is already in use (another Ceph/S3 server?); set S3_PORT / CEPH_MON_PORT / CEPH_MON_V1_PORT"
  done

  local t0 fsid osd_uuid osd_id
  t0=$(date +%s%N)
  DEADLINE=$((SECONDS + START_TIMEOUT))
  mkdir -p "$STATE_DIR"/{run,log,crash,mon/ceph-a,osd,rgw}
  : >"$MARKER"
  : >"$PIDS"
  fsid=$(new_uuid)
  write_conf "$fsid"

  # --- monitor
  monmaptool --create --fsid "$fsid" \
    --addv a "[v2:127.0.0.1:$MON_PORT,v1:127.0.0.1:$MON_V1_PORT]" \
    "$STATE_DIR/monmap" >"$STATE_DIR/log/monmaptool.out" 2>&1 ||
    fail "monmaptool failed"
  ceph-mon -c "$CONF" --mkfs -i a --monmap "$STATE_DIR/monmap" \
    >"$STATE_DIR/log/mon-mkfs.out" 2>&1 || fail "ceph-mon --mkfs failed"
  spawn mon ceph-mon -c "$CONF" -f -i a

  # --- OSD (ceph osd new waits for the monitor to come up)
  osd_uuid=$(new_uuid)
  osd_id=$(ceph_cli osd new "$osd_uuid" 2>>"$STATE_DIR/log/ceph-cli.out") ||
    fail "could not register the OSD with the monitor"
  mkdir -p "$STATE_DIR/osd/ceph-$osd_id"
  ceph-osd -c "$CONF" -i "$osd_id" --mkfs --osd-uuid "$osd_uuid" \
    >"$STATE_DIR/log/osd-mkfs.out" 2>&1 || fail "ceph-osd --mkfs failed"
  spawn osd ceph-osd -c "$CONF" -f -i "$osd_id"

  # --- S3 user (creates the RGW pools; blocks until the OSD serves them)
  timeout "$(remaining)" radosgw-admin -c "$CONF" user create \
    --uid=nss3test --display-name="nestjs-s3-storage tests" \
    --access-key="$ACCESS_KEY" --secret-key="$SECRET_KEY" \
    >"$STATE_DIR/user.json" 2>"$STATE_DIR/log/user-create.out" || fail "radosgw-admin user create failed"
  # lets the user attach its own IAM policy (below): RGW grants sts:GetSessionToken only by policy
  timeout "$(remaining)" radosgw-admin -c "$CONF" caps add --uid=nss3test --caps="user-policy=*" \
    >/dev/null 2>>"$STATE_DIR/log/user-create.out" || fail "radosgw-admin caps add failed"
  # a second account: its buckets and objects answer 403 to the first user, and back
  timeout "$(remaining)" radosgw-admin -c "$CONF" user create \
    --uid=nss3test2 --display-name="nestjs-s3-storage tests (second user)" \
    --access-key="$ACCESS_KEY_2" --secret-key="$SECRET_KEY_2" \
    >"$STATE_DIR/user2.json" 2>>"$STATE_DIR/log/user-create.out" || fail "radosgw-admin user create (second user) failed"

  # --- gateway
  spawn rgw radosgw -c "$CONF" -f -n client.rgw.a

  until gateway_ok "$PORT"; do
    local name pid
    while read -r name pid; do
      is_ours "$pid" || fail "the $name daemon (pid $pid) died during start-up"
    done <"$PIDS"
    ((SECONDS < DEADLINE)) ||
      fail "the S3 gateway did not answer 200 on http://127.0.0.1:$PORT/ within ${START_TIMEOUT}s"
    sleep 0.05
  done

  allow_session_tokens

  cat >"$ENV_FILE" <<EOF
S3_TEST_ENDPOINT=http://127.0.0.1:$PORT
S3_TEST_ACCESS_KEY=$ACCESS_KEY
S3_TEST_SECRET_KEY=$SECRET_KEY
S3_TEST_ACCESS_KEY_2=$ACCESS_KEY_2
S3_TEST_SECRET_KEY_2=$SECRET_KEY_2
S3_TEST_REGION=$REGION
S3_TEST_SERVER=ceph
EOF
  log "ceph radosgw up in $((($(date +%s%N) - t0) / 1000000)) ms (state: $STATE_DIR)"
  cat "$ENV_FILE"
}

cmd_status() {
  local port="$PORT"
  if [[ -f "$ENV_FILE" ]]; then
    port=$(sed -n 's#^S3_TEST_ENDPOINT=http://127.0.0.1:\([0-9]*\)$#\1#p' "$ENV_FILE")
  fi
  if gateway_ok "${port:-$PORT}"; then
    echo "ceph radosgw is up on http://127.0.0.1:${port:-$PORT}"
    return 0
  fi
  echo "ceph radosgw is not answering on http://127.0.0.1:${port:-$PORT}" >&2
  return 1
}

cmd_env() {
  [[ -f "$ENV_FILE" ]] || die "no env file at $ENV_FILE (not started?)"
  cat "$ENV_FILE"
}

case "${1:-}" in
  install) cmd_install ;;
  start) cmd_start ;;
  stop) cmd_stop ;;
  status) cmd_status ;;
  env) cmd_env ;;
  *)
    echo "usage: $0 install|start|stop|status|env" >&2
    exit 2
    ;;
esac
