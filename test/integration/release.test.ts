// The release scripts' behaviour (render/release.ts), run by sh with a fake docker first on PATH that
// answers `inspect` with scripted states and records every call (test/fake-docker.ts): what a healthy,
// an unhealthy, a missing and a slow release do; how the history and the kept images evolve; how a
// retired release drains.
import * as fs from "fs";
import * as path from "path";
import { drainScript, gateScript, GateArgs } from "../../render/release";
import { FakeDocker, fakeDocker } from "../fake-docker";
import { shAsync, tempDir } from "./tools";

const C = ["vps-stack-prod-api-0123456789-1", "vps-stack-prod-api-0123456789-2"];
const gate = (extra: Partial<GateArgs> = {}): GateArgs => ({
    app: "api",
    stack: "prod",
    release: "0123456789",
    image: "ghcr.io/acme/api:1.4.2",
    containers: C,
    timeoutSeconds: 10,
    keepImages: 3,
    ...extra,
});

let fake: FakeDocker;
let home: string;
const historyFile = () => path.join(home, ".local/state/vps-stack/prod/releases-api.log");

beforeEach(() => {
    const dir = tempDir("release");
    fake = fakeDocker(dir);
    home = path.join(dir, "home");
});

async function run(script: string) {
    const started = Date.now();
    const r = await shAsync("sh", ["-s"], { input: script, env: { ...fake.env, HOME: home } });
    return { ...r, seconds: (Date.now() - started) / 1000 };
}

const ofCommand = (cmd: string) => fake.calls().filter((c) => c[0] === cmd);

describe("gate", () => {
    it("passes once every replica is healthy (waiting through starting), records the release and touches nothing", async () => {
        fake.states(C[0], "created starting", "running starting", "running healthy");
        fake.states(C[1], "running healthy");
        fake.set("image-id", ["sha256:aaa"]);
        fake.set("repo-digest", ["ghcr.io/acme/api@sha256:d1"]);
        const r = await run(gateScript(gate()));
        expect(r.stderr).toBe("");
        expect(r.code).toBe(0);
        expect(r.stdout).toBe("vps-stack: app api: release 0123456789 is healthy\n");
        expect(ofCommand("inspect").filter((c) => c[3] === C[0] && c[2].includes(".State.Status"))).toHaveLength(3);
        const lines = fs.readFileSync(historyFile(), "utf8").split("\n").filter(Boolean);
        expect(lines).toHaveLength(1);
        expect(lines[0]).toMatch(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ 0123456789 ghcr\.io\/acme\/api:1\.4\.2 sha256:aaa ghcr\.io\/acme\/api@sha256:d1$/);
        expect(ofCommand("rm")).toEqual([]);
        expect(ofCommand("rmi")).toEqual([]);
        expect(ofCommand("logs")).toEqual([]);
    });

    it("accepts a container without a healthcheck once it runs, and writes - for an image without a digest", async () => {
        fake.set("state.default", ["running none"]);
        const r = await run(gateScript(gate()));
        expect(r.code).toBe(0);
        expect(fs.readFileSync(historyFile(), "utf8")).toMatch(/ 0123456789 ghcr\.io\/acme\/api:1\.4\.2 sha256:new -\n$/);
    });

    it("appends to the history and keeps only this app's last keepImages images", async () => {
        fs.mkdirSync(path.dirname(historyFile()), { recursive: true });
        const old = ["sha256:i1", "sha256:i2", "sha256:i3", "sha256:i4"].map((id, i) => `2026-01-0${i + 1}T00:00:00Z r${i} img:${i} ${id} -`);
        fs.writeFileSync(historyFile(), old.join("\n") + "\n");
        fake.set("state.default", ["running healthy"]);
        fake.set("image-id", ["sha256:i5"]);
        const r = await run(gateScript(gate({ keepImages: 3 })));
        expect(r.code).toBe(0);
        expect(fs.readFileSync(historyFile(), "utf8").split("\n").filter(Boolean)).toHaveLength(5);
        // i3, i4 and the new i5 stay; older ones go (docker refuses an image a container still uses).
        expect(ofCommand("rmi")).toEqual([
            ["rmi", "sha256:i1"],
            ["rmi", "sha256:i2"],
        ]);
    });

    // The kept set is the images of the last keepImages releases, newest first: after a rollback to an old
    // image, that image counts as recent again (an earlier version kept the first-seen ones instead).
    it("after a rollback keeps the images of the last releases, the rolled-back-to one included", async () => {
        fs.mkdirSync(path.dirname(historyFile()), { recursive: true });
        const old = ["sha256:A", "sha256:B", "sha256:C", "sha256:D"].map((id, i) => `2026-01-0${i + 1}T00:00:00Z r${i} img:${i} ${id} -`);
        fs.writeFileSync(historyFile(), old.join("\n") + "\n");
        fake.set("state.default", ["running healthy"]);
        fake.set("image-id", ["sha256:A"]);
        expect((await run(gateScript(gate({ keepImages: 3 })))).code).toBe(0);
        // Last three releases: A (now), D, C. B is the one to go.
        expect(ofCommand("rmi")).toEqual([["rmi", "sha256:B"]]);
    });

    const failures: [string, (f: FakeDocker) => void, RegExp][] = [
        ["unhealthy", (f) => (f.states(C[0], "running healthy"), f.states(C[1], "running starting", "running unhealthy")), /: vps-stack-prod-api-0123456789-2 is still running unhealthy after 10s\n/],
        ["exited", (f) => (f.states(C[0], "exited unhealthy")), /: vps-stack-prod-api-0123456789-1 is exited unhealthy\n/],
        ["missing", (f) => f.states(C[0], "running healthy"), /: vps-stack-prod-api-0123456789-2 is missing\n/],
    ];
    it.each(failures)("fails a release with a %s container: names app, release and image, shows its logs, removes exactly its containers", async (_, setup, reason) => {
        setup(fake);
        const r = await run(gateScript(gate()));
        expect(r.code).toBe(1);
        expect(r.stderr).toMatch(new RegExp(`^vps-stack: app api: release 0123456789 \\(ghcr\\.io/acme/api:1\\.4\\.2\\) did not become healthy${reason.source}`));
        for (const c of C) {
            expect(r.stderr).toContain(`--- last lines of ${c}:\n    line one of ${c}\n    line two of ${c} (stderr)\n`);
        }
        expect(r.stderr).toMatch(/vps-stack: app api: the new containers were removed; the previous release keeps serving\n$/);
        expect(ofCommand("logs")).toEqual(C.map((c) => ["logs", "--tail", "20", c]));
        expect(ofCommand("rm")).toEqual([["rm", "-f", "-v", ...C]]);
        // Nothing recorded, nothing pruned: the previous release is still the live one.
        expect(fs.existsSync(historyFile())).toBe(false);
        expect(ofCommand("rmi")).toEqual([]);
    });

    it("fails a release that is still starting at its timeout", async () => {
        fake.set("state.default", ["running starting"]);
        const r = await run(gateScript(gate({ timeoutSeconds: 2 })));
        expect(r.code).toBe(1);
        expect(r.stderr).toContain("did not become healthy: vps-stack-prod-api-0123456789-1 is still running starting after 2s");
        expect(r.seconds).toBeGreaterThanOrEqual(1);
        expect(r.seconds).toBeLessThan(6);
        expect(ofCommand("rm")).toEqual([["rm", "-f", "-v", ...C]]);
    });

    it("asks healthPath of every replica from the proxy's network with the proxy's image, and fails when one does not answer", async () => {
        fake.set("state.default", ["running healthy"]);
        const http = { image: "sha256:nginx", network: "vps-stack-prod-edge", port: 3001, path: "/api/health" };
        const ok = await run(gateScript(gate({ http })));
        expect(ok.code).toBe(0);
        const [runCall] = ofCommand("run");
        expect(runCall.slice(0, 8)).toEqual(["run", "--rm", "--network", "vps-stack-prod-edge", "--entrypoint", "sh", "sha256:nginx", "-c"]);
        expect(runCall.slice(9)).toEqual(["sh", ...C.map((c) => `http://${c}:3001/api/health`)]);

        fake = fakeDocker(tempDir("release-http"));
        home = path.join(fake.dir, "home");
        fake.set("state.default", ["running healthy"]);
        fake.set("curl-fail", [`http://${C[1]}:3001/api/health`]);
        const bad = await run(gateScript(gate({ http })));
        expect(bad.code).toBe(1);
        expect(bad.stderr).toContain(`no answer from http://${C[1]}:3001/api/health`);
        expect(bad.stderr).toContain("did not become healthy: healthPath does not answer from the proxy's network");
        expect(ofCommand("rm")).toEqual([["rm", "-f", "-v", ...C]]);
        expect(fs.existsSync(historyFile())).toBe(false);
    });
});

describe("drain", () => {
    const drain = (drainSeconds: number) => drainScript({ proxy: "vps-stack-prod-nginx", containers: C, drainSeconds, stopSeconds: 10 });

    it("waits while the proxy has old workers shutting down, then stops the release's containers", async () => {
        fake.set("workers", [2, 1, 0]);
        const r = await run(drain(30));
        expect(r.code).toBe(0);
        const calls = fake.calls();
        expect(calls.map((c) => c[0])).toEqual(["exec", "exec", "exec", "stop"]);
        expect(calls[0].slice(0, 4)).toEqual(["exec", "vps-stack-prod-nginx", "sh", "-c"]);
        expect(calls[0][4]).toContain("shutting dow[n]");
        expect(calls[3]).toEqual(["stop", "-t", "10", ...C]);
        expect(r.seconds).toBeLessThan(5);
    });

    it("stops at drainTimeout when old workers remain", async () => {
        fake.set("workers", [1]);
        const r = await run(drain(2));
        expect(r.code).toBe(0);
        const calls = fake.calls();
        expect(calls[calls.length - 1]).toEqual(["stop", "-t", "10", ...C]);
        expect(calls.filter((c) => c[0] === "exec").length).toBeGreaterThanOrEqual(2);
        expect(r.seconds).toBeGreaterThanOrEqual(1);
        expect(r.seconds).toBeLessThan(5);
    });

    it("stops at once when the proxy is not there (exec fails) or not given", async () => {
        const r = await run(drain(30)); // no workers file: docker exec fails
        expect(r.code).toBe(0);
        expect(fake.calls().map((c) => c[0])).toEqual(["exec", "stop"]);
        expect(r.seconds).toBeLessThan(3);

        fake = fakeDocker(tempDir("release-noproxy"));
        const s = await run(drainScript({ containers: C, drainSeconds: 30, stopSeconds: 10 }));
        expect(s.code).toBe(0);
        expect(fake.calls()).toEqual([["stop", "-t", "10", ...C]]);
    });
});
