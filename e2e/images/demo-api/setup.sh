#!/bin/sh
# Runs inside the image's chroot: "pre" before apt-get install, "post" after it and after
# examples/demo-api/app.py was copied to /app/app.py.
set -eu
case "$1" in
pre)
	# same user as examples/demo-api/Dockerfile
	groupadd --system --gid 10001 app
	useradd --system --uid 10001 --gid app --home-dir /app --no-create-home \
		--shell /usr/sbin/nologin app
	;;
post)
	ln -sf /usr/bin/python3 /usr/local/bin/python
	chown -R root:root /app
	chmod 0755 /app
	chmod 0644 /app/app.py
	python3 -c 'import psycopg2, redis' 
	python3 -m py_compile /app/app.py && rm -rf /app/__pycache__
	;;
esac
