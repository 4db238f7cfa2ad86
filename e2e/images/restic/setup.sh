#!/bin/sh
# Runs inside the image's chroot: "pre" before apt-get install, "post" after it.
set -eu
case "$1" in
pre) ;;
post)
	# the contract: restic where the official image has it, and the tools of a POSIX sh scheduler
	[ -x /usr/bin/restic ] || { echo "missing: /usr/bin/restic" >&2; exit 1; }
	for tool in sh sleep date mv rm mkdir cat sed awk grep tail head find flock stat touch wc tr \
		cut sort kill timeout ps jq; do
		command -v "$tool" >/dev/null || { echo "missing: $tool" >&2; exit 1; }
	done
	[ -x /bin/kill ] || { echo "missing: /bin/kill" >&2; exit 1; }
	[ -s /etc/ssl/certs/ca-certificates.crt ] || { echo "missing: the CA bundle" >&2; exit 1; }
	[ -f /usr/share/zoneinfo/Europe/Paris ] || { echo "missing: tzdata" >&2; exit 1; }
	# restic's shell completions are not used in a container
	rm -rf /usr/share/bash-completion /usr/share/zsh /usr/share/fish
	restic version
	;;
esac
