#!/bin/sh
# Runs inside the image's chroot: "pre" before apt-get install, "post" after it and after
# rootfs/ was copied over the image.
set -eu
case "$1" in
pre)
	# same ids as the official alpine image (postgres 70:70), so volumes can be swapped
	groupadd --system --gid 70 postgres
	useradd --system --uid 70 --gid postgres --home-dir /var/lib/postgresql --no-create-home \
		--shell /bin/bash --comment 'PostgreSQL administrator' postgres
	mkdir -p /var/lib/postgresql /etc/postgresql-common
	chown postgres:postgres /var/lib/postgresql
	# Debian's postgresql-common must not create a "main" cluster
	echo 'create_main_cluster = false' > /etc/postgresql-common/createcluster.conf
	;;
post)
	PG_BIN=/usr/lib/postgresql/15/bin
	# the official image's LANG=en_US.utf8 must exist for initdb
	localedef -i en_US -c -f UTF-8 -A /usr/share/locale/locale.alias en_US.UTF-8
	# drop any cluster Debian created anyway
	rm -rf /var/lib/postgresql/15 /etc/postgresql/15
	# initdb copies this sample: listen on all addresses, as the official image does
	sed -ri "s!^#?(listen_addresses)\s*=\s*\S+.*!\1 = '*'!" /usr/share/postgresql/15/postgresql.conf.sample
	grep -F "listen_addresses = '*'" /usr/share/postgresql/15/postgresql.conf.sample
	# every server/client binary on any PATH (a login shell's PATH would find Debian's
	# /usr/bin/pg_wrapper links otherwise)
	for f in "$PG_BIN"/*; do ln -sf "$f" /usr/local/bin/; done
	ln -sf docker-entrypoint.sh /usr/local/bin/docker-ensure-initdb.sh
	mkdir -p /docker-entrypoint-initdb.d /var/lib/postgresql/data /var/run/postgresql
	chown postgres:postgres /var/lib/postgresql/data /var/run/postgresql
	chmod 1777 /var/lib/postgresql/data
	chmod 3777 /var/run/postgresql
	# this image's own extensions list, for tests that want to know
	find /usr/share/postgresql/15/extension/ -name '*.control' -printf '%f\n' | sed 's/\.control$//' | sort \
		> /usr/local/share/postgresql-extensions.txt
	;;
esac
