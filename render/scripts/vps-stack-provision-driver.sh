# Provisioning, the deploying machine's side (bash, run by HostProvision's local command): reaches the
# host, uploads the host-side script and the bundle (stdin), applies them, and keeps a change to sshd or
# the firewall only once a fresh login as the deploy user works. Environment:
#   VPS_ADDRESS VPS_PORT VPS_KNOWN_HOSTS VPS_CONTROL_DIR    where, and the pinned host key
#   VPS_USER VPS_KEY                                        the deploy user and its key ("" = ssh-agent)
#   VPS_PROVISION_USER VPS_PROVISION_KEY                    the one-time access (root or a sudo user)
#   VPS_STACK_PROVISION_SCRIPT                              scripts/vps-stack-provision.sh
set -euo pipefail
SELF=/usr/local/sbin/vps-stack-provision
say() { printf 'provision: %s\n' "$*" >&2; }
die() { printf 'provision: error: %s\n' "$*" >&2; exit 1; }
one_line() { local s=${1//$'\r'/}; s=${s//$'\n'/ }; printf '%s' "${s% }"; }

work=$(mktemp -d)
master=""
cleanup() {
    [ -z "$master" ] || ssh -S "$master" -O exit x >/dev/null 2>&1 || true
    rm -rf "$work"
}
trap cleanup EXIT
cat >"$work/bundle"
printf '%s' "$VPS_STACK_PROVISION_SCRIPT" >"$work/script"

common=(-p "$VPS_PORT" -o BatchMode=yes -o StrictHostKeyChecking=yes -o "UserKnownHostsFile=$VPS_KNOWN_HOSTS"
    -o GlobalKnownHostsFile=/dev/null -o ConnectTimeout=20 -o ServerAliveInterval=15)
deploy_opts=("${common[@]}")
[ -z "$VPS_KEY" ] || deploy_opts+=(-o IdentitiesOnly=yes -i "$VPS_KEY")
provision_opts=("${common[@]}")
[ -z "$VPS_PROVISION_KEY" ] || provision_opts+=(-o IdentitiesOnly=yes -i "$VPS_PROVISION_KEY")

# A login of its own (no shared connection), so it proves what sshd accepts now.
fresh_deploy() { ssh "${deploy_opts[@]}" -o ControlPath=none "$VPS_USER@$VPS_ADDRESS" "$@"; }

# Which access works: the deploy user's sudo rule once a first run installed it, else the one-time access.
if probe=$(fresh_deploy sudo -n "$SELF" probe 2>&1); then
    via=("${deploy_opts[@]}" "$VPS_USER@$VPS_ADDRESS")
    via_deploy=1
    sudo=(sudo -n)
    say "as $VPS_USER through its sudo rule (${probe##*$'\n'})"
elif first=$(ssh "${provision_opts[@]}" -o ControlPath=none "$VPS_PROVISION_USER@$VPS_ADDRESS" true 2>&1); then
    via=("${provision_opts[@]}" "$VPS_PROVISION_USER@$VPS_ADDRESS")
    via_deploy=0
    if [ "$VPS_PROVISION_USER" = root ]; then sudo=(); else sudo=(sudo -n); fi
    say "as $VPS_PROVISION_USER (the one-time access: host.provision.user)"
else
    die "cannot reach $VPS_ADDRESS:$VPS_PORT as $VPS_USER (with its sudo rule: $(one_line "$probe")) nor as $VPS_PROVISION_USER ($(one_line "$first")). On a fresh VPS, check that host.provision.user's key is authorised there (the provider's console or rescue mode)."
fi

# One connection for the whole run: it outlives an sshd reload, so a revert can still get through.
master="$work/master"
ssh "${via[@]::${#via[@]}-1}" -o ControlMaster=yes -o "ControlPath=$master" -o ControlPersist=600 -fN "${via[-1]}" ||
    die "could not open the SSH connection"
on_host() { ssh -o "ControlPath=$master" -o ControlMaster=no "${via[@]}" "$@"; }

dir=$(on_host 'umask 077 && mktemp -d') || die "could not make a temporary directory on the host"
on_host "cat > $dir/bundle" <"$work/bundle"
on_host "cat > $dir/vps-stack-provision" <"$work/script"
if [ "$via_deploy" = 0 ]; then
    # The one-time access installs the script; the deploy user's rule runs the installed one, which
    # installs a newer copy over itself.
    on_host "${sudo[@]}" install -D -m 0755 -o root -g root "$dir/vps-stack-provision" "$SELF" ||
        die "could not install $SELF (does host.provision.user have passwordless sudo?)"
fi
set +e
on_host "${sudo[@]}" "$SELF" apply "$dir" | tee "$work/out" >&2
status=${PIPESTATUS[0]}
set -e
[ "$status" -eq 0 ] || die "provisioning failed on the host (above); what it had already done stays, and the next run picks up from there"

# A shared connection of the deploy user made before it joined the docker group would not see the group.
ssh -o "ControlPath=$VPS_CONTROL_DIR/%C" -O exit -p "$VPS_PORT" "$VPS_USER@$VPS_ADDRESS" >/dev/null 2>&1 || true

if grep -q '^PENDING ' "$work/out"; then
    if err=$(fresh_deploy sudo -n "$SELF" confirm 2>&1); then
        say "a fresh login as $VPS_USER works: the new settings are kept"
    else
        on_host "${sudo[@]}" "$SELF" revert >&2 || true
        die "a fresh login as $VPS_USER failed after the change ($(one_line "$err")), so the previous sshd and firewall settings are back; nothing else was undone"
    fi
fi
if ! version=$(fresh_deploy docker version --format '{{.Server.Version}}' 2>&1); then
    die "$VPS_USER cannot reach Docker over a fresh login: $(one_line "$version")"
fi
say "ready: $VPS_USER reaches Docker $version"
grep -E '^vps-stack-provision: (changed|nothing|done)' "$work/out" | sed 's/^vps-stack-provision: //'
