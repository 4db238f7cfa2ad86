# shellcheck shell=bash disable=SC2317,SC2329,SC2129,SC2034,SC2016,SC2015 # functions are called through check(); variables are shared with later phases
phase "host nginx"
# The host nginx mode: the VPS's own nginx serves the site, the API is published on 127.0.0.1 only.
host_nginx_running() { [ -s /run/nginx.pid ] && kill -0 "$(cat /run/nginx.pid)" 2>/dev/null; }
host_nginx_box() {
    { command -v nginx >/dev/null && command -v sudo >/dev/null; } || apt_install nginx sudo || return 1
    printf '%s ALL=(root) NOPASSWD: ALL\n' "$DEPLOY_USER" >/etc/sudoers.d/vps-stack-e2e
    chmod 440 /etc/sudoers.d/vps-stack-e2e
    # By its pid file: the containers' nginx processes are visible on the host too.
    if ! host_nginx_running; then nginx && STARTED_HOST_NGINX=1; fi
    host_nginx_running && "${SSH[@]}" sudo -n true
}
HOST_HTTP=$(free_port)
HOST_HTTPS=$(free_port)
API_HOST_PORT=$(free_port)
init_host_stack() {
    init_stack "$STACK_HOST" "$HOST_HTTP" "$HOST_HTTPS" || return 1
    pulumi config set --stack "$STACK_HOST" --path nginx.mode host &&
        pulumi config set --stack "$STACK_HOST" --path 'apps[0].hostPort' "$API_HOST_PORT"
}
host_site_file() { echo "/etc/nginx/sites-enabled/vps-stack-$STACK_HOST.conf"; }
api_on_loopback_only() {
    local ports
    ports=$(docker port "vps-stack-$STACK_HOST-api-1")
    echo "$ports"
    [ "$ports" = "8000/tcp -> 127.0.0.1:$API_HOST_PORT" ]
}
site_installed() { [ -L "$(host_site_file)" ] && [ "$(stat -c %a "/etc/vps-stack/vps-stack-$STACK_HOST")" = 700 ] && [ "$(stat -c %a "/etc/vps-stack/vps-stack-$STACK_HOST/privkey.pem")" = 600 ]; }
site_removed() { [ ! -e "$(host_site_file)" ] && [ ! -e "/etc/vps-stack/vps-stack-$STACK_HOST" ] && [ ! -e "$(host_cron_file)" ] && host_nginx_running; }
host_cron_file() { echo "/etc/cron.d/vps-stack-$STACK_HOST-tls-reload"; }
host_served() { echo "/var/lib/vps-stack/$STACK_HOST/letsencrypt/vps-stack/tls.pem"; }
switch_host_to_acme() { acme_box "$E2E/acme-$STACK_HOST" "$HOST_HTTP" && set_acme "$STACK_HOST" && up "$STACK_HOST"; }
host_acme_health() { acme_root "$STACK_HOST" && health_ok "$STACK_HOST" "$HOST_HTTPS" 1; }
host_reads_acme_file() {
    grep -q "ssl_certificate .*$(host_served);" "$(host_site_file)" && [ "$(stat -c %a "$(host_served)")" = 600 ] &&
        [ ! -e "/etc/vps-stack/vps-stack-$STACK_HOST/privkey.pem" ] && grep "cksum < $(host_served)" "$(host_cron_file)"
}
# A forced renewal, then the cron entry's own command line, run as cron would run it.
host_renewal_reloads() {
    local before after job
    before=$(served_serial "$HOST_HTTPS") && [ -n "$before" ] || return 1
    run_ssh_line "$(output_cmd "$STACK_HOST" acme forceRenew)" || return 1
    job=$(grep '^\*/5 ' "$(host_cron_file)" | cut -d' ' -f7-) && [ -n "$job" ] || return 1
    sh -c "$job" || return 1
    sleep 1
    after=$(served_serial "$HOST_HTTPS")
    echo "serial $before -> $after"
    [ -n "$after" ] && [ "$after" != "$before" ] && health_ok "$STACK_HOST" "$HOST_HTTPS" 1
}
# A host whose own nginx config conflicts with the stack's new site (here: an upstream of the same name
# in conf.d) makes nginx -t fail: pulumi up must fail with nginx's message, leave the previous site in
# place and keep it serving. Without the conflict, the next pulumi up goes through.
host_site_has() { grep -q "$1" "$(host_site_file)"; }
rejected_site_keeps_serving() {
    local out rc
    printf 'upstream vps_stack_%s_app_api { server 127.0.0.1:9; }\n' "$STACK_HOST" >"$HOST_CONFLICT"
    pulumi config set --stack "$STACK_HOST" --path nginx.clientMaxBodySize 20M || return 1
    out=$(up "$STACK_HOST" 2>&1)
    rc=$?
    echo "$out"
    [ "$rc" -ne 0 ] || { echo "pulumi up succeeded although nginx -t fails"; return 1; }
    grep -q 'duplicate upstream "vps_stack_'"$STACK_HOST"'_app_api"' <<<"$out" || { echo "nginx's message is not in pulumi up's output"; return 1; }
    grep -q 'the previous configuration is still serving' <<<"$out" || return 1
    ! host_site_has 'client_max_body_size 20M;' || { echo "the rejected site replaced the previous one"; return 1; }
    health_ok "$STACK_HOST" "$HOST_HTTPS" 1
}
resolved_conflict_converges() {
    rm -f "$HOST_CONFLICT"
    up "$STACK_HOST" && host_site_has 'client_max_body_size 20M;' && health_ok "$STACK_HOST" "$HOST_HTTPS" 1 &&
        pulumi preview --expect-no-changes --non-interactive --stack "$STACK_HOST"
}
destroy_host_stack() { pulumi destroy --yes --non-interactive --stack "$STACK_HOST" && site_removed; }
host_setup="$E2E/host-nginx.setup.log"
if host_nginx_box >"$host_setup" 2>&1 && init_host_stack >>"$host_setup" 2>&1; then
    check "H1. pulumi up with nginx.mode host (the host's own nginx, over SSH and sudo)" up "$STACK_HOST"
    check "H2. /health over HTTPS through the host's nginx" health_ok "$STACK_HOST" "$HOST_HTTPS" 1
    check "H3. the API is published on 127.0.0.1 only" api_on_loopback_only
    check "H4. the site is enabled, its certificates root-only (0700/0600)" site_installed
    check "H5. pulumi preview --expect-no-changes" pulumi preview --expect-no-changes --non-interactive --stack "$STACK_HOST"
    check "H5b. a site the host's nginx rejects (nginx -t) fails pulumi up with nginx's message; the previous site keeps serving" rejected_site_keeps_serving
    check "H5c. once the host's conflict is gone, pulumi up installs the new site; no changes left" resolved_conflict_converges
    check "H6. switching to tls.mode acme: pulumi up gets a certificate through the host's nginx" switch_host_to_acme
    check "H7. /health with that certificate, verified against the ACME CA's root" host_acme_health
    check "H8. the site reads the ACME file (0600), the old certificates are gone, a cron entry watches the file" host_reads_acme_file
    check "H9. a forced renewal is served after the cron entry's run (nginx -t, then reload)" host_renewal_reloads
    check "H10. pulumi preview --expect-no-changes with ACME" pulumi preview --expect-no-changes --non-interactive --stack "$STACK_HOST"
    check "H11. pulumi destroy removes the site, its certificates and the cron entry; nginx keeps running" destroy_host_stack
else
    check "H0. the box gets nginx and passwordless sudo for the deploy user" setup_failed "$host_setup"
fi
