# The e2e harness: the run's directory and log, PASS/FAIL checks, phases and their timings, and the
# cleanup that removes what the e2e stacks leave on the box (at the end, and at the start after a run
# that was killed). Sourced by e2e/run.sh; every phase file shares this shell.
# shellcheck shell=bash disable=SC2034,SC2129
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
    # The fresh-VPS phase's box, if that phase ran (its stack lives and dies inside the box).
    if [ "$(type -t vps_cleanup)" = function ]; then vps_cleanup; fi
    remove_box_state
    [ -f "$E2E/sshd.pid" ] && kill "$(cat "$E2E/sshd.pid")" 2>/dev/null
    for p in "$E2E"/acme-*/pebble.pid "$E2E"/acme-*/dns.pid; do [ -f "$p" ] && kill "$(cat "$p")" 2>/dev/null; done
    [ -d "$E2E/s3" ] && bash "$ROOT/e2e/lib/seaweedfs.sh" stop "$E2E/s3" >>"$LOG" 2>&1
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
