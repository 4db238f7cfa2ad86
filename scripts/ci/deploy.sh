#!/usr/bin/env bash
# shellcheck disable=SC2016 # backticks in the summary are markdown, not command substitution
# `pulumi up` of one stack with the policy pack, as the workflow runs it on main: a mandatory violation stops
# the deploy before any change. Writes a short markdown summary (policies, errors, changes) for the run.
#
# Usage: scripts/ci/deploy.sh <stack> [summary file]     (default: ./deploy-<stack>.md)
# Environment: see lib.sh (backend, passphrase, deploy key); POLICY_PACK_CONFIG for a policy config file.
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

stack=$(ci_stack_arg "${1:-}")
out=$(ci_abs_path "${2:-deploy-${stack//\//-}.md}")
log=$(mktemp)
trap 'rm -f "$log"; ci_cleanup' EXIT

ci_prepare
policy_args=$(ci_policy_args "$stack")
mapfile -t policy <<<"$policy_args"

ci_say "pulumi up --stack $stack ${policy[*]}"
set +e
# With its preview (no --skip-preview): stack policies judge the whole plan there, before any change.
pulumi up --stack "$stack" --yes --non-interactive --color never "${policy[@]}" 2>&1 | tee "$log"
status=${PIPESTATUS[0]}
set -e

violations=$(ci_extract violations "$log")
errors=$(ci_extract errors "$log")
summary=$(ci_extract summary "$log")
{
    if [ "$status" -eq 0 ]; then
        printf '### ✅ `pulumi up` of **%s** succeeded\n\n' "$stack"
    else
        printf '### ❌ `pulumi up` of **%s** failed (exit %s)\n\n' "$stack" "$status"
    fi
    [ -z "$violations" ] || printf '#### Policies\n\n%s\n\n' "$violations"
    [ -z "$errors" ] || printf '#### Errors\n\n````text\n%s\n````\n\n' "$errors"
    printf '#### Changes\n\n````text\n%s\n````\n' "${summary:-(no summary: the update did not finish)}"
} >"$out"

if [ -n "${GITHUB_STEP_SUMMARY:-}" ]; then
    cat "$out" >>"$GITHUB_STEP_SUMMARY"
fi
exit "$status"
