#!/usr/bin/env bash
# Builds the local stand-in images that the end-to-end tests run when no container registry
# can be reached:
#   postgres:16-alpine  redis:7-alpine  nginx:1.27-alpine  vps-stack-demo-api:1  vps-stack-demo-api:2
#   certbot/certbot:v5.7.0  restic/restic:0.17.3
# from Debian bookworm packages (debootstrap + apt-get in a chroot + docker import). The image
# contracts are described in e2e/images/README.md.
#
# usage: e2e/images/build.sh [--force] [--list] [postgres|redis|nginx|demo-api|certbot|restic ...]
#
# Every image carries the label vps-stack.e2e.hash, a hash of its build inputs (this script,
# e2e/images/<image>/, and examples/demo-api/ for the demo API); an image whose tag already
# has the current hash is not rebuilt, so a warm run takes seconds. A tag that exists without
# that label (a real image pulled from a registry) is left alone unless
# VPS_STACK_E2E_REPLACE_IMAGES=1.
#
# Needs root (debootstrap, chroot, starting dockerd). Installs docker.io and debootstrap with
# apt-get when missing and starts dockerd in the background when `docker info` fails.
# The Debian mirror is the one the host's apt sources use (or VPS_STACK_APT_MIRROR and
# VPS_STACK_APT_SECURITY_MIRROR). Cache: ${VPS_STACK_CACHE:-~/.cache/vps-stack}/e2e/images/.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO_ROOT="$(cd "$HERE/../.." && pwd)"
SUITE=bookworm
BASE_REV=1 # bump when the base rootfs set-up below changes
HASH_LABEL=vps-stack.e2e.hash
CACHE_DIR="${VPS_STACK_CACHE:-${HOME:-/root}/.cache/vps-stack}/e2e/images"
LOG_DIR="$CACHE_DIR/logs"
DEB_CACHE="$CACHE_DIR/debs"
BASE="$CACHE_DIR/base-$SUITE-r$BASE_REV"
ALL_IMAGES=(postgres redis nginx demo-api certbot restic vps)
export DOCKER_BUILDKIT=0 # metadata-only `docker build` FROM the imported rootfs (see import_image)

image_tags() {
	case "$1" in
		postgres) echo "postgres:16-alpine" ;;
		redis) echo "redis:7-alpine" ;;
		nginx) echo "nginx:1.27-alpine" ;;
		demo-api) echo "vps-stack-demo-api:1 vps-stack-demo-api:2 vps-stack-demo-api:broken" ;;
		certbot) echo "certbot/certbot:v5.7.0" ;;
		restic) echo "restic/restic:0.17.3" ;;
		vps) echo "vps-stack-fresh-vps:bookworm" ;;
		*) return 1 ;;
	esac
}

# sources outside e2e/images/<image>/ that go into an image
image_extra_sources() {
	case "$1" in
		demo-api) echo "examples/demo-api" ;;
	esac
}

START_NS="$(date +%s%N)"
log() {
	local now
	now="$(date +%s%N)"
	printf '[e2e-images %s %6.1fs] %s\n' "$(date +%H:%M:%S)" "$(((now - START_NS) / 1000000))e-3" "$*" >&2
}
die() {
	log "ERROR: $*"
	exit 1
}

# run_logged LOGFILE CMD... - run quietly; on failure show the end of the log and stop
run_logged() {
	local logfile="$1"
	shift
	if ! "$@" >>"$logfile" 2>&1 </dev/null; then
		tail -n 40 "$logfile" >&2 || true
		die "failed: $* (full log: $logfile)"
	fi
}

# timed LABEL CMD... - run CMD and log how long it took
timed() {
	local label="$1" t0
	shift
	t0="$(date +%s%N)"
	"$@"
	log "$label: done in $(( ($(date +%s%N) - t0) / 1000000 ))ms"
}

usage() {
	sed -n '2,20p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'
}

FORCE=
REQUESTED=()
while [ "$#" -gt 0 ]; do
	case "$1" in
		--force) FORCE=1 ;;
		--list)
			for i in "${ALL_IMAGES[@]}"; do image_tags "$i" | tr ' ' '\n'; done
			exit 0
			;;
		-h | --help)
			usage
			exit 0
			;;
		-*) die "unknown option: $1 (see --help)" ;;
		*)
			image_tags "$1" >/dev/null || die "unknown image: $1 (one of: ${ALL_IMAGES[*]})"
			REQUESTED+=("$1")
			;;
	esac
	shift
done
[ "${#REQUESTED[@]}" -gt 0 ] || REQUESTED=("${ALL_IMAGES[@]}")

# ---------------------------------------------------------------------------------- host side
HOST_APT_UPDATED=
host_apt_install() {
	[ "$(id -u)" = 0 ] || die "need root to install $* (apt-get)"
	mkdir -p "$LOG_DIR"
	if [ -z "$HOST_APT_UPDATED" ]; then
		log "apt-get update (host)"
		run_logged "$LOG_DIR/host-apt.log" apt-get update
		HOST_APT_UPDATED=1
	fi
	log "apt-get install $* (host)"
	run_logged "$LOG_DIR/host-apt.log" env DEBIAN_FRONTEND=noninteractive apt-get install -y "$@"
}

dockerd_pid_alive() {
	local pid
	pid="$(cat /var/run/docker.pid 2>/dev/null || true)"
	[ -n "$pid" ] && kill -0 "$pid" 2>/dev/null
}

ensure_docker() {
	if command -v docker >/dev/null 2>&1 && docker info >/dev/null 2>&1; then
		return 0
	fi
	if ! command -v dockerd >/dev/null 2>&1 || ! command -v docker >/dev/null 2>&1; then
		host_apt_install docker.io
	fi
	if docker info >/dev/null 2>&1; then
		return 0
	fi
	case "${DOCKER_HOST:-unix:///var/run/docker.sock}" in
		unix:///var/run/docker.sock) ;;
		*) die "DOCKER_HOST=$DOCKER_HOST does not answer (docker info failed)" ;;
	esac
	[ "$(id -u)" = 0 ] || die "the Docker daemon is not running and starting it needs root"
	mkdir -p "$CACHE_DIR"
	local started_pid=
	if dockerd_pid_alive; then
		log "dockerd is running (pid $(cat /var/run/docker.pid)) but not answering yet; waiting"
	else
		log "starting dockerd in the background (log: $CACHE_DIR/dockerd.log)"
		setsid dockerd >>"$CACHE_DIR/dockerd.log" 2>&1 </dev/null &
		started_pid=$!
	fi
	local timeout="${VPS_STACK_DOCKERD_TIMEOUT:-90}" waited=0
	until docker info >/dev/null 2>&1; do
		if [ -n "$started_pid" ] && ! kill -0 "$started_pid" 2>/dev/null && ! dockerd_pid_alive; then
			tail -n 30 "$CACHE_DIR/dockerd.log" >&2 || true
			die "dockerd exited during start-up (log: $CACHE_DIR/dockerd.log)"
		fi
		if [ "$waited" -ge "$timeout" ]; then
			tail -n 30 "$CACHE_DIR/dockerd.log" >&2 || true
			die "the Docker daemon did not answer within ${timeout}s (VPS_STACK_DOCKERD_TIMEOUT; log: $CACHE_DIR/dockerd.log)"
		fi
		sleep 1
		waited=$((waited + 1))
	done
	log "dockerd is ready (${waited}s)"
}

# "URI SUITE" for every deb entry of the host's apt sources (one-line and deb822 formats)
apt_source_entries() {
	local f
	for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list; do
		[ -f "$f" ] || continue
		awk '$1 == "deb" {
			i = 2
			if ($i ~ /^\[/) { while (i <= NF && $i !~ /\]$/) i++; i++ }
			if (i + 1 <= NF) print $i, $(i + 1)
		}' "$f"
	done
	for f in /etc/apt/sources.list.d/*.sources; do
		[ -f "$f" ] || continue
		awk '
			function flush(   n, m, i, j, u, s) {
				if (types ~ /(^|[ \t])deb([ \t]|$)/ && enabled != "no") {
					n = split(uris, u, /[ \t]+/); m = split(suites, s, /[ \t]+/)
					for (i = 1; i <= n; i++) for (j = 1; j <= m; j++) if (u[i] != "" && s[j] != "") print u[i], s[j]
				}
				types = uris = suites = ""; enabled = "yes"
			}
			BEGIN { enabled = "yes" }
			/^[ \t]*#/ { next }
			/^[ \t]*$/ { flush(); next }
			/^[A-Za-z-]+:/ {
				key = tolower($0); sub(/:.*/, "", key)
				val = $0; sub(/^[^:]*:[ \t]*/, "", val)
				if (key == "types") types = val
				else if (key == "uris") uris = val
				else if (key == "suites") suites = val
				else if (key == "enabled") enabled = tolower(val)
			}
			END { flush() }' "$f"
	done
}

MIRROR=
SECURITY_MIRROR=
detect_mirrors() {
	if [ -n "${VPS_STACK_APT_MIRROR:-}" ]; then
		MIRROR="$VPS_STACK_APT_MIRROR"
		SECURITY_MIRROR="${VPS_STACK_APT_SECURITY_MIRROR:-}"
	else
		local entries codename
		entries="$(apt_source_entries)"
		codename="$( (. /etc/os-release && echo "${VERSION_CODENAME:-}") 2>/dev/null || true)"
		MIRROR="$(awk -v a="$SUITE" -v b="$codename" '$2 == a || $2 == b { print $1; exit }' <<<"$entries")"
		SECURITY_MIRROR="$(awk '$2 ~ /-security$/ || $2 ~ /\/updates$/ { print $1; exit }' <<<"$entries")"
		[ -n "$MIRROR" ] || die "found no Debian mirror in the host's apt sources; set VPS_STACK_APT_MIRROR"
	fi
	MIRROR="${MIRROR%/}"
	SECURITY_MIRROR="${SECURITY_MIRROR%/}"
}

# ------------------------------------------------------------------------------ hashes, tags
input_hash() { # input_hash IMAGE TAG
	local name="$1" tag="$2" paths
	# shellcheck disable=SC2207
	paths=(e2e/images/build.sh "e2e/images/$name" $(image_extra_sources "$name"))
	{
		echo "suite=$SUITE base=$BASE_REV tag=$tag"
		cd "$REPO_ROOT"
		find "${paths[@]}" -type f ! -name '*.pyc' ! -path '*/__pycache__/*' -print0 |
			LC_ALL=C sort -z |
			while IFS= read -r -d '' f; do
				# Only the exec bit: a clone and a working tree differ in the other mode bits.
				printf '%s %s %s\n' "$([ -x "$f" ] && echo x || echo -)" "$(sha256sum <"$f" | cut -d' ' -f1)" "$f"
			done
	} | sha256sum | cut -c1-32
}

tag_state() { # tag_state TAG HASH -> missing | current | stale | foreign
	local have
	if ! have="$(docker image inspect -f "{{ index .Config.Labels \"$HASH_LABEL\" }}" "$1" 2>/dev/null)"; then
		echo missing
	elif [ "$have" = "$2" ]; then
		echo current
	elif [ -z "$have" ] || [ "$have" = "<no value>" ]; then
		echo foreign
	else
		echo stale
	fi
}

# ------------------------------------------------------------------------------- chroot side
in_chroot() { # in_chroot ROOT CMD...
	local root="$1"
	shift
	chroot "$root" /usr/bin/env -i \
		PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
		HOME=/root LANG=C.UTF-8 DEBIAN_FRONTEND=noninteractive DEBCONF_NONINTERACTIVE_SEEN=true \
		"$@"
}

write_apt_sources() { # write_apt_sources ROOT
	{
		echo "deb $MIRROR $SUITE main"
		echo "deb $MIRROR $SUITE-updates main"
		if [ -n "$SECURITY_MIRROR" ]; then
			echo "deb $SECURITY_MIRROR $SUITE-security main"
		fi
	} >"$1/etc/apt/sources.list"
	rm -f "$1"/etc/apt/sources.list.d/*
	cp -L /etc/resolv.conf "$1/etc/resolv.conf" 2>/dev/null || true
}

create_base() {
	command -v debootstrap >/dev/null 2>&1 || host_apt_install debootstrap
	rm -rf "$BASE.tmp"
	log "debootstrap --variant=minbase $SUITE into $BASE (log: $LOG_DIR/debootstrap.log)"
	run_logged "$LOG_DIR/debootstrap.log" debootstrap --variant=minbase "$SUITE" "$BASE.tmp" "$MIRROR"
	# keep images small: no docs, man pages or translations from the packages installed later
	cat >"$BASE.tmp/etc/dpkg/dpkg.cfg.d/01-vps-stack-excludes" <<-'EOF'
		path-exclude=/usr/share/doc/*
		path-exclude=/usr/share/man/*
		path-exclude=/usr/share/info/*
		path-exclude=/usr/share/lintian/*
		path-exclude=/usr/share/locale/*
		path-include=/usr/share/locale/locale.alias
	EOF
	cat >"$BASE.tmp/etc/apt/apt.conf.d/01-vps-stack" <<-'EOF'
		APT::Install-Recommends "false";
		APT::Install-Suggests "false";
		Acquire::Languages "none";
	EOF
	# services must not start inside the chroot
	printf '#!/bin/sh\nexit 101\n' >"$BASE.tmp/usr/sbin/policy-rc.d"
	chmod 0755 "$BASE.tmp/usr/sbin/policy-rc.d"
	rm -rf "$BASE"
	mv "$BASE.tmp" "$BASE"
	touch "$BASE.ok"
}

BASE_READY=
prepare_base() {
	[ -z "$BASE_READY" ] || return 0
	if [ ! -f "$BASE.ok" ] || [ ! -d "$BASE" ]; then
		timed "base rootfs" create_base
	else
		log "base rootfs: cached ($BASE)"
	fi
	# debootstrap leaves its .deb files behind
	rm -f "$BASE"/var/cache/apt/archives/*.deb
	write_apt_sources "$BASE"
	log "apt-get update in the base rootfs"
	timed "apt-get update" run_logged "$LOG_DIR/base-apt.log" in_chroot "$BASE" apt-get update
	BASE_READY=1
}

# packages of an image: comments dropped; "name?" only when the mirror has it
image_packages() { # image_packages IMAGE ROOT
	local line
	sed -e 's/#.*//' -e 's/[[:space:]]//g' "$HERE/$1/packages" | while IFS= read -r line; do
		[ -n "$line" ] || continue
		case "$line" in
			*\?)
				if in_chroot "$2" apt-cache show "${line%\?}" >/dev/null 2>&1; then
					echo "${line%\?}"
				else
					log "$1: optional package ${line%\?} is not available on this mirror: skipped"
				fi
				;;
			*) echo "$line" ;;
		esac
	done
}

build_rootfs() { # build_rootfs IMAGE ROOT
	local name="$1" root="$2" logfile="$LOG_DIR/$1.log" pkgs f
	: >"$logfile"
	rm -rf "$root"
	mkdir -p "$(dirname "$root")" "$DEB_CACHE"
	timed "$name: copy base rootfs" cp -a "$BASE" "$root"
	cp "$HERE/$name/setup.sh" "$root/tmp/setup.sh"
	run_logged "$logfile" in_chroot "$root" sh -eu /tmp/setup.sh pre

	mapfile -t pkgs < <(image_packages "$name" "$root")
	log "$name: apt-get install ${pkgs[*]} (log: $logfile)"
	# .deb files are kept between builds, so a rebuild downloads only what changed
	find "$DEB_CACHE" -maxdepth 1 -name '*.deb' -exec cp -n -l -t "$root/var/cache/apt/archives/" {} + 2>/dev/null ||
		find "$DEB_CACHE" -maxdepth 1 -name '*.deb' -exec cp -n -t "$root/var/cache/apt/archives/" {} +
	timed "$name: apt-get install" run_logged "$logfile" in_chroot "$root" apt-get install -y \
		-o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold "${pkgs[@]}"
	for f in "$root"/var/cache/apt/archives/*.deb; do
		[ -e "$f" ] || continue
		[ -e "$DEB_CACHE/${f##*/}" ] || cp "$f" "$DEB_CACHE/"
	done

	if [ -d "$HERE/$name/rootfs" ]; then
		cp -a --no-preserve=ownership "$HERE/$name/rootfs/." "$root/"
	fi
	case "$name" in
		demo-api)
			mkdir -p "$root/app"
			cp "$REPO_ROOT/examples/demo-api/app.py" "$root/app/app.py"
			;;
	esac
	run_logged "$logfile" in_chroot "$root" sh -eu /tmp/setup.sh post

	# clean up what a Dockerfile-built image would not keep
	in_chroot "$root" apt-get clean
	rm -rf "$root"/var/lib/apt/lists/* "$root"/var/cache/apt/*.bin \
		"$root"/var/log/apt/* "$root"/var/log/dpkg.log "$root"/var/log/alternatives.log \
		"$root"/var/cache/debconf/*-old "$root"/var/lib/dpkg/*-old \
		"$root"/usr/share/doc/* "$root"/usr/share/man/* "$root"/usr/share/info/* \
		"$root"/usr/sbin/policy-rc.d "$root"/root/.bash_history "$root"/tmp/* "$root"/var/tmp/*
	: >"$root/etc/resolv.conf"
	chmod 1777 "$root/tmp" "$root/var/tmp"
}

# import the rootfs as one layer, then add the config (image.conf holds Dockerfile instructions,
# some of which - STOPSIGNAL - `docker import --change` rejects) with a metadata-only build
import_image() { # import_image IMAGE ROOT TAG...
	local name="$1" root="$2" rootfs_tag="vps-stack-e2e-rootfs:$1" logfile="$LOG_DIR/$1.log" tag hash old_id
	shift 2
	# shellcheck disable=SC2016
	timed "$name: docker import" run_logged "$logfile" sh -c \
		'tar --numeric-owner -C "$1" --exclude="./dev/*" --exclude="./proc/*" --exclude="./sys/*" -cf - . |
			docker import -m "vps-stack e2e stand-in rootfs" - "$2"' sh "$root" "$rootfs_tag"
	for tag in "$@"; do
		old_id="$(docker image inspect -f '{{.Id}}' "$tag" 2>/dev/null || true)"
		hash="$(input_hash "$name" "$tag")"
		{
			echo "FROM $rootfs_tag"
			sed -e '/^[[:space:]]*#/d' -e '/^[[:space:]]*$/d' -e "s|@TAG@|${tag##*:}|g" "$HERE/$name/image.conf"
			echo "LABEL vps-stack.e2e.standin=\"true\" $HASH_LABEL=\"$hash\""
		} >"$root.Dockerfile"
		run_logged "$logfile" docker build -q --rm --force-rm -t "$tag" -f "$root.Dockerfile" "$HERE/$name"
		log "$name: tagged $tag ($(docker image inspect -f '{{.Size}}' "$tag" | awk '{ printf "%.0f MB", $1 / 1e6 }'), $HASH_LABEL=$hash)"
		# drop the image this tag pointed to before (unless a container still uses it)
		if [ -n "$old_id" ] && [ "$old_id" != "$(docker image inspect -f '{{.Id}}' "$tag")" ]; then
			docker rmi "$old_id" >/dev/null 2>&1 || true
		fi
	done
	rm -f "$root.Dockerfile"
	docker rmi "$rootfs_tag" >/dev/null 2>&1 || true
}

# --------------------------------------------------------------------------------------- main
ensure_docker
mkdir -p "$CACHE_DIR" "$LOG_DIR"
exec 9>"$CACHE_DIR/.lock"
if ! flock -n 9; then
	log "another build.sh holds $CACHE_DIR/.lock; waiting for it"
	flock -w "${VPS_STACK_E2E_LOCK_TIMEOUT:-3600}" 9 || die "timed out waiting for $CACHE_DIR/.lock"
fi

WORK_ROOTS=()
cleanup() {
	local r
	for r in "${WORK_ROOTS[@]}"; do
		rm -rf "$r" "$r.Dockerfile"
		docker rmi "vps-stack-e2e-rootfs:${r##*/}" >/dev/null 2>&1 || true
	done
	rm -rf "$CACHE_DIR"/work/*.old.*
}
trap cleanup EXIT

built=0
RM_PIDS=()
for name in "${REQUESTED[@]}"; do
	todo=()
	for tag in $(image_tags "$name"); do
		hash="$(input_hash "$name" "$tag")"
		state="$(tag_state "$tag" "$hash")"
		case "$state" in
			current)
				if [ -n "$FORCE" ]; then todo+=("$tag"); else log "$tag: up to date ($HASH_LABEL=$hash)"; fi
				;;
			foreign)
				if [ "${VPS_STACK_E2E_REPLACE_IMAGES:-}" = 1 ] || [ -n "$FORCE" ]; then
					todo+=("$tag")
				else
					log "$tag: exists and was not built by this script (a real image?): kept (VPS_STACK_E2E_REPLACE_IMAGES=1 replaces it)"
				fi
				;;
			*)
				log "$tag: $state, will build"
				todo+=("$tag")
				;;
		esac
	done
	[ "${#todo[@]}" -gt 0 ] || continue
	[ "$(id -u)" = 0 ] || die "building images needs root (debootstrap, chroot)"
	if [ -z "$MIRROR" ]; then
		detect_mirrors
		log "Debian mirror: $MIRROR (security: ${SECURITY_MIRROR:-none})"
	fi
	prepare_base
	t0="$(date +%s%N)"
	root="$CACHE_DIR/work/$name"
	WORK_ROOTS+=("$root")
	build_rootfs "$name" "$root"
	import_image "$name" "$root" "${todo[@]}"
	# deleting a rootfs takes seconds: do it while the next image builds
	mv "$root" "$root.old.$$"
	rm -rf "$root.old.$$" &
	RM_PIDS+=("$!")
	log "$name: built in $(( ($(date +%s%N) - t0) / 1000000 ))ms"
	built=$((built + 1))
done
[ "${#RM_PIDS[@]}" -eq 0 ] || wait "${RM_PIDS[@]}"
log "done: $built image(s) built"
