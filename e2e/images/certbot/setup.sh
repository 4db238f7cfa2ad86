#!/bin/sh
# Runs inside the image's chroot: "pre" before apt-get install, "post" after it.
set -eu
case "$1" in
pre) ;;
post)
	# Debian's renewal timer and cron job are not used in a container (the official image has none)
	rm -f /etc/cron.d/certbot /lib/systemd/system/certbot.* /etc/systemd/system/timers.target.wants/certbot.timer
	# the official image's state directories (VOLUMEs) and WORKDIR
	mkdir -p /etc/letsencrypt /var/lib/letsencrypt /var/log/letsencrypt /opt/certbot
	# the contract: certbot and python3 with cryptography on PATH, and the tools of a POSIX sh script
	for tool in certbot python3 sh cmp cksum date basename dirname mkdir cat chmod mv cp rm sleep; do
		command -v "$tool" >/dev/null || { echo "missing: $tool" >&2; exit 1; }
	done
	python3 -c 'import cryptography.x509, certbot, acme, requests'
	certbot --version
	;;
esac
