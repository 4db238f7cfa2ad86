// `npm run dev` (scripts/dev.sh) without Docker or Pulumi: fake `pulumi`, `docker` and `curl` first on
// PATH record their arguments and environment, so the test sees the order of the steps, the backend and
// passphrase the script sets up, and the errors a fresh machine gets when a tool is missing.
import { spawnSync } from "child_process";
import * as fs from "fs";
import * as path from "path";
import { tempDir, tool } from "./tools";

const SCRIPT = path.join(__dirname, "..", "..", "scripts", "dev.sh");
const CA = "-----BEGIN CERTIFICATE-----\nMIIfake\n-----END CERTIFICATE-----";

// Each fake appends one line per call: its name, its arguments, and the environment the script set.
const FAKE_PULUMI = `#!/bin/bash
echo "pulumi $* | backend=$PULUMI_BACKEND_URL passfile=$PULUMI_CONFIG_PASSPHRASE_FILE pass=\${PULUMI_CONFIG_PASSPHRASE-unset}" >>"$CALLS"
case "$*" in
  *"stack output --stack dev caCertificate"*) printf '%s\\n' "$FAKE_CA" ;;
  *"stack output --stack dev healthUrls --json"*) echo '{"api":"https://localhost:8443/health"}' ;;
  *"stack output --stack dev urls --json"*) echo '{"api":"https://localhost:8443/"}' ;;
  "up "*) [ -z "\${FAKE_UP_FAILS:-}" ] || { echo "error: update failed" >&2; exit 255; } ;;
esac
`;
const FAKE_DOCKER = `#!/bin/bash
echo "docker $*" >>"$CALLS"
case "$1" in
  info) [ -z "\${FAKE_DOCKER_DOWN:-}" ] || exit 1 ;;
  image) [ -e "$IMAGES/present" ] || exit 1 ;;
  build) touch "$IMAGES/present" ;;
esac
`;
// curl checks that the CA file it is handed holds the stack's CA at the time of the call.
const FAKE_CURL = `#!/bin/bash
echo "curl $*" >>"$CALLS"
prev=; for a in "$@"; do [ "$prev" = --cacert ] && cp "$a" "$IMAGES/cacert-seen"; prev=$a; done
echo '{"status":"ok","database":"ok","redis":"ok"}'
`;

interface Run {
    status: number | null;
    stdout: string;
    stderr: string;
    calls: string[];
}

/** A copy of the project with scripts/dev.sh, node_modules and the demo's directory; the fakes beside it. */
function project() {
    const dir = tempDir("dev-script");
    fs.mkdirSync(path.join(dir, "scripts"));
    fs.copyFileSync(SCRIPT, path.join(dir, "scripts", "dev.sh"));
    fs.mkdirSync(path.join(dir, "node_modules"));
    fs.mkdirSync(path.join(dir, "examples", "demo-api"), { recursive: true });
    const fakes = path.join(dir, "fakes");
    fs.mkdirSync(fakes);
    const images = path.join(dir, "images");
    fs.mkdirSync(images);
    for (const [name, text] of Object.entries({ pulumi: FAKE_PULUMI, docker: FAKE_DOCKER, curl: FAKE_CURL })) {
        fs.writeFileSync(path.join(fakes, name), text, { mode: 0o755 });
    }
    // Only the tools the script may use, so a fake left out is really missing.
    const bin = path.join(dir, "bin");
    fs.mkdirSync(bin);
    for (const t of ["bash", "node", "mkdir", "chmod", "mktemp", "rm", "cat", "dirname", "cp", "touch"]) {
        fs.symlinkSync(tool(t, "coreutils"), path.join(bin, t));
    }
    return { dir, fakes, images, bin };
}

function run(p: ReturnType<typeof project>, opts: { without?: string[]; env?: Record<string, string> } = {}): Run {
    for (const name of opts.without ?? []) fs.rmSync(path.join(p.fakes, name), { force: true });
    const calls = path.join(p.dir, "calls.log");
    fs.writeFileSync(calls, "");
    const r = spawnSync("bash", [path.join(p.dir, "scripts", "dev.sh")], {
        cwd: "/",
        encoding: "utf8",
        env: {
            PATH: `${p.fakes}:${p.bin}`,
            HOME: p.dir,
            CALLS: calls,
            IMAGES: p.images,
            FAKE_CA: CA,
            PULUMI_CONFIG_PASSPHRASE: "from-the-shell",
            ...opts.env,
        },
        timeout: 30000,
    });
    return { status: r.status, stdout: r.stdout, stderr: r.stderr, calls: fs.readFileSync(calls, "utf8").split("\n").filter(Boolean) };
}

describe("npm run dev (scripts/dev.sh)", () => {
    it("is shellcheck-clean and parses", () => {
        const sc = spawnSync(tool("shellcheck", "shellcheck"), [SCRIPT], { encoding: "utf8" });
        expect(sc.stdout + sc.stderr).toBe("");
        expect(spawnSync("bash", ["-n", SCRIPT]).status).toBe(0);
    });

    it("on a fresh machine: a local backend and passphrase, the dev stack, the demo image, up, then the health answer and URLs", () => {
        const p = project();
        const r = run(p);
        expect([r.status, r.stderr]).toEqual([0, expect.any(String)]);
        const backend = `file://${p.dir}/.pulumi-state`;
        const passfile = `${p.dir}/.pulumi-passphrase`;
        expect(fs.statSync(path.join(p.dir, ".pulumi-state")).isDirectory()).toBe(true);
        const stat = fs.statSync(passfile);
        expect(stat.mode & 0o777).toBe(0o600);
        expect(fs.readFileSync(passfile, "utf8")).toMatch(/^[A-Za-z0-9_-]{40,}\n$/);

        // The order of the steps, each with the exact arguments.
        expect(r.calls.map((c) => c.replace(/ \| .*/, "").replace(/--cacert \S+/, "--cacert CA"))).toEqual([
            "docker info",
            "pulumi stack select dev --create --non-interactive",
            "docker image inspect vps-stack-demo-api:1",
            "docker build --build-arg VERSION=1 -t vps-stack-demo-api:1 examples/demo-api",
            "pulumi up --yes --stack dev",
            "pulumi stack output --stack dev caCertificate",
            "pulumi stack output --stack dev healthUrls --json",
            "pulumi stack output --stack dev urls --json",
            "curl -fsS --retry 5 --retry-delay 1 --retry-connrefused --max-time 10 --cacert CA https://localhost:8443/health",
        ]);
        // Every pulumi call uses the project's backend and passphrase file, never the shell's passphrase.
        for (const c of r.calls.filter((c) => c.startsWith("pulumi"))) {
            expect(c).toContain(`| backend=${backend} passfile=${passfile} pass=unset`);
        }
        expect(fs.readFileSync(path.join(p.images, "cacert-seen"), "utf8").trim()).toBe(CA);
        expect(r.stdout).toContain('{"status":"ok","database":"ok","redis":"ok"}');
        expect(r.stdout).toContain("    api  https://localhost:8443/");
        expect(r.stdout).toContain(`export PULUMI_BACKEND_URL=${backend} PULUMI_CONFIG_PASSPHRASE_FILE=${passfile}`);
    });

    it("a second run keeps the passphrase and does not rebuild a present image", () => {
        const p = project();
        expect(run(p).status).toBe(0);
        const passphrase = fs.readFileSync(path.join(p.dir, ".pulumi-passphrase"), "utf8");
        const r = run(p);
        expect(r.status).toBe(0);
        expect(fs.readFileSync(path.join(p.dir, ".pulumi-passphrase"), "utf8")).toBe(passphrase);
        expect(r.calls.some((c) => c.startsWith("docker build"))).toBe(false);
        expect(r.calls).toContain("docker image inspect vps-stack-demo-api:1");
        expect(r.stdout).toContain("demo image vps-stack-demo-api:1 is present");
    });

    it.each([
        ["pulumi", /pulumi is not installed: install the Pulumi CLI/],
        ["docker", /docker is not installed: install Docker Engine/],
    ])("says what to install when %s is missing, before touching anything", (missing, message) => {
        const p = project();
        const r = run(p, { without: [missing] });
        expect(r.status).toBe(1);
        expect(r.stderr).toMatch(message);
        expect(r.calls.filter((c) => c.startsWith("pulumi"))).toEqual([]);
        expect(fs.existsSync(path.join(p.dir, ".pulumi-passphrase"))).toBe(false);
    });

    it("says what to do when node is missing", () => {
        const p = project();
        fs.rmSync(path.join(p.bin, "node"));
        const r = run(p);
        expect(r.status).toBe(1);
        expect(r.stderr).toMatch(/node is not installed: install Node.js 20/);
    });

    it("says so when the Docker engine does not answer, or npm ci was not run", () => {
        const p = project();
        let r = run(p, { env: { FAKE_DOCKER_DOWN: "1" } });
        expect([r.status, r.stderr]).toEqual([1, expect.stringMatching(/the Docker engine does not answer/)]);
        fs.rmSync(path.join(p.dir, "node_modules"), { recursive: true });
        r = run(p);
        expect([r.status, r.stderr]).toEqual([1, expect.stringMatching(/run npm ci first/)]);
    });

    it("stops when pulumi up fails, without asking for the health answer", () => {
        const p = project();
        const r = run(p, { env: { FAKE_UP_FAILS: "1" } });
        expect(r.status).not.toBe(0);
        expect(r.calls.some((c) => c.startsWith("curl"))).toBe(false);
    });
});
