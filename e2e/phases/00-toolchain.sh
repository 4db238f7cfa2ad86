# shellcheck shell=bash disable=SC2317,SC2329,SC2129,SC2034,SC2016,SC2015 # functions are called through check(); variables are shared with later phases
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
