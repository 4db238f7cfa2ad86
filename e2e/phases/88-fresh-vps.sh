# shellcheck shell=bash disable=SC2317,SC2329,SC2129,SC2034,SC2016,SC2015 # functions are called through check(); variables are shared with later phases
phase "fresh vps"
# host.provision from a fresh VPS: a Debian 12 box booted with systemd and sshd, only root's key
# authorised, no Docker, no firewall, no sudo. One `pulumi up` provisions it and deploys a stack onto it
# (Docker inside the box); then everything is checked from outside, as the internet would see the VPS.
#
# The isolation: a container with its own network namespace and every capability but CAP_SYS_RESOURCE,
# unconfined seccomp and /proc, /sys paths, all devices, and the cgroup hierarchy writable (systemd and
# dockerd both need it). `--privileged` itself fails here with "unable to apply caps: operation not
# permitted": this machine's capability bounding set lacks CAP_SYS_RESOURCE, which --privileged asks for.
# Docker needs no more than that inside, and nftables works in the box's own network namespace.
#
# No registry can be reached, so the box's Docker data directory (a volume) is seeded with the stack's
# images before the box boots, by a second dockerd on this machine: the images a registry would deliver.
# The box itself has no Docker: no binary, no service, no group, until provisioning installs docker.io.
VPS_STACK_NAME=e2ev
VPS_BOX=vps-stack-e2e-vps
VPS_NET=vps-stack-e2e-vps
VPS_VOLUME=vps-stack-e2e-vps-docker
VPS_IMAGES=(postgres:16-alpine redis:7-alpine nginx:1.27-alpine vps-stack-demo-api:1 restic/restic:0.17.3)
VPS_LOG="$E2E/fresh-vps"
mkdir -p "$VPS_LOG"
command -v nmap >/dev/null 2>&1 || apt_install nmap || fatal "fresh vps: cannot install nmap"

vps_cleanup() {
    docker rm -f "$VPS_BOX" >/dev/null 2>&1
    docker volume rm -f "$VPS_VOLUME" >/dev/null 2>&1
    docker network rm "$VPS_NET" >/dev/null 2>&1
    return 0
}
vps_cleanup

seed_images() {
    local dir sock pid ok=0
    docker volume create --label "vps-stack.stack=$VPS_STACK_NAME" "$VPS_VOLUME" >/dev/null || return 1
    dir=$(docker volume inspect -f '{{.Mountpoint}}' "$VPS_VOLUME") || return 1
    sock="$VPS_LOG/seed.sock"
    # In a network namespace of its own: with --bridge none, dockerd deletes any docker0 link it sees,
    # which is the main engine's bridge.
    unshare --net dockerd --data-root "$dir" -H "unix://$sock" --exec-root "$VPS_LOG/seed-exec" --pidfile "$VPS_LOG/seed.pid" \
        --bridge none --iptables=false --ip-masq=false >"$VPS_LOG/seed-dockerd.log" 2>&1 &
    pid=$!
    for _ in $(seq 60); do docker -H "unix://$sock" info >/dev/null 2>&1 && { ok=1; break; }; sleep 0.5; done
    [ "$ok" = 1 ] && docker save "${VPS_IMAGES[@]}" | docker -H "unix://$sock" load -q
    local rc=$?
    kill "$pid" 2>/dev/null
    wait "$pid" 2>/dev/null
    [ "$ok" = 1 ] && [ "$rc" = 0 ]
}

boot_box() {
    docker network create --label "vps-stack.stack=$VPS_STACK_NAME" "$VPS_NET" >/dev/null || return 1
    docker run -d --name "$VPS_BOX" --hostname fresh-vps --network "$VPS_NET" \
        --label "vps-stack.stack=$VPS_STACK_NAME" \
        --cap-add ALL --cap-drop SYS_RESOURCE --security-opt seccomp=unconfined --security-opt systempaths=unconfined \
        --device-cgroup-rule 'a *:* rwm' -v /sys/fs/cgroup:/sys/fs/cgroup:rw \
        --tmpfs /run --tmpfs /run/lock --tmpfs /tmp -v "$VPS_VOLUME:/var/lib/docker" \
        vps-stack-fresh-vps:bookworm >/dev/null || return 1
    for _ in $(seq 60); do
        [ "$(docker exec "$VPS_BOX" systemctl is-system-running 2>/dev/null)" = running ] && break
        sleep 1
    done
    docker exec "$VPS_BOX" systemctl is-system-running
    # What a provider does at first boot: root's key from the order form.
    ssh-keygen -q -t ed25519 -N '' -C e2e-root -f "$VPS_LOG/root_key" || return 1
    docker exec -i "$VPS_BOX" sh -c 'install -d -m 700 /root/.ssh && cat > /root/.ssh/authorized_keys && chmod 600 /root/.ssh/authorized_keys' <"$VPS_LOG/root_key.pub" || return 1
    VPS_IP=$(docker inspect -f "{{(index .NetworkSettings.Networks \"$VPS_NET\").IPAddress}}" "$VPS_BOX") || return 1
    # The host key, read out of band (the provider's console), as an operator pins it.
    VPS_HOST_KEY=$(docker exec "$VPS_BOX" cut -d' ' -f1,2 /etc/ssh/ssh_host_ed25519_key.pub) || return 1
    printf '%s %s\n' "$VPS_IP" "$VPS_HOST_KEY" >"$VPS_LOG/known_hosts"
    echo "box at $VPS_IP, host key $VPS_HOST_KEY"
}

vps_ssh() { # vps_ssh USER KEY CMD...: a fresh login, pinned host key
    local user=$1 key=$2
    shift 2
    ssh -o BatchMode=yes -o IdentitiesOnly=yes -o StrictHostKeyChecking=yes -o "UserKnownHostsFile=$VPS_LOG/known_hosts" \
        -o ControlPath=none -o ConnectTimeout=10 -i "$key" "$user@$VPS_IP" "$@"
}
deploy_ssh() { vps_ssh "$DEPLOY_USER" "$E2E/client_key" "$@"; }

is_fresh() {
    vps_ssh root "$VPS_LOG/root_key" 'cat /etc/os-release | head -1; ! command -v docker && ! command -v dockerd && ! getent group docker && ! command -v nft && ! command -v sudo' || { echo "the box is not fresh"; return 1; }
    if deploy_ssh true 2>&1; then echo "the deploy user can already log in"; return 1; fi
    return 0
}

init_vps_stack() {
    pulumi stack init "$VPS_STACK_NAME" --non-interactive >>"$LOG" 2>&1 || return 1
    cat >>"Pulumi.$VPS_STACK_NAME.yaml" <<EOF
config:
  vps-stack:host:
    address: $VPS_IP
    user: $DEPLOY_USER
    hostKey: $VPS_HOST_KEY
    privateKeyPath: $E2E/client_key
    provision:
      user: root
      privateKeyPath: $VPS_LOG/root_key
$(services_yaml)
EOF
}

vps_health() {
    local ca="$VPS_LOG/ca.pem" body
    out "$VPS_STACK_NAME" caCertificate >"$ca" || return 1
    body=$(curl -sS --fail --max-time 10 --cacert "$ca" --resolve "$DOMAIN:443:$VPS_IP" "https://$DOMAIN/health") || return 1
    echo "$body"
    node -e 'const h = JSON.parse(process.argv[1]); process.exit(h.status === "ok" && h.checks.postgres.ok && h.checks.redis.ok ? 0 : 1)' "$body"
}

preview_fresh() {
    local o="$VPS_LOG/preview.txt"
    pulumi preview --non-interactive --diff --stack "$VPS_STACK_NAME" >"$o" 2>&1 || { cat "$o"; return 1; }
    grep -q 'vps-stack-host-provision-apply' "$o" || { echo "the preview does not list the provisioning"; cat "$o"; return 1; }
    # A create shows the first lines of the bundle; an update shows the changed lines (broken_sshd_refused).
    grep -q 'stdin *: "@@ set user '"$DEPLOY_USER"'' "$o" || { echo "the preview does not show what it would send to the host"; return 1; }
    grep -E '^ *(\+|Resources:| *\+ [0-9]+ to create)' "$o" | tail -3
}

first_up() {
    local t0=$SECONDS
    up "$VPS_STACK_NAME" >"$VPS_LOG/up1.txt" 2>&1 || { tail -60 "$VPS_LOG/up1.txt"; return 1; }
    grep -E 'provision: |changed: ' "$VPS_LOG/up1.txt" | head -20
    note "provisioned and deployed in $((SECONDS - t0)) s"
    back_healthy
}
back_healthy() {
    local i
    for i in $(seq 60); do vps_health >/dev/null 2>&1 && break; sleep 2; done
    vps_health
}

# Every TCP port of the box, from this machine. Only SSH and the proxy answer; everything else is
# dropped (filtered), Docker's published ports included.
scan_ports() {
    local open
    nmap -Pn -n -p- -T5 --min-rate 3000 --max-retries 1 -oG "$VPS_LOG/nmap.txt" "$VPS_IP" >/dev/null || return 1
    open=$(grep -oE '[0-9]+/open/tcp' "$VPS_LOG/nmap.txt" | cut -d/ -f1 | sort -n | tr '\n' ' ')
    echo "open: $open"
    note "open TCP ports: $open"
    [ "$open" = "22 80 443 " ]
}

published_by_mistake() {
    deploy_ssh docker run -d --name e2e-published-by-mistake --label "vps-stack.stack=$VPS_STACK_NAME" -p 8081:6379 redis:7-alpine || return 1
    sleep 2
    # It works from the box itself (so the port really is published)...
    deploy_ssh 'exec 3<>/dev/tcp/127.0.0.1/8081 && printf "PING\r\n" >&3 && timeout 3 head -c 5 <&3' | grep -c PONG >/dev/null || { echo "not reachable from the box itself"; return 1; }
    # ...and not from outside.
    if timeout 5 bash -c "exec 3<>/dev/tcp/$VPS_IP/8081" 2>/dev/null; then echo "8081 is reachable from outside"; return 1; fi
    deploy_ssh docker rm -f e2e-published-by-mistake >/dev/null
}

logins() {
    if vps_ssh root "$VPS_LOG/root_key" true 2>&1; then echo "root can still log in"; return 1; fi
    if ssh -o BatchMode=yes -o PubkeyAuthentication=no -o PreferredAuthentications=password,keyboard-interactive \
        -o StrictHostKeyChecking=yes -o "UserKnownHostsFile=$VPS_LOG/known_hosts" "$DEPLOY_USER@$VPS_IP" true 2>&1; then
        echo "a password login got in"; return 1
    fi
    # sshd names the methods it would accept: publickey and nothing else.
    # (ssh fails here, so its output is taken whole rather than piped: pipefail would see the failure.)
    local denied
    denied=$(ssh -o BatchMode=yes -o PubkeyAuthentication=no -o StrictHostKeyChecking=yes -o "UserKnownHostsFile=$VPS_LOG/known_hosts" "$DEPLOY_USER@$VPS_IP" true 2>&1 | tr -d '\r')
    grep -qx '.*Permission denied (publickey)\.' <<<"$denied" || { echo "sshd offers more than publickey: $denied"; return 1; }
    deploy_ssh 'id -nG' | tr ' ' '\n' | grep -xc docker >/dev/null || { echo "the deploy user is not in the docker group"; return 1; }
    if deploy_ssh sudo -n true 2>&1; then echo "the deploy user has general sudo"; return 1; fi
    echo "root refused, password refused, publickey only, $DEPLOY_USER in docker, no general sudo"
}

daemon_settings() {
    local info
    info=$(deploy_ssh "docker info --format '{{json .}}'") || return 1
    node -e '
        const i = JSON.parse(process.argv[1]);
        const bad = [];
        if (i.LiveRestoreEnabled !== true) bad.push("live-restore off");
        if (i.LoggingDriver !== "json-file") bad.push(`logging driver ${i.LoggingDriver}`);
        if (bad.length) { console.log(bad.join(", ")); process.exit(1); }
        console.log(`live-restore ${i.LiveRestoreEnabled}, logging ${i.LoggingDriver}, security ${JSON.stringify(i.SecurityOptions)}`);' "$info" || return 1
    # The rest of daemon.json as the running daemon sees it: no docker-proxy with ports published
    # (userland-proxy false), no-new-privileges on a container that asks for nothing, log rotation.
    deploy_ssh 'pgrep -x docker-proxy' && { echo "docker-proxy runs: userland-proxy is on"; return 1; }
    deploy_ssh "docker run --rm --entrypoint sh redis:7-alpine -c 'grep ^NoNewPrivs /proc/self/status'" | grep -c 'NoNewPrivs:.*1' >/dev/null || { echo "no-new-privileges is not the default"; return 1; }
    deploy_ssh "docker run --rm -d --name e2e-logopts --entrypoint sleep redis:7-alpine 30 >/dev/null; docker inspect -f '{{json .HostConfig.LogConfig}}' e2e-logopts; docker rm -f e2e-logopts >/dev/null" | tee /dev/stderr | grep -c '"max-size":"10m"' >/dev/null
}

host_services() {
    deploy_ssh 'apt-config dump APT::Periodic::Unattended-Upgrade' | grep -c '"1"' >/dev/null || { echo "unattended upgrades not configured"; return 1; }
    deploy_ssh 'systemctl is-enabled unattended-upgrades apt-daily-upgrade.timer systemd-timesyncd vps-stack-firewall docker' || return 1
    deploy_ssh 'cat /etc/systemd/journald.conf.d/00-vps-stack.conf' | grep -c '^SystemMaxUse=500M' >/dev/null || return 1
}

# The CIS Docker Benchmark's daemon section (docker-bench-security, unmodified upstream, run as root in the
# box: it reads the daemon's files and processes) warns exactly as docs/cis-daemon-warnings.tsv says.
daemon_bench() {
    local archive="${VPS_STACK_VENDOR:-$ROOT/../shared/vendor}/docker-bench-security-ff26d67.tar.gz" actual expected
    [ -f "$archive" ] || { echo "no $archive (set VPS_STACK_VENDOR)"; return 1; }
    docker exec "$VPS_BOX" sh -c 'rm -rf /root/bench && mkdir -p /root/bench' || return 1
    docker exec -i "$VPS_BOX" tar -xzf - -C /root/bench <"$archive" || return 1
    # bash: the script uses [[ ]], which dash (Debian's sh) does not know.
    docker exec "$VPS_BOX" sh -c 'cd /root/bench/docker-bench-security-* && bash docker-bench-security.sh -c docker_daemon_configuration -l /root/bench/out.log' >>"$LOG" 2>&1 || return 1
    actual=$(docker exec "$VPS_BOX" cat /root/bench/out.log.json | node -e '
        const j = JSON.parse(require("fs").readFileSync(0, "utf8"));
        console.log(j.tests.flatMap((t) => t.results).filter((r) => r.result === "WARN").map((r) => r.id).sort().join(" "));') || return 1
    expected=$(grep -v '^#' "$ROOT/docs/cis-daemon-warnings.tsv" | cut -f1 | sort | tr '\n' ' ')
    note "daemon warnings: $actual"
    [ "$actual " = "$expected" ] || { echo "found: $actual; documented: $expected"; return 1; }
}

reapply_output() {
    local cmd
    cmd=$(out "$VPS_STACK_NAME" hostProvision --json | node -e 'console.log(JSON.parse(require("fs").readFileSync(0, "utf8")).reapply)') || return 1
    echo "$cmd"
    # A setting changed by hand on the host, put back by the output's command.
    docker exec "$VPS_BOX" sed -i 's/^MaxAuthTries .*/MaxAuthTries 9/' /etc/ssh/sshd_config.d/00-vps-stack.conf || return 1
    eval "$cmd --yes --non-interactive --skip-preview" >"$VPS_LOG/reapply.txt" 2>&1 || { tail -30 "$VPS_LOG/reapply.txt"; return 1; }
    grep -q 'changed: sshd settings' "$VPS_LOG/reapply.txt" || { echo "the reapply did not rewrite sshd"; return 1; }
    deploy_ssh 'grep -x "MaxAuthTries 3" /etc/ssh/sshd_config.d/00-vps-stack.conf'
}

second_up_no_changes() {
    pulumi preview --non-interactive --expect-no-changes --stack "$VPS_STACK_NAME" >"$VPS_LOG/preview2.txt" 2>&1 || { tail -40 "$VPS_LOG/preview2.txt"; return 1; }
    up "$VPS_STACK_NAME" >"$VPS_LOG/up2.txt" 2>&1 || { tail -40 "$VPS_LOG/up2.txt"; return 1; }
    grep -qE 'Resources:$' "$VPS_LOG/up2.txt" && grep -A3 'Resources:' "$VPS_LOG/up2.txt" | grep -q 'unchanged' && ! grep -A3 'Resources:' "$VPS_LOG/up2.txt" | grep -qE 'to (create|update|replace|delete)|(created|updated|replaced|deleted)$' || { grep -A5 'Resources:' "$VPS_LOG/up2.txt"; return 1; }
    grep -A3 'Resources:' "$VPS_LOG/up2.txt"
}

# A setting sshd refuses, slipped in by hand: the next change to the sshd settings is refused by
# `sshd -t`, the previous settings stay, and SSH keeps working. Then the real change goes through.
broken_sshd_refused() {
    docker exec "$VPS_BOX" sh -c 'echo "ThisIsNotAnSshdOption yes" > /etc/ssh/sshd_config.d/50-e2e-broken.conf' || return 1
    pulumi config set --stack "$VPS_STACK_NAME" --path 'host.provision.maxAuthTries' 4 || return 1
    # The preview shows the very lines that would change on the host.
    pulumi preview --non-interactive --diff --stack "$VPS_STACK_NAME" >"$VPS_LOG/preview-sshd.txt" 2>&1 || { tail -30 "$VPS_LOG/preview-sshd.txt"; return 1; }
    { grep -E '^\s*-.*MaxAuthTries 3' "$VPS_LOG/preview-sshd.txt" && grep -E '^\s*\+.*MaxAuthTries 4' "$VPS_LOG/preview-sshd.txt"; } ||
        { echo "the preview does not show the sshd line that changes:"; grep -n -B3 -A3 'MaxAuthTries' "$VPS_LOG/preview-sshd.txt"; return 1; }
    if up "$VPS_STACK_NAME" >"$VPS_LOG/up-broken.txt" 2>&1; then echo "pulumi up accepted a broken sshd"; return 1; fi
    grep -o 'sshd -t refused the new settings[^"]*' "$VPS_LOG/up-broken.txt" | head -1 | grep . || { tail -30 "$VPS_LOG/up-broken.txt"; return 1; }
    deploy_ssh true || { echo "SSH no longer works"; return 1; }
    deploy_ssh 'grep -x "MaxAuthTries 3" /etc/ssh/sshd_config.d/00-vps-stack.conf' || { echo "the previous settings are not in place"; return 1; }
    vps_health >/dev/null || { echo "the stack stopped serving"; return 1; }
    docker exec "$VPS_BOX" rm -f /etc/ssh/sshd_config.d/50-e2e-broken.conf || return 1
    up "$VPS_STACK_NAME" >"$VPS_LOG/up-fixed.txt" 2>&1 || { tail -30 "$VPS_LOG/up-fixed.txt"; return 1; }
    deploy_ssh 'grep -x "MaxAuthTries 4" /etc/ssh/sshd_config.d/00-vps-stack.conf'
}

# The box restarts (systemd boots again): the firewall is back before Docker, Docker and the stack come
# back by themselves.
reboot_box() {
    docker restart -t 30 "$VPS_BOX" >/dev/null || return 1
    local i
    for i in $(seq 90); do deploy_ssh true >/dev/null 2>&1 && break; sleep 1; done
    back_healthy || return 1
    deploy_ssh 'sudo -n /usr/local/sbin/vps-stack-provision probe' || return 1
    local table
    table=$(docker exec "$VPS_BOX" nft list table inet vps_stack) && grep -q 'policy drop' <<<"$table" || { echo "the firewall did not come back: $table"; return 1; }
    timeout 5 bash -c "exec 3<>/dev/tcp/$VPS_IP/5432" 2>/dev/null && { echo "5432 reachable"; return 1; }
    echo "back after a reboot, firewall loaded"
}

unprovision_leaves_host() {
    pulumi config rm --stack "$VPS_STACK_NAME" --path 'host.provision' || return 1
    up "$VPS_STACK_NAME" >"$VPS_LOG/up-unprovision.txt" 2>&1 || { tail -30 "$VPS_LOG/up-unprovision.txt"; return 1; }
    grep -q 'vps-stack-host-provision-apply.*deleted\|deleted (.*provision' "$VPS_LOG/up-unprovision.txt" || grep -E 'provision' "$VPS_LOG/up-unprovision.txt" | head -5
    deploy_ssh 'test -f /etc/ssh/sshd_config.d/00-vps-stack.conf && systemctl is-active vps-stack-firewall docker' || { echo "removing host.provision changed the host"; return 1; }
    vps_health >/dev/null
}

destroy_vps_stack() {
    pulumi destroy --yes --non-interactive --stack "$VPS_STACK_NAME" >"$VPS_LOG/destroy.txt" 2>&1 || { tail -30 "$VPS_LOG/destroy.txt"; return 1; }
    local left
    left=$(deploy_ssh "docker ps -aq --filter label=vps-stack.stack=$VPS_STACK_NAME" | wc -l)
    [ "$left" -eq 0 ] || { echo "$left containers left"; return 1; }
    pulumi stack rm --yes --force --stack "$VPS_STACK_NAME" >>"$LOG" 2>&1
}

VPS_OK=1
bridge_before=$(ip -br link show docker0 2>/dev/null | cut -d' ' -f1)
check "fresh vps: the stack's images are seeded into the box's Docker data directory" seed_images || VPS_OK=
# The main engine's bridge survives the seeding (later phases and runs use its gateway).
[ -z "$bridge_before" ] || check "fresh vps: the main engine's docker0 is still there after the seeding" ip link show docker0
[ -n "$VPS_OK" ] && { check "fresh vps: boots with systemd and sshd" boot_box || VPS_OK=; }
if [ -n "$VPS_OK" ]; then
    check "fresh vps: root's key only, no Docker, no nftables, no sudo, no deploy user" is_fresh
    init_vps_stack || fatal "fresh vps: stack init"
    check "fresh vps: pulumi preview shows the provisioning it would do, on a host without Docker" preview_fresh
    if check "fresh vps: one pulumi up provisions the host and deploys the stack, healthy over HTTPS" first_up; then
        check "fresh vps: a scan of every TCP port finds only 22, 80 and 443 open" scan_ports
        check "fresh vps: a container published by mistake is unreachable from outside" published_by_mistake
        check "fresh vps: root and password logins are refused; the deploy user's key works" logins
        check "fresh vps: the daemon settings are in effect (docker info, a container's defaults)" daemon_settings
        check "fresh vps: unattended upgrades, time sync, journald limit, firewall at boot" host_services
        check "fresh vps: docker-bench-security's daemon section warns only as docs/cis-daemon-warnings.tsv says" daemon_bench
        check "fresh vps: a second pulumi up reports no changes" second_up_no_changes
        check "fresh vps: the hostProvision.reapply output puts back a setting changed by hand" reapply_output
        check "fresh vps: a broken sshd setting is refused, SSH still works, then the fix goes through" broken_sshd_refused
        check "fresh vps: after a reboot the firewall, Docker and the stack come back by themselves" reboot_box
        check "fresh vps: removing host.provision leaves the host as it is" unprovision_leaves_host
        check "fresh vps: pulumi destroy removes the stack" destroy_vps_stack
    fi
fi
pulumi destroy --yes --non-interactive --stack "$VPS_STACK_NAME" >>"$LOG" 2>&1 || true
vps_cleanup
