#!/bin/sh
# Entrypoint of the local redis:7-alpine stand-in (Debian bookworm's redis 7.0).
# Same contract as the official image: `redis-server [config] [--options]`; started as root
# it chowns the working directory (/data) to redis and re-executes itself as redis.
set -e

# first arg is `-f` or `--some-option`, or `something.conf`: run redis-server with it
if [ "${1#-}" != "$1" ] || [ "${1%.conf}" != "$1" ]; then
	set -- redis-server "$@"
fi

# drop root privileges (the official image uses su-exec; setpriv comes with util-linux)
if [ "$1" = 'redis-server' ] && [ "$(id -u)" = '0' ]; then
	find . \! -user redis -exec chown redis '{}' +
	HOME=/data exec setpriv --reuid=redis --regid=redis --init-groups "$0" "$@"
fi

# The official binary is built with protected-mode off by default; Debian's is not. Without
# a config file, pass the same default on the command line (a config file decides for itself).
if [ "$1" = 'redis-server' ] && { [ "$#" -eq 1 ] || [ "${2#-}" != "$2" ]; }; then
	set -- "$@" --protected-mode no
fi

# set an appropriate umask (if one isn't set already)
um="$(umask)"
if [ "$um" = '0022' ]; then
	umask 0077
fi

exec "$@"
