# shellcheck shell=bash disable=SC2317,SC2329,SC2129,SC2034,SC2016,SC2015 # functions are called through check(); variables are shared with later phases
phase "ssh box"
command -v sshd >/dev/null 2>&1 || [ -x /usr/sbin/sshd ] || apt_install openssh-server openssh-client || fatal "box: cannot install openssh-server"
getent group docker >/dev/null || fatal "box: no docker group (docker.io not installed?)"
if ! id "$DEPLOY_USER" >/dev/null 2>&1; then
    useradd --create-home --shell /bin/sh --groups docker "$DEPLOY_USER" || fatal "box: cannot create $DEPLOY_USER"
fi
usermod -aG docker "$DEPLOY_USER"
# Key authentication only: no usable password, but not locked ("!"), which sshd would refuse.
usermod -p '*' "$DEPLOY_USER"
home=$(getent passwd "$DEPLOY_USER" | cut -d: -f6)
ssh-keygen -q -t ed25519 -N '' -C e2e-client -f "$E2E/client_key"
# The box has the three host keys a Debian VPS has; stacks pin one of them.
for t in ed25519 ecdsa rsa; do ssh-keygen -q -t "$t" -N '' -C '' -f "$E2E/ssh_host_${t}_key"; done
install -d -m 700 -o "$DEPLOY_USER" -g "$DEPLOY_USER" "$home/.ssh"
install -m 600 -o "$DEPLOY_USER" -g "$DEPLOY_USER" "$E2E/client_key.pub" "$home/.ssh/authorized_keys"
SSH_PORT=$(free_port)
# Debian's shipped sshd_config (PAM, AcceptEnv LANG LC_* only, the sftp subsystem), plus the lock-down a
# VPS should have and the one setting docs/hosts.md asks of a host brought by its owner (MaxSessions).
# Nothing here is loosened for the program: e.g. no AcceptEnv for the variables a remote command might
# want to send.
cat >"$E2E/sshd_config" <<EOF
Port $SSH_PORT
ListenAddress 127.0.0.1
HostKey $E2E/ssh_host_rsa_key
HostKey $E2E/ssh_host_ecdsa_key
HostKey $E2E/ssh_host_ed25519_key
PidFile $E2E/sshd.pid
AuthorizedKeysFile .ssh/authorized_keys
PubkeyAuthentication yes
PasswordAuthentication no
KbdInteractiveAuthentication no
PermitRootLogin no
AllowUsers $DEPLOY_USER
MaxSessions 64
UsePAM yes
StrictModes yes
X11Forwarding no
PrintMotd no
AcceptEnv LANG LC_*
Subsystem sftp /usr/lib/openssh/sftp-server
LogLevel INFO
EOF
mkdir -p /run/sshd
/usr/sbin/sshd -f "$E2E/sshd_config" -E "$E2E/sshd.log" || fatal "box: sshd did not start"
HOST_KEY=$(cut -d' ' -f1,2 "$E2E/ssh_host_ed25519_key.pub")
HOST_KEY_ECDSA=$(cut -d' ' -f1,2 "$E2E/ssh_host_ecdsa_key.pub")
HOST_KEY_RSA=$(cut -d' ' -f1,2 "$E2E/ssh_host_rsa_key.pub")
printf '[127.0.0.1]:%s %s\n' "$SSH_PORT" "$HOST_KEY" >"$E2E/known_hosts"
SSH=(ssh -p "$SSH_PORT" -i "$E2E/client_key" -o BatchMode=yes -o IdentitiesOnly=yes -o StrictHostKeyChecking=yes -o "UserKnownHostsFile=$E2E/known_hosts" "$DEPLOY_USER@127.0.0.1")
for _ in $(seq 20); do "${SSH[@]}" true >>"$LOG" 2>&1 && break; sleep 0.5; done
check "box: the deploy user reaches Docker over SSH with the pinned host key" "${SSH[@]}" docker version --format '{{.Server.Version}}'
check "box: an unpinned host key is refused" bash -c "! ssh -p $SSH_PORT -i $E2E/client_key -o BatchMode=yes -o StrictHostKeyChecking=yes -o UserKnownHostsFile=/dev/null $DEPLOY_USER@127.0.0.1 true"


# The project: a copy of the working tree, so stack files and state never land in the repository.
mkdir -p "$E2E/project"
tar -C "$ROOT" --exclude=./node_modules --exclude=./policy/node_modules --exclude=./.git --exclude='./Pulumi.e2e*.yaml' -cf - . | tar -C "$E2E/project" -xf -
ln -s "$ROOT/node_modules" "$E2E/project/node_modules"
cd "$E2E/project" || fatal "project copy"

HTTP_PORT=$(free_port)
HTTPS_PORT=$(free_port)
HTTP2_PORT=$(free_port)
HTTPS2_PORT=$(free_port)
