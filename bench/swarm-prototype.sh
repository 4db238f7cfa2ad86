#!/usr/bin/env bash
# The Docker Swarm candidate for releases, measured (docs/decisions/0002-releases.md): a one-node swarm,
# the demo API as a service with a healthcheck and `--update-order start-first`, nginx in front of the
# service's virtual IP (published in host mode, so client addresses survive), and the same load
# generator as the e2e during an image update, a bad update and a rollback. Prints one line per scenario.
# Not in CI: it turns this machine's Docker engine into a swarm manager for the run (and leaves the swarm
# at the end). Needs root, a running dockerd, and the e2e images (bash e2e/images/build.sh demo-api nginx).
#
#   bash bench/swarm-prototype.sh [RATE] [COUNT]
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
RATE=${1:-200}
COUNT=${2:-5000}
PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
WORK=$(mktemp -d)
joined=
cleanup() {
    docker service rm proto-nginx proto-api >/dev/null 2>&1 || true
    sleep 2
    docker config rm proto-nginx-conf >/dev/null 2>&1 || true
    docker network rm proto-edge >/dev/null 2>&1 || true
    [ -n "$joined" ] && docker swarm leave --force >/dev/null 2>&1
    rm -rf "$WORK"
}
trap cleanup EXIT

if [ "$(docker info -f '{{.Swarm.LocalNodeState}}')" != active ]; then
    docker swarm init --advertise-addr 127.0.0.1 --listen-addr 127.0.0.1:2377 >/dev/null
    joined=1
fi
docker network create -d overlay --attachable proto-edge >/dev/null
# The service's virtual IP needs IPVS in the kernel, which small VPS kernels (and this machine's) lack:
# the service runs in DNS round-robin mode and nginx re-resolves its tasks every second (Docker's DNS),
# the only way it learns about new tasks without a reload.
cat >"$WORK/default.conf" <<'CONF'
resolver 127.0.0.11 valid=1s ipv6=off;
server {
    listen 80;
    location / {
        set $api proto-api;
        proxy_pass http://$api:8000;
        proxy_http_version 1.1;
        proxy_set_header Connection "";
    }
}
CONF
docker config create proto-nginx-conf "$WORK/default.conf" >/dev/null
# GET / (the prototype has no database); the :broken image's own health fails, as in the e2e.
# shellcheck disable=SC2016 # expanded by the container's shell
health='[ "$VERSION" != broken ] && python3 -c "import urllib.request; urllib.request.urlopen(\"http://127.0.0.1:8000/\", timeout=3)"'
docker service create -q --name proto-api --network proto-edge --replicas 1 --endpoint-mode dnsrr \
    --health-cmd "$health" --health-interval 5s --health-retries 3 --health-start-period 5s \
    --update-order start-first --update-failure-action rollback --update-monitor 20s \
    --stop-grace-period 30s vps-stack-demo-api:1 >/dev/null
docker service create -q --name proto-nginx --network proto-edge \
    --publish mode=host,target=80,published="$PORT" \
    --config source=proto-nginx-conf,target=/etc/nginx/conf.d/default.conf nginx:1.27-alpine >/dev/null
ready=
for _ in $(seq 60); do curl -fsS -o /dev/null -m 2 "http://127.0.0.1:$PORT/" 2>/dev/null && { ready=1; break; }; sleep 1; done
[ -n "$ready" ] || { echo "the prototype does not answer on 127.0.0.1:$PORT" >&2; docker service ps proto-api proto-nginx >&2; exit 1; }

scenario() { # scenario NAME COMMAND...
    local name=$1 stop="$WORK/stop" out="$WORK/out.json"
    shift
    rm -f "$stop"
    node "$ROOT/e2e/lib/load.js" --url "http://127.0.0.1:$PORT" --resolve 127.0.0.1 --rate "$RATE" --count "$COUNT" \
        --slow-every 500 --slow-seconds 5-10 --stop-file "$stop" --max-seconds 300 >"$out" &
    local pid=$! t0=$SECONDS
    sleep 3
    "$@" >/dev/null 2>&1 || true
    local took=$((SECONDS - t0 - 3))
    sleep 2
    touch "$stop"
    wait "$pid"
    # shellcheck disable=SC2016
    node -e '
        const s = JSON.parse(require("fs").readFileSync(process.argv[1], "utf8"));
        console.log(`${process.argv[2]}: ${s.sent} requests, ${s.non2xx} non-2xx, ${s.connErrors} connection errors, longest gap ${s.maxGapMs} ms, slow ${s.slowCompleted}/${s.slowSent}, p99 ${s.p99Ms} ms; the change took ${process.argv[3]}s`)' "$out" "$name" "$took"
}
scenario "swarm start-first update 1 -> 2" docker service update --image vps-stack-demo-api:2 proto-api
scenario "swarm update to a never-healthy image (automatic rollback)" docker service update --image vps-stack-demo-api:broken proto-api
scenario "swarm rollback (docker service rollback)" docker service rollback proto-api
