#!/usr/bin/env bash
# Releases under a heavier load than the e2e's, on a deployed stack: a steady-state run first, then the
# same load while `pulumi up` releases the first app from one image to another and back. Prints, for each
# run, requests, failures, the longest gap between two answers and p50/p99 latency, so the switch can be
# compared with steady state. Not in CI. Loopback targets only (the load generator refuses others).
#
#   bash bench/release.sh --stack dev --image-a vps-stack-demo-api:1 --image-b vps-stack-demo-api:2 \
#        [--rate 500] [--seconds 60] [--host localhost] [--port 8443]
#
# The stack's rate limit shapes such a load (429s): raise it first, e.g.
#   pulumi config set --path nginx.rateLimit.rate 10000r/s && pulumi config set --path nginx.rateLimit.burst 10000 && pulumi up
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
stack=dev rate=500 seconds=60 host=localhost port=8443 image_a='' image_b=''
while [ $# -gt 0 ]; do
    case "$1" in
        --stack) stack=$2 ;;
        --rate) rate=$2 ;;
        --seconds) seconds=$2 ;;
        --host) host=$2 ;;
        --port) port=$2 ;;
        --image-a) image_a=$2 ;;
        --image-b) image_b=$2 ;;
        *) echo "release.sh: unknown argument $1" >&2; exit 2 ;;
    esac
    shift 2
done
if [ -z "$image_a" ] || [ -z "$image_b" ]; then echo "release.sh: --image-a and --image-b are required" >&2; exit 2; fi
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
pulumi stack output --stack "$stack" caCertificate >"$work/ca.pem"

load() { # load NAME STOPFILE: prints one summary line
    node "$ROOT/e2e/lib/load.js" --url "https://$host:$port" --resolve 127.0.0.1 --ca "$work/ca.pem" --rate "$rate" \
        --count $((rate * seconds)) --slow-every $((rate * 5)) --slow-seconds 5-10 ${2:+--stop-file "$2"} --max-seconds $((seconds * 3)) >"$work/$1.json"
    # shellcheck disable=SC2016
    node -e '
        const s = JSON.parse(require("fs").readFileSync(process.argv[1], "utf8"));
        console.log(`${process.argv[2]}: ${s.sent} requests in ${s.seconds}s, ${s.failed} failed (${s.non2xx} non-2xx, ${s.connErrors} connection errors), longest gap ${s.maxGapMs} ms, p50 ${s.p50Ms} ms, p99 ${s.p99Ms} ms, slow ${s.slowCompleted}/${s.slowSent}`)' "$work/$1.json" "$1"
}

pulumi config set --stack "$stack" --path 'apps[0].image' "$image_a"
pulumi up --stack "$stack" --yes --skip-preview >/dev/null
load "steady state" ""
rm -f "$work/stop"
load "during releases" "$work/stop" &
pid=$!
for image in "$image_b" "$image_a"; do
    pulumi config set --stack "$stack" --path 'apps[0].image' "$image"
    pulumi up --stack "$stack" --yes --skip-preview >/dev/null
done
touch "$work/stop"
wait "$pid"
