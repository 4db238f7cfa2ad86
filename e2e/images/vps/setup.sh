#!/bin/sh
# Runs inside the image's chroot: "pre" before apt-get install, "post" after it.
set -eu
case "$1" in
pre) ;;
post)
	# A VPS starts services it installs, and installs recommended packages: undo the chroot's
	# build-time settings (policy-rc.d, no recommends) so provisioning meets a real Debian.
	rm -f /usr/sbin/policy-rc.d /etc/apt/apt.conf.d/01-vps-stack
	# Units that have nothing to do in a container (no consoles, no udev, no kernel modules).
	for unit in getty.target console-getty.service systemd-udevd.service systemd-udev-trigger.service \
		systemd-modules-load.service systemd-remount-fs.service sys-kernel-config.mount \
		sys-kernel-debug.mount sys-kernel-tracing.mount; do
		ln -sf /dev/null "/etc/systemd/system/$unit"
	done
	# Host keys are made at first boot (ssh.service's ExecStartPre does not; this unit does).
	rm -f /etc/ssh/ssh_host_*
	mkdir -p /etc/systemd/system/ssh.service.d
	printf '[Service]\nExecStartPre=\nExecStartPre=/usr/bin/ssh-keygen -A\nExecStartPre=/usr/sbin/sshd -t\n' \
		>/etc/systemd/system/ssh.service.d/keys.conf
	systemctl enable ssh.service
	# root's key is added at boot by the test; no password is set (as on a provider's image with a key)
	usermod -p '*' root
	;;
esac
