# shellcheck shell=bash disable=SC2317,SC2329,SC2129,SC2034,SC2016,SC2015 # functions are called through check(); variables are shared with later phases
phase "second stack (ACME)"
# The second stack also serves a static front end (a built single-page app) on www.: its build, packed as a CI
# job would, uploaded from the archive into an Nginx container. The certificate covers both names.
SPA_HOST="www.$DOMAIN"
SPA_BUNDLE="console.log('vps-stack e2e front end');"
make_site_archive() {
    mkdir -p "$E2E/web/dist/assets" &&
        printf '<!doctype html><title>e2e</title><script src="/assets/app-3f9a1c2b.js"></script>\n' >"$E2E/web/dist/index.html" &&
        printf '%s\n' "$SPA_BUNDLE" >"$E2E/web/dist/assets/app-3f9a1c2b.js" &&
        tar -czf "$E2E/web/dist.tgz" -C "$E2E/web" dist
}
add_static_site() { # add_static_site STACK
    make_site_archive &&
        pulumi config set-all --stack "$1" --path --plaintext 'apps[1].name=web' --plaintext 'apps[1].kind=static' \
            --plaintext "apps[1].static.archive=$E2E/web/dist.tgz" --plaintext "apps[1].hosts[0]=$SPA_HOST" --plaintext 'apps[1].memory=64m'
}
# It pins the box's ECDSA host key: both SSH clients (the Docker provider's ssh, the command provider's
# Go client) must verify it.
init_acme_stack() { init_stack "$STACK2" "$HTTP2_PORT" "$HTTPS2_PORT" "$HOST_KEY_ECDSA" && set_acme "$STACK2" && add_static_site "$STACK2"; }
spa_get() { # spa_get PATH: headers and body from the second stack's static site, verified against the ACME root
    curl -sS --fail -D - --cacert "$E2E/acme-$STACK2/root.pem" --resolve "$SPA_HOST:$HTTPS2_PORT:127.0.0.1" "https://$SPA_HOST:$HTTPS2_PORT$1"
}
spa_serves() {
    local route asset
    route=$(spa_get /orders/42) || return 1
    echo "$route"
    grep -q '<title>e2e</title>' <<<"$route" && grep -qi '^cache-control: no-cache' <<<"$route" || return 1
    asset=$(spa_get /assets/app-3f9a1c2b.js) || return 1
    echo "$asset"
    grep -qF "$SPA_BUNDLE" <<<"$asset" && grep -qi '^cache-control: public, max-age=31536000, immutable' <<<"$asset" &&
        grep -qi '^strict-transport-security: max-age=31536000' <<<"$asset"
}
site_on_host_not_in_state() {
    local state mounts
    state=$(pulumi stack export --stack "$STACK2" --show-secrets) || return 1
    if grep -qF -e "$SPA_BUNDLE" -e "$(printf '%s\n' "$SPA_BUNDLE" | base64 -w0)" <<<"$state"; then echo "the site's file is in the state"; return 1; fi
    mounts=$(docker inspect --format '{{range .Mounts}}{{.Source}} {{.Destination}} {{.RW}}{{"\n"}}{{end}}' "$(app_container "$STACK2" web)") || return 1
    echo "$mounts"
    grep -qE "^/home/$DEPLOY_USER/\.local/share/vps-stack/$STACK2/site-web-[0-9a-f]{12}/site /usr/share/nginx/html false$" <<<"$mounts" &&
        [ "$(stat -c %U "$(awk '$2 == "/usr/share/nginx/html" { print $1; exit }' <<<"$mounts")/index.html")" = "$DEPLOY_USER" ]
}
acme_health() { acme_root "$STACK2" && health_ok "$STACK2" "$HTTPS2_PORT" 1; }
acme_healthy() {
    local status
    docker inspect --format '{{.State.Health.Status}}' "vps-stack-$STACK2-acme" | grep -qx healthy || return 1
    status=$(run_ssh_line "$(output_cmd "$STACK2" acme status)") || return 1
    echo "$status"
    grep -q "^served: vps-stack-[0-9a-f]* for $DOMAIN $SPA_HOST, expires" <<<"$status"
}
renewal_reaches_proxy() {
    local before after
    before=$(served_serial) && [ -n "$before" ] || return 1
    run_ssh_line "$(output_cmd "$STACK2" acme forceRenew)" || return 1
    # The proxy checks the file every minute and reloads after nginx -t; no deploy involved.
    for _ in $(seq 90); do
        after=$(served_serial)
        if [ -n "$after" ] && [ "$after" != "$before" ]; then
            echo "serial $before -> $after"
            health_ok "$STACK2" "$HTTPS2_PORT" 1
            return
        fi
        sleep 1
    done
    echo "still $before after 90s"
    return 1
}
before_first=$(docker ps -q --filter "label=vps-stack.stack=$STACK" | sort)
acme_setup="$E2E/acme-$STACK2.setup.log"
if acme_box "$E2E/acme-$STACK2" "$HTTP2_PORT" >"$acme_setup" 2>&1 && init_acme_stack >>"$acme_setup" 2>&1; then
    check "8a. a second stack, with tls.mode acme, deploys beside the first: certificate from the ACME server over HTTP-01" up "$STACK2"
    check "8b. the second stack serves /health with that certificate, verified against the CA's root" acme_health
    check "S1. a static front end uploaded from an archive: client routes get index.html (no-cache), hashed assets a year (immutable), over the ACME certificate" spa_serves
    check "S2. the site was copied to the host (SFTP) and is mounted read-only; its files are not in the stack's state" site_on_host_not_in_state
    check "A1. the ACME container is healthy and serves the issued certificate (the output's status command)" acme_healthy
    check "A2. a forced renewal (the output's forceRenew command) reaches the proxy without a deploy" renewal_reaches_proxy
    check "A3. pulumi preview --expect-no-changes on the ACME stack" pulumi preview --expect-no-changes --non-interactive --stack "$STACK2"
else
    check "8a. the box gets an ACME server (pebble) and the second stack its ACME config" setup_failed "$acme_setup"
fi
first_untouched() { [ "$(docker ps -q --filter "label=vps-stack.stack=$STACK" | sort)" = "$before_first" ] && health_ok "$STACK" "$HTTPS_PORT"; }
destroy_second() { pulumi destroy --yes --non-interactive --stack "$STACK2" && [ -z "$(docker ps -aq --filter "label=vps-stack.stack=$STACK2")" ] && first_untouched; }
check "8c. the first stack is untouched and still healthy" first_untouched
check "8d. destroying the second stack leaves the first running" destroy_second
