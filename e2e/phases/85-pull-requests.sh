# shellcheck shell=bash disable=SC2317,SC2329,SC2129,SC2034,SC2016,SC2015 # functions are called through check(); variables are shared with later phases
phase "pull requests"
# The pull-request and nightly workflows run scripts/ci/*.sh; here the same scripts run against the box,
# from the project copy, with the file backend: a preview with the policy pack that passes and shows the
# diff, one that a mandatory policy blocks, and a drift check that fails after a container is removed by
# hand and passes again after the deploy script's pulumi up.
PR="$E2E/pr"
mkdir -p "$PR"
# The e2e stack's proxy listens on free ports, not 80/443: the stack's policy config says so, as a user's
# would (docs/pull-requests.md).
printf '{ "only-proxy-publishes": { "allowedPorts": [%s, %s] } }\n' "$HTTP_PORT" "$HTTPS_PORT" >"$PR/policy-$STACK.json"
ci_script() { # ci_script PROJECT SCRIPT ARGS...: a CI script run as the workflow runs it
    local project=$1 script=$2
    shift 2
    (cd "$project" && POLICY_PACK_CONFIG="$PR/policy-$STACK.json" bash "scripts/ci/$script" "$@")
}
preview_passes() {
    local body=$PR/preview-ok.md
    pulumi config set --stack "$STACK" --path 'apps[0].env.E2E_PR_NOTE' reviewed || return 1
    ci_script "$E2E/project" preview.sh "$STACK" "$body" || return 1
    cat "$body"
    grep -q "^<!-- vps-stack-preview:$STACK -->" "$body" || { echo "no marker for the workflow to find its comment again"; return 1; }
    grep -q 'passed' "$body" && grep -q 'No violation' "$body" || { echo "no passing policy result"; return 1; }
    grep -q 'E2E_PR_NOTE' "$body" || { echo "the diff does not show the changed value"; return 1; }
    grep -qE '[0-9]+ to (create|replace|update)' "$body" || { echo "no change summary"; return 1; }
}
# The violating variant is a small program change: PostgreSQL publishes its port (on loopback, and a
# preview creates nothing anyway).
bad_project() {
    rm -rf "$E2E/project-bad" && mkdir -p "$E2E/project-bad" || return 1
    tar -C "$E2E/project" --exclude=./node_modules --exclude=./policy/node_modules -cf - . | tar -C "$E2E/project-bad" -xf - || return 1
    ln -s "$ROOT/node_modules" "$E2E/project-bad/node_modules"
    ln -s "$E2E/project/policy/node_modules" "$E2E/project-bad/policy/node_modules"
    sed -i 's|^\( *\)command: postgresCommand(.*),$|&\n\1ports: [{ internal: 5432, external: 55432, ip: "127.0.0.1" }],|' "$E2E/project-bad/components/postgres-service.ts"
    grep -q 'external: 55432' "$E2E/project-bad/components/postgres-service.ts" || { echo "could not patch the PostgreSQL component"; return 1; }
}
preview_blocked() {
    local body=$PR/preview-bad.md rc
    bad_project || return 1
    ci_script "$E2E/project-bad" preview.sh "$STACK" "$body"
    rc=$?
    cat "$body"
    [ "$rc" -ne 0 ] || { echo "the preview passed with PostgreSQL's port published"; return 1; }
    grep -q 'failed' "$body" && grep -q '\[mandatory\]' "$body" || { echo "no mandatory violation in the comment"; return 1; }
    grep -qi 'postgres' "$body" || { echo "the violation does not name PostgreSQL"; return 1; }
}
drift() { ci_script "$E2E/project" drift.sh "$STACK" "$PR/drift-$1.md"; }
no_drift() { pulumi config rm --stack "$STACK" --path 'apps[0].env.E2E_PR_NOTE' && drift clean; }
drift_after_rm() {
    local c rc
    c=$(app_container "$STACK" api) || return 1
    docker rm -f "$c" >/dev/null || return 1
    drift removed
    rc=$?
    cat "$PR/drift-removed.md"
    [ "$rc" -eq 1 ] || { echo "drift.sh exited $rc, not 1 (drift)"; return 1; }
    grep -q 'Drift on' "$PR/drift-removed.md"
}
deploy_fixes_drift() {
    ci_script "$E2E/project" deploy.sh "$STACK" "$PR/deploy.md" || return 1
    cat "$PR/deploy.md"
    grep -q 'succeeded' "$PR/deploy.md" && back_within "$STACK" "$HTTPS_PORT" 120 "after the drift" && drift fixed
}
check "P1. scripts/ci/preview.sh with the policy pack passes; the comment has its marker, the policy results and the diff" preview_passes
check "P2. a program change that publishes PostgreSQL's port: the same script fails the preview with the mandatory policy's message" preview_blocked
check "P3. scripts/ci/drift.sh finds no drift on the deployed stack" no_drift
check "P4. after docker rm -f of an app container, scripts/ci/drift.sh fails with the drift" drift_after_rm
check "P5. scripts/ci/deploy.sh (pulumi up with the policy pack) puts the container back; drift.sh passes again" deploy_fixes_drift
