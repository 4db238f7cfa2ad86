# shellcheck shell=bash disable=SC2317,SC2329,SC2129,SC2034,SC2016,SC2015 # functions are called through check(); variables are shared with later phases
phase faults
keep_rows >>"$LOG" 2>&1 # F6 and F7 use them; already there after the replacements phase
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
# The restart comes at the worst moment for the backups: while one runs (pg_dump waits on a table lock,
# as in F7). PostgreSQL stops first, the dump fails, and the backup container is unhealthy until a good
# backup; the scheduler takes that one at its start, instead of a day later.
daemon_restart_recovers() {
    local before newest pid
    before=$(should_run "$STACK")
    echo "containers: $before"
    newest=$(dumps | tail -n 1)
    docker exec "vps-stack-$STACK-postgres" psql -U app -d app -qAt -c "BEGIN; LOCK TABLE e2e_keep IN ACCESS EXCLUSIVE MODE; SELECT pg_sleep(60); COMMIT;" >/dev/null 2>&1 &
    sleep 1
    run_output_cmd now >"$E2E/backup-restart.log" 2>&1 &
    pid=$!
    dump_waiting || { echo "pg_dump never waited on the lock"; return 1; }
    restart_dockerd || return 1
    wait "$pid" && { echo "the backup cut by the restart reported success"; cat "$E2E/backup-restart.log"; return 1; }
    back_within "$STACK" "$HTTPS_PORT" 120 "daemon restart during a backup" || return 1
    [ "$(should_run "$STACK")" = "$before" ] || { echo "not the same containers after the restart"; return 1; }
    [ "$(dumps | tail -n 1)" != "$newest" ] || { echo "no new backup after the restart"; return 1; }
    docker logs "vps-stack-$STACK-backup" 2>&1 | grep -E 'taking a backup now|backup ok' | tail -n 2
    docker logs "vps-stack-$STACK-backup" 2>&1 | grep -qE '(was interrupted|the last backup failed at .*): taking a backup now' || { echo "the scheduler did not say why it took a backup"; return 1; }
    run_output_cmd check
}
dump_waiting() { # pg_dump is waiting on a table lock, within 10 s
    for _ in $(seq 40); do
        docker exec "vps-stack-$STACK-postgres" psql -U app -d app -qAt -c "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'pg_dump' AND wait_event_type = 'Lock'" 2>/dev/null | grep -qx 1 && return 0
        sleep 0.25
    done
    return 1
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
# The box's sshd and every session it serves go away in the middle of an up that replaces the API, at
# the worst moment: right after Docker created the new release's container, before the provider connected
# its networks, uploaded its secret files and started it. The provider records such a container in the
# state with an error, and a later refresh finds it stopped; only recreating it (never starting it as it
# is) gives it its files. A read of Docker's events reacts within milliseconds, where each of the
# provider's calls goes through SSH.
ssh_cut_mid_up() {
    local out rc pid name state
    pulumi config set --stack "$STACK" --path 'apps[0].env.E2E_RELEASE' ssh-cut || return 1
    exec {events}< <(timeout 300 docker events --filter type=container --filter event=create \
        --filter "label=vps-stack.stack=$STACK" --filter label=vps-stack.service=api --format '{{.Actor.Attributes.name}}')
    local watcher=$!
    up "$STACK" >"$E2E/ssh-cut.log" 2>&1 &
    pid=$!
    while IFS= read -r -t 240 name <&"$events"; do
        case "$name" in *-migrate) ;; *) break ;; esac
    done
    pkill -KILL -f "sshd -f $E2E/sshd_config" || pkill -KILL -f "sshd: $DEPLOY_USER"
    pkill -KILL -f "sshd: $DEPLOY_USER" 2>/dev/null
    exec {events}<&-
    kill "$watcher" 2>/dev/null
    wait "$pid"
    rc=$?
    out=$(cat "$E2E/ssh-cut.log")
    echo "$out"
    state=$(docker inspect -f '{{.State.Status}}' "$name" 2>/dev/null) || state=missing
    note "SSH cut after Docker created $name; it was left $state"
    /usr/sbin/sshd -f "$E2E/sshd_config" -E "$E2E/sshd.log" || { echo "sshd did not restart"; return 1; }
    for _ in $(seq 20); do "${SSH[@]}" true >/dev/null 2>&1 && break; sleep 0.5; done
    [ -n "$name" ] || { echo "no container of a new release was created"; return 1; }
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
    dump_waiting
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
    local before start=$SECONDS
    # PostgreSQL is back from F7's kill first (F7 waits for it, unless it failed early).
    until [ "$(docker inspect -f '{{.State.Health.Status}}' "vps-stack-$STACK-postgres")" = healthy ]; do
        ((SECONDS - start < 120)) || { echo "PostgreSQL not healthy after 120s"; return 1; }
        sleep 0.5
    done
    before=$(dumps | tail -n 1)
    run_output_cmd now && run_output_cmd check && [ "$(dumps | tail -n 1)" != "$before" ]
}
check "F1. the Docker daemon restarts during a backup (a reboot): every container back and healthy, the backup taken again, HTTPS /health answers, no pulumi command" daemon_restart_recovers
for svc in postgres redis api nginx backup; do
    check "F2. kill -9 of $svc's main process: restarted, healthy, /health answers" kill9_recovers "$svc"
done
check "F3. after releases and proxy reloads, another daemon restart still brings Nginx back" proxy_never_marked_stopped
check "F4. docker stop of the API and Nginx, then a plain pulumi up: both running again, no change left" stopped_by_hand_then_up
check "F5. SSH cut right after Docker created the new release's container: the up fails naming the connection" ssh_cut_mid_up
check "F6. the next pulumi up converges, no change left, no data lost" converges_after_cut
check "F7. PostgreSQL killed while a backup runs: the backup fails loudly and leaves no partial file" backup_fails_loudly
check "F8. the next backup succeeds and the max-age check passes" next_backup_succeeds
