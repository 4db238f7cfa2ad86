#!/bin/sh
# Runs inside the image's chroot: "pre" before apt-get install, "post" after it and after
# rootfs/ was copied over the image.
set -eu
case "$1" in
pre)
	# same ids as the official image (nginx 101:101)
	groupadd --system --gid 101 nginx
	useradd --system --uid 101 --gid nginx --home-dir /nonexistent --no-create-home \
		--shell /usr/sbin/nologin --comment 'nginx user' nginx
	;;
post)
	# Debian's site layout is not used by the official nginx.conf
	rm -rf /etc/nginx/sites-enabled /etc/nginx/sites-available /var/www
	# official cache dir, Debian's compiled-in temp dirs (/var/lib/nginx/*), templates dir
	mkdir -p /var/cache/nginx /var/lib/nginx /etc/nginx/templates /var/log/nginx
	# logs go to the container's stdout/stderr, as in the official image
	ln -sf /dev/stdout /var/log/nginx/access.log
	ln -sf /dev/stderr /var/log/nginx/error.log
	set -- /etc/nginx/modules-enabled/*stream*.conf
	[ -e "$1" ] # the stream module is enabled
	;;
esac
