#!/usr/bin/env bash
# Lints the GitHub Actions workflows with actionlint (built from its Go module at a pinned version, once, into
# ~/.cache/vps-stack/tools) and the CI scripts with shellcheck when it is installed (actionlint then also
# checks the workflows' run: blocks with it). `npm run lint:workflows`; .ci/run counts it as one check.
set -euo pipefail

ACTIONLINT_VERSION=v1.7.12
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
cache=${VPS_STACK_TOOLS:-$HOME/.cache/vps-stack/tools}/actionlint-$ACTIONLINT_VERSION
actionlint=$cache/actionlint

if [ ! -x "$actionlint" ]; then
    command -v go >/dev/null 2>&1 || { echo "lint-workflows: go is needed once, to build actionlint $ACTIONLINT_VERSION" >&2; exit 2; }
    echo "==> building actionlint $ACTIONLINT_VERSION into $cache" >&2
    mkdir -p "$cache"
    # Built in a scratch GOBIN, then moved: a build killed halfway never leaves a binary that looks finished.
    scratch=$(mktemp -d)
    trap 'rm -rf "$scratch"' EXIT
    GOBIN=$scratch CGO_ENABLED=0 GOFLAGS=-mod=mod go install -trimpath "github.com/rhysd/actionlint/cmd/actionlint@$ACTIONLINT_VERSION"
    mv "$scratch/actionlint" "$actionlint"
fi

cd "$root"
status=0
mapfile -t workflows < <(find .github/workflows -maxdepth 1 -type f \( -name '*.yml' -o -name '*.yaml' \) | sort)
[ "${#workflows[@]}" -gt 0 ] || { echo "lint-workflows: no workflow in .github/workflows" >&2; exit 1; }
if "$actionlint" -no-color "${workflows[@]}"; then
    echo "actionlint $ACTIONLINT_VERSION: ${#workflows[@]} workflows clean"
else
    status=1
fi

if command -v shellcheck >/dev/null 2>&1; then
    if shellcheck -x scripts/*.sh scripts/ci/*.sh; then
        echo "shellcheck: scripts/ and scripts/ci clean"
    else
        status=1
    fi
else
    echo "lint-workflows: shellcheck is not installed; scripts/ci not checked (bash .ci/install-tools.sh installs it)" >&2
fi

# Every action pinned to a full commit (a tag can be moved to other code), with the version it is beside it.
while IFS= read -r line; do
    echo "not pinned to a full commit SHA with a '# vX.Y.Z' comment: $line" >&2
    status=1
done < <(grep -HnE '^[[:space:]]*(-[[:space:]]+)?uses:' "${workflows[@]}" | grep -vE 'uses:[[:space:]]*[^@[:space:]]+@[0-9a-f]{40}[[:space:]]+#[[:space:]]*v[0-9]+\.[0-9]+\.[0-9]+' | grep -vE 'uses:[[:space:]]*\./' || true)

exit "$status"
