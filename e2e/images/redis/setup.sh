#!/bin/sh
# Runs inside the image's chroot: "pre" before apt-get install, "post" after it.
set -eu
case "$1" in
pre)
	# same ids as the official alpine image (redis 999:1000)
	groupadd --gid 1000 redis
	useradd --system --uid 999 --gid redis --home-dir /data --no-create-home \
		--shell /usr/sbin/nologin redis
	;;
post)
	mkdir -p /data /usr/local/etc/redis
	chown redis:redis /data
	# Debian's service files are not used in a container
	rm -rf /etc/init.d/redis-server /var/log/redis /run/redis
	;;
esac
