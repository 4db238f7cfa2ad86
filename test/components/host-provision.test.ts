// host.provision under Pulumi mocks and as rendered text: the command that runs before anything touches
// the host, what it carries to the host (sshd, firewall, daemon.json, sudo, keys), and the config's
// refusals. The host-side script itself runs for real in the e2e (a fresh Debian box).
import { ConfigError, environmentProblems, loadConfig } from "../../config";
import { parseFirewallRule } from "../../config/provision";
import { daemonJson, firewallRules, ProvisionPlan, provisionBundle, provisionDriver, provisionScript, sshdConfig, sudoersRule } from "../../render/provision";
import { DOCKER_PROVIDER, LOCAL_COMMAND, ofType, recorded, REMOTE_COMMAND } from "../mocks";
import { build, KEY, preprodConfig, rawProps, resetCaptured } from "./helpers";

beforeEach(resetCaptured);

const DEPLOY_PUB = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAICMS4NWWC6uMc3fQjkmsf+F8IKjrfzDR/IL+odv3WaLQ ops@laptop";
const withProvision = (provision: any = {}, firewall?: any) => (c: any) => {
    c.host.provision = { authorizedKeys: [DEPLOY_PUB], ...provision };
    if (firewall) c.host.firewall = firewall;
};

const plan = (over: Partial<ProvisionPlan> = {}): ProvisionPlan => ({
    user: "deploy",
    provisionUser: "root",
    sshPort: 22,
    webPorts: [80, 443],
    authorizedKeys: [DEPLOY_PUB],
    swap: "auto",
    unattendedUpgrades: true,
    journaldMaxUseMiB: 500,
    maxAuthTries: 3,
    loginGraceTime: 30,
    allow: [],
    ...over,
});

describe("HostProvision", () => {
    it("runs the driver locally with the bundle as stdin, before the Docker provider and every remote command", async () => {
        await build(preprodConfig(withProvision()));
        const [cmd] = ofType(LOCAL_COMMAND).filter((r) => r.name === "vps-stack-host-provision-apply");
        expect(cmd).toBeDefined();
        expect(cmd.inputs.create).toBe(provisionDriver());
        expect(cmd.inputs.interpreter).toEqual(["/bin/bash", "-c"]);
        expect(cmd.inputs.environment).toMatchObject({
            VPS_ADDRESS: "203.0.113.10",
            VPS_PORT: "2222",
            VPS_USER: "deploy",
            VPS_PROVISION_USER: "root",
            VPS_KEY: "/dev/null",
            VPS_STACK_PROVISION_SCRIPT: provisionScript(),
        });
        expect(cmd.inputs.stdin).toContain("@@ set sshPort 2222");
        expect(cmd.inputs.stdin).toContain(DEPLOY_PUB);
        // No delete: removing host.provision leaves the host as it is.
        expect(cmd.inputs.delete).toBeUndefined();

        const provider = rawProps.get(`${DOCKER_PROVIDER}::vps-stack-host-docker`)!;
        expect(provider.opts.dependsOn).toEqual([expect.objectContaining({})]);
        const dependsOnProvision = (opts: any) => (opts.dependsOn ?? []).some((d: any) => d?.command !== undefined);
        expect(dependsOnProvision(provider.opts)).toBe(true);
        const remote = recorded.filter((r) => r.type === REMOTE_COMMAND);
        expect(remote.length).toBeGreaterThan(0);
        for (const r of remote) expect(dependsOnProvision(rawProps.get(`${REMOTE_COMMAND}::${r.name}`)!.opts)).toBe(true);
    });

    it("is absent without host.provision, and the provider then waits for nothing", async () => {
        await build(preprodConfig());
        expect(ofType(LOCAL_COMMAND).filter((r) => r.name.includes("provision"))).toEqual([]);
        expect(rawProps.get(`${DOCKER_PROVIDER}::vps-stack-host-docker`)!.opts.dependsOn).toEqual([]);
    });

    it("opens the proxy's published ports, not a fixed 80/443", async () => {
        await build(preprodConfig((c) => {
            withProvision({}, { allow: ["51820/udp", "8443/tcp"] })(c);
            c.nginx = { httpPort: 8080, httpsPort: 8443 };
        }));
        const stdin: string = ofType(LOCAL_COMMAND).find((r) => r.name === "vps-stack-host-provision-apply")!.inputs.stdin;
        expect(stdin).toContain("set tcp_in { type inet_service; flags interval; elements = { 2222, 8080, 8443 } }");
        expect(stdin).toContain("set udp_in { type inet_service; flags interval; elements = { 51820 } }");
    });
});

describe("provisioning texts", () => {
    it("sshd: no root, keys only, only the deploy user (and a non-root provisioning user)", () => {
        const root = sshdConfig(plan());
        for (const line of ["PermitRootLogin no", "PasswordAuthentication no", "KbdInteractiveAuthentication no", "AuthenticationMethods publickey", "AllowUsers deploy", "MaxAuthTries 3", "LoginGraceTime 30"]) {
            expect(root.split("\n")).toContain(line);
        }
        expect(sshdConfig(plan({ provisionUser: "ubuntu" })).split("\n")).toContain("AllowUsers deploy ubuntu");
    });

    it("firewall: drops by default, allows SSH and the web ports, and filters Docker-published ports by their original port", () => {
        const nft = firewallRules(plan({ sshPort: 2222, allow: [parseFirewallRule("60000-60010/udp")!, parseFirewallRule("60005/udp")!, parseFirewallRule("9000/tcp")!] }));
        expect(nft).toContain("type filter hook input priority filter; policy drop;");
        expect(nft).toContain("elements = { 80, 443, 2222, 9000 }");
        expect(nft).toContain("elements = { 60000-60010 }");
        expect(nft).toContain("ct status dnat meta l4proto tcp ct original proto-dst @tcp_in accept");
        expect(nft).toContain('oifname { "docker0", "br-*" } drop');
        // Only our table is replaced: Docker's own tables survive a reload.
        expect(nft).not.toContain("flush ruleset");
        expect(nft).toContain("delete table inet vps_stack");
    });

    it("daemon.json: live-restore, no userland proxy, no-new-privileges, log rotation", () => {
        expect(JSON.parse(daemonJson())).toEqual({
            "icc": false,
            "live-restore": true,
            "log-driver": "json-file",
            "log-level": "info",
            "log-opts": { "max-size": "10m", "max-file": "5" },
            "no-new-privileges": true,
            "userland-proxy": false,
        });
    });

    it("sudo: the deploy user may run the provisioning script and nothing else", () => {
        const rules = sudoersRule(plan()).split("\n").filter((l) => l && !l.startsWith("#"));
        expect(rules).toEqual(["deploy ALL=(root) NOPASSWD: /usr/local/sbin/vps-stack-provision"]);
    });

    it("the bundle is sections of data, and refuses a line the host script would read as a marker", () => {
        const b = provisionBundle(plan({ swap: 2048, unattendedUpgrades: false }));
        expect(b.split("\n").filter((l) => l.startsWith("@@ ")).map((l) => l.split(" ").slice(0, 3).join(" "))).toEqual([
            "@@ set user", "@@ set provisionUser", "@@ set sshPort", "@@ set swap", "@@ set unattendedUpgrades",
            "@@ file authorized-keys", "@@ file sudoers", "@@ file daemon.json", "@@ file journald.conf", "@@ file auto-upgrades", "@@ file firewall.nft", "@@ file sshd.conf", "@@ end",
        ]);
        expect(b).toContain("@@ set swap 2048\n");
        expect(b).toContain("@@ set unattendedUpgrades 0\n");
        expect(() => provisionBundle(plan({ authorizedKeys: ["@@ set user root"] }))).toThrow(/starting with "@@ "/);
    });
});

describe("host.provision config", () => {
    const problems = (edit: (c: any) => void) => {
        try {
            preprodConfig(edit);
            return [];
        } catch (e) {
            if (!(e instanceof ConfigError)) throw e;
            return e.problems.map((p) => `${p.path}: ${p.message} | ${p.fix}`);
        }
    };

    it("refuses bad values, each with its key and a fix", () => {
        const found = problems((c) => {
            c.host.provision = { user: "Root!", authorizedKeys: ['command="sh" ssh-ed25519 AAAA'], swap: "lots", maxAuthTries: 50 };
            c.host.firewall = { allow: ["22", "70000/tcp", "1-2/icmp"] };
        });
        expect(found.join("\n")).toMatch(/host\.provision\.user: must be a Unix user name/);
        expect(found.join("\n")).toMatch(/host\.provision\.authorizedKeys\[0\]: must be one public key line/);
        expect(found.join("\n")).toMatch(/host\.provision\.swap: must be "auto", "off" or a size/);
        expect(found.join("\n")).toMatch(/host\.provision\.maxAuthTries: is too lax/);
        for (const i of [0, 1, 2]) expect(found.join("\n")).toMatch(new RegExp(`host\\.firewall\\.allow\\[${i}\\]: must be "PORT/tcp"`));
    });

    it("refuses the deploy user as its own provisioning user, firewall rules without provisioning, and nginx.mode host", () => {
        expect(problems(withProvision({ user: "deploy" })).join("\n")).toMatch(/host\.provision\.user: is host\.user .*\| pulumi config set --path 'host\.provision\.user' root/);
        expect(problems((c) => (c.host.firewall = { allow: ["8443/tcp"] })).join("\n")).toMatch(/host\.firewall\.allow: only applies with host\.provision/);
        expect(problems((c) => {
            withProvision()(c);
            c.nginx = { mode: "host" };
            c.apps[0].hostPort = 8000;
            c.apps[1].hostPort = 8010;
        }).join("\n")).toMatch(/host\.provision: prepares a Docker host with the Nginx container/);
        expect(() => loadConfig({ host: { provision: {} }, apps: [{ name: "api", image: "ghcr.io/acme/api:1.0.0", port: 3000 }] }, "dev")).toThrow(/host\.provision prepares a VPS over SSH/);
    });

    it("takes the deploy key from the .pub beside host.privateKeyPath, or says how to set it", () => {
        const cfg = preprodConfig((c) => {
            c.host.provision = {};
            c.host.privateKeyPath = "~/.ssh/deploy_key";
        });
        const files: Record<string, string> = { "~/.ssh/deploy_key": "-----BEGIN OPENSSH PRIVATE KEY-----", "~/.ssh/deploy_key.pub": `${DEPLOY_PUB}\n` };
        const env = { sshAuthSock: "/run/agent", fileExists: (p: string) => p in files, readFile: (p: string) => files[p] };
        const found = environmentProblems(cfg, env).filter((p) => p.path.startsWith("host.provision"));
        expect(found).toEqual([]);
        expect(cfg.host!.provision!.authorizedKeys).toEqual([DEPLOY_PUB]);

        const missing = preprodConfig((c) => {
            c.host.provision = {};
            c.host.privateKeyPath = "~/.ssh/other key";
        });
        const [p] = environmentProblems(missing, { ...env, fileExists: () => false }).filter((x) => x.path === "host.provision.authorizedKeys");
        expect(p.message).toMatch(/\.pub \(the public half of host\.privateKeyPath\) cannot be read/);
        expect(p.fix).toBe(`pulumi config set --path 'host.provision.authorizedKeys[0]' "$(ssh-keygen -y -f ~/'.ssh/other key')"`);
    });

    it("never lets a host key line stand in for a deploy key with options", () => {
        expect(problems(withProvision({ authorizedKeys: [`${KEY} x`, 'from="*" ' + KEY] })).join("\n")).toMatch(/authorizedKeys\[1\]/);
    });
});
