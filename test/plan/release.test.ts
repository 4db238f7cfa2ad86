// Releases, the plan (plan/release.ts): the id is a pure function of what the containers are made of, and
// names the release's containers and alias. The scripts that run a release: test/render/release.test.ts.
import * as fc from "fast-check";
import { loadConfig, StackConfig } from "../../config";
import { SiteFile } from "../../config/static-files";
import { appRelease, fingerprint, releaseId, releaseNames } from "../../plan/release";

const KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAILZo+M4K9/I9XGdDpO7kpi78EwdIQGvoEOp8jPIkKOR+";

describe("releaseId", () => {
    /** The same object with its keys (at every level) in another order. */
    function reorder(v: unknown, rnd: () => number): unknown {
        if (Array.isArray(v)) return v.map((x) => reorder(x, rnd));
        if (v && typeof v === "object") {
            const keys = Object.keys(v).sort(() => rnd() - 0.5);
            return Object.fromEntries(keys.map((k) => [k, reorder((v as Record<string, unknown>)[k], rnd)]));
        }
        return v;
    }

    it("is 10 hex characters, the same for the same spec whatever the key order", () => {
        fc.assert(
            fc.property(fc.object(), fc.integer(), (spec, seed) => {
                let s = seed;
                const rnd = () => ((s = (s * 1103515245 + 12345) & 0x7fffffff) / 0x7fffffff);
                expect(releaseId(reorder(spec, rnd))).toBe(releaseId(spec));
                expect(releaseId(spec)).toMatch(/^[0-9a-f]{10}$/);
            }),
        );
        expect(releaseId({ a: 1, b: { c: [1, 2], d: "x" } })).toBe(releaseId({ b: { d: "x", c: [1, 2] }, a: 1 }));
    });

    it("changes with any change of the spec", () => {
        fc.assert(
            fc.property(fc.dictionary(fc.string(), fc.jsonValue()), fc.string(), fc.jsonValue(), (spec, key, value) => {
                const changed = { ...spec, [key]: value };
                fc.pre(JSON.stringify(spec[key]) !== JSON.stringify(value) && value !== null);
                expect(releaseId(changed)).not.toBe(releaseId(spec));
            }),
        );
        // Nested, array order, types.
        expect(releaseId({ a: { b: [1, 2] } })).not.toBe(releaseId({ a: { b: [2, 1] } }));
        expect(releaseId({ a: 1 })).not.toBe(releaseId({ a: "1" }));
        expect(releaseId({ env: { A: "1" } })).not.toBe(releaseId({ env: { A: "1", B: "" } }));
    });

    it("ignores undefined fields (an optional setting left out is the same spec)", () => {
        expect(releaseId({ a: 1, b: undefined })).toBe(releaseId({ a: 1 }));
    });
});

describe("fingerprint", () => {
    it("is stable, differs per value and shows nothing of it", () => {
        fc.assert(
            fc.property(fc.string({ minLength: 4 }), fc.string({ minLength: 4 }), (a, b) => {
                expect(fingerprint(a)).toBe(fingerprint(a));
                expect(fingerprint(a)).toMatch(/^[0-9a-f]{16}$/);
                if (a !== b) expect(fingerprint(a)).not.toBe(fingerprint(b));
                expect(fingerprint(a)).not.toContain(a);
            }),
        );
    });
});

describe("releaseNames", () => {
    it("names the alias <app>-<release> and one container per replica <prefix>-<app>-<release>-<n>", () => {
        expect(releaseNames("vps-stack-prod", "api", "0123456789", 3)).toEqual({
            alias: "api-0123456789",
            containers: ["vps-stack-prod-api-0123456789-1", "vps-stack-prod-api-0123456789-2", "vps-stack-prod-api-0123456789-3"],
        });
    });
});
describe("appRelease", () => {
    function config(extra: (c: any) => void = () => {}): StackConfig {
        const raw: any = {
            host: { address: "203.0.113.10", hostKey: KEY, privateKeyPath: "/dev/null" },
            domain: "app.example.com",
            apps: [
                {
                    name: "api",
                    image: "ghcr.io/acme/api:1.4.2",
                    port: 3001,
                    paths: ["/api"],
                    replicas: 2,
                    env: { LOG_LEVEL: "info" },
                    secrets: { JWT_SECRET: "generate", WHATSAPP_API_KEY: "required" },
                },
            ],
            secrets: { WHATSAPP_API_KEY: "provided-whatsapp-key" },
        };
        extra(raw);
        return loadConfig(raw, "preprod");
    }
    const id = (extra?: (c: any) => void, site?: SiteFile[]) => {
        const cfg = config(extra);
        return appRelease(cfg, cfg.apps[0], site);
    };
    const base = id();

    it("is the same for the same config", () => {
        expect(id()).toBe(base);
        expect(base).toMatch(/^[0-9a-f]{10}$/);
    });

    it.each<[string, (c: any) => void]>([
        ["image", (c) => (c.apps[0].image = "ghcr.io/acme/api:1.4.3")],
        ["an env value", (c) => (c.apps[0].env.LOG_LEVEL = "debug")],
        ["a new env variable", (c) => (c.apps[0].env.FEATURE = "on")],
        ["replicas", (c) => (c.apps[0].replicas = 3)],
        ["memory", (c) => (c.apps[0].memory = "512m")],
        ["command", (c) => (c.apps[0].command = ["serve", "--fast"])],
        ["healthPath", (c) => (c.apps[0].healthPath = "/ready")],
        ["a migration", (c) => (c.apps[0].migrate = { command: ["migrate"] })],
        ["a required secret's value", (c) => (c.secrets.WHATSAPP_API_KEY = "rotated-key")],
        ["a generated secret's rotation token", (c) => (c.rotate = { JWT_SECRET: "2027-01-01" })],
        ["PostgreSQL's rotation token (DATABASE_URL)", (c) => (c.rotate = { postgres: "2027-01-01" })],
        ["Redis's rotation token (REDIS_URL)", (c) => (c.rotate = { redis: "2027-01-01" })],
        ["the database user (DATABASE_URL)", (c) => (c.postgres = { user: "svc" })],
        ["secret delivery", (c) => (c.apps[0].secretDelivery = "env")],
    ])("changes with %s", (_, change) => {
        expect(id(change)).not.toBe(base);
    });

    it.each<[string, (c: any) => void]>([
        ["hosts", (c) => (c.apps[0].hosts = ["api.example.com"])],
        ["paths", (c) => (c.apps[0].paths = ["/v2"])],
        ["per-app proxy settings", (c) => (c.apps[0].proxy = { clientMaxBodySize: "5M", rateLimit: { rate: "2r/s" }, headers: { "X-Frame-Options": "DENY" } })],
        ["the stack's proxy settings", (c) => (c.nginx = { clientMaxBodySize: "1M" })],
        ["the release timeouts", (c) => (c.releases = { drainTimeout: "60s", healthTimeout: "5m" })],
        ["another secret's value", (c) => (c.secrets.UNUSED = "x")],
    ])("does not change with %s (a proxy reload, not a release)", (_, change) => {
        expect(id(change)).toBe(base);
    });

    it("never contains a secret value, and an app without a database ignores PostgreSQL's rotation", () => {
        const cfg = config((c) => (c.apps[0].database = false));
        const noDb = appRelease(cfg, cfg.apps[0]);
        const rotated = config((c) => ((c.apps[0].database = false), (c.rotate = { postgres: "2027-01-01" })));
        // Only the rotations of what the app uses are its release: another app's secret is not.
        expect(appRelease(rotated, rotated.apps[0])).toBe(noDb);
        const withDb = config();
        const dbRotated = config((c) => (c.rotate = { postgres: "2027-01-01" }));
        expect(appRelease(dbRotated, dbRotated.apps[0])).not.toBe(appRelease(withDb, withDb.apps[0]));
        // A longer generated password is a new DATABASE_URL.
        const longer = config((c) => (c.postgres = { passwordLength: 48 }));
        expect(appRelease(longer, longer.apps[0])).not.toBe(appRelease(withDb, withDb.apps[0]));
    });

    it("changes with a static site's files", () => {
        const files: SiteFile[] = [{ path: "index.html", contentBase64: Buffer.from("<h1>1</h1>").toString("base64") }];
        const a = id(undefined, files);
        expect(id(undefined, files)).toBe(a);
        expect(id(undefined, [{ ...files[0], contentBase64: Buffer.from("<h1>2</h1>").toString("base64") }])).not.toBe(a);
        expect(id(undefined, [{ ...files[0], path: "other.html" }])).not.toBe(a);
        expect(a).not.toBe(base);
    });
});
