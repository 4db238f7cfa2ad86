#!/usr/bin/env bash
# shellcheck disable=SC2016 # backticks in the report are markdown, not command substitution
# Drift check of one stack, as the nightly workflow runs it: `pulumi refresh --preview-only
# --expect-no-changes` reads every resource on the host and compares it with the stack's state, changing
# neither. Exit 0: no drift; 1: drift (a container removed or changed by hand, ...); 2: the check itself
# could not run (host unreachable, backend, passphrase). Writes a markdown report either way.
#
# Usage: scripts/ci/drift.sh <stack> [report file]     (default: ./drift-<stack>.md)
# Environment: see lib.sh (backend, passphrase, deploy key).
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

stack=$(ci_stack_arg "${1:-}")
out=$(ci_abs_path "${2:-drift-${stack//\//-}.md}")
log=$(mktemp)
trap 'rm -f "$log"; ci_cleanup' EXIT

ci_prepare

ci_say "pulumi refresh --stack $stack --preview-only --expect-no-changes"
set +e
# PULUMI_SKIP_CONFIRMATIONS means --yes, which the CLI refuses with --preview-only.
env -u PULUMI_SKIP_CONFIRMATIONS pulumi refresh --stack "$stack" --preview-only --expect-no-changes --diff --non-interactive --color never 2>&1 | tee "$log"
status=${PIPESTATUS[0]}
set -e

summary=$(ci_extract summary "$log")
errors=$(ci_extract errors "$log")
# The summary's counts decide, not the exit code alone: a refresh that could not reach the host fails too,
# and that is not drift but a broken check.
if grep -Eq '[0-9]+ to (create|update|delete|replace)|[0-9]+ (created|updated|deleted|replaced)' <<<"$summary"; then
    result=1
elif [ "$status" -ne 0 ]; then
    result=2
else
    result=0
fi

{
    case "$result" in
        0) printf '### ✅ No drift on **%s**\n\nEvery resource on the host matches the stack'"'"'s state.\n\n' "$stack" ;;
        1) printf '### ❌ Drift on **%s**\n\nThe host differs from the stack'"'"'s state. Look at the changes below; `pulumi up --stack %s` puts the host back as the program describes it (or change the program to keep what was done by hand).\n\n' "$stack" "$stack" ;;
        *) printf '### ❌ The drift check of **%s** could not run (exit %s)\n\n' "$stack" "$status" ;;
    esac
    if [ -n "${GITHUB_SHA:-}" ]; then
        printf 'Commit `%s`. %s\n\n' "$GITHUB_SHA" "$(ci_run_link)"
    fi
    [ -z "$errors" ] || printf '#### Errors\n\n````text\n%s\n````\n\n' "$errors"
    printf '#### Refresh summary\n\n````text\n%s\n````\n\n' "${summary:-(no summary)}"
    if [ "$result" -ne 0 ]; then
        printf '<details><summary>What differs</summary>\n\n````diff\n'
        ci_tail_chars "$log" 50000 | { grep -v '^warning: using pulumi-' || true; } | sed 's/````/```/g'
        printf '````\n\n</details>\n'
    fi
} >"$out"

if [ -n "${GITHUB_STEP_SUMMARY:-}" ]; then
    cat "$out" >>"$GITHUB_STEP_SUMMARY"
fi
case "$result" in
    1) printf '%s\n' "drift: the $stack stack's host differs from its state (report: $out)" >&2 ;;
    2) printf '%s\n' "drift check failed to run on the $stack stack (report: $out)" >&2 ;;
esac
exit "$result"
