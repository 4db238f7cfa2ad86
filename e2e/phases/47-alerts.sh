# shellcheck shell=bash disable=SC2317,SC2329,SC2129,SC2034,SC2016,SC2015 # functions are called through check(); variables are shared with later phases
phase alerts
# The alert watcher on the real stack (issue 17). Its destinations are real servers on this machine, on the
# Docker bridge's gateway (an address of this machine that the watcher's own network reaches through the
# host, as 45-offsite's store; or the host's address on the stack's edge network where docker0 is missing): a JSON webhook and a Slack-style one (an HTTP receiver), and e-mail through
# a real SMTP server (aiosmtpd, Debian's python3-aiosmtpd; plain SMTP without a login, so tls "none" and no
# password crosses the network). The watcher looks every 10 s (alerts.intervalSeconds' minimum) and
# notifies a problem seen 2 rounds in a row (the default confirmRounds), so every wait is under 2 minutes.
# Each alert is counted by its key in the JSON webhook's bodies: one "problem", then one "resolved", and
# nothing in between however long it lasts. At the end the stack's config is put back as it was and the
# watcher removed, so later phases (faults, releases) see the stack they expect and no alert fires there.
ALERTS_DIR="$E2E/alerts"
ALERTS_INTERVAL=10
ALERTS_WAIT=120
ALERTS_WATCHER="vps-stack-$STACK-alerts"
ALERTS_BACKUP_DIR="$E2E/backups/$STACK"
ALERTS_GW="" ALERTS_HTTP="" ALERTS_SMTP=""
cp "Pulumi.$STACK.yaml" "$E2E/Pulumi.$STACK.before-alerts.yaml"

start_receiver() {
    local gw http smtp
    # The Docker bridge's gateway when this machine has that address (docker0 may be missing: a daemon with
    # "bridge": "none", or the link removed), else the host's address on the stack's edge network.
    gw=$(docker network inspect bridge -f '{{(index .IPAM.Config 0).Gateway}}' 2>/dev/null)
    if [ -z "$gw" ] || ! ip -4 -o addr show | grep -qw "inet $gw"; then
        echo "no address ${gw:-?} on this machine (docker0); using the stack's edge network's gateway"
        gw=$(docker network inspect "vps-stack-$STACK-edge" -f '{{(index .IPAM.Config 0).Gateway}}') && [ -n "$gw" ] || { echo "no gateway on vps-stack-$STACK-edge"; return 1; }
    fi
    http=$(free_port) && smtp=$(free_port) || return 1
    mkdir -p "$ALERTS_DIR/out"
    # Debian's python3: the one python3-aiosmtpd is installed for (a pyenv shim may come first on PATH).
    setsid /usr/bin/python3 "$ROOT/e2e/lib/alert-receiver.py" "$gw" "$http" "$smtp" "$ALERTS_DIR/out" >"$ALERTS_DIR/ready" 2>>"$ALERTS_DIR/receiver.log" </dev/null &
    echo $! >"$ALERTS_DIR/receiver.pid"
    for _ in $(seq 50); do grep -q '^ready' "$ALERTS_DIR/ready" && break; sleep 0.2; done
    grep -qx 'ready http smtp' "$ALERTS_DIR/ready" || { echo "the receiver is not ready (HTTP and SMTP):"; cat "$ALERTS_DIR/ready" "$ALERTS_DIR/receiver.log"; return 1; }
    ALERTS_GW=$gw ALERTS_HTTP=$http ALERTS_SMTP=$smtp
    echo "webhooks on http://$gw:$http/, SMTP on $gw:$smtp"
}
stop_receiver() { [ -f "$ALERTS_DIR/receiver.pid" ] && kill "$(cat "$ALERTS_DIR/receiver.pid")" 2>/dev/null; rm -f "$ALERTS_DIR/receiver.pid"; }

enable_alerts() {
    [ -n "$ALERTS_GW" ] || { echo "no receiver (A0a)"; return 1; }
    pulumi config set --stack "$STACK" --path 'alerts.webhooks[0].kind' json &&
        pulumi config set --stack "$STACK" --path 'alerts.webhooks[1].kind' slack &&
        pulumi config set --stack "$STACK" --secret --path secrets.ALERTS_WEBHOOK_URL "http://$ALERTS_GW:$ALERTS_HTTP/json" &&
        pulumi config set --stack "$STACK" --secret --path secrets.ALERTS_SLACK_WEBHOOK_URL "http://$ALERTS_GW:$ALERTS_HTTP/slack" &&
        pulumi config set --stack "$STACK" --path alerts.email.host "$ALERTS_GW" &&
        pulumi config set --stack "$STACK" --path alerts.email.port "$ALERTS_SMTP" &&
        pulumi config set --stack "$STACK" --path alerts.email.tls none &&
        pulumi config set --stack "$STACK" --path alerts.email.from alerts@e2e.vps-stack.test &&
        pulumi config set --stack "$STACK" --path 'alerts.email.to[0]' ops@e2e.vps-stack.test &&
        pulumi config set --stack "$STACK" --path alerts.insecure true &&
        pulumi config set --stack "$STACK" --path alerts.intervalSeconds "$ALERTS_INTERVAL" || return 1
    up "$STACK" || return 1
    docker inspect --format '{{.Name}} {{.State.Status}} {{if .State.Health}}{{.State.Health.Status}}{{end}} pids-limit={{.HostConfig.PidsLimit}}' "$ALERTS_WATCHER" | tee "$ALERTS_DIR/watcher"
    grep -q ' running healthy pids-limit=[1-9]' "$ALERTS_DIR/watcher"
}

# What arrived. hooks EVENT KEY: the JSON webhook's bodies with that event and key (a key ending in "*"
# matches as a prefix), counted; hook_keys EVENT: the keys of that event, one a line.
hooks() {
    node -e '
        const fs = require("fs"), path = require("path");
        const [dir, event, key] = process.argv.slice(1);
        let n = 0;
        for (const f of fs.existsSync(dir) ? fs.readdirSync(dir).filter((f) => f.endsWith(".json")) : []) {
            const b = JSON.parse(fs.readFileSync(path.join(dir, f), "utf8"));
            if (b.event === event && (key.endsWith("*") ? b.key.startsWith(key.slice(0, -1)) : b.key === key)) n++;
        }
        console.log(n);' "$ALERTS_DIR/out/hooks/json" "$1" "$2"
}
hook_keys() {
    node -e '
        const fs = require("fs"), path = require("path");
        const [dir, event] = process.argv.slice(1);
        for (const f of fs.existsSync(dir) ? fs.readdirSync(dir).filter((f) => f.endsWith(".json")).sort() : []) {
            const b = JSON.parse(fs.readFileSync(path.join(dir, f), "utf8"));
            if (b.event === event) console.log(b.key);
        }' "$ALERTS_DIR/out/hooks/json" "$1"
}
hook_summaries() { # hook_summaries EVENT KEY: the summaries of that event and key, one a line
    node -e '
        const fs = require("fs"), path = require("path");
        const [dir, event, key] = process.argv.slice(1);
        for (const f of fs.existsSync(dir) ? fs.readdirSync(dir).filter((f) => f.endsWith(".json")).sort() : []) {
            const b = JSON.parse(fs.readFileSync(path.join(dir, f), "utf8"));
            if (b.event === event && b.key === key) console.log(b.summary);
        }' "$ALERTS_DIR/out/hooks/json" "$1" "$2"
}
# mails SUBJECT_PREFIX: the e-mails whose subject starts with it, counted.
mails() { grep -l -- "^Subject: $1" "$ALERTS_DIR/out/mail/"*.eml 2>/dev/null | wc -l; }
# wait_count SECONDS WANT COMMAND...: until the command prints WANT (bounded); then it must stay WANT.
wait_count() {
    local limit=$1 want=$2 start=$SECONDS got
    shift 2
    while :; do
        got=$("$@")
        [ "$got" = "$want" ] && { echo "$* = $got after $((SECONDS - start))s"; return 0; }
        ((SECONDS - start < limit)) || { echo "$* = $got after ${limit}s, want $want"; return 1; }
        sleep 1
    done
}
show_received() {
    echo "--- problems:"; hook_keys problem
    echo "--- resolved:"; hook_keys resolved
    echo "--- watcher's log:"; docker logs --tail 20 "$ALERTS_WATCHER" 2>&1
}

check "A0a. the receivers listen on an address of this machine the watcher reaches (webhooks over HTTP, e-mail through aiosmtpd)" start_receiver
check "A0b. pulumi up with alerts configured (2 webhooks and e-mail, a round every ${ALERTS_INTERVAL}s): the watcher runs and is healthy" enable_alerts
# A healthy stack raises nothing: the watcher's first rounds have run (the up waited for its healthcheck).
quiet() {
    sleep $((2 * ALERTS_INTERVAL + 2))
    local p
    p=$(hook_keys problem)
    [ -z "$p" ] || { echo "alerts on a healthy stack:"; show_received; return 1; }
}
check "A0c. a healthy stack raises no alert over 2 rounds" quiet

# The watcher reads Docker only through its proxy: asked from inside the watcher, the proxy passes a read
# and refuses a write (a container stopped) and a container's files (its secrets), which Docker never sees.
through_proxy() {
    local mounts code
    mounts=$(docker inspect -f '{{range .Mounts}}{{.Source}} {{end}}' "$ALERTS_WATCHER") || return 1
    case " $mounts " in *docker.sock*) echo "the watcher holds Docker's socket: $mounts"; return 1 ;; esac
    local c holders=""
    for c in $(docker ps -q --filter "label=vps-stack.stack=$STACK"); do
        case " $(docker inspect -f '{{range .Mounts}}{{.Source}} {{end}}' "$c") " in
            *" /var/run/docker.sock "* | *" /run/docker.sock "*) holders="$holders $(docker inspect -f '{{.Name}}' "$c")" ;;
        esac
    done
    [ "$holders" = " /$ALERTS_WATCHER-docker" ] || { echo "the containers that hold Docker's socket:$holders"; return 1; }
    [ "$(docker inspect -f '{{.HostConfig.NetworkMode}} {{.HostConfig.ReadonlyRootfs}}' "$ALERTS_WATCHER-docker")" = "none true" ] || { echo "the proxy has a network or a writable root"; return 1; }
    local sock
    # The socket the watcher itself is told to use, not a copy of the path: the check follows a move.
    sock=$(docker inspect -f '{{range .Config.Env}}{{println .}}{{end}}' "$ALERTS_WATCHER" | sed -n 's/^DOCKER_SOCKET=//p')
    [ -n "$sock" ] || { echo "the watcher has no DOCKER_SOCKET"; return 1; }
    ask() { docker exec "$ALERTS_WATCHER" curl -s -o /dev/null -w '%{http_code}' --unix-socket "$sock" "$@"; }
    code=$(ask "http://docker/containers/vps-stack-$STACK-redis/json") && [ "$code" = 200 ] || { echo "a read: $code"; return 1; }
    code=$(ask -X POST "http://docker/containers/vps-stack-$STACK-redis/stop") && [ "$code" = 403 ] || { echo "a stop: $code"; return 1; }
    code=$(ask "http://docker/containers/vps-stack-$STACK-redis/archive?path=/usr/local/etc/redis") && [ "$code" = 403 ] || { echo "a container's files: $code"; return 1; }
    [ "$(docker inspect -f '{{.State.Running}} {{.RestartCount}}' "vps-stack-$STACK-redis")" = "true 0" ]
}
check "A0d. the watcher holds no Docker socket: its proxy (no network, read-only) passes a read and refuses a stop and a container's files" through_proxy

test_arrives() {
    run_ssh_line "$(output_cmd "$STACK" alerts test)" || return 1
    wait_count 10 1 hooks test test || return 1
    wait_count 10 1 mails '\[vps-stack e2e\] TEST:' || return 1
    ls "$ALERTS_DIR/out/hooks/slack/"*.json && node -e '
        const b = JSON.parse(require("fs").readFileSync(process.argv[1], "utf8"));
        if (Object.keys(b).join() !== "text" || !b.text.includes("TEST")) { console.log("not a Slack message:", b); process.exit(1); }' "$(find "$ALERTS_DIR/out/hooks/slack" -name "*.json" | sort | head -n 1)"
}
check "A1. the alerts output's 'test' command: a test notification reaches the JSON and Slack webhooks and the mailbox" test_arrives

# A2: the API container stopped by hand. With one replica the public health URL fails too: that is its own
# alert (health:<url>), also once. Each key: one problem, none repeated while it lasts (4 more rounds), one
# resolution once `pulumi up` has recreated the container.
API_STOPPED=""
api_stopped_alert() {
    API_STOPPED=$(app_container "$STACK" api) && [ -n "$API_STOPPED" ] || { echo "no API container"; return 1; }
    docker stop "$API_STOPPED" || return 1
    wait_count "$ALERTS_WAIT" 1 hooks problem "stopped:$API_STOPPED" || { show_received; return 1; }
    sleep $((4 * ALERTS_INTERVAL))
    show_received
    [ "$(hooks problem "stopped:$API_STOPPED")" = 1 ] || { echo "the stopped container was notified again"; return 1; }
    local k
    for k in $(hook_keys problem | sort -u); do
        case "$k" in "stopped:$API_STOPPED" | health:*) ;; *) echo "unexpected alert $k"; return 1 ;; esac
        [ "$(hooks problem "$k")" = 1 ] || { echo "$k notified $(hooks problem "$k") times"; return 1; }
    done
    [ "$(mails "\[vps-stack e2e\] PROBLEM: container $API_STOPPED is not running")" = 1 ] || { echo "not one e-mail about it"; return 1; }
}
check "A2a. docker stop of the API container: one alert (webhooks and e-mail), not repeated while it lasts" api_stopped_alert
api_resolved() {
    up "$STACK" || return 1
    back_within "$STACK" "$HTTPS_PORT" 120 "the API after pulumi up" || return 1
    wait_count "$ALERTS_WAIT" 1 hooks resolved "stopped:$API_STOPPED" || { show_received; return 1; }
    # The health URL's alert, if it fired, resolves too; and nothing else fired meanwhile.
    wait_count "$ALERTS_WAIT" "$(hooks problem 'health:*')" hooks resolved 'health:*' || { show_received; return 1; }
    show_received
    [ "$(hooks problem "stopped:$API_STOPPED")" = 1 ] && [ "$(hooks resolved "stopped:$API_STOPPED")" = 1 ] || return 1
    [ "$(mails "\[vps-stack e2e\] RESOLVED: container $API_STOPPED is not running")" = 1 ] || { echo "not one e-mail about its resolution"; return 1; }
}
check "A2b. pulumi up recreates it: one resolution" api_resolved
check "A2c. pulumi preview shows no changes with alerts configured" pulumi preview --expect-no-changes --non-interactive --stack "$STACK"

# A3: a backup run forced to fail the way a real one does (pg_dump cannot dump: here the database it is
# told to dump does not exist), through the backup script itself; its check, the container's healthcheck,
# then fails until a good run.
backup_alert() {
    docker exec -e PGDATABASE=e2e_no_such_database "vps-stack-$STACK-backup" vps-stack-backup run && { echo "the forced failure succeeded"; return 1; }
    run_output_cmd check && { echo "the backup check passes after a failed run"; return 1; }
    wait_count "$ALERTS_WAIT" 1 hooks problem "unhealthy:vps-stack-$STACK-backup" || { show_received; return 1; }
    show_received
    hook_summaries problem "unhealthy:vps-stack-$STACK-backup" | grep 'the last backup failed at .*: pg_dump failed' || { echo "the alert does not say why"; return 1; }
}
check "A3a. a failed backup run: one alert (the backup container unhealthy, with the check's reason)" backup_alert
backup_resolved() {
    run_output_cmd now || return 1
    wait_count "$ALERTS_WAIT" 1 hooks resolved "unhealthy:vps-stack-$STACK-backup" || { show_received; return 1; }
    [ "$(hooks problem "unhealthy:vps-stack-$STACK-backup")" = 1 ] || { echo "notified more than once"; return 1; }
}
check "A3b. a good backup run: its resolution" backup_resolved

# A4: a full disk. The watcher measures the filesystem holding the backup directory (df of its bind mount).
# This machine's disk cannot honestly be filled, and a threshold lowered under its real usage would only
# prove the arithmetic; so a 16 MiB tmpfs is mounted on the stack's backup directory and filled to ~94%
# (the default threshold, 90%, unchanged). A bind mount is resolved when a container starts: the watcher is
# restarted to see the tmpfs (the backup containers, not restarted, keep writing to the disk below), and
# again once it is unmounted.
ALERTS_MOUNTED=""
disk_alert() {
    mount -t tmpfs -o size=16m vps-stack-e2e-alerts "$ALERTS_BACKUP_DIR" || return 1
    ALERTS_MOUNTED=1
    docker restart -t 5 "$ALERTS_WATCHER" || return 1
    docker exec "$ALERTS_WATCHER" df -P /backups || return 1
    dd if=/dev/zero of="$ALERTS_BACKUP_DIR/fill" bs=1M count=15 status=none || return 1
    df -P "$ALERTS_BACKUP_DIR"
    wait_count "$ALERTS_WAIT" 1 hooks problem disk:backups || { show_received; return 1; }
    sleep $((2 * ALERTS_INTERVAL))
    [ "$(hooks problem disk:backups)" = 1 ] || { echo "notified more than once"; return 1; }
    [ "$(mails '\[vps-stack e2e\] PROBLEM: the disk holding backups')" = 1 ] || { echo "not one e-mail about it"; return 1; }
}
check "A4a. the backup directory's disk filled above 90%: one alert" disk_alert
disk_resolved() {
    rm -f "$ALERTS_BACKUP_DIR/fill"
    wait_count "$ALERTS_WAIT" 1 hooks resolved disk:backups || { show_received; return 1; }
}
check "A4b. space freed: its resolution" disk_resolved
unmount_disk() {
    if [ -n "$ALERTS_MOUNTED" ]; then
        rm -f "$ALERTS_BACKUP_DIR/fill"
        umount "$ALERTS_BACKUP_DIR" || umount -l "$ALERTS_BACKUP_DIR" || return 1
        ALERTS_MOUNTED=""
        docker restart -t 5 "$ALERTS_WATCHER" || return 1
    fi
    ls "$ALERTS_BACKUP_DIR"/"$STACK"-app-*.dump >/dev/null
}
check "A4c. the tmpfs unmounted: the backup directory is the real one again" unmount_disk

watcher_alive() {
    local start=$SECONDS
    until [ "$(docker inspect -f '{{.State.Health.Status}}' "$ALERTS_WATCHER")" = healthy ]; do
        ((SECONDS - start < 90)) || { docker inspect -f '{{json .State.Health}}' "$ALERTS_WATCHER"; return 1; }
        sleep 1
    done
    run_ssh_line "$(output_cmd "$STACK" alerts check)" || return 1
    run_ssh_line "$(output_cmd "$STACK" alerts status)" | tee "$ALERTS_DIR/status" || return 1
    grep -q 'no active problem' "$ALERTS_DIR/status" || { echo "problems still active"; return 1; }
    # The heartbeat is the last round's: younger than 3 intervals.
    docker exec "$ALERTS_WATCHER" sh -c 'echo $(( $(date +%s) - $(date -r /var/lib/vps-stack-alerts/heartbeat +%s) ))' | awk -v max=$((3 * ALERTS_INTERVAL)) '{ print "heartbeat " $1 "s old"; exit !($1 <= max) }'
}
check "A5a. the watcher's heartbeat and healthcheck: healthy, its 'check' and 'status' commands answer, nothing active" watcher_alive
check "A5b. pulumi preview shows no changes after all this" pulumi preview --expect-no-changes --non-interactive --stack "$STACK"
nothing_else() {
    show_received
    local k
    for k in $(hook_keys problem | sort -u); do
        [ "$(hooks resolved "$k")" = 1 ] || { echo "$k: not resolved once"; return 1; }
    done
}
check "A5c. every alert of the phase resolved exactly once" nothing_else

# The stack's config as it was: the watcher, its network and state volume go; later phases see no alerts.
remove_alerts() {
    unmount_disk >/dev/null 2>&1
    stop_receiver
    cp "$E2E/Pulumi.$STACK.before-alerts.yaml" "Pulumi.$STACK.yaml" || return 1
    up "$STACK" || return 1
    [ -z "$(docker ps -aq --filter "name=^$ALERTS_WATCHER(-docker)?\$")" ] || { echo "the watcher or its proxy is still there"; return 1; }
    [ -z "$(docker volume ls -q --filter "name=^$ALERTS_WATCHER(-docker-api)?\$")" ] || { echo "its state or socket volume is still there"; return 1; }
    all_healthy "$STACK" && health_ok "$STACK" "$HTTPS_PORT"
}
check "A6. alerts removed from the config: pulumi up removes the watcher, its proxy and their volumes; the stack healthy" remove_alerts
