# An ACME CA in the box (pebble), and how a stack is pointed at it. Used by the ACME and host nginx phases.
# shellcheck shell=bash disable=SC2034
# bridge_address: the host's address on Docker's default bridge, which every container can reach. The
# network's IPAM config names it only sometimes (not on a fresh Debian dockerd 20.10), docker0 always.
bridge_address() {
    local ip
    ip=$(docker network inspect bridge --format '{{range .IPAM.Config}}{{.Gateway}}{{end}}' 2>/dev/null)
    [ -n "$ip" ] || ip=$(ip -4 -o addr show dev docker0 2>/dev/null | awk '{ split($4, a, "/"); print a[1]; exit }')
    [ -n "$ip" ] && echo "$ip"
}
# The second stack takes its certificate from an ACME CA in the box: pebble (Let's Encrypt's test
# server) with its fake DNS resolving every name to 127.0.0.1. It listens on the Docker bridge's address,
# which the stack's ACME container reaches, and validates HTTP-01 on the second stack's HTTP port.
acme_box() { # acme_box DIR HTTP_PORT: an ACME server validating HTTP-01 on HTTP_PORT; writes DIR/directory
    { command -v pebble && command -v pebble-challtestsrv && command -v openssl; } >/dev/null 2>&1 || apt_install pebble openssl || return 1
    local d=$1 ip dns_port pebble_port tls_port mgmt_port
    ip=$(bridge_address) || { echo "acme_box: the host has no address on the Docker bridge"; return 1; }
    mkdir -p "$d"
    dns_port=$(free_port) pebble_port=$(free_port) tls_port=$(free_port) mgmt_port=$(free_port)
    openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -keyout "$d/ca.key" -out "$d/ca.crt" -days 2 -subj "/CN=e2e ACME server CA" &&
        openssl req -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -keyout "$d/server.key" -out "$d/server.csr" -subj "/CN=pebble" &&
        printf 'subjectAltName=IP:%s,IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\n' "$ip" >"$d/ext.cnf" &&
        openssl x509 -req -in "$d/server.csr" -CA "$d/ca.crt" -CAkey "$d/ca.key" -CAcreateserial -days 1 -extfile "$d/ext.cnf" -out "$d/server.crt" || return 1
    cat >"$d/pebble.json" <<EOF
{"pebble": {"listenAddress": "$ip:$pebble_port", "managementListenAddress": "127.0.0.1:$mgmt_port",
 "certificate": "$d/server.crt", "privateKey": "$d/server.key", "httpPort": $2, "tlsPort": $tls_port,
 "ocspResponderURL": "", "externalAccountBindingRequired": false}}
EOF
    pebble-challtestsrv -defaultIPv4 127.0.0.1 -defaultIPv6 "" -dns01 "127.0.0.1:$dns_port" -http01 "" -https01 "" -tlsalpn01 "" -management "127.0.0.1:$(free_port)" >>"$d/dns.log" 2>&1 &
    echo $! >"$d/dns.pid"
    PEBBLE_VA_NOSLEEP=1 PEBBLE_WFE_NONCEREJECT=0 pebble -config "$d/pebble.json" -dnsserver "127.0.0.1:$dns_port" >>"$d/pebble.log" 2>&1 &
    echo $! >"$d/pebble.pid"
    echo "https://$ip:$pebble_port/dir" >"$d/directory"
    echo "https://127.0.0.1:$mgmt_port/roots/0" >"$d/root-url"
    for _ in $(seq 50); do curl -sf --cacert "$d/ca.crt" "$(cat "$d/directory")" >/dev/null && return 0; sleep 0.2; done
    echo "acme_box: pebble does not answer at $(cat "$d/directory")"
    tail -n 20 "$d/pebble.log" "$d/dns.log"
    return 1
}
# set_acme STACK: tls.mode acme against the stack's ACME server in the box
set_acme() {
    local d=$E2E/acme-$1
    pulumi config set --stack "$1" --path tls.mode acme &&
        pulumi config set --stack "$1" --path tls.acme.email "ops@$DOMAIN" &&
        pulumi config set --stack "$1" --path tls.acme.directoryUrl "$(cat "$d/directory")" &&
        pulumi config set --stack "$1" --path tls.acme.caCertificate -- "$(cat "$d/ca.crt")"
}
# acme_root STACK: the ACME server's root, which signs the stack's certificate (new at every start)
acme_root() { curl -sSf --cacert "$E2E/acme-$1/ca.crt" "$(cat "$E2E/acme-$1/root-url")" >"$E2E/acme-$1/root.pem"; }
served_serial() { openssl s_client -connect "127.0.0.1:${1:-$HTTPS2_PORT}" -servername "$DOMAIN" </dev/null 2>/dev/null | openssl x509 -noout -serial; }
