#!/usr/bin/env bash
# Rolls an app back to its previous release: the image it ran before, through the same health-gated
# release as any deploy (`pulumi up`), with no registry involved (the host keeps the last images).
#
#   scripts/rollback.sh [--stack STACK] [--app APP] [--to IMAGE] [--yes]
#
# The history comes from the host (the `releases` output's history command: one line per release that
# went live: time, release id, image, image id, repository digest). The previous release is the newest
# line whose image differs from the running one; --to picks an image yourself. The image is written into
# the stack's config (apps[i].image, by repository digest when the image has one), so the rollback stays
# in force until you deploy another version. Extra ssh options (e.g. -i KEY): VPS_STACK_SSH_OPTIONS.
set -euo pipefail

stack_args=()
app=
to=
yes=
while [ $# -gt 0 ]; do
    case "$1" in
        --stack) stack_args=(--stack "$2"); shift 2 ;;
        --app) app=$2; shift 2 ;;
        --to) to=$2; shift 2 ;;
        --yes) yes=1; shift ;;
        -h|--help) sed -n '2,12p' "$0"; exit 0 ;;
        *) echo "rollback: unknown argument $1 (see --help)" >&2; exit 2 ;;
    esac
done

releases=$(pulumi stack output ${stack_args[@]+"${stack_args[@]}"} releases --json) || { echo "rollback: no releases output (deploy the stack first)" >&2; exit 1; }
apps=$(node -e 'console.log(Object.keys(JSON.parse(process.argv[1])).join(" "))' "$releases")
if [ -z "$app" ]; then
    read -ra names <<<"$apps"
    [ "${#names[@]}" -eq 1 ] || { echo "rollback: the stack has several apps ($apps): choose one with --app" >&2; exit 2; }
    app=${names[0]}
fi
field() { node -e 'const r = JSON.parse(process.argv[1])[process.argv[2]]; if (!r) process.exit(3); console.log(r[process.argv[3]] ?? "")' "$releases" "$app" "$1"; }
current=$(field image) || { echo "rollback: no app $app in this stack (apps: $apps)" >&2; exit 2; }
index=$(field index)
history_cmd=$(field history)
if [[ $history_cmd == ssh\ * ]]; then history_cmd="ssh ${VPS_STACK_SSH_OPTIONS:-} ${history_cmd#ssh }"; fi
history=$(sh -c "$history_cmd") || { echo "rollback: cannot read the release history ($history_cmd)" >&2; exit 1; }

if [ -z "$to" ]; then
    # The running release's image is known by its id (a tag may have moved, a digest is written
    # differently); the previous release is the newest line with another image id. awk reads it all and
    # walks back, so no line is cut off (tac is not everywhere, and a pipe closed early fails the script).
    release_id=$(field release)
    line=$(printf '%s\n' "$history" | awk -v rel="$release_id" -v cur="$current" '
        NF >= 5 { n++; l[n] = $0; id[n] = $4; if ($2 == rel) live = $4; if ($3 == cur && live == "") guess = $4 }
        END { if (live == "") live = guess; for (i = n; i >= 1; i--) if (id[i] != live) { print l[i]; exit } }')
    [ -n "$line" ] || { echo "rollback: app $app has no earlier release than $current on the host" >&2; exit 1; }
    read -r when release image _id digest <<<"$line"
    # A repository digest names exactly that image and is found on the host without a registry.
    to=$image
    [ "$digest" != "-" ] && to=$digest
    echo "rollback: app $app: $current -> $to (release $release, live since $when)"
else
    echo "rollback: app $app: $current -> $to"
fi
[ -n "$yes" ] || { read -r -p "Deploy it? [y/N] " answer; [ "$answer" = y ] || exit 1; }
pulumi config set ${stack_args[@]+"${stack_args[@]}"} --path "apps[$index].image" "$to"
pulumi up ${stack_args[@]+"${stack_args[@]}"} --yes --skip-preview
