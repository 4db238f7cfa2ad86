# shellcheck shell=bash disable=SC2317,SC2329,SC2129,SC2034,SC2016,SC2015 # functions are called through check(); variables are shared with later phases
phase "first up"
# The box offers ed25519, ECDSA and RSA host keys. Pinning its RSA key cannot work with Pulumi's command
# provider (it offers only "ssh-rsa", SHA-1, which OpenSSH 8.8+ refuses): the program says so before
# touching anything, and names the key to pin instead.
rsa_refused() {
    local out
    init_stack e2ersa "$HTTP_PORT" "$HTTPS_PORT" "$HOST_KEY_RSA" || return 1
    out=$(pulumi preview --non-interactive --stack e2ersa 2>&1)
    local rc=$?
    echo "$out"
    pulumi stack rm --yes --force --stack e2ersa >/dev/null 2>&1
    [ "$rc" -ne 0 ] && grep -q 'vps-stack:host.hostKey is an RSA key' <<<"$out" && grep -q 'ssh-keyscan -t ed25519' <<<"$out" &&
        grep -q 'nothing was deployed' <<<"$out" && [ -z "$(docker ps -aq --filter label=vps-stack.stack=e2ersa)" ]
}
check "0. a stack pinning the box's RSA host key is refused before any resource, with the key to pin instead" rsa_refused
init_stack "$STACK" "$HTTP_PORT" "$HTTPS_PORT" || fatal "stack init"
check "1. pulumi up succeeds from an empty host" up "$STACK"
RESOURCES=$(pulumi stack --stack "$STACK" --show-urns 2>/dev/null | grep -c 'URN:' || true)
say "   resources in the stack: $RESOURCES"
# The plugins the engine really loaded, with the versions they report (GetPluginInfo).
pulumi about --stack "$STACK" 2>/dev/null | sed -n '/^Plugins/,/^$/p' | sed 's/^/   /'
say "   pulumi-language-nodejs -version: $(pulumi-language-nodejs -version 2>&1)"

check "2a. /health over HTTPS, trusting only the stack's CA: PostgreSQL and Redis reachable" health_ok "$STACK" "$HTTPS_PORT"
check "2b. plain HTTP answers 301 to HTTPS" redirects "$HTTP_PORT" "$HTTPS_PORT"
hsts() {
    local headers
    headers=$(curl -sS -D - -o /dev/null --cacert "$E2E/ca-$STACK.pem" --resolve "$DOMAIN:$HTTPS_PORT:127.0.0.1" "https://$DOMAIN:$HTTPS_PORT/health") || return 1
    echo "$headers"
    grep -qi '^strict-transport-security: max-age=31536000' <<<"$headers" && grep -qi '^x-content-type-options: nosniff' <<<"$headers"
}
check "2c. HSTS and security headers" hsts

probe() { # probe NETWORK HOST PORT: exit 0 when a TCP connection succeeds from a container on NETWORK
    docker run --rm --network "$1" --entrypoint python3 vps-stack-demo-api:1 -c \
        "import socket,sys; socket.create_connection((sys.argv[1], int(sys.argv[2])), 3)" "$2" "$3"
}
pg_ip=$(docker inspect --format "{{(index .NetworkSettings.Networks \"vps-stack-$STACK-data\").IPAddress}}" "vps-stack-$STACK-postgres" 2>>"$LOG")
no_published_ports() { [ -z "$(docker port "vps-stack-$STACK-postgres")" ] && [ -z "$(docker port "vps-stack-$STACK-redis")" ]; }
not_from_edge() { ! probe "vps-stack-$STACK-edge" postgres 5432 && ! probe "vps-stack-$STACK-edge" redis 6379 && ! probe "vps-stack-$STACK-edge" "$pg_ip" 5432; }
from_data() { probe "vps-stack-$STACK-data" postgres 5432 && probe "vps-stack-$STACK-data" redis 6379; }
check "3a. PostgreSQL and Redis publish no port on the host" no_published_ports
check "3b. PostgreSQL and Redis are not reachable from the edge network (by name or address)" not_from_edge
check "3c. PostgreSQL and Redis are reachable from the data network" from_data

secrets_of() { # every generated secret of a stack, one a line
    pulumi stack export --stack "$1" --show-secrets | node -e '
        const s = JSON.parse(require("fs").readFileSync(0, "utf8"));
        for (const r of s.deployment.resources ?? []) {
            if (r.type === "random:index/randomPassword:RandomPassword") {
                const v = r.outputs.result; console.log(typeof v === "object" ? JSON.parse(v.plaintext) : v);
            }
        }'
}
no_secret_visible() {
    secrets_of "$STACK" >"$E2E/secrets"
    local n
    n=$(wc -l <"$E2E/secrets")
    [ "$n" -ge 3 ] || { echo "only $n secrets found in the state"; return 1; }
    local ids
    mapfile -t ids < <(docker ps -aq --filter "label=vps-stack.stack=$STACK")
    docker inspect "${ids[@]}" >"$E2E/inspect.json"
    ps auxww >"$E2E/ps.txt"
    if grep -F -f "$E2E/secrets" "$E2E/inspect.json" "$E2E/ps.txt"; then echo "a secret is visible"; return 1; fi
    echo "checked $n secrets against docker inspect of $(docker ps -aq --filter "label=vps-stack.stack=$STACK" | wc -l) containers and ps"
}
check "4. no generated secret in docker inspect (env, cmd, labels) nor in ps" no_secret_visible
