# shellcheck shell=bash disable=SC2317,SC2329,SC2129,SC2034,SC2016,SC2015 # functions are called through check(); variables are shared with later phases
phase "no-op preview"
check "5a. pulumi preview --expect-no-changes right after up" pulumi preview --expect-no-changes --non-interactive --stack "$STACK"
check "5b. pulumi refresh --expect-no-changes" pulumi refresh --expect-no-changes --yes --non-interactive --stack "$STACK"
check "5c. pulumi preview --expect-no-changes after the refresh" pulumi preview --expect-no-changes --non-interactive --stack "$STACK"
# Pulumi.yaml refreshes before every up (so that what was stopped by hand comes back); that read must stay
# cheap: a no-op up within its budget, over the SSH master connection already open. With the MaxSessions
# docs/hosts.md asks for, no session is refused ("no more sessions" in sshd's log) and ssh does not log
# in again; a few logins are tolerated, one per resource (38 here) would mean the master is not used.
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
