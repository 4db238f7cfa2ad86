#!/usr/bin/env bash
# Installs the Debian tools the integration tests run for real (nginx, redis-server, PostgreSQL, openssl,
# ShellCheck, busybox, curl, certbot and pebble, the ACME test server, restic for the off-site backups) without starting their services. Idempotent: does nothing when they are there.
set -euo pipefail

need=()
command -v nginx >/dev/null 2>&1 || [ -x /usr/sbin/nginx ] || need+=(nginx)
command -v redis-server >/dev/null 2>&1 || need+=(redis-server)
command -v openssl >/dev/null 2>&1 || need+=(openssl)
command -v unshare >/dev/null 2>&1 || need+=(util-linux)
ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || need+=(postgresql)
command -v shellcheck >/dev/null 2>&1 || need+=(shellcheck)
command -v busybox >/dev/null 2>&1 || need+=(busybox)
command -v curl >/dev/null 2>&1 || need+=(curl)
command -v certbot >/dev/null 2>&1 || need+=(certbot)
{ command -v pebble && command -v pebble-challtestsrv; } >/dev/null 2>&1 || need+=(pebble)
command -v restic >/dev/null 2>&1 || need+=(restic)
# Host provisioning's files through the tools the host runs them with.
[ -x /usr/sbin/nft ] || need+=(nftables)
[ -x /usr/sbin/visudo ] || need+=(sudo)
[ -x /usr/sbin/sshd ] || need+=(openssh-server)
# The alert tests' SMTP server (aiosmtpd), for Debian's python3.
/usr/bin/python3 -c 'import aiosmtpd' >/dev/null 2>&1 || need+=(python3-aiosmtpd)

if [ "${#need[@]}" -eq 0 ]; then
    echo "install-tools: nginx, redis-server, postgresql, openssl, shellcheck, busybox, curl, certbot, pebble, restic, python3-aiosmtpd, nftables, sudo, openssh-server already present"
    exit 0
fi
if [ "$(id -u)" -ne 0 ]; then
    echo "install-tools: missing ${need[*]}; run as root or: sudo apt-get install -y ${need[*]}" >&2
    exit 1
fi

echo "install-tools: installing ${need[*]}"
# Keep the packages' services from starting (no init system here, and tests start their own servers).
policy=/usr/sbin/policy-rc.d
created_policy=0
if [ ! -e "$policy" ]; then
    printf '#!/bin/sh\nexit 101\n' >"$policy"
    chmod +x "$policy"
    created_policy=1
fi
trap '[ "$created_policy" = 1 ] && rm -f "$policy"' EXIT

export DEBIAN_FRONTEND=noninteractive NEEDRESTART_SUSPEND=1 NEEDRESTART_MODE=l
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
echo "install-tools: done"
