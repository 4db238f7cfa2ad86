# shellcheck shell=bash disable=SC2317,SC2329,SC2129,SC2034,SC2016,SC2015 # functions are called through check(); variables are shared with later phases
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
