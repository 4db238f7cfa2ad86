#!/usr/bin/env bash
# End to end, a VPS in a box: the real Pulumi CLI and plugins deploy the whole program over real SSH
# (a private sshd on 127.0.0.1, a deploy user in the docker group, a pinned host key) onto a real Docker
# engine, then check it over HTTPS, change it, add a second stack beside it, back up and restore, and
# destroy it. Every check is a named PASS/FAIL line; the last line is "N passed, N failed".
#
#   npm run test:e2e                       (needs root: sshd, a user, dockerd)
#   VPS_STACK_E2E_KEEP=1 npm run test:e2e   keep the temporary directory for inspection
# Functions are called through check(), which shellcheck cannot follow.
# shellcheck disable=SC2317,SC2329,SC2129
set -uo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
E2E="$(mktemp -d /tmp/vps-stack-e2e.XXXXXX)"
chmod 755 "$E2E"
LOG="$E2E/e2e.log"
DEPLOY_USER=vpsdeploy
DOMAIN=e2e.vps-stack.test
STACK=e2e
STACK2=e2e2
STACK_HOST=e2eh
passed=0
failed=0
phase_name=""
phase_started=0
declare -a PHASES=()

say() { printf '%s\n' "$*"; }
# note: a measurement shown with the current check's result (checks send their own output to the log
# only). Kept in a file that check() prints: a spare descriptor on the terminal would be inherited by
# every daemon the e2e restarts (dockerd, sshd) and keep CI's pipe open after the run.
NOTES="$E2E/notes"
note() { printf '   %s\n' "$*" | tee -a "$LOG" >>"$NOTES"; }
show_notes() { if [ -s "$NOTES" ]; then cat "$NOTES"; : >"$NOTES"; fi; }
log() { printf '[e2e] %s\n' "$*" | tee -a "$LOG" >&2; }

phase() {
    phase_end
    phase_name=$1
    phase_started=$(date +%s)
    say ""
    say "== $phase_name"
}
phase_end() {
    if [ -n "$phase_name" ]; then
        local took=$(($(date +%s) - phase_started))
        PHASES+=("$phase_name: ${took}s")
        say "   ($phase_name took ${took}s)"
    fi
    phase_name=""
}

# check NAME COMMAND...: runs the command, its output to the log; PASS or FAIL with the tail of the log.
check() {
    local name=$1
    shift
    local mark
    mark=$(wc -l <"$LOG")
    printf '\n--- check: %s\n' "$name" >>"$LOG"
    if "$@" >>"$LOG" 2>&1; then
        passed=$((passed + 1))
        show_notes
        say "PASS $name"
    else
        failed=$((failed + 1))
        show_notes
        say "FAIL $name"
        # The errors first (Pulumi prints them far above its summary), then the end of the output.
        tail -n +"$((mark + 1))" "$LOG" | grep -iE '^\s*(error|.*error:)' | grep -v 'errored' | head -n 15 | sed 's/^/     ! /'
        tail -n +"$((mark + 1))" "$LOG" | tail -n 15 | sed 's/^/     | /'
    fi
}

# setup_failed LOG: a failed check that shows why the setup before it failed.
setup_failed() {
    tail -n 40 "$1"
    return 1
}

# A phase that cannot continue: everything after it would fail for the same reason.
fatal() {
    failed=$((failed + 1))
    say "FAIL $*"
    tail -n 30 "$LOG" | sed 's/^/     | /'
    finish
}

finish() {
    phase_end
    cleanup
    say ""
    say "phases: ${PHASES[*]:-none}"
    say "$passed passed, $failed failed"
    trap - EXIT
    [ "$failed" -eq 0 ] && [ "$passed" -gt 0 ]
    exit $?
}

cleanup() {
    [ -n "${CLEANED:-}" ] && return
    CLEANED=1
    log "cleaning up"
    if [ -d "$E2E/project" ] && command -v pulumi >/dev/null 2>&1; then
        for s in "$STACK_HOST" "$STACK2" "$STACK"; do
            (cd "$E2E/project" && pulumi destroy --yes --non-interactive --stack "$s" >>"$LOG" 2>&1) || true
        done
    fi
    remove_box_state
    [ -f "$E2E/sshd.pid" ] && kill "$(cat "$E2E/sshd.pid")" 2>/dev/null
    for p in "$E2E"/acme-*/pebble.pid "$E2E"/acme-*/dns.pid; do [ -f "$p" ] && kill "$(cat "$p")" 2>/dev/null; done
    # Close the shared SSH master connections the program opened.
    find "$E2E" -type s -path '*ssh*' -exec ssh -o ControlPath={} -O exit dummy \; >/dev/null 2>&1 || true
    rm -f "/home/$DEPLOY_USER/.ssh/authorized_keys" /etc/sudoers.d/vps-stack-e2e
    [ -n "${STARTED_HOST_NGINX:-}" ] && nginx -s quit 2>/dev/null
    if [ -n "${VPS_STACK_E2E_KEEP:-}" ]; then
        log "kept $E2E (VPS_STACK_E2E_KEEP)"
    else
        rm -rf "$E2E"
    fi
}
# What the e2e stacks leave on the box: their containers, networks and volumes (by label) and host
# nginx's site, certificates, ACME state and cron entry. Removed at the end, and at the start too: a run
# that was killed (SIGKILL, a machine stopped mid-run) never reached its cleanup, and its leftovers
# (running again as soon as dockerd restarts them) would make the first `pulumi up` collide with them.
# The conflicting upstream that check H5b puts into the host's own nginx config.
HOST_CONFLICT=/etc/nginx/conf.d/vps-stack-e2e-conflict.conf
BOX_FILES=("/etc/nginx/sites-enabled/vps-stack-$STACK_HOST.conf" "/etc/nginx/sites-available/vps-stack-$STACK_HOST.conf"
    "/etc/vps-stack/vps-stack-$STACK_HOST" "/var/lib/vps-stack/$STACK_HOST" "/etc/cron.d/vps-stack-$STACK_HOST-tls-reload" "$HOST_CONFLICT")
remove_box_state() {
    if command -v docker >/dev/null 2>&1 && docker info >/dev/null 2>&1; then
        for s in "$STACK" "$STACK2" "$STACK_HOST"; do
            docker ps -aq --filter "label=vps-stack.stack=$s" | xargs -r docker rm -fv >>"$LOG" 2>&1
            docker network ls -q --filter "label=vps-stack.stack=$s" | xargs -r docker network rm >>"$LOG" 2>&1
            docker volume ls -q --filter "label=vps-stack.stack=$s" | xargs -r docker volume rm -f >>"$LOG" 2>&1
        done
    fi
    rm -rf "${BOX_FILES[@]}"
}
leftovers() { # leftovers: what an earlier run left of the e2e stacks, one line each
    local s f
    for s in "$STACK" "$STACK2" "$STACK_HOST"; do
        docker ps -a --filter "label=vps-stack.stack=$s" --format 'container {{.Names}}'
        docker network ls --filter "label=vps-stack.stack=$s" --format 'network {{.Name}}'
        docker volume ls --filter "label=vps-stack.stack=$s" --format 'volume {{.Name}}'
    done
    for f in "${BOX_FILES[@]}"; do
        if [ -e "$f" ] || [ -L "$f" ]; then echo "file $f"; fi
    done
    return 0
}
trap 'fatal "interrupted or crashed (line $LINENO)"' EXIT
trap 'exit 130' INT TERM

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

apt_install() {
    local policy=/usr/sbin/policy-rc.d created=0
    if [ ! -e $policy ]; then printf '#!/bin/sh\nexit 101\n' >$policy && chmod +x $policy && created=1; fi
    DEBIAN_FRONTEND=noninteractive NEEDRESTART_SUSPEND=1 apt-get update -qq >>"$LOG" 2>&1
    DEBIAN_FRONTEND=noninteractive NEEDRESTART_SUSPEND=1 apt-get install -y -qq --no-install-recommends "$@" >>"$LOG" 2>&1
    local rc=$?
    [ $created = 1 ] && rm -f $policy
    return $rc
}

say "vps-stack end-to-end (log: $LOG)"
[ "$(id -u)" = 0 ] || fatal "needs root (it runs sshd, adds a deploy user and starts dockerd)"

# -----------------------------------------------------------------------------------------------------
phase toolchain
BIN="$(bash "$ROOT/e2e/toolchain.sh" 2>>"$LOG")" || fatal "toolchain: could not provide the Pulumi CLI and plugins (see $LOG)"
export PATH="$BIN:$PATH"
export PULUMI_HOME="$E2E/pulumi-home" PULUMI_BACKEND_URL="file://$E2E/state" PULUMI_CONFIG_PASSPHRASE="e2e-passphrase-not-secret"
export PULUMI_SKIP_UPDATE_CHECK=true PULUMI_DISABLE_AUTOMATIC_PLUGIN_ACQUISITION=true PULUMI_SKIP_CONFIRMATIONS=true
export VPS_STACK_STATE_DIR="$E2E/ssh-state"
unset SSH_AUTH_SOCK
mkdir -p "$E2E/state" "$PULUMI_HOME"
# Every pulumi run's output also goes to one file, whose warnings are checked against the allow-list
# below at the end of the run: a new warning fails the e2e until it is fixed or explained there.
PULUMI_BIN="$(command -v pulumi)"
PULUMI_OUTPUT="$E2E/pulumi-output.log"
pulumi() { "$PULUMI_BIN" "$@" > >(tee -a "$PULUMI_OUTPUT") 2> >(tee -a "$PULUMI_OUTPUT" >&2); }
# Expected warnings, as "extended regex :: reason"; anything else that says "warning:" is a failure.
ALLOWED_WARNINGS=(
    'warning: using pulumi-(language|resource)-[a-z]+ from \$PATH at  :: the e2e runs the plugins built by e2e/toolchain.sh from PATH, not from the plugin cache'
    'vps-stack: warning: no cron on this host :: the box runs no cron daemon; check H9 runs the cron entry'"'"'s command itself'
)
unexpected_warnings() {
    local w allowed re ok
    [ -s "$PULUMI_OUTPUT" ] || { echo "no pulumi output was collected"; return 1; }
    ok=0
    while IFS= read -r w; do
        allowed=0
        for re in "${ALLOWED_WARNINGS[@]}"; do
            if grep -qE -- "${re%% :: *}" <<<"$w"; then allowed=1; break; fi
        done
        [ "$allowed" = 1 ] || { echo "unexpected: $w"; ok=1; }
    done < <(grep -E '(^|[[:space:]])warning:' "$PULUMI_OUTPUT" | sed 's/^[[:space:]]*//' | sort -u)
    echo "$(grep -cE '(^|[[:space:]])warning:' "$PULUMI_OUTPUT") warning lines in $(grep -c . "$PULUMI_OUTPUT") lines of pulumi output"
    return "$ok"
}
say "   $(pulumi version) from $BIN"
for p in pulumi-language-nodejs pulumi-resource-command pulumi-resource-docker pulumi-resource-random pulumi-resource-tls; do
    say "   plugin on PATH: $p ($(command -v $p))"
done

# -----------------------------------------------------------------------------------------------------
phase images
bash "$ROOT/e2e/images/build.sh" >>"$LOG" 2>&1 || fatal "images: could not build the stand-in images (see $LOG)"
IMAGES="postgres:16-alpine redis:7-alpine nginx:1.27-alpine certbot/certbot:v5.7.0 vps-stack-demo-api:1 vps-stack-demo-api:2 vps-stack-demo-api:broken"
for t in $IMAGES; do
    docker image inspect "$t" >/dev/null 2>&1 || fatal "images: $t is missing after the build"
done
say "   images ready: $IMAGES"
stale=$(leftovers)
if [ -n "$stale" ]; then
    say "   removing what an interrupted earlier run left: $(echo "$stale" | tr '\n' ' ')"
    remove_box_state
    [ -z "$(leftovers)" ] || fatal "images: could not remove an earlier run's leftovers: $(leftovers | tr '\n' ' ')"
fi

# -----------------------------------------------------------------------------------------------------
phase "ssh box"
command -v sshd >/dev/null 2>&1 || [ -x /usr/sbin/sshd ] || apt_install openssh-server openssh-client || fatal "box: cannot install openssh-server"
getent group docker >/dev/null || fatal "box: no docker group (docker.io not installed?)"
if ! id "$DEPLOY_USER" >/dev/null 2>&1; then
    useradd --create-home --shell /bin/sh --groups docker "$DEPLOY_USER" || fatal "box: cannot create $DEPLOY_USER"
fi
usermod -aG docker "$DEPLOY_USER"
# Key authentication only: no usable password, but not locked ("!"), which sshd would refuse.
usermod -p '*' "$DEPLOY_USER"
home=$(getent passwd "$DEPLOY_USER" | cut -d: -f6)
ssh-keygen -q -t ed25519 -N '' -C e2e-client -f "$E2E/client_key"
# The box has the three host keys a Debian VPS has; stacks pin one of them.
for t in ed25519 ecdsa rsa; do ssh-keygen -q -t "$t" -N '' -C '' -f "$E2E/ssh_host_${t}_key"; done
install -d -m 700 -o "$DEPLOY_USER" -g "$DEPLOY_USER" "$home/.ssh"
install -m 600 -o "$DEPLOY_USER" -g "$DEPLOY_USER" "$E2E/client_key.pub" "$home/.ssh/authorized_keys"
SSH_PORT=$(free_port)
# Debian's shipped sshd_config (PAM, AcceptEnv LANG LC_* only, the sftp subsystem), plus the lock-down a
# VPS should have. Nothing here is loosened for the program: e.g. no AcceptEnv for the variables a
# remote command might want to send.
cat >"$E2E/sshd_config" <<EOF
Port $SSH_PORT
ListenAddress 127.0.0.1
HostKey $E2E/ssh_host_rsa_key
HostKey $E2E/ssh_host_ecdsa_key
HostKey $E2E/ssh_host_ed25519_key
PidFile $E2E/sshd.pid
AuthorizedKeysFile .ssh/authorized_keys
PubkeyAuthentication yes
PasswordAuthentication no
KbdInteractiveAuthentication no
PermitRootLogin no
AllowUsers $DEPLOY_USER
UsePAM yes
StrictModes yes
X11Forwarding no
PrintMotd no
AcceptEnv LANG LC_*
Subsystem sftp /usr/lib/openssh/sftp-server
LogLevel INFO
EOF
mkdir -p /run/sshd
/usr/sbin/sshd -f "$E2E/sshd_config" -E "$E2E/sshd.log" || fatal "box: sshd did not start"
HOST_KEY=$(cut -d' ' -f1,2 "$E2E/ssh_host_ed25519_key.pub")
HOST_KEY_ECDSA=$(cut -d' ' -f1,2 "$E2E/ssh_host_ecdsa_key.pub")
HOST_KEY_RSA=$(cut -d' ' -f1,2 "$E2E/ssh_host_rsa_key.pub")
printf '[127.0.0.1]:%s %s\n' "$SSH_PORT" "$HOST_KEY" >"$E2E/known_hosts"
SSH=(ssh -p "$SSH_PORT" -i "$E2E/client_key" -o BatchMode=yes -o IdentitiesOnly=yes -o StrictHostKeyChecking=yes -o "UserKnownHostsFile=$E2E/known_hosts" "$DEPLOY_USER@127.0.0.1")
for _ in $(seq 20); do "${SSH[@]}" true >>"$LOG" 2>&1 && break; sleep 0.5; done
check "box: the deploy user reaches Docker over SSH with the pinned host key" "${SSH[@]}" docker version --format '{{.Server.Version}}'
check "box: an unpinned host key is refused" bash -c "! ssh -p $SSH_PORT -i $E2E/client_key -o BatchMode=yes -o StrictHostKeyChecking=yes -o UserKnownHostsFile=/dev/null $DEPLOY_USER@127.0.0.1 true"

# -----------------------------------------------------------------------------------------------------
# The project: a copy of the working tree, so stack files and state never land in the repository.
mkdir -p "$E2E/project"
tar -C "$ROOT" --exclude=./node_modules --exclude=./.git --exclude='./Pulumi.e2e*.yaml' -cf - . | tar -C "$E2E/project" -xf -
ln -s "$ROOT/node_modules" "$E2E/project/node_modules"
cd "$E2E/project" || fatal "project copy"

HTTP_PORT=$(free_port)
HTTPS_PORT=$(free_port)
HTTP2_PORT=$(free_port)
HTTPS2_PORT=$(free_port)

init_stack() { # init_stack NAME HTTP HTTPS [HOST_KEY]: the stack pins the box's ed25519 key unless told otherwise
    pulumi stack init "$1" --non-interactive >>"$LOG" 2>&1 || return 1
    cat >>"Pulumi.$1.yaml" <<EOF
config:
  vps-stack:host:
    address: 127.0.0.1
    port: $SSH_PORT
    user: $DEPLOY_USER
    hostKey: ${4:-$HOST_KEY}
    privateKeyPath: $E2E/client_key
  vps-stack:domain: $DOMAIN
  vps-stack:apps:
    - name: api
      image: vps-stack-demo-api:1
      trackTag: false
      memory: 256m
  vps-stack:postgres:
    memory: 512m
    sharedBuffers: 128MB
  vps-stack:redis:
    memory: 256m
    maxmemory: 64mb
  vps-stack:nginx:
    httpPort: $2
    httpsPort: $3
  vps-stack:backup:
    directory: $E2E/backups/$1
EOF
}

up() { pulumi up --yes --non-interactive --skip-preview --stack "$1" "${@:2}"; }
out() { pulumi stack output --stack "$1" "${@:2}"; }

ca_file() { # ca_file STACK: the CA that signs a stack's certificate: its own, or the ACME server's root
    if [ -s "$E2E/acme-$1/root.pem" ]; then
        echo "$E2E/acme-$1/root.pem"
    else
        out "$1" caCertificate >"$E2E/ca-$1.pem" && echo "$E2E/ca-$1.pem"
    fi
}

health_json() { # health_json STACK HTTPS_PORT
    local ca
    ca=$(ca_file "$1") &&
        curl -sS --fail --cacert "$ca" --resolve "$DOMAIN:$2:127.0.0.1" "https://$DOMAIN:$2/health"
}

health_ok() { # health_ok STACK HTTPS_PORT [VERSION]
    local body
    body=$(health_json "$1" "$2") || return 1
    echo "$body"
    node -e '
        const h = JSON.parse(process.argv[1]);
        const ok = h.status === "ok" && h.checks.postgres.ok === true && h.checks.redis.ok === true && (!process.argv[2] || h.version === process.argv[2]);
        process.exit(ok ? 0 : 1);' "$body" "${3:-}"
}

redirects() {
    local headers
    headers=$(curl -sS -o /dev/null -D - -H "Host: $DOMAIN" "http://127.0.0.1:$1/some/path?q=1") || return 1
    echo "$headers"
    grep -q '^HTTP/1.1 301' <<<"$headers" && grep -qi "^location: https://$DOMAIN:$2/some/path?q=1" <<<"$headers"
}

container_id() { docker inspect --format '{{.Id}}' "$1"; }

# -----------------------------------------------------------------------------------------------------
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

# -----------------------------------------------------------------------------------------------------
phase "no-op preview"
check "5a. pulumi preview --expect-no-changes right after up" pulumi preview --expect-no-changes --non-interactive --stack "$STACK"
check "5b. pulumi refresh --expect-no-changes" pulumi refresh --expect-no-changes --yes --non-interactive --stack "$STACK"
check "5c. pulumi preview --expect-no-changes after the refresh" pulumi preview --expect-no-changes --non-interactive --stack "$STACK"
# Pulumi.yaml refreshes before every up (so that what was stopped by hand comes back); that read must stay
# cheap: a no-op up within its budget, over the SSH master connection already open. sshd's default
# MaxSessions (10) refuses the odd multiplexed session when the provider reads many resources at once, and
# ssh then logs in on its own ("no more sessions" in sshd's log): a few such logins are normal, one per
# resource (38 here) would mean the master connection is not used.
NOOP_BUDGET=15
NOOP_MAX_LOGINS=3
logins() { grep -c 'Accepted publickey' "$E2E/sshd.log"; }
refused_sessions() { grep -c 'no more sessions' "$E2E/sshd.log"; }
noop_up_within_budget() {
    local before after refused t0 ms
    up "$STACK" --expect-no-changes >/dev/null || return 1 # warm: the master connection is open
    before=$(logins)
    refused=$(refused_sessions)
    t0=${EPOCHREALTIME/./}
    up "$STACK" --expect-no-changes || return 1
    ms=$(((${EPOCHREALTIME/./} - t0) / 1000))
    after=$(logins)
    note "no-op pulumi up (with refresh): ${ms} ms, $((after - before)) new SSH logins ($(($(refused_sessions) - refused)) sessions over sshd's MaxSessions)"
    [ "$ms" -le $((NOOP_BUDGET * 1000)) ] && [ $((after - before)) -le "$NOOP_MAX_LOGINS" ]
}
check "5d. a no-op pulumi up, refresh included, takes under ${NOOP_BUDGET}s and reuses the SSH master connection (at most ${NOOP_MAX_LOGINS} new logins)" noop_up_within_budget

# -----------------------------------------------------------------------------------------------------
phase update
pulumi config set --stack "$STACK" --path 'apps[0].image' vps-stack-demo-api:2 >>"$LOG" 2>&1
check "6a. pulumi up with a new API image converges" up "$STACK"
check "6b. the new version serves /health" health_ok "$STACK" "$HTTPS_PORT" 2

# -----------------------------------------------------------------------------------------------------
phase migrations
MIGRATION="import psycopg2; c = psycopg2.connect(open('/run/secrets/DATABASE_URL').read().strip()); c.autocommit = True; c.cursor().execute('CREATE TABLE IF NOT EXISTS e2e_migrated (v int)')"
set_migration() { # set_migration PYTHON_CODE
    pulumi config set-all --stack "$STACK" --path --plaintext "apps[0].migrate.command[0]=python3" --plaintext "apps[0].migrate.command[1]=-c" --plaintext "apps[0].migrate.command[2]=$1"
}
migrated() {
    set_migration "$MIGRATION" && up "$STACK" &&
        [ "$(docker exec "vps-stack-$STACK-postgres" psql -U app -d app -qAt -c "SELECT to_regclass('public.e2e_migrated') IS NOT NULL")" = t ]
}
failed_migration_keeps_version() {
    set_migration "import sys; sys.exit(3)" && pulumi config set --stack "$STACK" --path 'apps[0].image' vps-stack-demo-api:1 || return 1
    if up "$STACK"; then echo "pulumi up succeeded despite a failing migration"; return 1; fi
    health_ok "$STACK" "$HTTPS_PORT" 2
}
recovers() {
    pulumi config rm --stack "$STACK" --path 'apps[0].migrate' && pulumi config set --stack "$STACK" --path 'apps[0].image' vps-stack-demo-api:2 &&
        up "$STACK" && health_ok "$STACK" "$HTTPS_PORT" 2 && pulumi preview --expect-no-changes --non-interactive --stack "$STACK"
}
check "M1. a migration runs in the app's image with its secrets before the app (creates its table)" migrated
check "M2. a failing migration fails pulumi up and the running version keeps serving" failed_migration_keeps_version
check "M3. without the migration the stack converges again, no changes left" recovers

# -----------------------------------------------------------------------------------------------------
phase replacements
psql_e2e() { docker exec "vps-stack-$STACK-postgres" psql -U app -d app -qAt -c "$1"; }
psql_e2e "CREATE TABLE IF NOT EXISTS e2e_keep (id int PRIMARY KEY, note text); INSERT INTO e2e_keep VALUES (1, 'before'), (2, 'replacements') ON CONFLICT DO NOTHING;" >>"$LOG" 2>&1
replaced_and_healthy() { # replaced_and_healthy CONTAINER KEY VALUE
    local before after
    before=$(container_id "$1") || return 1
    pulumi config set --stack "$STACK" --path "$2" "$3" || return 1
    up "$STACK" || return 1
    after=$(container_id "$1") || return 1
    [ "$before" != "$after" ] || { echo "$1 was not replaced"; return 1; }
    health_ok "$STACK" "$HTTPS_PORT" 2 && [ "$(psql_e2e 'SELECT count(*) FROM e2e_keep')" = 2 ]
}
check "7a. PostgreSQL tuning replaces PostgreSQL; converges, data kept" replaced_and_healthy "vps-stack-$STACK-postgres" postgres.maxConnections 150
check "7b. Redis maxmemory replaces Redis; converges, data kept" replaced_and_healthy "vps-stack-$STACK-redis" redis.maxmemory 32mb
# The proxy's own config changes by nginx -t and a reload of the same container, never a replacement.
reloaded_not_replaced() { # reloaded_not_replaced KEY VALUE EXPECTED_LINE
    local before after
    before=$(container_id "vps-stack-$STACK-nginx") || return 1
    pulumi config set --stack "$STACK" --path "$1" "$2" && up "$STACK" || return 1
    after=$(container_id "vps-stack-$STACK-nginx") || return 1
    [ "$before" = "$after" ] || { echo "the proxy container was replaced"; return 1; }
    docker exec "vps-stack-$STACK-nginx" sh -c 'cat /etc/nginx/vps-stack/live/nginx.conf' | grep -qF "$3" || { echo "the live config lacks: $3"; return 1; }
    health_ok "$STACK" "$HTTPS_PORT" 2
}
check "7c. an Nginx option is applied by a reload of the same proxy container; converges, data kept" reloaded_not_replaced nginx.clientMaxBodySize 10M "client_max_body_size 10M;"
check "7d. pulumi preview --expect-no-changes after the replacements" pulumi preview --expect-no-changes --non-interactive --stack "$STACK"

# -----------------------------------------------------------------------------------------------------
phase backup
output_cmd() { # output_cmd STACK OUTPUT KEY: a command from an output's "commands"
    out "$1" "$2" --json | node -e 'console.log(JSON.parse(require("fs").readFileSync(0, "utf8")).commands[process.argv[1]])' "$3"
}
# The outputs' commands are run as an operator would, with ssh pointed at the box's key and pinned host.
run_output_cmd() { run_ssh_line "$(output_cmd "$STACK" backup "$1")"; }
run_ssh_line() {
    local cmd=$1
    [ -n "$cmd" ] || return 1
    echo "+ $cmd"
    [[ $cmd == ssh\ * ]] || { echo "not an ssh command"; return 1; }
    cmd=${cmd#ssh }
    # shellcheck disable=SC2086 # the output is a command line
    ssh -i "$E2E/client_key" -o BatchMode=yes -o IdentitiesOnly=yes -o StrictHostKeyChecking=yes -o "UserKnownHostsFile=$E2E/known_hosts" $cmd
}
check "B1. a backup runs on demand (the output's 'now' command)" run_output_cmd now
backup_files() { ls "$E2E/backups/$STACK/$STACK"-app-*.dump && ls "$E2E/backups/$STACK/$STACK"-app-*.dump.sha256; }
check "B2. the backup is in the host directory with its checksum" backup_files
check "B3. the max-age check passes (the output's 'check' command)" run_output_cmd check
psql_e2e "DELETE FROM e2e_keep" >>"$LOG" 2>&1
restored() { [ "$(psql_e2e 'SELECT count(*) FROM e2e_keep')" = 0 ] && run_output_cmd restore && [ "$(psql_e2e 'SELECT count(*) FROM e2e_keep')" = 2 ]; }
check "B4. a restore brings back deleted rows (the output's 'restore' command)" restored
check "B5. the app still answers after the restore" health_ok "$STACK" "$HTTPS_PORT" 2

# -----------------------------------------------------------------------------------------------------
phase faults
# What a VPS goes through without anyone deploying: a reboot (the Docker daemon restarted), crashes, a
# service stopped by hand, SSH lost mid-deploy, the database lost mid-backup. The stack must come back by
# itself, or with one plain `pulumi up`.
app_container() { # app_container STACK APP [N]: the name of the app's Nth live container (release names change)
    docker ps --filter "label=vps-stack.stack=$1" --filter "label=vps-stack.service=$2" --format '{{.Names}}' | grep -v -- '-migrate' | sort | sed -n "${3:-1}p"
}
should_run() { # the stack's long-running containers (restart policy set; not the one-shot migrations)
    docker ps -aq --filter "label=vps-stack.stack=$1" | xargs -r docker inspect --format '{{.Name}} {{.HostConfig.RestartPolicy.Name}}' |
        awk '$2 != "no" && $2 != "" { sub("^/", "", $1); print $1 }' | sort
}
all_healthy() { # all_healthy STACK: every container running, and healthy where it has a healthcheck
    local names states
    names=$(should_run "$1")
    [ -n "$names" ] || return 1
    # shellcheck disable=SC2086
    states=$(docker inspect --format '{{.Name}} {{.State.Status}} {{if .State.Health}}{{.State.Health.Status}}{{else}}none{{end}}' $names) || return 1
    ! grep -vqE ' running (healthy|none)$' <<<"$states"
}
# back_within STACK PORT SECONDS LABEL: waits until every container is healthy and /health answers OK
back_within() {
    local start=$SECONDS
    while ((SECONDS - start < $3)); do
        if all_healthy "$1" && health_ok "$1" "$2" >/dev/null 2>&1; then
            note "$4: back and healthy in $((SECONDS - start))s"
            return 0
        fi
        sleep 0.5
    done
    echo "not back after $3s:"
    docker ps -a --filter "label=vps-stack.stack=$1" --format '{{.Names}} {{.Status}}'
    return 1
}
# The daemon restarts as a reboot restarts it: through systemd where it runs the daemon, else as the
# harness started it (e2e/images/build.sh: a plain dockerd in the background). Without live-restore,
# every container stops with it; only the restart policies bring them back.
restart_dockerd() {
    if command -v systemctl >/dev/null 2>&1 && systemctl is-active --quiet docker 2>/dev/null; then
        systemctl restart docker || return 1
    else
        local pid
        pid=$(cat /var/run/docker.pid 2>/dev/null) && [ -n "$pid" ] || { echo "no dockerd pid file"; return 1; }
        kill -TERM "$pid" || return 1
        for _ in $(seq 60); do kill -0 "$pid" 2>/dev/null || break; sleep 1; done
        if kill -0 "$pid" 2>/dev/null; then echo "dockerd did not stop within 60s"; return 1; fi
        setsid dockerd >>"$E2E/dockerd.log" 2>&1 </dev/null &
    fi
    for _ in $(seq 90); do docker info >/dev/null 2>&1 && return 0; sleep 1; done
    echo "dockerd does not answer after its restart"
    return 1
}
daemon_restart_recovers() {
    local before
    before=$(should_run "$STACK")
    echo "containers: $before"
    restart_dockerd || return 1
    back_within "$STACK" "$HTTPS_PORT" 120 "daemon restart" || return 1
    [ "$(should_run "$STACK")" = "$before" ] || { echo "not the same containers after the restart"; return 1; }
}
kill9_recovers() { # kill9_recovers SERVICE: SIGKILL of the container's main process, from the host
    local c="vps-stack-$STACK-$1" pid
    [ "$1" = api ] && c=$(app_container "$STACK" api)
    pid=$(docker inspect --format '{{.State.Pid}}' "$c") && [ "$pid" -gt 0 ] || return 1
    kill -9 "$pid" || return 1
    back_within "$STACK" "$HTTPS_PORT" 120 "kill -9 of $1 (pid $pid)"
}
# Regression check for Docker's "manually stopped" flag: a proxy reloaded by `docker kill --signal` was
# never restarted after a daemon restart. By now the proxy has been reloaded after several releases.
proxy_never_marked_stopped() {
    local flag
    flag=$(docker inspect --format '{{.HostConfig.RestartPolicy.Name}}' "vps-stack-$STACK-nginx") || return 1
    [ "$flag" = unless-stopped ] || { echo "restart policy is $flag"; return 1; }
    restart_dockerd && back_within "$STACK" "$HTTPS_PORT" 120 "second daemon restart, after releases and reloads"
}
stopped_by_hand_then_up() {
    docker stop "$(app_container "$STACK" api)" "vps-stack-$STACK-nginx" >/dev/null || return 1
    local out
    out=$(up "$STACK" 2>&1)
    local rc=$?
    echo "$out"
    [ "$rc" -eq 0 ] || return 1
    back_within "$STACK" "$HTTPS_PORT" 60 "docker stop of the API and Nginx, then pulumi up" &&
        pulumi preview --expect-no-changes --non-interactive --stack "$STACK"
}
# The box's sshd and every session it serves go away in the middle of an up that replaces the API.
ssh_cut_mid_up() {
    local before_id out rc pid
    before_id=$(app_container "$STACK" api) || return 1
    pulumi config set --stack "$STACK" --path 'apps[0].env.E2E_RELEASE' ssh-cut || return 1
    up "$STACK" >"$E2E/ssh-cut.log" 2>&1 &
    pid=$!
    # Cut once the new release's container exists, i.e. while the release is being gated.
    for _ in $(seq 240); do
        [ "$(docker ps -a --filter "label=vps-stack.stack=$STACK" --filter label=vps-stack.service=api --format '{{.Names}}' | grep -vc -- -migrate)" -gt 1 ] && break
        sleep 0.25
    done
    pkill -KILL -f "sshd -f $E2E/sshd_config" || pkill -KILL -f "sshd: $DEPLOY_USER"
    pkill -KILL -f "sshd: $DEPLOY_USER" 2>/dev/null
    wait "$pid"
    rc=$?
    out=$(cat "$E2E/ssh-cut.log")
    echo "$out"
    /usr/sbin/sshd -f "$E2E/sshd_config" -E "$E2E/sshd.log" || { echo "sshd did not restart"; return 1; }
    for _ in $(seq 20); do "${SSH[@]}" true >/dev/null 2>&1 && break; sleep 0.5; done
    [ "$rc" -ne 0 ] || { echo "pulumi up succeeded although SSH was cut"; return 1; }
    grep -qiE 'ssh|connection|dial' <<<"$out" || { echo "the failure does not name the connection"; return 1; }
}
converges_after_cut() {
    up "$STACK" && health_ok "$STACK" "$HTTPS_PORT" 2 && pulumi preview --expect-no-changes --non-interactive --stack "$STACK" &&
        [ "$(psql_e2e 'SELECT count(*) FROM e2e_keep')" = 2 ]
}
# pg_dump waits on a table lock held by another session; PostgreSQL is killed while it waits.
backup_dir() { echo "$E2E/backups/$STACK"; }
dumps() { find "$(backup_dir)" -maxdepth 1 -name "$STACK-app-[0-9]*Z.dump" | sort; } # the scheduled ones, not pre-restore copies
backup_fails_loudly() {
    local before after pid rc out
    before=$(dumps)
    docker exec "vps-stack-$STACK-postgres" psql -U app -d app -qAt -c "BEGIN; LOCK TABLE e2e_keep IN ACCESS EXCLUSIVE MODE; SELECT pg_sleep(60); COMMIT;" >/dev/null 2>&1 &
    sleep 1
    run_output_cmd now >"$E2E/backup-kill.log" 2>&1 &
    pid=$!
    # Kill once pg_dump is waiting for its lock.
    for _ in $(seq 40); do
        docker exec "vps-stack-$STACK-postgres" psql -U app -d app -qAt -c "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'pg_dump' AND wait_event_type = 'Lock'" 2>/dev/null | grep -qx 1 && break
        sleep 0.25
    done
    kill -9 "$(docker inspect --format '{{.State.Pid}}' "vps-stack-$STACK-postgres")" || return 1
    wait "$pid"
    rc=$?
    out=$(cat "$E2E/backup-kill.log")
    echo "$out"
    [ "$rc" -ne 0 ] || { echo "the backup reported success"; return 1; }
    grep -q 'ERROR' <<<"$out" || { echo "no error message"; return 1; }
    after=$(dumps)
    [ "$before" = "$after" ] || { echo "files changed: $(diff <(echo "$before") <(echo "$after"))"; return 1; }
    [ -s "$(backup_dir)/last-failure" ] || { echo "no last-failure marker"; return 1; }
    # Loud also means visible: the backup container's health is its check, which now fails.
    run_output_cmd check && { echo "the backup check passes after a failed run"; return 1; }
    # PostgreSQL and the app come back by themselves (the backup container stays unhealthy until a good run).
    local start=$SECONDS
    until [ "$(docker inspect -f '{{.State.Health.Status}}' "vps-stack-$STACK-postgres")" = healthy ] && health_ok "$STACK" "$HTTPS_PORT" >/dev/null 2>&1; do
        ((SECONDS - start < 120)) || { echo "PostgreSQL or the app not back after 120s"; return 1; }
        sleep 0.5
    done
    note "PostgreSQL killed during a backup: back and healthy in $((SECONDS - start))s"
}
# Retention keeps one backup a day, so a new one replaces today's: compare the newest, not the count.
next_backup_succeeds() {
    local before
    before=$(dumps | tail -n 1)
    run_output_cmd now && run_output_cmd check && [ "$(dumps | tail -n 1)" != "$before" ]
}
check "F1. the Docker daemon restarts (a reboot): every container back and healthy, HTTPS /health answers, no pulumi command" daemon_restart_recovers
for svc in postgres redis api nginx backup; do
    check "F2. kill -9 of $svc's main process: restarted, healthy, /health answers" kill9_recovers "$svc"
done
check "F3. after releases and proxy reloads, another daemon restart still brings Nginx back" proxy_never_marked_stopped
check "F4. docker stop of the API and Nginx, then a plain pulumi up: both running again, no change left" stopped_by_hand_then_up
check "F5. SSH cut in the middle of an up that replaces the API: the up fails naming the connection" ssh_cut_mid_up
check "F6. the next pulumi up converges, no change left, no data lost" converges_after_cut
check "F7. PostgreSQL killed while a backup runs: the backup fails loudly and leaves no partial file" backup_fails_loudly
check "F8. the next backup succeeds and the max-age check passes" next_backup_succeeds

# -----------------------------------------------------------------------------------------------------
phase releases
# Releases under load: a bounded load generator (loopback only, a steady rate, GET / and POST /echo with a
# few 5-10 s requests) runs through the proxy over HTTPS while each kind of change is deployed. Any
# non-2xx (429 included) or connection error fails the check, and every slow request must complete.
LOAD_RATE=${VPS_STACK_E2E_LOAD_RATE:-200}
LOAD_COUNT=${VPS_STACK_E2E_LOAD_COUNT:-5000}
under_load() { # under_load NAME EXPECT_ZERO COMMAND...: runs COMMAND under load; prints the counts
    local name=$1 expect_zero=$2 stop="$E2E/load.stop" out="$E2E/load-$1.json" rc pid summary
    shift 2
    rm -f "$stop"
    node "$ROOT/e2e/lib/load.js" --url "https://$DOMAIN:$HTTPS_PORT" --resolve 127.0.0.1 --ca "$(ca_file "$STACK")" \
        --rate "$LOAD_RATE" --count "$LOAD_COUNT" --slow-every 500 --slow-seconds 5-10 --stop-file "$stop" --max-seconds 300 >"$out" 2>&1 &
    pid=$!
    sleep 3 # steady state first
    "$@"
    rc=$?
    sleep 2
    touch "$stop"
    wait "$pid"
    summary=$(tail -n 1 "$out")
    echo "$summary"
    note "$name: $(node -e '
        const s = JSON.parse(process.argv[1]);
        console.log(`${s.sent} requests (${s.protocol}) in ${s.seconds}s, ${s.non2xx} non-2xx, ${s.connErrors} connection errors, ${s.refusedRetried} refused by GOAWAY and sent again, longest gap ${s.maxGapMs} ms, slow ${s.slowCompleted}/${s.slowSent} completed, p50 ${s.p50Ms} ms, p99 ${s.p99Ms} ms`)' "$summary" 2>/dev/null || echo "no summary: $summary")"
    LAST_RC=$rc
    [ "$expect_zero" = baseline ] && return 0
    node -e 'const s = JSON.parse(process.argv[1]); process.exit(s.failed === 0 && s.slowCompleted === s.slowSent && s.sent >= Number(process.argv[2]) ? 0 : 1)' "$summary" "$LOAD_COUNT" || return 1
    return "$rc"
}
api_release() { docker ps --filter "label=vps-stack.stack=$STACK" --filter label=vps-stack.service=api --format '{{.Names}}' | grep -v -- -migrate | sed -E "s/^vps-stack-$STACK-api-([0-9a-f]+)-[0-9]+$/\1/" | sort -u; }
# The rate limit would shape the test (429 counts as a failure): the load stack raises it, by a reload.
raise_limit() { pulumi config set --stack "$STACK" --path nginx.rateLimit.rate 5000r/s && pulumi config set --stack "$STACK" --path nginx.rateLimit.burst 5000 && up "$STACK"; }
# What the old delete-first release did: the app's container stops, then starts again.
baseline_restart() { local c; c=$(app_container "$STACK" api) && docker stop -t 10 "$c" >/dev/null && docker start "$c" >/dev/null && back_within "$STACK" "$HTTPS_PORT" 120 "baseline restart"; }
release_to() { # release_to KEY VALUE [KEY VALUE...]: config changes, then pulumi up; a new release must be live
    local before
    before=$(api_release)
    while [ $# -gt 1 ]; do pulumi config set --stack "$STACK" --path "$1" "$2" || return 1; shift 2; done
    up "$STACK" || return 1
    [ "$(api_release)" != "$before" ] || { echo "no new release (still $before)"; return 1; }
    echo "release $before -> $(api_release)"
}
image_release() { release_to 'apps[0].image' "vps-stack-demo-api:$1" && health_ok "$STACK" "$HTTPS_PORT" "$1"; }
replicas_live() { [ "$(docker ps --filter "label=vps-stack.stack=$STACK" --filter label=vps-stack.service=api --format '{{.Names}}' | grep -vc -- -migrate)" -eq "$1" ]; }
proxy_change() {
    local before after
    before=$(container_id "vps-stack-$STACK-nginx")
    pulumi config set --stack "$STACK" --path 'apps[0].proxy.headers.X-Release-Test' under-load && up "$STACK" || return 1
    after=$(container_id "vps-stack-$STACK-nginx")
    [ "$before" = "$after" ] || { echo "the proxy was replaced"; return 1; }
}
bad_release() {
    local before out rc
    before=$(api_release)
    pulumi config set --stack "$STACK" --path 'apps[0].image' vps-stack-demo-api:broken || return 1
    pulumi config set --stack "$STACK" --path releases.healthTimeout 40s || return 1
    out=$(up "$STACK" 2>&1)
    rc=$?
    echo "$out"
    [ "$rc" -ne 0 ] || { echo "pulumi up succeeded with a release that is never healthy"; return 1; }
    grep -q 'app api: release [0-9a-f]* (vps-stack-demo-api:broken) did not become healthy' <<<"$out" || { echo "the failure does not name the app and its release"; return 1; }
    grep -q -- '--- last lines of' <<<"$out" || { echo "no log lines in the failure"; return 1; }
    [ "$(api_release)" = "$before" ] || { echo "the broken release's containers are still there: $(api_release)"; return 1; }
}
bad_release_left_clean() {
    pulumi config set --stack "$STACK" --path 'apps[0].image' vps-stack-demo-api:2 && pulumi config rm --stack "$STACK" --path releases.healthTimeout &&
        up "$STACK" && pulumi preview --expect-no-changes --non-interactive --stack "$STACK" && health_ok "$STACK" "$HTTPS_PORT" 2
}
rollback() {
    VPS_STACK_SSH_OPTIONS="-i $E2E/client_key -o BatchMode=yes -o IdentitiesOnly=yes -o StrictHostKeyChecking=yes -o UserKnownHostsFile=$E2E/known_hosts" \
        bash "$ROOT/scripts/rollback.sh" --stack "$STACK" --app api --yes || return 1
    health_ok "$STACK" "$HTTPS_PORT" 1
}
check "R0. the load stack's rate limit is raised (a proxy reload)" raise_limit
check "R1. baseline (not a pass/fail): the app's container stopped and started, as a delete-first release did" under_load "baseline: stop and start" baseline baseline_restart
check "R2. image 2 -> 1, one replica: 0 failed requests, slow requests complete" under_load "image 2->1, 1 replica" zero image_release 1
check "R3. scale to 2 replicas (a release): 0 failed requests" under_load "1 -> 2 replicas" zero release_to 'apps[0].replicas' 2
check "R4. image 1 -> 2 with 2 replicas: 0 failed requests" under_load "image 1->2, 2 replicas" zero image_release 2
check "R5. two replicas live after the release" replicas_live 2
check "R6. a config change that replaces the app (an env value): 0 failed requests" under_load "env change" zero release_to 'apps[0].env.E2E_RELEASE_NOTE' under-load
check "R7. a proxy config change (a response header): reload of the same proxy, 0 failed requests" under_load "proxy header change" zero proxy_change
check "R8. a release that never gets healthy: pulumi up fails naming the app, its containers go, the old release serves; 0 failed requests" under_load "bad release" zero bad_release
check "R9. after the bad release, the next up starts clean and converges (no changes left)" bad_release_left_clean
check "R10. rollback to the previous release (scripts/rollback.sh): 0 failed requests, no registry" under_load "rollback" zero rollback
check "R11. pulumi preview --expect-no-changes after the releases" pulumi preview --expect-no-changes --non-interactive --stack "$STACK"

# -----------------------------------------------------------------------------------------------------
phase "second stack (ACME)"
# bridge_address: the host's address on Docker's default bridge, which every container can reach. The
# network's IPAM config names it only sometimes (not on a fresh Debian dockerd 20.10), docker0 always.
bridge_address() {
    local ip
    ip=$(docker network inspect bridge --format '{{range .IPAM.Config}}{{.Gateway}}{{end}}' 2>/dev/null)
    [ -n "$ip" ] || ip=$(ip -4 -o addr show dev docker0 2>/dev/null | awk '{ split($4, a, "/"); print a[1]; exit }')
    [ -n "$ip" ] && echo "$ip"
}
# The second stack takes its certificate from an ACME CA in the box: pebble (Let's Encrypt's test
# server) with its fake DNS resolving every name to 127.0.0.1. It listens on the Docker bridge's address,
# which the stack's ACME container reaches, and validates HTTP-01 on the second stack's HTTP port.
acme_box() { # acme_box DIR HTTP_PORT: an ACME server validating HTTP-01 on HTTP_PORT; writes DIR/directory
    { command -v pebble && command -v pebble-challtestsrv && command -v openssl; } >/dev/null 2>&1 || apt_install pebble openssl || return 1
    local d=$1 ip dns_port pebble_port tls_port mgmt_port
    ip=$(bridge_address) || { echo "acme_box: the host has no address on the Docker bridge"; return 1; }
    mkdir -p "$d"
    dns_port=$(free_port) pebble_port=$(free_port) tls_port=$(free_port) mgmt_port=$(free_port)
    openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -keyout "$d/ca.key" -out "$d/ca.crt" -days 2 -subj "/CN=e2e ACME server CA" &&
        openssl req -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -keyout "$d/server.key" -out "$d/server.csr" -subj "/CN=pebble" &&
        printf 'subjectAltName=IP:%s,IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\n' "$ip" >"$d/ext.cnf" &&
        openssl x509 -req -in "$d/server.csr" -CA "$d/ca.crt" -CAkey "$d/ca.key" -CAcreateserial -days 1 -extfile "$d/ext.cnf" -out "$d/server.crt" || return 1
    cat >"$d/pebble.json" <<EOF
{"pebble": {"listenAddress": "$ip:$pebble_port", "managementListenAddress": "127.0.0.1:$mgmt_port",
 "certificate": "$d/server.crt", "privateKey": "$d/server.key", "httpPort": $2, "tlsPort": $tls_port,
 "ocspResponderURL": "", "externalAccountBindingRequired": false}}
EOF
    pebble-challtestsrv -defaultIPv4 127.0.0.1 -defaultIPv6 "" -dns01 "127.0.0.1:$dns_port" -http01 "" -https01 "" -tlsalpn01 "" -management "127.0.0.1:$(free_port)" >>"$d/dns.log" 2>&1 &
    echo $! >"$d/dns.pid"
    PEBBLE_VA_NOSLEEP=1 PEBBLE_WFE_NONCEREJECT=0 pebble -config "$d/pebble.json" -dnsserver "127.0.0.1:$dns_port" >>"$d/pebble.log" 2>&1 &
    echo $! >"$d/pebble.pid"
    echo "https://$ip:$pebble_port/dir" >"$d/directory"
    echo "https://127.0.0.1:$mgmt_port/roots/0" >"$d/root-url"
    for _ in $(seq 50); do curl -sf --cacert "$d/ca.crt" "$(cat "$d/directory")" >/dev/null && return 0; sleep 0.2; done
    echo "acme_box: pebble does not answer at $(cat "$d/directory")"
    tail -n 20 "$d/pebble.log" "$d/dns.log"
    return 1
}
# set_acme STACK: tls.mode acme against the stack's ACME server in the box
set_acme() {
    local d=$E2E/acme-$1
    pulumi config set --stack "$1" --path tls.mode acme &&
        pulumi config set --stack "$1" --path tls.acme.email "ops@$DOMAIN" &&
        pulumi config set --stack "$1" --path tls.acme.directoryUrl "$(cat "$d/directory")" &&
        pulumi config set --stack "$1" --path tls.acme.caCertificate -- "$(cat "$d/ca.crt")"
}
# acme_root STACK: the ACME server's root, which signs the stack's certificate (new at every start)
acme_root() { curl -sSf --cacert "$E2E/acme-$1/ca.crt" "$(cat "$E2E/acme-$1/root-url")" >"$E2E/acme-$1/root.pem"; }
# The second stack also serves a static front end (a built single-page app) on www.: its build, packed as a CI
# job would, uploaded from the archive into an Nginx container. The certificate covers both names.
SPA_HOST="www.$DOMAIN"
SPA_BUNDLE="console.log('vps-stack e2e front end');"
make_site_archive() {
    mkdir -p "$E2E/web/dist/assets" &&
        printf '<!doctype html><title>e2e</title><script src="/assets/app-3f9a1c2b.js"></script>\n' >"$E2E/web/dist/index.html" &&
        printf '%s\n' "$SPA_BUNDLE" >"$E2E/web/dist/assets/app-3f9a1c2b.js" &&
        tar -czf "$E2E/web/dist.tgz" -C "$E2E/web" dist
}
add_static_site() { # add_static_site STACK
    make_site_archive &&
        pulumi config set-all --stack "$1" --path --plaintext 'apps[1].name=web' --plaintext 'apps[1].kind=static' \
            --plaintext "apps[1].static.archive=$E2E/web/dist.tgz" --plaintext "apps[1].hosts[0]=$SPA_HOST" --plaintext 'apps[1].memory=64m'
}
# It pins the box's ECDSA host key: both SSH clients (the Docker provider's ssh, the command provider's
# Go client) must verify it.
init_acme_stack() { init_stack "$STACK2" "$HTTP2_PORT" "$HTTPS2_PORT" "$HOST_KEY_ECDSA" && set_acme "$STACK2" && add_static_site "$STACK2"; }
spa_get() { # spa_get PATH: headers and body from the second stack's static site, verified against the ACME root
    curl -sS --fail -D - --cacert "$E2E/acme-$STACK2/root.pem" --resolve "$SPA_HOST:$HTTPS2_PORT:127.0.0.1" "https://$SPA_HOST:$HTTPS2_PORT$1"
}
spa_serves() {
    local route asset
    route=$(spa_get /orders/42) || return 1
    echo "$route"
    grep -q '<title>e2e</title>' <<<"$route" && grep -qi '^cache-control: no-cache' <<<"$route" || return 1
    asset=$(spa_get /assets/app-3f9a1c2b.js) || return 1
    echo "$asset"
    grep -qF "$SPA_BUNDLE" <<<"$asset" && grep -qi '^cache-control: public, max-age=31536000, immutable' <<<"$asset" &&
        grep -qi '^strict-transport-security: max-age=31536000' <<<"$asset"
}
site_on_host_not_in_state() {
    local state mounts
    state=$(pulumi stack export --stack "$STACK2" --show-secrets) || return 1
    if grep -qF -e "$SPA_BUNDLE" -e "$(printf '%s\n' "$SPA_BUNDLE" | base64 -w0)" <<<"$state"; then echo "the site's file is in the state"; return 1; fi
    mounts=$(docker inspect --format '{{range .Mounts}}{{.Source}} {{.Destination}} {{.RW}}{{"\n"}}{{end}}' "$(app_container "$STACK2" web)") || return 1
    echo "$mounts"
    grep -qE "^/home/$DEPLOY_USER/\.local/share/vps-stack/$STACK2/site-web-[0-9a-f]{12}/site /usr/share/nginx/html false$" <<<"$mounts" &&
        [ "$(stat -c %U "$(awk '{ print $1; exit }' <<<"$mounts")/index.html")" = "$DEPLOY_USER" ]
}
acme_health() { acme_root "$STACK2" && health_ok "$STACK2" "$HTTPS2_PORT" 1; }
served_serial() { openssl s_client -connect "127.0.0.1:${1:-$HTTPS2_PORT}" -servername "$DOMAIN" </dev/null 2>/dev/null | openssl x509 -noout -serial; }
acme_healthy() {
    local status
    docker inspect --format '{{.State.Health.Status}}' "vps-stack-$STACK2-acme" | grep -qx healthy || return 1
    status=$(run_ssh_line "$(output_cmd "$STACK2" acme status)") || return 1
    echo "$status"
    grep -q "^served: vps-stack-[0-9a-f]* for $DOMAIN $SPA_HOST, expires" <<<"$status"
}
renewal_reaches_proxy() {
    local before after
    before=$(served_serial) && [ -n "$before" ] || return 1
    run_ssh_line "$(output_cmd "$STACK2" acme forceRenew)" || return 1
    # The proxy checks the file every minute and reloads after nginx -t; no deploy involved.
    for _ in $(seq 90); do
        after=$(served_serial)
        if [ -n "$after" ] && [ "$after" != "$before" ]; then
            echo "serial $before -> $after"
            health_ok "$STACK2" "$HTTPS2_PORT" 1
            return
        fi
        sleep 1
    done
    echo "still $before after 90s"
    return 1
}
before_first=$(docker ps -q --filter "label=vps-stack.stack=$STACK" | sort)
acme_setup="$E2E/acme-$STACK2.setup.log"
if acme_box "$E2E/acme-$STACK2" "$HTTP2_PORT" >"$acme_setup" 2>&1 && init_acme_stack >>"$acme_setup" 2>&1; then
    check "8a. a second stack, with tls.mode acme, deploys beside the first: certificate from the ACME server over HTTP-01" up "$STACK2"
    check "8b. the second stack serves /health with that certificate, verified against the CA's root" acme_health
    check "S1. a static front end uploaded from an archive: client routes get index.html (no-cache), hashed assets a year (immutable), over the ACME certificate" spa_serves
    check "S2. the site was copied to the host (SFTP) and is mounted read-only; its files are not in the stack's state" site_on_host_not_in_state
    check "A1. the ACME container is healthy and serves the issued certificate (the output's status command)" acme_healthy
    check "A2. a forced renewal (the output's forceRenew command) reaches the proxy without a deploy" renewal_reaches_proxy
    check "A3. pulumi preview --expect-no-changes on the ACME stack" pulumi preview --expect-no-changes --non-interactive --stack "$STACK2"
else
    check "8a. the box gets an ACME server (pebble) and the second stack its ACME config" setup_failed "$acme_setup"
fi
first_untouched() { [ "$(docker ps -q --filter "label=vps-stack.stack=$STACK" | sort)" = "$before_first" ] && health_ok "$STACK" "$HTTPS_PORT"; }
destroy_second() { pulumi destroy --yes --non-interactive --stack "$STACK2" && [ -z "$(docker ps -aq --filter "label=vps-stack.stack=$STACK2")" ] && first_untouched; }
check "8c. the first stack is untouched and still healthy" first_untouched
check "8d. destroying the second stack leaves the first running" destroy_second

# -----------------------------------------------------------------------------------------------------
phase "host nginx"
# The host nginx mode: the VPS's own nginx serves the site, the API is published on 127.0.0.1 only.
host_nginx_running() { [ -s /run/nginx.pid ] && kill -0 "$(cat /run/nginx.pid)" 2>/dev/null; }
host_nginx_box() {
    { command -v nginx >/dev/null && command -v sudo >/dev/null; } || apt_install nginx sudo || return 1
    printf '%s ALL=(root) NOPASSWD: ALL\n' "$DEPLOY_USER" >/etc/sudoers.d/vps-stack-e2e
    chmod 440 /etc/sudoers.d/vps-stack-e2e
    # By its pid file: the containers' nginx processes are visible on the host too.
    if ! host_nginx_running; then nginx && STARTED_HOST_NGINX=1; fi
    host_nginx_running && "${SSH[@]}" sudo -n true
}
HOST_HTTP=$(free_port)
HOST_HTTPS=$(free_port)
API_HOST_PORT=$(free_port)
init_host_stack() {
    init_stack "$STACK_HOST" "$HOST_HTTP" "$HOST_HTTPS" || return 1
    pulumi config set --stack "$STACK_HOST" --path nginx.mode host &&
        pulumi config set --stack "$STACK_HOST" --path 'apps[0].hostPort' "$API_HOST_PORT"
}
host_site_file() { echo "/etc/nginx/sites-enabled/vps-stack-$STACK_HOST.conf"; }
api_on_loopback_only() {
    local ports
    ports=$(docker port "vps-stack-$STACK_HOST-api-1")
    echo "$ports"
    [ "$ports" = "8000/tcp -> 127.0.0.1:$API_HOST_PORT" ]
}
site_installed() { [ -L "$(host_site_file)" ] && [ "$(stat -c %a "/etc/vps-stack/vps-stack-$STACK_HOST")" = 700 ] && [ "$(stat -c %a "/etc/vps-stack/vps-stack-$STACK_HOST/privkey.pem")" = 600 ]; }
site_removed() { [ ! -e "$(host_site_file)" ] && [ ! -e "/etc/vps-stack/vps-stack-$STACK_HOST" ] && [ ! -e "$(host_cron_file)" ] && host_nginx_running; }
host_cron_file() { echo "/etc/cron.d/vps-stack-$STACK_HOST-tls-reload"; }
host_served() { echo "/var/lib/vps-stack/$STACK_HOST/letsencrypt/vps-stack/tls.pem"; }
switch_host_to_acme() { acme_box "$E2E/acme-$STACK_HOST" "$HOST_HTTP" && set_acme "$STACK_HOST" && up "$STACK_HOST"; }
host_acme_health() { acme_root "$STACK_HOST" && health_ok "$STACK_HOST" "$HOST_HTTPS" 1; }
host_reads_acme_file() {
    grep -q "ssl_certificate .*$(host_served);" "$(host_site_file)" && [ "$(stat -c %a "$(host_served)")" = 600 ] &&
        [ ! -e "/etc/vps-stack/vps-stack-$STACK_HOST/privkey.pem" ] && grep "cksum < $(host_served)" "$(host_cron_file)"
}
# A forced renewal, then the cron entry's own command line, run as cron would run it.
host_renewal_reloads() {
    local before after job
    before=$(served_serial "$HOST_HTTPS") && [ -n "$before" ] || return 1
    run_ssh_line "$(output_cmd "$STACK_HOST" acme forceRenew)" || return 1
    job=$(grep '^\*/5 ' "$(host_cron_file)" | cut -d' ' -f7-) && [ -n "$job" ] || return 1
    sh -c "$job" || return 1
    sleep 1
    after=$(served_serial "$HOST_HTTPS")
    echo "serial $before -> $after"
    [ -n "$after" ] && [ "$after" != "$before" ] && health_ok "$STACK_HOST" "$HOST_HTTPS" 1
}
# A host whose own nginx config conflicts with the stack's new site (here: an upstream of the same name
# in conf.d) makes nginx -t fail: pulumi up must fail with nginx's message, leave the previous site in
# place and keep it serving. Without the conflict, the next pulumi up goes through.
host_site_has() { grep -q "$1" "$(host_site_file)"; }
rejected_site_keeps_serving() {
    local out rc
    printf 'upstream vps_stack_%s_app_api { server 127.0.0.1:9; }\n' "$STACK_HOST" >"$HOST_CONFLICT"
    pulumi config set --stack "$STACK_HOST" --path nginx.clientMaxBodySize 20M || return 1
    out=$(up "$STACK_HOST" 2>&1)
    rc=$?
    echo "$out"
    [ "$rc" -ne 0 ] || { echo "pulumi up succeeded although nginx -t fails"; return 1; }
    grep -q 'duplicate upstream "vps_stack_'"$STACK_HOST"'_app_api"' <<<"$out" || { echo "nginx's message is not in pulumi up's output"; return 1; }
    grep -q 'the previous configuration is still serving' <<<"$out" || return 1
    ! host_site_has 'client_max_body_size 20M;' || { echo "the rejected site replaced the previous one"; return 1; }
    health_ok "$STACK_HOST" "$HOST_HTTPS" 1
}
resolved_conflict_converges() {
    rm -f "$HOST_CONFLICT"
    up "$STACK_HOST" && host_site_has 'client_max_body_size 20M;' && health_ok "$STACK_HOST" "$HOST_HTTPS" 1 &&
        pulumi preview --expect-no-changes --non-interactive --stack "$STACK_HOST"
}
destroy_host_stack() { pulumi destroy --yes --non-interactive --stack "$STACK_HOST" && site_removed; }
host_setup="$E2E/host-nginx.setup.log"
if host_nginx_box >"$host_setup" 2>&1 && init_host_stack >>"$host_setup" 2>&1; then
    check "H1. pulumi up with nginx.mode host (the host's own nginx, over SSH and sudo)" up "$STACK_HOST"
    check "H2. /health over HTTPS through the host's nginx" health_ok "$STACK_HOST" "$HOST_HTTPS" 1
    check "H3. the API is published on 127.0.0.1 only" api_on_loopback_only
    check "H4. the site is enabled, its certificates root-only (0700/0600)" site_installed
    check "H5. pulumi preview --expect-no-changes" pulumi preview --expect-no-changes --non-interactive --stack "$STACK_HOST"
    check "H5b. a site the host's nginx rejects (nginx -t) fails pulumi up with nginx's message; the previous site keeps serving" rejected_site_keeps_serving
    check "H5c. once the host's conflict is gone, pulumi up installs the new site; no changes left" resolved_conflict_converges
    check "H6. switching to tls.mode acme: pulumi up gets a certificate through the host's nginx" switch_host_to_acme
    check "H7. /health with that certificate, verified against the ACME CA's root" host_acme_health
    check "H8. the site reads the ACME file (0600), the old certificates are gone, a cron entry watches the file" host_reads_acme_file
    check "H9. a forced renewal is served after the cron entry's run (nginx -t, then reload)" host_renewal_reloads
    check "H10. pulumi preview --expect-no-changes with ACME" pulumi preview --expect-no-changes --non-interactive --stack "$STACK_HOST"
    check "H11. pulumi destroy removes the site, its certificates and the cron entry; nginx keeps running" destroy_host_stack
else
    check "H0. the box gets nginx and passwordless sudo for the deploy user" setup_failed "$host_setup"
fi

# -----------------------------------------------------------------------------------------------------
phase destroy
check "9a. pulumi destroy succeeds" pulumi destroy --yes --non-interactive --stack "$STACK"
nothing_left() { [ -z "$(docker ps -aq --filter "label=vps-stack.stack=$STACK")" ] && [ -z "$(docker network ls -q --filter "label=vps-stack.stack=$STACK")" ]; }
no_volumes() { [ -z "$(docker volume ls -q --filter "label=vps-stack.stack=$STACK")" ]; }
backups_outlive() { ls "$E2E/backups/$STACK/$STACK"-app-*.dump; }
check "9b. no container or network of the stack is left" nothing_left
check "9c. volumes follow the retention rule: removed on a non-prod stack" no_volumes
check "9d. the backup files outlive the stack" backups_outlive
check "W. no Pulumi warning in any run but the allow-listed ones (e2e/run.sh ALLOWED_WARNINGS)" unexpected_warnings

finish
