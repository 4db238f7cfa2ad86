#!/bin/bash
# vps-stack-provision: makes a Debian 12/13 or Ubuntu 24.04 host a hardened Docker host, idempotently.
# Runs as root on the host, installed as /usr/local/sbin/vps-stack-provision; the deploying machine
# (scripts of HostProvision) uploads it with a bundle of rendered files and calls:
#
#   vps-stack-provision probe           prints "vps-stack-provision <os>": the sudo rule works
#   vps-stack-provision validate FILE   checks a bundle (settings, nft -c, visudo -c), changes nothing
#   vps-stack-provision apply DIR       installs DIR/vps-stack-provision over itself, then applies DIR/bundle
#   vps-stack-provision confirm         a fresh login worked: keep the new sshd and firewall settings
#   vps-stack-provision revert          put the previous sshd and firewall settings back (also run by a
#                                       timer if no confirmation comes, so a lost session cannot lock out)
#
# The bundle is data, never sourced: "@@ set KEY VALUE" lines (each value checked below) and
# "@@ file NAME" sections whose text goes to a fixed path. Every file is written only when it differs,
# and only what changed is reloaded or restarted; the output lists what changed.
set -euo pipefail
umask 022

STATE=/var/lib/vps-stack/provision
PREVIOUS=$STATE/previous
SELF=/usr/local/sbin/vps-stack-provision
REVERT_UNIT=vps-stack-provision-revert
# How long a change to sshd or the firewall waits for the fresh login that confirms it.
REVERT_AFTER=${VPS_STACK_REVERT_AFTER:-120}

SSHD_DROPIN=/etc/ssh/sshd_config.d/00-vps-stack.conf
FIREWALL_FILE=/etc/vps-stack/firewall.nft
FIREWALL_UNIT=/etc/systemd/system/vps-stack-firewall.service
DAEMON_JSON=/etc/docker/daemon.json
JOURNALD_DROPIN=/etc/systemd/journald.conf.d/00-vps-stack.conf
SUDOERS=/etc/sudoers.d/vps-stack
AUTO_UPGRADES=/etc/apt/apt.conf.d/20auto-upgrades
KEYS_BEGIN="# vps-stack: host.provision.authorizedKeys (managed; lines outside this block are kept)"
KEYS_END="# vps-stack: end"

log() { printf 'vps-stack-provision: %s\n' "$*"; }
die() { printf 'vps-stack-provision: error: %s\n' "$*" >&2; exit 1; }
CHANGED=()
changed() { CHANGED+=("$1"); log "changed: $1"; }

# ---------------------------------------------------------------------------------------------- bundle
declare -A SET=()
BUNDLE_DIR=""
read_bundle() { # read_bundle FILE: settings into SET, files into $BUNDLE_DIR/files/NAME
    BUNDLE_DIR=$(mktemp -d "${VPS_STACK_RUN_DIR:-/run}/vps-stack-provision.XXXXXX")
    mkdir "$BUNDLE_DIR/files"
    local line name="" key value
    while IFS= read -r line || [ -n "$line" ]; do
        case "$line" in
        "@@ set "*)
            name=""
            line=${line#@@ set }
            key=${line%% *}
            value=${line#"$key"}
            value=${value# }
            SET[$key]=$value
            ;;
        "@@ file "*)
            name=${line#@@ file }
            [[ $name =~ ^[a-z0-9.-]+$ ]] || die "bundle: bad file name '$name'"
            : >"$BUNDLE_DIR/files/$name"
            ;;
        "@@ end") name="" ;;
        *)
            [ -n "$name" ] || { [ -z "$line" ] && continue; die "bundle: text outside a file section: '$line'"; }
            printf '%s\n' "$line" >>"$BUNDLE_DIR/files/$name"
            ;;
        esac
    done <"$1"
}
setting() { # setting KEY REGEX: the value, checked again here (the program checked it first)
    local v=${SET[$1]-}
    [[ $v =~ $2 ]] || die "bundle: setting $1='$v' does not match $2"
    printf '%s' "$v"
}
bundle_file() { printf '%s/files/%s' "$BUNDLE_DIR" "$1"; }
has_file() { [ -f "$(bundle_file "$1")" ]; }

# differs NAME TARGET: the bundle's file NAME is not (yet) what TARGET holds
differs() { ! [ -f "$2" ] || ! cmp -s "$(bundle_file "$1")" "$2"; }

# install_file NAME TARGET MODE: copies a bundle file over TARGET when it differs; returns 0 when it did
install_file() {
    [ -f "$(bundle_file "$1")" ] || die "bundle: no file '$1'"
    differs "$1" "$2" || return 1
    mkdir -p "$(dirname "$2")"
    install -m "$3" -o root -g root "$(bundle_file "$1")" "$2.vps-stack-new"
    mv -f "$2.vps-stack-new" "$2"
    return 0
}

# keep_previous FILE: remembers FILE (or its absence) as the version to revert to
keep_previous() {
    local name
    name=$(basename "$1")
    mkdir -p "$PREVIOUS"
    if [ -f "$1" ]; then cp -p "$1" "$PREVIOUS/$name"; rm -f "$PREVIOUS/$name.absent"
    else rm -f "$PREVIOUS/$name"; : >"$PREVIOUS/$name.absent"; fi
}
restore_previous() { # restore_previous FILE: returns 1 when nothing was kept for it
    local name
    name=$(basename "$1")
    if [ -f "$PREVIOUS/$name" ]; then cp -p "$PREVIOUS/$name" "$1"
    elif [ -f "$PREVIOUS/$name.absent" ]; then rm -f "$1"
    else return 1; fi
}

# ------------------------------------------------------------------------------------------------ host
# The tests point this at a file of their own; on a host it is the host's.
OS_RELEASE=${VPS_STACK_OS_RELEASE:-/etc/os-release}
check_os() {
    [ -r "$OS_RELEASE" ] || die "no /etc/os-release: not a supported system (Debian 12, 13 or Ubuntu 24.04)"
    local id version pretty
    # shellcheck disable=SC1090 # the host's own file
    id=$(. "$OS_RELEASE" && printf '%s' "${ID:-}")
    # shellcheck disable=SC1090
    version=$(. "$OS_RELEASE" && printf '%s' "${VERSION_ID:-}")
    # shellcheck disable=SC1090
    pretty=$(. "$OS_RELEASE" && printf '%s' "${PRETTY_NAME:-$id $version}")
    case "$id:$version" in
    debian:12 | debian:13 | ubuntu:24.04) OS="$id $version" ;;
    *) die "$pretty is not supported: host.provision prepares Debian 12, Debian 13 or Ubuntu 24.04 (unset host.provision and prepare the host yourself, see \"Bring your own host\" in the README)" ;;
    esac
    { command -v systemctl >/dev/null && [ -d /run/systemd/system ]; } || die "systemd is not running: host.provision needs a systemd host"
}

APT_UPDATED=""
apt_install() { # apt_install PACKAGE...: installs the ones that are missing
    local missing=() p
    for p in "$@"; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
    done
    [ ${#missing[@]} -gt 0 ] || return 0
    if [ -z "$APT_UPDATED" ]; then
        DEBIAN_FRONTEND=noninteractive apt-get -q update >/dev/null || die "apt-get update failed (see above)"
        APT_UPDATED=1
    fi
    log "installing ${missing[*]}"
    DEBIAN_FRONTEND=noninteractive apt-get -q -y -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold \
        install "${missing[@]}" >/dev/null || die "apt-get install ${missing[*]} failed"
    changed "packages: ${missing[*]}"
}

packages() {
    local want=(nftables sudo)
    # Docker Engine: the distribution's docker.io unless an engine (e.g. docker-ce) is already there.
    command -v dockerd >/dev/null || want+=(docker.io)
    [ "$(setting unattendedUpgrades '^[01]$')" = 1 ] && want+=(unattended-upgrades)
    # Time sync: keep chrony or ntpsec when the image has one, else systemd-timesyncd.
    if ! dpkg-query -W -f='${Status}' chrony ntpsec ntp 2>/dev/null | grep -q "install ok installed"; then
        want+=(systemd-timesyncd)
    fi
    apt_install "${want[@]}"
}

deploy_user() {
    local user home keys tmp
    user=$(setting user '^[a-z_][a-z0-9_-]{0,31}$')
    if ! id "$user" >/dev/null 2>&1; then
        useradd --create-home --shell /bin/bash --user-group "$user"
        # Key authentication only: no password can match "*", and the account is not locked ("!"),
        # which sshd would refuse.
        usermod -p '*' "$user"
        changed "user $user"
    fi
    getent group docker >/dev/null || groupadd --system docker
    if ! id -nG "$user" | tr ' ' '\n' | grep -qx docker; then
        usermod -aG docker "$user"
        changed "user $user in group docker"
    fi
    home=$(getent passwd "$user" | cut -d: -f6)
    install -d -m 700 -o "$user" -g "$(id -gn "$user")" "$home/.ssh"
    keys="$home/.ssh/authorized_keys"
    tmp=$(mktemp)
    {
        [ -f "$keys" ] && sed "/^$KEYS_BEGIN\$/,/^$KEYS_END\$/d" "$keys"
        printf '%s\n' "$KEYS_BEGIN"
        grep -E '^(ssh-|ecdsa-|sk-)' "$(bundle_file authorized-keys)"
        printf '%s\n' "$KEYS_END"
    } >"$tmp"
    if ! [ -f "$keys" ] || ! cmp -s "$tmp" "$keys"; then
        install -m 600 -o "$user" -g "$(id -gn "$user")" "$tmp" "$keys"
        changed "authorized keys of $user"
    fi
    rm -f "$tmp"
    # The sudo rule: validated before it is installed, since a broken sudoers file breaks all of sudo.
    if differs sudoers "$SUDOERS"; then
        visudo -c -q -f "$(bundle_file sudoers)" >/dev/null || die "the rendered sudoers rule does not pass visudo -c: nothing was changed"
        install_file sudoers "$SUDOERS" 0440 && changed "sudo rule for $user"
    fi
}

docker_engine() {
    local restart=""
    if differs daemon.json "$DAEMON_JSON"; then
        keep_previous "$DAEMON_JSON"
        install_file daemon.json "$DAEMON_JSON" 0644
        changed "docker daemon.json"
        restart=1
    fi
    systemctl is-enabled --quiet docker 2>/dev/null || { systemctl enable --quiet docker; changed "docker enabled at boot"; }
    if [ -n "$restart" ] || ! systemctl is-active --quiet docker; then
        # live-restore keeps running containers through the restart once it is in effect.
        if ! systemctl restart docker; then
            restore_previous "$DAEMON_JSON" || true
            systemctl restart docker || true
            die "Docker did not start with the new daemon.json (journalctl -u docker); the previous one is back"
        fi
    fi
    for _ in $(seq 30); do docker info >/dev/null 2>&1 && break; sleep 1; done
    docker info >/dev/null 2>&1 || die "Docker is not answering after its (re)start: journalctl -u docker"
}

journald() {
    if install_file journald.conf "$JOURNALD_DROPIN" 0644; then
        systemctl restart systemd-journald || true
        changed "journald size limit"
    fi
}

swap() {
    local want mem_kib size_mib
    want=$(setting swap '^(auto|off|[0-9]+)$')
    [ "$want" = off ] && return 0
    # Any active swap (a partition, zram, our file) means nothing to do.
    [ "$(swapon --noheadings --show=NAME 2>/dev/null | wc -l)" -eq 0 ] || return 0
    mem_kib=$(awk '/^MemTotal:/ {print $2}' /proc/meminfo)
    if [ "$want" = auto ]; then
        [ "$mem_kib" -lt $((2 * 1024 * 1024)) ] || return 0
        size_mib=$((mem_kib / 1024))
        [ "$size_mib" -le 2048 ] || size_mib=2048
    else
        size_mib=$want
    fi
    if ! [ -f /swapfile ]; then
        fallocate -l "${size_mib}M" /swapfile 2>/dev/null || dd if=/dev/zero of=/swapfile bs=1M count="$size_mib" status=none
        chmod 600 /swapfile
        mkswap /swapfile >/dev/null
    fi
    swapon /swapfile || die "swapon /swapfile failed (the filesystem may not support swap files); set host.provision.swap to off"
    grep -q '^/swapfile ' /etc/fstab || printf '/swapfile none swap sw 0 0\n' >>/etc/fstab
    changed "swap file ${size_mib}M"
}

time_sync() {
    local unit
    for unit in chrony ntpsec ntp systemd-timesyncd; do
        if systemctl list-unit-files "$unit.service" >/dev/null 2>&1 && systemctl cat "$unit.service" >/dev/null 2>&1; then
            systemctl is-enabled --quiet "$unit" 2>/dev/null || { systemctl enable --quiet "$unit"; changed "time sync ($unit) enabled"; }
            # timesyncd does not run in containers (ConditionVirtualization); start is a no-op there.
            systemctl start "$unit" 2>/dev/null || true
            return 0
        fi
    done
    die "no time synchronisation service could be found"
}

upgrades() {
    [ "$(setting unattendedUpgrades '^[01]$')" = 1 ] || return 0
    install_file auto-upgrades "$AUTO_UPGRADES" 0644 && changed "unattended upgrades"
    systemctl enable --quiet --now unattended-upgrades 2>/dev/null || true
}

firewall() {
    local ssh_port
    ssh_port=$(setting sshPort '^[0-9]{1,5}$')
    # Never shut the door we came in by: the rendered rules must allow the SSH port.
    grep -Eq "^[[:space:]]*set tcp_in \{.*elements = \{([^}]*[ ,])?${ssh_port}[ ,}]" "$(bundle_file firewall.nft)" || die "the rendered firewall does not allow SSH on port $ssh_port: nothing was changed"
    nft -c -f "$(bundle_file firewall.nft)" || die "nft refused the rendered firewall (above): nothing was changed"
    if ! [ -f "$FIREWALL_UNIT" ] || ! grep -q "$FIREWALL_FILE" "$FIREWALL_UNIT"; then
        cat >"$FIREWALL_UNIT" <<EOF
[Unit]
Description=vps-stack firewall (table inet vps_stack)
Documentation=man:nft(8)
DefaultDependencies=no
Before=network-pre.target docker.service
Wants=network-pre.target
After=local-fs.target

[Service]
Type=oneshot
RemainAfterExit=yes
ExecStart=/usr/sbin/nft -f $FIREWALL_FILE
ExecReload=/usr/sbin/nft -f $FIREWALL_FILE
ExecStop=/usr/sbin/nft delete table inet vps_stack

[Install]
WantedBy=sysinit.target
EOF
        systemctl daemon-reload
    fi
    if differs firewall.nft "$FIREWALL_FILE"; then
        keep_previous "$FIREWALL_FILE"
        install_file firewall.nft "$FIREWALL_FILE" 0600 || true
        PENDING+=(firewall)
        changed "firewall"
    fi
    systemctl is-enabled --quiet vps-stack-firewall 2>/dev/null || systemctl enable --quiet vps-stack-firewall
    # Loading replaces only our own table, atomically; Docker's tables are left alone.
    nft -f "$FIREWALL_FILE" || die "nft could not load $FIREWALL_FILE"
}

sshd_reload() {
    if systemctl is-active --quiet ssh; then systemctl reload ssh
    elif systemctl is-active --quiet sshd; then systemctl reload sshd
    else systemctl restart ssh 2>/dev/null || systemctl restart sshd; fi
}

sshd() {
    grep -Eiq '^[[:space:]]*Include[[:space:]]+/etc/ssh/sshd_config\.d/\*\.conf' /etc/ssh/sshd_config ||
        die "/etc/ssh/sshd_config does not include /etc/ssh/sshd_config.d/*.conf (Debian 12+ and Ubuntu do): nothing was changed"
    differs sshd.conf "$SSHD_DROPIN" || return 0
    keep_previous "$SSHD_DROPIN"
    install_file sshd.conf "$SSHD_DROPIN" 0644 || true
    local out
    if ! out=$(/usr/sbin/sshd -t 2>&1); then
        restore_previous "$SSHD_DROPIN" || rm -f "$SSHD_DROPIN"
        die "sshd -t refused the new settings, so the previous ones stay in place and SSH is unchanged: $out"
    fi
    sshd_reload
    PENDING+=(sshd)
    changed "sshd settings"
}

arm_revert() {
    systemctl stop "$REVERT_UNIT.timer" "$REVERT_UNIT.service" >/dev/null 2>&1 || true
    systemctl reset-failed "$REVERT_UNIT.service" "$REVERT_UNIT.timer" >/dev/null 2>&1 || true
    systemd-run --quiet --unit="$REVERT_UNIT" --on-active="$REVERT_AFTER" "$SELF" revert >/dev/null ||
        die "could not arm the revert timer (systemd-run), so the new settings were not kept: run again"
    printf '%s\n' "${PENDING[@]}" >"$STATE/pending"
    log "pending confirmation: ${PENDING[*]} (reverted in ${REVERT_AFTER}s unless a fresh login confirms)"
}

# ------------------------------------------------------------------------------------------- commands
cmd_probe() {
    check_os
    printf 'vps-stack-provision %s\n' "$OS"
}

validate_bundle() { # everything that can be checked before anything on the host changes
    local key
    setting user '^[a-z_][a-z0-9_-]{0,31}$' >/dev/null
    setting provisionUser '^[a-z_][a-z0-9_-]{0,31}$' >/dev/null
    setting sshPort '^[0-9]{1,5}$' >/dev/null
    setting swap '^(auto|off|[0-9]+)$' >/dev/null
    setting unattendedUpgrades '^[01]$' >/dev/null
    for key in "${!SET[@]}"; do
        case "$key" in user | provisionUser | sshPort | swap | unattendedUpgrades) ;; *) die "bundle: unknown setting '$key'" ;; esac
    done
    for key in authorized-keys sudoers daemon.json journald.conf auto-upgrades firewall.nft sshd.conf; do
        has_file "$key" || die "bundle: no file '$key'"
    done
    if command -v nft >/dev/null; then
        nft -c -f "$(bundle_file firewall.nft)" || die "nft refused the rendered firewall"
    fi
    if command -v visudo >/dev/null; then
        visudo -c -q -f "$(bundle_file sudoers)" >/dev/null || die "visudo refused the rendered sudoers rule"
    fi
}
cmd_validate() {
    read_bundle "$1"
    validate_bundle
    log "bundle ok: ${#SET[@]} settings, $(find "$BUNDLE_DIR/files" -type f | wc -l) files"
    rm -rf "$BUNDLE_DIR"
}

cmd_apply() {
    local dir="$1"
    [ -f "$dir/bundle" ] || die "apply: no bundle in $dir"
    # A newer program brings a newer script: install it, then run that one.
    if [ -f "$dir/vps-stack-provision" ] && ! cmp -s "$dir/vps-stack-provision" "$SELF"; then
        install -D -m 0755 -o root -g root "$dir/vps-stack-provision" "$SELF"
        exec "$SELF" apply "$dir"
    fi
    check_os
    mkdir -p "$STATE"
    chmod 700 /var/lib/vps-stack "$STATE"
    exec 8>"$STATE/lock"
    flock -w 300 8 || die "another provisioning run holds $STATE/lock"
    # An unconfirmed change from an earlier run that died: put it back before building on it.
    if [ -s "$STATE/pending" ]; then log "an earlier run left unconfirmed changes: reverting them first"; cmd_revert; fi
    read_bundle "$dir/bundle"
    PENDING=()
    # nft and visudo arrive with the packages on a fresh host: their checks run again before each write.
    validate_bundle
    packages
    deploy_user
    docker_engine
    journald
    swap
    time_sync
    upgrades
    firewall
    sshd
    [ ${#PENDING[@]} -eq 0 ] || arm_revert
    rm -rf "$BUNDLE_DIR" "$dir"
    if [ ${#CHANGED[@]} -eq 0 ]; then log "nothing to change ($OS)"; else log "done: ${#CHANGED[@]} change(s) ($OS)"; fi
    [ ${#PENDING[@]} -eq 0 ] || echo "PENDING ${PENDING[*]}"
}

cmd_confirm() {
    systemctl stop "$REVERT_UNIT.timer" >/dev/null 2>&1 || true
    systemctl reset-failed "$REVERT_UNIT.service" "$REVERT_UNIT.timer" >/dev/null 2>&1 || true
    if [ -s "$STATE/pending" ]; then log "confirmed: $(tr '\n' ' ' <"$STATE/pending")"; fi
    rm -f "$STATE/pending"
    rm -rf "$PREVIOUS"
}

cmd_revert() {
    systemctl stop "$REVERT_UNIT.timer" >/dev/null 2>&1 || true
    local what
    [ -s "$STATE/pending" ] || { log "nothing to revert"; return 0; }
    while read -r what; do
        case "$what" in
        sshd)
            restore_previous "$SSHD_DROPIN" || true
            sshd_reload
            log "reverted: sshd settings"
            ;;
        firewall)
            if restore_previous "$FIREWALL_FILE" && [ -f "$FIREWALL_FILE" ]; then nft -f "$FIREWALL_FILE"
            else nft delete table inet vps_stack 2>/dev/null || true; systemctl disable --quiet vps-stack-firewall || true; fi
            log "reverted: firewall"
            ;;
        esac
    done <"$STATE/pending"
    rm -f "$STATE/pending"
}

[ "$(id -u)" = 0 ] || die "must run as root (through sudo -n for the deploy user)"
case "${1:-}" in
probe) cmd_probe ;;
validate) [ $# -eq 2 ] || die "usage: vps-stack-provision validate FILE"; cmd_validate "$2" ;;
apply) [ $# -eq 2 ] || die "usage: vps-stack-provision apply DIR"; cmd_apply "$2" ;;
confirm) cmd_confirm ;;
revert) cmd_revert ;;
*) die "usage: vps-stack-provision probe|validate FILE|apply DIR|confirm|revert" ;;
esac
