# vps-stack-nginx-site: installs or removes a stack's site in the host's own nginx (nginx.mode "host").
# Sourced by `sudo -n sh -s` with its data appended (see HostNginxSite); POSIX sh, runs as root.
#
# install: certificate and key into a root-only directory (0700, files 0600), the site into
# sites-available with a link in sites-enabled, then `nginx -t`. If nginx rejects it, the previous files
# come back, nginx is not reloaded, nginx's message is printed and the exit status is 1: a broken
# config never replaces a working one. Otherwise nginx is reloaded.
# remove: the site, its link and its certificates go, then nginx is checked and reloaded.
# With tls.mode "acme" the site reads the ACME container's certificate file instead (install is given
# --watch FILE instead of a certificate and key): a cron entry reloads nginx, after `nginx -t`, when that
# file changes (renewals happen in the container, which cannot reach the host's nginx).
#
# Settings (environment, for tests): NGINX_DIR (/etc/nginx), VPS_TLS_DIR (/etc/vps-stack), CRON_DIR
# (/etc/cron.d),
# NGINX_TEST ("nginx -t"), NGINX_RELOAD (default: systemd's reload-or-restart where systemd runs, else
# a signal to the running nginx, else start it).

vps_site_paths() {
    name=$1
    conf_dir=${NGINX_DIR:-/etc/nginx}
    tls_dir=${VPS_TLS_DIR:-/etc/vps-stack}/$name
    avail=$conf_dir/sites-available/$name.conf
    enabled=$conf_dir/sites-enabled/$name.conf
    cron_file=${CRON_DIR:-/etc/cron.d}/$name-tls-reload
}

# vps_site_reload_if_changed NAME FILE: reload nginx when FILE differs from what it last loaded
vps_site_reload_if_changed() {
    set -eu
    vps_site_paths "$1"
    mkdir -p "$tls_dir"
    chmod 700 "$tls_dir"
    sum=$(cksum <"$2")
    [ "$sum" = "$(cat "$tls_dir/loaded.cksum" 2>/dev/null || true)" ] && return 0
    if ! out=$(sh -c "${NGINX_TEST:-nginx -t}" 2>&1); then
        printf '%s\n' "$out" >&2
        echo "vps-stack: $2 changed but nginx -t fails; not reloading" >&2
        exit 1
    fi
    vps_site_reload
    printf '%s\n' "$sum" >"$tls_dir/loaded.cksum"
    echo "vps-stack: certificate of $1 changed; nginx reloaded"
}

# vps_site_watch NAME FILE: the cron entry that runs the check above every 5 minutes
vps_site_watch() {
    mkdir -p "$(dirname "$cron_file")"
    if ! command -v cron >/dev/null 2>&1 && ! command -v crond >/dev/null 2>&1; then
        echo "vps-stack: warning: no cron on this host; nginx reloads a renewed certificate only on the next pulumi up (apt-get install cron)" >&2
    fi
    {
        echo "# vps-stack ($1): reload nginx when the ACME container renews the certificate. Written by pulumi up."
        echo "SHELL=/bin/sh"
        echo "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
        # Self-contained (cron cannot source this script); cron treats % specially, so none here.
        echo "*/5 * * * * root s=$tls_dir/loaded.cksum; c=\$(cksum < $2) && [ \"\$c\" != \"\$(cat \$s 2>/dev/null)\" ] && nginx -t -q && { systemctl reload nginx 2>/dev/null || nginx -s reload; } && echo \"\$c\" > \$s"
    } >"$cron_file.new"
    chmod 644 "$cron_file.new"
    mv -f "$cron_file.new" "$cron_file"
}

vps_site_reload() {
    if [ -n "${NGINX_RELOAD:-}" ]; then
        sh -c "$NGINX_RELOAD"
    elif [ -d /run/systemd/system ] && command -v systemctl >/dev/null 2>&1; then
        systemctl reload-or-restart nginx
    elif [ -s /run/nginx.pid ] && kill -0 "$(cat /run/nginx.pid)" 2>/dev/null; then
        nginx -s reload
    else
        # Installed but not running (no init system): start it, or the site would never serve.
        nginx
    fi
}

# vps_site_install NAME SITE_B64 CERT_B64 KEY_B64
# vps_site_install NAME SITE_B64 --watch FILE
vps_site_install() {
    set -eu
    vps_site_paths "$1"
    umask 077
    mkdir -p "$tls_dir" "$conf_dir/sites-available" "$conf_dir/sites-enabled"
    chmod 700 "$tls_dir"
    printf '%s' "$2" | base64 -d >"$avail.new"
    chmod 644 "$avail.new"
    watch=
    files="$avail"
    if [ "$3" = --watch ]; then
        watch=$4
    else
        files="$files $tls_dir/fullchain.pem $tls_dir/privkey.pem"
        printf '%s' "$3" | base64 -d >"$tls_dir/fullchain.pem.new"
        printf '%s' "$4" | base64 -d >"$tls_dir/privkey.pem.new"
        chmod 600 "$tls_dir/fullchain.pem.new" "$tls_dir/privkey.pem.new"
    fi

    # Keep what serves now, to put it back if nginx rejects the new one.
    for f in $files; do
        if [ -e "$f" ]; then cp -p "$f" "$f.prev"; else rm -f "$f.prev"; fi
    done
    had_link=no
    [ -L "$enabled" ] && had_link=yes

    for f in $files; do mv -f "$f.new" "$f"; done
    ln -sfn "$avail" "$enabled"

    if ! out=$(sh -c "${NGINX_TEST:-nginx -t}" 2>&1); then
        for f in $files; do
            if [ -e "$f.prev" ]; then mv -f "$f.prev" "$f"; else rm -f "$f"; fi
        done
        [ "$had_link" = yes ] || rm -f "$enabled"
        printf '%s\n' "$out" >&2
        echo "vps-stack: nginx rejected the new site $1; the previous configuration is still serving" >&2
        exit 1
    fi
    for f in $files; do rm -f "$f.prev"; done
    if [ -n "$watch" ]; then
        # Certificates of an earlier tls.mode must not linger.
        rm -f "$tls_dir/fullchain.pem" "$tls_dir/privkey.pem"
        vps_site_watch "$1" "$watch"
        cksum <"$watch" >"$tls_dir/loaded.cksum"
    else
        rm -f "$cron_file" "$tls_dir/loaded.cksum"
    fi
    vps_site_reload
    echo "vps-stack: site $1 installed and nginx reloaded"
}

# vps_site_remove NAME
vps_site_remove() {
    set -eu
    vps_site_paths "$1"
    rm -f "$enabled" "$avail" "$avail.prev" "$cron_file"
    rm -rf "$tls_dir"
    if ! out=$(sh -c "${NGINX_TEST:-nginx -t}" 2>&1); then
        printf '%s\n' "$out" >&2
        echo "vps-stack: site $1 removed, but nginx's configuration does not pass nginx -t; not reloading" >&2
        exit 1
    fi
    vps_site_reload
    echo "vps-stack: site $1 removed and nginx reloaded"
}
