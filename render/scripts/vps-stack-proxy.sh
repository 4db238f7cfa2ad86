# vps-stack-proxy: installs the proxy container's configuration (nginx.conf, certificate and key) into
# its config volume, without replacing or restarting the proxy. POSIX sh (busybox, dash); run as
# `sh -s` in a throwaway container of the proxy's own image, on the proxy's network, with the volume
# mounted at DIR (see NginxProxy). Sourced with one call appended:
#
#   vps_proxy_install DIR CONF_B64 [CERT_B64 KEY_B64]
#
# Each version goes into DIR/releases/<n>, is checked by `nginx -t` there (same image, same network:
# upstream names resolve as they will for the proxy), and only then does DIR/live point at it. The
# proxy runs `nginx -c DIR/live/nginx.conf`, whose relative certificate paths resolve inside the same
# version, so a test always covers exactly what a reload will load. A version that nginx rejects is
# removed and the live one stays. The caller reloads the running proxy afterwards.

# Version directories are numbers this script made; ls is fine for them.
# shellcheck disable=SC2012
vps_proxy_install() {
    set -eu
    dir=$1
    umask 022
    mkdir -p "$dir/releases"
    n=$(($(ls -1 "$dir/releases" | awk 'BEGIN { m = 0 } /^[0-9]+$/ && $1 > m { m = $1 } END { print m }') + 1))
    stage=$dir/releases/$n
    mkdir -p "$stage/tls"
    printf '%s' "$2" | base64 -d >"$stage/nginx.conf"
    if [ $# -ge 4 ]; then
        printf '%s' "$3" | base64 -d >"$stage/tls/server.crt"
        # Read by the master process as root before the workers drop privileges.
        (umask 077 && printf '%s' "$4" | base64 -d >"$stage/tls/server.key")
    fi
    if ! out=$(nginx -t -c "$stage/nginx.conf" 2>&1); then
        rm -rf "$stage"
        printf '%s\n' "$out" >&2
        echo "vps-stack: nginx rejected the new proxy configuration; the previous one is still serving" >&2
        exit 1
    fi
    ln -sfn "releases/$n" "$dir/live"
    # Keep the live version and the one before it.
    for old in $(ls -1 "$dir/releases" | awk -v n="$n" '/^[0-9]+$/ && $1 < n - 1'); do
        rm -rf "${dir:?}/releases/$old"
    done
    echo "vps-stack: proxy configuration $n installed"
}
