#!/usr/bin/env bash
# End to end, a VPS in a box: the real Pulumi CLI and plugins deploy the whole program over real SSH
# (a private sshd on 127.0.0.1, a deploy user in the docker group, a pinned host key) onto a real Docker
# engine, then check it over HTTPS, change it, add a second stack beside it, back up and restore, and
# destroy it. Every check is a named PASS/FAIL line; the last line is "N passed, N failed".
#
#   npm run test:e2e                              every phase (needs root: sshd, a user, dockerd)
#   bash e2e/run.sh --only releases,faults        the setup phases, these, and destroy
#   bash e2e/run.sh --list                        the phases, in order
#   VPS_STACK_E2E_KEEP=1 npm run test:e2e          keep the temporary directory for inspection
#
# Layout: lib/harness.sh (checks, phases, cleanup), lib/stack.sh (stacks on the box), lib/acme.sh (an
# ACME CA), lib/load.js (the load generator), phases/NN-name.sh (one file a phase, run in order, all in
# this shell so later phases see what earlier ones set).
set -uo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PHASE_DIR="$ROOT/e2e/phases"
# Phases that every run needs: the tools, the box, a deployed stack, and its removal at the end.
ALWAYS=" toolchain images box first-up destroy "
# What a phase assumes an earlier phase did, for --only (faults and releases start from the update's image 2).
declare -A NEEDS=([faults]="update" [releases]="update")

phase_of() { local b; b=$(basename "$1" .sh); echo "${b#[0-9][0-9]-}"; }
all_phases() { local f; for f in "$PHASE_DIR"/[0-9][0-9]-*.sh; do phase_of "$f"; done; }

ONLY=""
while [ $# -gt 0 ]; do
    case "$1" in
    --only) ONLY=" ${2//,/ } "; shift 2 ;;
    --only=*) ONLY=" ${1#--only=} "; ONLY=${ONLY//,/ }; shift ;;
    --list) all_phases; exit 0 ;;
    -h | --help) sed -n '2,14p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "e2e/run.sh: unknown argument '$1' (try --list, --only PHASE[,PHASE])" >&2; exit 2 ;;
    esac
done
if [ -n "$ONLY" ]; then
    known=" $(all_phases | tr '\n' ' ') "
    for p in $ONLY; do
        [[ $known == *" $p "* ]] || { echo "e2e/run.sh: no phase '$p'; the phases are: $(all_phases | tr '\n' ' ')" >&2; exit 2; }
        [ -n "${NEEDS[$p]:-}" ] && ONLY="$ONLY${NEEDS[$p]} "
    done
fi
selected() { [ -z "$ONLY" ] || [[ $ALWAYS == *" $1 "* ]] || [[ $ONLY == *" $1 "* ]]; }

# shellcheck source=e2e/lib/harness.sh
source "$ROOT/e2e/lib/harness.sh"
# shellcheck source=e2e/lib/stack.sh
source "$ROOT/e2e/lib/stack.sh"
# shellcheck source=e2e/lib/acme.sh
source "$ROOT/e2e/lib/acme.sh"

say "vps-stack end-to-end (log: $LOG)${ONLY:+, only:$ONLY}"
[ "$(id -u)" = 0 ] || fatal "needs root (it runs sshd, adds a deploy user and starts dockerd)"

for f in "$PHASE_DIR"/[0-9][0-9]-*.sh; do
    selected "$(phase_of "$f")" || continue
    # shellcheck disable=SC1090 # one file a phase
    source "$f"
done
finish
