#!/usr/bin/env bash
# Provides the Pulumi toolchain the end-to-end tests need and prints the
# directory that holds it (and nothing else) on stdout:
#
#   PATH="$(bash e2e/toolchain.sh):$PATH"
#
# The directory holds `pulumi`, `pulumi-language-nodejs` and the resource
# plugins `pulumi-resource-{command,docker,random,tls}`, which the engine picks
# up from $PATH, so no plugin is ever downloaded.
#
# 1. If a `pulumi` on PATH reports v$PULUMI_VERSION and every plugin is either on
#    PATH or in the plugin cache ($PULUMI_HOME/plugins) at the pinned version,
#    the directory of that `pulumi` is printed and nothing is built.
# 2. Otherwise each binary is compiled from Go modules (module proxy only) into
#    ${VPS_STACK_CACHE:-$HOME/.cache/vps-stack}/e2e/bin. A binary whose recorded
#    stamp (version + hash of its build recipe and sources) still matches is kept,
#    so a warm run takes about a second.
#
# What is upstream and what is built here (see e2e/toolchain/README.md):
# - `pulumi`: the real pulumi/pkg/v3 cmd/pulumi, through a wrapper module in
#   e2e/toolchain/pulumi whose go.sum is committed.
# - `pulumi-language-nodejs` and `pulumi-resource-command`: Pulumi's own,
#   unmodified sources at the pinned tags, from the archives in ../shared/vendor
#   (outside the repo; $VPS_STACK_VENDOR overrides the folder), unpacked and built
#   under the cache. Their stamp is the archive's sha256.
# - `pulumi-resource-{docker,random,tls}`: the upstream Terraform providers
#   bridged here (e2e/toolchain/providers), since their Pulumi provider modules are
#   not served by the Go module proxy.
#
# Environment:
#   VPS_STACK_CACHE                  cache root (default $HOME/.cache/vps-stack)
#   VPS_STACK_VENDOR                 folder of the upstream archives (default <repo>/../shared/vendor)
#   VPS_STACK_TOOLCHAIN_FORCE_BUILD  1 = ignore a pulumi found on PATH
#   GO                               go binary (default: go on PATH, then /usr/local/go/bin/go)
set -euo pipefail

# Everything but the final path goes to stderr.
exec 3>&1 1>&2

PULUMI_VERSION=3.248.0
# name|version|source|package|-X flags
# source: a wrapper module under e2e/toolchain, or vendor:ARCHIVE:DIR (an upstream archive in the vendor
# folder and the module's directory inside it).
RECIPES=(
  "pulumi|${PULUMI_VERSION}|pulumi|github.com/pulumi/pulumi/pkg/v3/cmd/pulumi|github.com/pulumi/pulumi/sdk/v3/go/common/version.Version=v${PULUMI_VERSION}"
  "pulumi-language-nodejs|${PULUMI_VERSION}|vendor:pulumi-language-nodejs-v${PULUMI_VERSION}.tar.gz:pulumi-language-nodejs-v${PULUMI_VERSION}/sdk/nodejs/cmd/pulumi-language-nodejs|.|github.com/pulumi/pulumi/sdk/v3/go/common/version.Version=v${PULUMI_VERSION}"
  "pulumi-resource-command|1.2.1|vendor:pulumi-command-v1.2.1.tar.gz:pulumi-command-v1.2.1/provider|./cmd/pulumi-resource-command|github.com/pulumi/pulumi-command/provider/pkg/version.Version=1.2.1"
  "pulumi-resource-docker|4.11.2|providers|./cmd/pulumi-resource-docker|vps-stack/e2e/toolchain/providers/internal/version.Version=4.11.2"
  "pulumi-resource-random|4.21.2|providers|./cmd/pulumi-resource-random|vps-stack/e2e/toolchain/providers/internal/version.Version=4.21.2"
  "pulumi-resource-tls|5.6.1|providers|./cmd/pulumi-resource-tls|vps-stack/e2e/toolchain/providers/internal/version.Version=5.6.1"
)
GO_MIN_VERSION=1.25.11 # highest `go` directive among the wrapper modules

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
SRC_ROOT="$HERE/toolchain"
VENDOR_DIR="${VPS_STACK_VENDOR:-$HERE/../../shared/vendor}"
CACHE_ROOT="${VPS_STACK_CACHE:-${HOME:?HOME is not set}/.cache/vps-stack}/e2e"
BIN_DIR="$CACHE_ROOT/bin"
STAMP_DIR="$BIN_DIR/.stamps"
WORK_DIR="$CACHE_ROOT/src"

log() { printf '[toolchain] %s\n' "$*"; }
die() {
  printf '[toolchain] error: %s\n' "$*"
  exit 1
}

field() { # field RECIPE INDEX
  local IFS='|'
  # shellcheck disable=SC2206
  local parts=($1)
  printf '%s' "${parts[$2]}"
}

# Warn when package.json pins different SDK versions than the plugins built here.
check_package_json() {
  local pkg="$HERE/../package.json" want got name
  [[ -f "$pkg" ]] && command -v node >/dev/null 2>&1 || return 0
  for want in pulumi@${PULUMI_VERSION} command@1.2.1 docker@4.11.2 random@4.21.2 tls@5.6.1; do
    name="${want%@*}"
    got="$(node -e 'const d=require(process.argv[1]).dependencies||{};process.stdout.write(String(d["@pulumi/"+process.argv[2]]||""))' "$pkg" "$name" 2>/dev/null || true)"
    if [[ -n "$got" && "${got#^}" != "${want#*@}" ]]; then
      log "warning: package.json pins @pulumi/$name $got but e2e/toolchain.sh builds ${want#*@}; update RECIPES and e2e/toolchain/"
    fi
  done
}

# ---------------------------------------------------------------- 1. PATH
plugin_available() { # plugin_available BINARY VERSION
  local bin="$1" version="$2" home="${PULUMI_HOME:-$HOME/.pulumi}"
  command -v "$bin" >/dev/null 2>&1 && return 0
  [[ -x "$home/plugins/resource-${bin#pulumi-resource-}-v$version/$bin" ]]
}

use_existing_pulumi() {
  [[ "${VPS_STACK_TOOLCHAIN_FORCE_BUILD:-}" == 1 ]] && return 1
  local found dir version r name
  found="$(command -v pulumi 2>/dev/null)" || return 1
  dir="$(cd "$(dirname "$found")" && pwd -P)"
  # Our own cache dir on PATH goes through the stamp checks below instead.
  [[ -d "$BIN_DIR" && "$dir" == "$(cd "$BIN_DIR" && pwd -P)" ]] && return 1
  version="$(PULUMI_SKIP_UPDATE_CHECK=true pulumi version 2>/dev/null | tr -d '[:space:]')" || return 1
  if [[ "$version" != "v$PULUMI_VERSION" ]]; then
    log "ignoring pulumi $version at $found (need v$PULUMI_VERSION)"
    return 1
  fi
  [[ -x "$dir/pulumi-language-nodejs" ]] || command -v pulumi-language-nodejs >/dev/null 2>&1 || {
    log "pulumi at $found has no pulumi-language-nodejs next to it or on PATH"
    return 1
  }
  for r in "${RECIPES[@]}"; do
    name="$(field "$r" 0)"
    [[ "$name" == pulumi-resource-* ]] || continue
    plugin_available "$name" "$(field "$r" 1)" || {
      log "pulumi at $found is usable but $name v$(field "$r" 1) is neither on PATH nor in the plugin cache"
      return 1
    }
  done
  log "using pulumi v$PULUMI_VERSION and its plugins found at $dir"
  printf '%s\n' "$dir" >&3
  return 0
}

# ---------------------------------------------------------------- 2. build
find_go() {
  local candidate
  for candidate in "${GO:-}" "$(command -v go 2>/dev/null || true)" /usr/local/go/bin/go; do
    [[ -n "$candidate" && -x "$candidate" ]] && {
      printf '%s' "$candidate"
      return 0
    }
  done
  return 1
}

version_ge() { # version_ge A B -> A >= B
  [[ "$(printf '%s\n%s\n' "$2" "$1" | sort -V | head -n1)" == "$2" ]]
}

vendor_archive() { # vendor_archive RECIPE -> path of its upstream archive
  local source
  source="$(field "$1" 2)"
  source="${source#vendor:}"
  printf '%s/%s' "$VENDOR_DIR" "${source%%:*}"
}

fingerprint() { # fingerprint RECIPE -> hash of recipe + wrapper module sources or upstream archive
  local module
  module="$(field "$1" 2)"
  {
    printf '%s\n' "$1"
    if [[ "$module" == vendor:* ]]; then
      sha256sum <"$(vendor_archive "$1")" || die "missing upstream archive $(vendor_archive "$1") (the vendor folder beside the repo, or set VPS_STACK_VENDOR)"
    else
      (cd "$SRC_ROOT/$module" && find . -type f \( -name '*.go' -o -name 'go.mod' -o -name 'go.sum' \) -print0 |
        LC_ALL=C sort -z | xargs -0 sha256sum)
    fi
  } | sha256sum | cut -d' ' -f1
}

is_current() { # is_current RECIPE
  local name stamp
  name="$(field "$1" 0)"
  stamp="$STAMP_DIR/$name"
  [[ -x "$BIN_DIR/$name" && -f "$stamp" ]] || return 1
  [[ "$(cat "$stamp")" == "$(field "$1" 1) $(fingerprint "$1")" ]]
}

# Copies a wrapper module out of the repo so that builds never write into it.
stage_module() { # stage_module MODULE -> staged dir
  local module="$1" dest="$WORK_DIR/$1"
  rm -rf "$dest"
  mkdir -p "$WORK_DIR"
  cp -R "$SRC_ROOT/$module" "$dest"
  printf '%s' "$dest"
}

go_build() { # go_build DIR OUT PACKAGE XFLAG [EXTRA GO BUILD FLAGS...]
  local dir="$1" out="$2" pkg="$3" xflag="$4" start
  shift 4
  start=$(date +%s)
  (cd "$dir" && "$GO_BIN" build -trimpath -buildvcs=false "$@" -ldflags "-s -w -X $xflag" -o "$out" "$pkg") ||
    die "go build of $pkg failed (in $dir); see the messages above"
  local shown
  shown="$(basename "$out" .tmp)"
  log "built ${shown#.} in $(($(date +%s) - start))s"
}

install_binary() { # install_binary RECIPE TMPFILE
  local name
  name="$(field "$1" 0)"
  chmod 0755 "$2"
  mv -f "$2" "$BIN_DIR/$name"
  printf '%s %s\n' "$(field "$1" 1)" "$(fingerprint "$1")" >"$STAMP_DIR/$name"
}

build_simple() { # build_simple RECIPE
  local r="$1" name dir
  name="$(field "$r" 0)"
  log "building $name v$(field "$r" 1) ..."
  dir="$(stage_module "$(field "$r" 2)")"
  go_build "$dir" "$BIN_DIR/.$name.tmp" "$(field "$r" 3)" "$(field "$r" 4)"
  install_binary "$r" "$BIN_DIR/.$name.tmp"
}

# Builds one of Pulumi's own plugins from its unmodified upstream archive, as its README says: the
# language host's go.mod points pkg/v3 and sdk/v3 at the monorepo, so it is pointed at the released
# modules of the same version instead (the only change, made to the unpacked copy under the cache).
build_vendor() { # build_vendor RECIPE
  local r="$1" name archive source dir tags=()
  name="$(field "$r" 0)"
  archive="$(vendor_archive "$r")"
  [[ -f "$archive" ]] || die "missing upstream archive $archive (the vendor folder beside the repo, or set VPS_STACK_VENDOR)"
  source="$(field "$r" 2)"
  dir="$WORK_DIR/$name/${source##*:}"
  log "building $name v$(field "$r" 1) from $(basename "$archive") (upstream source) ..."
  rm -rf "${WORK_DIR:?}/$name"
  mkdir -p "$WORK_DIR/$name"
  tar -xzf "$archive" -C "$WORK_DIR/$name" || die "cannot unpack $archive"
  if [[ "$name" == pulumi-language-nodejs ]]; then
    (cd "$dir" && "$GO_BIN" mod edit -dropreplace github.com/pulumi/pulumi/pkg/v3 -dropreplace github.com/pulumi/pulumi/sdk/v3 \
      -require "github.com/pulumi/pulumi/pkg/v3@v$PULUMI_VERSION" -require "github.com/pulumi/pulumi/sdk/v3@v$PULUMI_VERSION") ||
      die "cannot point $name at the released pulumi modules"
    tags=(-tags osusergo,grpcnotrace)
  fi
  go_build "$dir" "$BIN_DIR/.$name.tmp" "$(field "$r" 3)" "$(field "$r" 4)" ${tags[@]+"${tags[@]}"}
  install_binary "$r" "$BIN_DIR/.$name.tmp"
}

build_bridged() { # build_bridged RECIPE... (all from the "providers" module)
  local dir r name start
  dir="$(stage_module providers)"
  log "building the schema generator for the bridged providers ..."
  go_build "$dir" "$dir/gen-schema" ./cmd/gen-schema "vps-stack/e2e/toolchain/providers/internal/version.Version=0.0.0"
  for r in "$@"; do
    name="$(field "$r" 0)"
    start=$(date +%s)
    "$dir/gen-schema" "${name#pulumi-resource-}" "$(field "$r" 1)" "$dir/cmd/$name/schema.json" 2>"$dir/gen-schema-$name.log" ||
      die "could not generate the schema of $name: $(tail -n 20 "$dir/gen-schema-$name.log")"
    log "building $name v$(field "$r" 1) ..."
    go_build "$dir" "$BIN_DIR/.$name.tmp" "$(field "$r" 3)" "$(field "$r" 4)"
    install_binary "$r" "$BIN_DIR/.$name.tmp"
  done
}

main() {
  check_package_json
  if use_existing_pulumi; then
    return 0
  fi

  mkdir -p "$BIN_DIR" "$STAMP_DIR"
  # Serialise concurrent runs (e.g. parallel test workers) on one cache.
  if command -v flock >/dev/null 2>&1; then
    exec 9>"$CACHE_ROOT/.lock"
    flock 9
  fi

  local r name pending=() vendored=() bridged=()
  for r in "${RECIPES[@]}"; do
    name="$(field "$r" 0)"
    if is_current "$r"; then
      continue
    fi
    case "$(field "$r" 2)" in
      providers) bridged+=("$r") ;;
      vendor:*) vendored+=("$r") ;;
      *) pending+=("$r") ;;
    esac
  done

  if ((${#pending[@]} + ${#vendored[@]} + ${#bridged[@]} > 0)); then
    GO_BIN="$(find_go)" || die "Go $GO_MIN_VERSION+ is needed to build the Pulumi toolchain, but no go binary was found (set GO=/path/to/go)"
    local go_version
    go_version="$("$GO_BIN" env GOVERSION)"
    go_version="${go_version#go}"
    version_ge "$go_version" "$GO_MIN_VERSION" ||
      die "Go $GO_MIN_VERSION+ is needed, $GO_BIN is $go_version"
    # -mod=mod: go.sum files are committed and verify every download. The
    # checksum database does not know several pinned pseudo-versions, so it is
    # off unless the caller chose one; GOTOOLCHAIN=local avoids toolchain downloads.
    export GOFLAGS=-mod=mod GOTOOLCHAIN=local CGO_ENABLED=0 GOSUMDB="${GOSUMDB:-off}"
    log "building into $BIN_DIR with $GO_BIN ($go_version); a cold build takes several minutes"
    local total_start
    total_start=$(date +%s)
    for r in ${pending[@]+"${pending[@]}"}; do build_simple "$r"; done
    for r in ${vendored[@]+"${vendored[@]}"}; do build_vendor "$r"; done
    if ((${#bridged[@]} > 0)); then build_bridged "${bridged[@]}"; fi
    rm -rf "$WORK_DIR"
    log "toolchain ready in $(($(date +%s) - total_start))s"
  fi

  local got
  got="$(PULUMI_SKIP_UPDATE_CHECK=true "$BIN_DIR/pulumi" version 2>/dev/null | tr -d '[:space:]')" ||
    die "$BIN_DIR/pulumi does not run"
  [[ "$got" == "v$PULUMI_VERSION" ]] || die "$BIN_DIR/pulumi reports $got, expected v$PULUMI_VERSION"
  printf '%s\n' "$BIN_DIR" >&3
}

main "$@"
