// host.provision and host.firewall: what turns a fresh VPS into a hardened Docker host, checked here so a
// value that the host-side script writes into sshd, nftables, sudoers or a systemd drop-in is known good
// before anything connects. Each shape is the one rule for its sink: the renderer trusts these values.
import { z } from "zod";
import { SIZE_RE, sizeToMiB } from "./units";

/** A Unix user name as useradd accepts it (and sshd's AllowUsers and sudoers can name it unquoted). */
export const UNIX_USER_RE = /^[a-z_][a-z0-9_-]{0,31}$/;

/** One authorised public key line: type, base64, optional comment of safe characters (no options). */
export const PUBLIC_KEY_RE = /^(ssh-ed25519|ecdsa-sha2-nistp(256|384|521)|ssh-rsa|sk-ssh-ed25519@openssh\.com|sk-ecdsa-sha2-nistp256@openssh\.com) [A-Za-z0-9+/]+={0,3}( [A-Za-z0-9@._+-]{1,100})?$/;

/** "8080/tcp", "51820/udp", "60000-60010/udp": what host.firewall.allow opens. */
export const FIREWALL_RULE_RE = /^(\d{1,5})(?:-(\d{1,5}))?\/(tcp|udp)$/;

export interface FirewallRule {
    from: number;
    to: number;
    proto: "tcp" | "udp";
}

export function parseFirewallRule(s: string): FirewallRule | undefined {
    const m = FIREWALL_RULE_RE.exec(s);
    if (!m) return undefined;
    const from = Number(m[1]);
    const to = m[2] === undefined ? from : Number(m[2]);
    if (from < 1 || to > 65535 || to < from) return undefined;
    return { from, to, proto: m[3] as "tcp" | "udp" };
}

/** What host.provision does, resolved (render/provision.ts writes the files from it). */
export interface ProvisionPlan {
    /** The deploy user (host.user), created and given the keys. */
    user: string;
    /** The one-time access (host.provision.user): root, or a sudo user who stays allowed. */
    provisionUser: string;
    sshPort: number;
    /** The proxy's published HTTP and HTTPS ports (80 and 443 unless nginx.httpPort/httpsPort say otherwise). */
    webPorts: number[];
    authorizedKeys: string[];
    /** "auto", "off", or a size in MiB. */
    swap: "auto" | "off" | number;
    unattendedUpgrades: boolean;
    journaldMaxUseMiB: number;
    maxAuthTries: number;
    loginGraceTime: number;
    /** Inbound openings besides SSH, 80 and 443. */
    allow: FirewallRule[];
}

const firewallRule = z
    .string()
    .refine((s) => parseFirewallRule(s) !== undefined, 'must be "PORT/tcp", "PORT/udp" or "FIRST-LAST/udp" with ports from 1 to 65535, e.g. 8443/tcp');

const unixUser = (def: string, description: string) =>
    z.string().regex(UNIX_USER_RE, "must be a Unix user name such as deploy").default(def).describe(description);

const swap = z
    .string()
    .refine((s) => s === "auto" || s === "off" || (SIZE_RE.test(s) && sizeToMiB(s) >= 64 && sizeToMiB(s) <= 64 * 1024), 'must be "auto", "off" or a size from 64m to 64g such as 2g')
    .default("auto")
    .describe('Swap file /swapfile: "auto" makes one (as large as memory, at most 2g) when the host has less than 2g of memory and no swap; a size makes one of that size; "off" leaves swap alone.');

export const provisionSchema = z
    .strictObject({
        user: unixUser("root", "The one-time access: root, or a user with passwordless sudo, that SSH accepts before provisioning. Later runs go through host.user and its sudo rule, since root login is then refused; a non-root provisioning user stays allowed."),
        privateKeyPath: z
            .string()
            .regex(/^(\/|~\/)/, "must be an absolute path or start with ~/")
            .optional()
            .describe("Private key of the provisioning user on the deploying machine (default: host.privateKeyPath, or the SSH agent)."),
        authorizedKeys: z
            .array(z.string().regex(PUBLIC_KEY_RE, 'must be one public key line such as "ssh-ed25519 AAAA… me@laptop" (no options before the type)'))
            .min(1, "must list at least one public key")
            .optional()
            .describe("Public keys allowed to log in as host.user (default: the .pub file beside host.privateKeyPath)."),
        swap,
        unattendedUpgrades: z.boolean().default(true).describe("Install unattended-upgrades and apply security updates daily (no automatic reboot)."),
        journaldMaxUse: z
            .string()
            .regex(SIZE_RE, "must be a size such as 500m")
            .refine((s) => sizeToMiB(s) >= 16 && sizeToMiB(s) <= 64 * 1024, "must be from 16m to 64g")
            .default("500m")
            .describe("Disk the systemd journal may use (journald SystemMaxUse)."),
        maxAuthTries: z.number().int().min(1).max(10, "is too lax: at most 10").default(3).describe("sshd MaxAuthTries."),
        loginGraceTime: z.number().int().min(5, "is too short: at least 5 seconds").max(600).default(30).describe("sshd LoginGraceTime, in seconds."),
    })
    .optional()
    .describe("Turns a fresh Debian 12/13 or Ubuntu 24.04 VPS into a hardened Docker host before the stack is created: Docker, the deploy user, sshd, the firewall, unattended upgrades, time sync, journald, swap. Unset: the host is yours to prepare (see \"Bring your own host\").");

export const firewallSchema = z
    .strictObject({
        allow: z
            .array(firewallRule)
            .default([])
            .describe("Inbound ports opened besides SSH (host.port), 80 and 443, e.g. [\"51820/udp\"]. Everything else is dropped, Docker-published ports included."),
    })
    .prefault({})
    .describe("The host firewall that host.provision installs (nftables).");
