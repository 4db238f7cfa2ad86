# shellcheck shell=bash disable=SC2317,SC2329,SC2129,SC2034,SC2016,SC2015 # functions are called through check(); variables are shared with later phases
phase replacements
keep_rows >>"$LOG" 2>&1
replaced_and_healthy() { # replaced_and_healthy CONTAINER KEY VALUE
    local before after
    before=$(container_id "$1") || return 1
    pulumi config set --stack "$STACK" --path "$2" "$3" || return 1
    up "$STACK" || return 1
    after=$(container_id "$1") || return 1
    [ "$before" != "$after" ] || { echo "$1 was not replaced"; return 1; }
    health_ok "$STACK" "$HTTPS_PORT" 2 && [ "$(psql_e2e 'SELECT count(*) FROM e2e_keep')" = 2 ]
}
check "7a. PostgreSQL tuning replaces PostgreSQL; converges, data kept" replaced_and_healthy "vps-stack-$STACK-postgres" postgres.maxConnections 150
check "7b. Redis maxmemory replaces Redis; converges, data kept" replaced_and_healthy "vps-stack-$STACK-redis" redis.maxmemory 32mb
# The proxy's own config changes by nginx -t and a reload of the same container, never a replacement.
reloaded_not_replaced() { # reloaded_not_replaced KEY VALUE EXPECTED_LINE
    local before after
    before=$(container_id "vps-stack-$STACK-nginx") || return 1
    pulumi config set --stack "$STACK" --path "$1" "$2" && up "$STACK" || return 1
    after=$(container_id "vps-stack-$STACK-nginx") || return 1
    [ "$before" = "$after" ] || { echo "the proxy container was replaced"; return 1; }
    docker exec "vps-stack-$STACK-nginx" sh -c 'cat /etc/nginx/vps-stack/live/nginx.conf' | grep -qF "$3" || { echo "the live config lacks: $3"; return 1; }
    health_ok "$STACK" "$HTTPS_PORT" 2
}
check "7c. an Nginx option is applied by a reload of the same proxy container; converges, data kept" reloaded_not_replaced nginx.clientMaxBodySize 10M "client_max_body_size 10M;"
check "7d. pulumi preview --expect-no-changes after the replacements" pulumi preview --expect-no-changes --non-interactive --stack "$STACK"
