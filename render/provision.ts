// Host provisioning, the texts: the files that make a fresh VPS a hardened Docker host (daemon.json, the
// sshd drop-in, the nftables table, journald, unattended upgrades, the sudo rule, the deploy keys), the
// bundle that carries them to scripts/vps-stack-provision.sh, and the driver that runs it over SSH from
// the deploying machine. Pure: the values were checked by config/provision.ts, the one rule for these sinks.
import * as fs from "fs";
import * as path from "path";
import { FirewallRule, ProvisionPlan } from "../config/provision";

export type { ProvisionPlan };
import { LOG_OPTS } from "../plan/container-defaults";

export const PROVISION_SCRIPT_PATH = "/usr/local/sbin/vps-stack-provision";

export const provisionScript = (): string => fs.readFileSync(path.join(__dirname, "scripts", "vps-stack-provision.sh"), "utf8");
export const provisionDriver = (): string => fs.readFileSync(path.join(__dirname, "scripts", "vps-stack-provision-driver.sh"), "utf8");


/**
 * The daemon settings of the CIS Docker Benchmark's section 2 that the stack runs with (docs/hosts.md says
 * which ones are left out and why). Log rotation matches the containers' own, for anything run by hand.
 */
export function daemonJson(): string {
    const settings = {
        "icc": false,
        "live-restore": true,
        "log-driver": "json-file",
        "log-level": "info",
        "log-opts": LOG_OPTS,
        "no-new-privileges": true,
        "userland-proxy": false,
    };
    return `${JSON.stringify(settings, null, 2)}\n`;
}

export function sshdConfig(p: ProvisionPlan): string {
    const allowed = p.provisionUser === "root" || p.provisionUser === p.user ? [p.user] : [p.user, p.provisionUser];
    return [
        "# vps-stack host.provision. sshd keeps the first value it reads, and this file is read before the",
        "# distribution's settings and any later drop-in, so these win.",
        "PermitRootLogin no",
        "PubkeyAuthentication yes",
        "AuthenticationMethods publickey",
        "PasswordAuthentication no",
        "KbdInteractiveAuthentication no",
        "PermitEmptyPasswords no",
        `AllowUsers ${allowed.join(" ")}`,
        `MaxAuthTries ${p.maxAuthTries}`,
        `LoginGraceTime ${p.loginGraceTime}`,
        // The Docker provider multiplexes one session per operation over one connection, and Pulumi runs them
        // all at once: past sshd's default 10, each extra one logs in on its own, and a burst of those logins
        // meets MaxStartups (10 unauthenticated), which drops some and fails the operation.
        "MaxSessions 64",
        "X11Forwarding no",
        "AllowAgentForwarding no",
        "PermitUserEnvironment no",
        "",
    ].join("\n");
}

/** Sorted, merged port elements of an nftables set ("22, 80, 443, 60000-60010"). */
function setElements(rules: FirewallRule[]): string {
    const ranges = rules.map((r) => [r.from, r.to]).sort((a, b) => a[0] - b[0] || a[1] - b[1]);
    const merged: number[][] = [];
    for (const [a, b] of ranges) {
        const last = merged[merged.length - 1];
        if (last && a <= last[1] + 1) last[1] = Math.max(last[1], b);
        else merged.push([a, b]);
    }
    return merged.map(([a, b]) => (a === b ? `${a}` : `${a}-${b}`)).join(", ");
}

/**
 * The host firewall: one nftables table of our own, replaced atomically, beside Docker's. Inbound is dropped
 * but for SSH, the proxy's ports (80 and 443) and host.firewall.allow; the forward chain applies the same list to ports Docker
 * publishes, by their original destination port (Docker's DNAT has already rewritten it), and drops
 * anything else headed for a container, so a port published by mistake is still closed from outside.
 */
export function firewallRules(p: ProvisionPlan): string {
    const port = (n: number): FirewallRule => ({ from: n, to: n, proto: "tcp" });
    const tcp = [port(p.sshPort), ...p.webPorts.map(port), ...p.allow.filter((r) => r.proto === "tcp")];
    const udp = p.allow.filter((r) => r.proto === "udp");
    const set = (name: string, rules: FirewallRule[]) =>
        `\tset ${name} { type inet_service; flags interval; ${rules.length > 0 ? `elements = { ${setElements(rules)} } ` : ""}}`;
    return [
        "#!/usr/sbin/nft -f",
        "# vps-stack host.provision: the host firewall (loaded by vps-stack-firewall.service).",
        "table inet vps_stack",
        "delete table inet vps_stack",
        "table inet vps_stack {",
        set("tcp_in", tcp),
        set("udp_in", udp),
        "\tchain input {",
        "\t\ttype filter hook input priority filter; policy drop;",
        "\t\tct state established,related accept",
        "\t\tct state invalid drop",
        '\t\tiifname "lo" accept',
        "\t\tmeta l4proto { icmp, ipv6-icmp } accept",
        "\t\ttcp dport @tcp_in accept",
        "\t\tudp dport @udp_in accept",
        "\t}",
        "\tchain forward {",
        "\t\ttype filter hook forward priority filter; policy accept;",
        "\t\tct state established,related accept",
        '\t\tiifname { "docker0", "br-*" } accept',
        "\t\tct status dnat meta l4proto tcp ct original proto-dst @tcp_in accept",
        "\t\tct status dnat meta l4proto udp ct original proto-dst @udp_in accept",
        '\t\toifname { "docker0", "br-*" } drop',
        "\t}",
        "}",
        "",
    ].join("\n");
}

export function journaldConfig(p: ProvisionPlan): string {
    return `# vps-stack host.provision\n[Journal]\nSystemMaxUse=${p.journaldMaxUseMiB}M\n`;
}

export function autoUpgrades(): string {
    return '// vps-stack host.provision: security updates every day (Debian\'s unattended-upgrades defaults)\nAPT::Periodic::Update-Package-Lists "1";\nAPT::Periodic::Unattended-Upgrade "1";\n';
}

/**
 * The deploy user's only sudo rule: re-running provisioning once root can no longer log in. It adds no
 * power the docker group does not already give (docs/hosts.md).
 */
export function sudoersRule(p: ProvisionPlan): string {
    return `# vps-stack host.provision: the deploy user re-runs provisioning without a root login.\n${p.user} ALL=(root) NOPASSWD: ${PROVISION_SCRIPT_PATH}\n`;
}

/**
 * Everything the host-side script needs, as text: "@@ set" lines and "@@ file" sections. It is data (the
 * script parses it, never sources it) and it is what `pulumi preview` diffs, so it stays readable.
 */
export function provisionBundle(p: ProvisionPlan): string {
    const files: [string, string][] = [
        ["authorized-keys", `${p.authorizedKeys.join("\n")}\n`],
        ["sudoers", sudoersRule(p)],
        ["daemon.json", daemonJson()],
        ["journald.conf", journaldConfig(p)],
        ["auto-upgrades", autoUpgrades()],
        ["firewall.nft", firewallRules(p)],
        ["sshd.conf", sshdConfig(p)],
    ];
    const lines = [
        `@@ set user ${p.user}`,
        `@@ set provisionUser ${p.provisionUser}`,
        `@@ set sshPort ${p.sshPort}`,
        `@@ set swap ${p.swap}`,
        `@@ set unattendedUpgrades ${p.unattendedUpgrades ? 1 : 0}`,
    ];
    for (const [name, text] of files) {
        if (text.split("\n").some((l) => l.startsWith("@@ "))) throw new Error(`provision bundle: ${name} has a line starting with "@@ "`);
        lines.push(`@@ file ${name}`, ...text.replace(/\n$/, "").split("\n"));
    }
    lines.push("@@ end", "");
    return lines.join("\n");
}
