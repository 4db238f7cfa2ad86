#!/usr/bin/env bash
# The local S3-compatible store of the tests, the e2e and the bench: SeaweedFS (Apache-2.0), built from
# its Go module once per cache (docs/decisions/0003-backups.md). A command, or sourced for its functions.
#
#   bash e2e/lib/seaweedfs.sh build          print the binary's path; build it first when it is missing
#   bash e2e/lib/seaweedfs.sh start DIR IP   start `weed server -s3` bound to IP, state in DIR; prints
#                                            S3_ENDPOINT= S3_CREDENTIALS= S3_PID= S3_ACCESS_KEY_ID=
#   bash e2e/lib/seaweedfs.sh stop DIR       stop the server started in DIR
#
# start generates an access key and secret (the secret only in DIR/aws-credentials, an AWS shared
# credentials file, [default] profile, 0600) and waits, at most 60 s, until the store answers a signed
# S3 request and can take writes. It creates no bucket (restic init does). Started again on the same DIR
# after stop, it reuses the ports, the key and the data: the endpoint and the objects come back, which
# is what a test of "the store was down" needs.
#
# Environment: VPS_STACK_CACHE (default ~/.cache/vps-stack; the binary is $VPS_STACK_CACHE/bench/weed),
# GO (the go binary, default: go on PATH, then /usr/local/go/bin/go).
# shellcheck shell=bash

SEAWEEDFS_VERSION=v0.0.0-20261109003541-7506e5f91cd6
SEAWEEDFS_CACHE="${VPS_STACK_CACHE:-${HOME:-/root}/.cache/vps-stack}/bench"
SEAWEEDFS_BIN="$SEAWEEDFS_CACHE/weed"

seaweedfs_log() { printf '[seaweedfs %s] %s\n' "$(date -u +%H:%M:%S)" "$*" >&2; }

seaweedfs_go() {
    local candidate
    for candidate in "${GO:-}" "$(command -v go 2>/dev/null || true)" /usr/local/go/bin/go; do
        if [ -n "$candidate" ] && [ -x "$candidate" ]; then
            printf '%s\n' "$candidate"
            return 0
        fi
    done
    return 1
}

# Its go.mod has replace directives, which `go install module@version` refuses: download the module
# through the proxy and build ./weed in a writable copy of it. About 7 minutes cold on 15 cores.
seaweedfs_build() {
    if [ -x "$SEAWEEDFS_BIN" ]; then
        printf '%s\n' "$SEAWEEDFS_BIN"
        return 0
    fi
    local go dir src
    go=$(seaweedfs_go) || {
        seaweedfs_log "ERROR: no SeaweedFS binary at $SEAWEEDFS_BIN and no go to build it (set GO=/path/to/go)"
        return 1
    }
    mkdir -p "$SEAWEEDFS_CACHE"
    # Two builds at once (a test run and the e2e) would share the copy: the second waits for the first.
    exec {lock_fd}>"$SEAWEEDFS_CACHE/.weed-build.lock"
    flock "$lock_fd"
    if [ ! -x "$SEAWEEDFS_BIN" ]; then
        seaweedfs_log "building SeaweedFS $SEAWEEDFS_VERSION into $SEAWEEDFS_BIN (minutes, once per cache)"
        dir=$("$go" mod download -json "github.com/seaweedfs/seaweedfs@$SEAWEEDFS_VERSION" | sed -n 's/^[[:space:]]*"Dir": "\(.*\)",\{0,1\}$/\1/p')
        if [ -z "$dir" ] || [ ! -d "$dir" ]; then
            seaweedfs_log "ERROR: go mod download gave no directory for github.com/seaweedfs/seaweedfs@$SEAWEEDFS_VERSION"
            flock -u "$lock_fd"
            return 1
        fi
        src="$SEAWEEDFS_CACHE/seaweedfs-src"
        rm -rf "$src"
        cp -r "$dir" "$src"
        chmod -R u+w "$src"
        # Built to a temporary name: an interrupted build must not leave a binary that looks finished.
        if ! (cd "$src" && "$go" build -o "$SEAWEEDFS_BIN.tmp" ./weed); then
            rm -rf "$src" "$SEAWEEDFS_BIN.tmp"
            flock -u "$lock_fd"
            seaweedfs_log "ERROR: go build of SeaweedFS failed"
            return 1
        fi
        mv -f "$SEAWEEDFS_BIN.tmp" "$SEAWEEDFS_BIN"
        rm -rf "$src"
    fi
    flock -u "$lock_fd"
    printf '%s\n' "$SEAWEEDFS_BIN"
}

# True when something accepts connections on IP:PORT.
seaweedfs_port_used() { (exec 3<>"/dev/tcp/$1/$2") 2>/dev/null; }

# Four ports in a row (master, volume, filer, S3); each also has a gRPC port 10000 above it.
seaweedfs_free_base() {
    local ip=$1 base p ok
    for _ in $(seq 1 50); do
        base=$((20000 + (RANDOM * 32768 + RANDOM) % 9990))
        ok=1
        for p in $base $((base + 1)) $((base + 2)) $((base + 3)); do
            if seaweedfs_port_used "$ip" "$p" || seaweedfs_port_used "$ip" $((p + 10000)); then
                ok=0
                break
            fi
        done
        if [ "$ok" = 1 ]; then
            printf '%s\n' "$base"
            return 0
        fi
    done
    return 1
}

seaweedfs_random() { head -c 48 /dev/urandom | base64 | tr -dc 'A-Za-z0-9' | head -c "$1"; }

# Ready = the master is the raft leader, a volume server has registered with it, the master is past
# its warm-up, and a signed ListBuckets answers. S3 reads work before the rest, but writes wait: after a
# restart with data, the master refuses to place writes for 3 heartbeats (15 s, fixed) while volume
# servers report; a lookup of a volume that does not exist says 503 until then, 404 after, and writes
# nothing.
seaweedfs_ready() {
    local ip=$1 base=$2 state=$3 secret
    curl -fsS -m 2 "http://$ip:$base/cluster/status" 2>/dev/null | grep -q '"IsLeader":true' || return 1
    curl -fsS -m 2 "http://$ip:$base/dir/status" 2>/dev/null | grep -q '"DataNodes":\[{' || return 1
    [ "$(curl -sS -m 2 -o /dev/null -w '%{http_code}' "http://$ip:$base/dir/lookup?volumeId=4294967295" 2>/dev/null)" = 404 ] || return 1
    secret=$(sed -n 's/^aws_secret_access_key = //p' "$state/aws-credentials")
    # The secret reaches curl on stdin (-K -), never in its argv.
    printf 'user = "%s:%s"\n' "$(cat "$state/access-key-id")" "$secret" |
        curl -fsS -m 2 -o /dev/null -K - --aws-sigv4 "aws:amz:us-east-1:s3" "http://$ip:$((base + 3))/" 2>/dev/null
}

seaweedfs_start() {
    local dir=${1:?usage: seaweedfs.sh start DIR IP} ip=${2:?usage: seaweedfs.sh start DIR IP}
    local bin base key secret pid p
    bin=$(seaweedfs_build) || return 1
    mkdir -p "$dir/data" "$dir/logs"
    dir=$(cd "$dir" && pwd)
    if [ -f "$dir/weed.pid" ] && kill -0 "$(cat "$dir/weed.pid")" 2>/dev/null; then
        seaweedfs_log "ERROR: a server started in $dir is still running (pid $(cat "$dir/weed.pid")): stop it first"
        return 1
    fi
    if [ -f "$dir/ports" ] && [ -f "$dir/access-key-id" ] && [ -f "$dir/s3.json" ] && [ "$(sed -n 's/^ip=//p' "$dir/ports")" = "$ip" ]; then
        base=$(sed -n 's/^base=//p' "$dir/ports")
        for p in $base $((base + 1)) $((base + 2)) $((base + 3)); do
            if seaweedfs_port_used "$ip" "$p"; then
                seaweedfs_log "ERROR: port $ip:$p, which the store in $dir used before, is taken now"
                return 1
            fi
        done
    else
        base=$(seaweedfs_free_base "$ip") || {
            seaweedfs_log "ERROR: no four free ports in a row on $ip"
            return 1
        }
        key="VPSSTACK$(seaweedfs_random 12 | tr '[:lower:]' '[:upper:]')"
        secret=$(seaweedfs_random 40)
        (
            umask 077
            printf '{"identities":[{"name":"vps-stack-test","credentials":[{"accessKey":"%s","secretKey":"%s"}],"actions":["Admin","Read","Write","List","Tagging"]}]}\n' "$key" "$secret" >"$dir/s3.json"
            printf '[default]\naws_access_key_id = %s\naws_secret_access_key = %s\n' "$key" "$secret" >"$dir/aws-credentials"
        )
        printf '%s\n' "$key" >"$dir/access-key-id"
        printf 'ip=%s\nbase=%s\n' "$ip" "$base" >"$dir/ports"
    fi
    # Volumes of 1 GB rather than 30: the volume count is free space / volume size, and with one or two
    # volumes a second bucket has nowhere to go. No telemetry (no internet), no Iceberg or Lance ports
    # (fixed defaults that a second store would collide on), no 10 s pause before a volume server stops,
    # and a 1 s election for this single master (10 s by default, waited for at every restart).
    setsid "$bin" -logdir="$dir/logs" server -dir="$dir/data" -ip="$ip" -ip.bind="$ip" \
        -master.port="$base" -volume.port=$((base + 1)) -filer -filer.port=$((base + 2)) \
        -s3 -s3.port=$((base + 3)) -s3.config="$dir/s3.json" -s3.port.iceberg=0 -s3.port.lance=0 \
        -master.telemetry=false -master.volumeSizeLimitMB=1024 -master.electionTimeout=1s \
        -volume.max=0 -volume.preStopSeconds=0 </dev/null >>"$dir/weed.log" 2>&1 &
    pid=$!
    printf '%s\n' "$pid" >"$dir/weed.pid"
    for _ in $(seq 1 120); do
        if seaweedfs_ready "$ip" "$base" "$dir"; then
            printf 'S3_ENDPOINT=%q\nS3_CREDENTIALS=%q\nS3_PID=%q\nS3_ACCESS_KEY_ID=%q\n' \
                "http://$ip:$((base + 3))" "$dir/aws-credentials" "$pid" "$(cat "$dir/access-key-id")"
            return 0
        fi
        if ! kill -0 "$pid" 2>/dev/null; then
            tail -n 20 "$dir/weed.log" >&2
            seaweedfs_log "ERROR: weed server exited at start (log: $dir/weed.log)"
            return 1
        fi
        sleep 0.5
    done
    tail -n 20 "$dir/weed.log" >&2
    seaweedfs_stop "$dir"
    seaweedfs_log "ERROR: the store did not answer S3 on $ip:$((base + 3)) within 60 s (log: $dir/weed.log)"
    return 1
}

# TERM first; its graceful stop sometimes waits 10 s on idle connections, so KILL after 3 s: the data
# is in the files already (the kernel keeps what was written), only the machine going down loses it.
seaweedfs_stop() {
    local dir=${1:?usage: seaweedfs.sh stop DIR} pid
    [ -f "$dir/weed.pid" ] || return 0
    pid=$(cat "$dir/weed.pid")
    if kill -TERM "$pid" 2>/dev/null; then
        for _ in $(seq 1 30); do
            kill -0 "$pid" 2>/dev/null || break
            sleep 0.1
        done
        kill -KILL "$pid" 2>/dev/null || true
        # Until it is gone, its ports are not free for the next start.
        for _ in $(seq 1 50); do
            kill -0 "$pid" 2>/dev/null || break
            sleep 0.1
        done
    fi
    rm -f "$dir/weed.pid"
}

if [ "${BASH_SOURCE[0]}" = "$0" ]; then
    set -euo pipefail
    case ${1:-} in
        build) seaweedfs_build ;;
        start) seaweedfs_start "${2:-}" "${3:-}" ;;
        stop) seaweedfs_stop "${2:-}" ;;
        *)
            sed -n '3,8s/^# \{0,1\}//p' "$0" >&2
            exit 2
            ;;
    esac
fi
