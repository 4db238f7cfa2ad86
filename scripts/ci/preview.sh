#!/usr/bin/env bash
# shellcheck disable=SC2016 # backticks in the comment body are markdown, not command substitution
# `pulumi preview --diff` of one stack with the policy pack, as the pull-request workflow runs it. Writes the
# pull request's comment body (policy results, errors, the change summary, then the diff) and fails when the
# preview does: a config error, a mandatory policy violation, a host that cannot be reached.
#
# Usage: scripts/ci/preview.sh <stack> [comment file]     (default: ./preview-<stack>.md)
# Environment: see lib.sh (backend, passphrase, deploy key); POLICY_PACK_CONFIG for a policy config file.
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

stack=$(ci_stack_arg "${1:-}")
out=$(ci_abs_path "${2:-preview-${stack//\//-}.md}")
log=$(mktemp)
trap 'rm -f "$log"; ci_cleanup' EXIT

ci_prepare
policy_args=$(ci_policy_args "$stack")
mapfile -t policy <<<"$policy_args"

ci_say "pulumi preview --stack $stack --diff ${policy[*]}"
set +e
pulumi preview --stack "$stack" --diff --non-interactive --color never "${policy[@]}" 2>&1 | tee "$log"
status=${PIPESTATUS[0]}
set -e

violations=$(ci_extract violations "$log")
errors=$(ci_extract errors "$log")
summary=$(ci_extract summary "$log")
# A mandatory violation always fails the check, whatever the CLI's exit code says.
if [ "$status" -eq 0 ] && grep -q '\[mandatory\]' <<<"$violations"; then
    status=1
fi

{
    # The workflow finds this comment again by this marker and edits it, so each stack keeps one comment.
    printf '<!-- vps-stack-preview:%s -->\n' "$stack"
    if [ "$status" -eq 0 ]; then
        printf '### ✅ `pulumi preview` of **%s** passed\n\n' "$stack"
    else
        printf '### ❌ `pulumi preview` of **%s** failed (exit %s)\n\n' "$stack" "$status"
    fi
    if [ -n "${GITHUB_SHA:-}" ]; then
        printf 'Commit `%s`. %s\n\n' "${PREVIEW_COMMIT:-$GITHUB_SHA}" "$(ci_run_link)"
    fi
    printf '#### Policies\n\n'
    if [ -n "$violations" ]; then
        printf 'Mandatory violations block the merge; advisory ones are advice.\n\n'
        printf '%s\n\n' "$violations"
    elif grep -q '^Policy Packs run:' "$log"; then
        printf 'No violation: every policy of the pack passed.\n\n'
    else
        printf 'The policy pack did not run: the preview stopped before it (see the errors and the output below).\n\n'
    fi
    if [ -n "$errors" ]; then
        printf '#### Errors\n\n````text\n%s\n````\n\n' "$errors"
    fi
    printf '#### Changes\n\n````text\n%s\n````\n\n' "${summary:-(no summary: the preview did not finish)}"
    printf '<details><summary>Full diff</summary>\n\n````diff\n'
    # The plugin notices say where each provider came from, not what changes.
    ci_tail_chars "$log" 50000 | { grep -v '^warning: using pulumi-' || true; } | sed 's/````/```/g'
    printf '````\n\n</details>\n'
} >"$out"

if [ -n "${GITHUB_STEP_SUMMARY:-}" ]; then
    cat "$out" >>"$GITHUB_STEP_SUMMARY"
fi
ci_say "comment body: $out"
exit "$status"
