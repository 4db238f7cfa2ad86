// Host provisioning's texts through the real tools that will read them on the host: the bundle through the
// host-side script's own parser and checks (nft -c, visudo -c), the sshd drop-in through `sshd -t`, the
// nftables table loaded for real in a private network namespace, and both scripts through shellcheck. The
// whole provisioning of a fresh Debian box runs in the e2e (phase "fresh vps").
import { spawnSync } from "child_process";
import * as fs from "fs";
import * as path from "path";
import { parseFirewallRule, ProvisionPlan } from "../../config/provision";
import { firewallRules, provisionBundle, sshdConfig } from "../../render/provision";
import { tempDir, tool } from "./tools";

const SCRIPT = path.join(__dirname, "..", "..", "render", "scripts", "vps-stack-provision.sh");
const DRIVER = path.join(__dirname, "..", "..", "render", "scripts", "vps-stack-provision-driver.sh");
const KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAICMS4NWWC6uMc3fQjkmsf+F8IKjrfzDR/IL+odv3WaLQ ops@laptop";

const plan = (over: Partial<ProvisionPlan> = {}): ProvisionPlan => ({
    user: "deploy",
    provisionUser: "root",
    sshPort: 2222,
    webPorts: [80, 443],
    authorizedKeys: [KEY],
    swap: "auto",
    unattendedUpgrades: true,
    journaldMaxUseMiB: 500,
    maxAuthTries: 3,
    loginGraceTime: 30,
    allow: [parseFirewallRule("51820/udp")!, parseFirewallRule("60000-60010/tcp")!],
    ...over,
});

function run(cmd: string, args: string[], input?: string) {
    return spawnSync(cmd, args, { encoding: "utf8", input, env: { ...process.env, VPS_STACK_RUN_DIR: dir } });
}

let dir: string;
beforeAll(() => {
    dir = tempDir("provision");
    // The host tools the checks need, or a failure saying how to install them (never a skip).
    tool("nft", "nftables");
    tool("visudo", "sudo");
    tool("sshd", "openssh-server");
    tool("unshare", "util-linux");
});
afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

describe("vps-stack-provision validate", () => {
    it("accepts the rendered bundle: its settings, nft -c on the firewall, visudo -c on the sudo rule", () => {
        const file = path.join(dir, "good");
        fs.writeFileSync(file, provisionBundle(plan()));
        const r = run("bash", [SCRIPT, "validate", file]);
        expect(r.stderr).toBe("");
        expect(r.stdout).toMatch(/bundle ok: 5 settings, 7 files/);
    });

    it("reads the bundle as data: a setting carrying shell code is refused, not run", () => {
        const marker = path.join(dir, "ran");
        const file = path.join(dir, "evil");
        fs.writeFileSync(file, provisionBundle(plan()).replace("@@ set sshPort 2222", `@@ set sshPort 22; touch ${marker}`));
        const r = run("bash", [SCRIPT, "validate", file]);
        expect(r.status).not.toBe(0);
        expect(r.stderr).toMatch(/setting sshPort='22; touch .*' does not match/);
        expect(fs.existsSync(marker)).toBe(false);
    });

    it("refuses a firewall nft cannot load and a sudoers rule visudo refuses, before anything changes", () => {
        const bad = (from: string, to: string) => {
            const file = path.join(dir, `bad-${from.length}`);
            fs.writeFileSync(file, provisionBundle(plan()).replace(from, to));
            return run("bash", [SCRIPT, "validate", file]);
        };
        expect(bad("policy drop;", "policy maybe;").stderr).toMatch(/nft refused the rendered firewall/);
        expect(bad("NOPASSWD: /usr/local/sbin", "NOPASSWD /usr/local/sbin").stderr).toMatch(/visudo refused the rendered sudoers rule/);
        expect(bad("@@ set swap auto", "@@ set swap auto\n@@ set shell /bin/sh").stderr).toMatch(/unknown setting 'shell'/);
    });
});

describe("vps-stack-provision probe", () => {
    const probe = (release: string) => {
        const file = path.join(dir, "os-release");
        fs.writeFileSync(file, release);
        return spawnSync("bash", [SCRIPT, "probe"], { encoding: "utf8", env: { ...process.env, VPS_STACK_OS_RELEASE: file } });
    };

    it("refuses a system it does not support, by name, pointing at bringing one's own host", () => {
        const r = probe('PRETTY_NAME="Rocky Linux 9.4 (Blue Onyx)"\nID="rocky"\nVERSION_ID="9.4"\n');
        expect(r.status).not.toBe(0);
        expect(r.stderr).toMatch(/Rocky Linux 9\.4 \(Blue Onyx\) is not supported: host\.provision prepares Debian 12, Debian 13 or Ubuntu 24\.04 .*Bring your own host/);
        expect(probe('PRETTY_NAME="Ubuntu 22.04.4 LTS"\nID=ubuntu\nVERSION_ID="22.04"\n').stderr).toMatch(/Ubuntu 22\.04\.4 LTS is not supported/);
        expect(probe('PRETTY_NAME="Debian GNU/Linux 11 (bullseye)"\nID=debian\nVERSION_ID="11"\n').stderr).toMatch(/Debian GNU\/Linux 11 \(bullseye\) is not supported/);
    });

    it("accepts Debian 12, Debian 13 and Ubuntu 24.04 (then asks for systemd, which a VPS runs)", () => {
        for (const release of ['ID=debian\nVERSION_ID="12"\n', 'ID=debian\nVERSION_ID="13"\n', 'ID=ubuntu\nVERSION_ID="24.04"\n']) {
            const r = probe(release);
            expect(r.stderr).not.toMatch(/not supported/);
            if (r.status === 0) expect(r.stdout).toMatch(/^vps-stack-provision (debian 1[23]|ubuntu 24\.04)$/m);
            else expect(r.stderr).toMatch(/systemd is not running/);
        }
    });
});

describe("the rendered files in the real tools", () => {
    it("sshd -t accepts the drop-in read through Include, as on Debian 12+", () => {
        const hostKey = path.join(dir, "host_key");
        spawnSync("ssh-keygen", ["-q", "-t", "ed25519", "-N", "", "-f", hostKey]);
        const dropin = path.join(dir, "00-vps-stack.conf");
        fs.writeFileSync(dropin, sshdConfig(plan({ provisionUser: "ubuntu" })));
        const main = path.join(dir, "sshd_config");
        fs.writeFileSync(main, `Include ${dropin}\nHostKey ${hostKey}\nKbdInteractiveAuthentication yes\nPermitRootLogin yes\nUsePAM yes\n`);
        fs.mkdirSync("/run/sshd", { recursive: true });
        const t = run(tool("sshd", "openssh-server"), ["-t", "-f", main]);
        expect(t.stderr).toBe("");
        expect(t.status).toBe(0);
        // The drop-in comes first, so its values win over the distribution's later lines.
        const eff = run(tool("sshd", "openssh-server"), ["-T", "-f", main, "-C", "user=deploy,host=x,addr=192.0.2.1"]).stdout;
        expect(eff).toMatch(/^permitrootlogin no$/m);
        expect(eff).toMatch(/^kbdinteractiveauthentication no$/m);
        expect(eff).toMatch(/^allowusers deploy$/m);
        expect(eff).toMatch(/^allowusers ubuntu$/m);
        expect(eff).toMatch(/^maxauthtries 3$/m);
        // A destroy opens one session per resource over the Docker provider's single connection.
        expect(eff).toMatch(/^maxsessions 64$/m);
        expect(eff).toMatch(/^authenticationmethods publickey$/m);
    });

    it("the firewall loads in a network namespace of its own, with the sets the rules name", () => {
        const file = path.join(dir, "firewall.nft");
        fs.writeFileSync(file, firewallRules(plan()));
        // Twice: the second load replaces the table (delete + define), as every provisioning run does.
        const r = run(tool("unshare", "util-linux"), ["-n", "sh", "-c", `nft -f ${file} && nft -f ${file} && nft list table inet vps_stack`]);
        expect(r.stderr).toBe("");
        expect(r.stdout).toMatch(/elements = \{ 80, 443, 2222,\s+60000-60010 \}/);
        expect(r.stdout).toMatch(/elements = \{ 51820 \}/);
        expect(r.stdout).toMatch(/ct original proto-dst @tcp_in accept/);
        expect(r.stdout).toMatch(/policy drop/);
    });

    it("both scripts pass shellcheck", () => {
        for (const s of [SCRIPT, DRIVER]) {
            const r = spawnSync(tool("shellcheck", "shellcheck"), ["-s", "bash", s], { encoding: "utf8" });
            expect(r.stdout).toBe("");
            expect(r.status).toBe(0);
        }
    });
});

describe("the driver", () => {
    it("fails with one clear message when it can log in neither as the deploy user nor as the provisioning user", () => {
        const kh = path.join(dir, "known_hosts");
        fs.writeFileSync(kh, "");
        const r = spawnSync("bash", ["-c", fs.readFileSync(DRIVER, "utf8")], {
            encoding: "utf8",
            input: provisionBundle(plan()),
            timeout: 60_000,
            env: {
                ...process.env,
                VPS_ADDRESS: "127.0.0.1",
                VPS_PORT: "1",
                VPS_KNOWN_HOSTS: kh,
                VPS_CONTROL_DIR: dir,
                VPS_USER: "deploy",
                VPS_KEY: "",
                VPS_PROVISION_USER: "root",
                VPS_PROVISION_KEY: "",
                VPS_STACK_PROVISION_SCRIPT: fs.readFileSync(SCRIPT, "utf8"),
            },
        });
        expect(r.status).not.toBe(0);
        expect(r.stderr).toMatch(/provision: error: cannot reach 127\.0\.0\.1:1 as deploy \(with its sudo rule: .*refused.*\) nor as root/);
    });
});
