// ApiService under Pulumi mocks: an app's containers and inputs, its migrations, static sites, and its releases
// (names, gate, drain) in front of the proxy container; none with the host's nginx.
import * as pulumi from "@pulumi/pulumi";
import { VpsStack } from "../../components/vps-stack";
import { LOG_OPTS } from "../../plan/container-defaults";
import { appRelease } from "../../plan/release";
import { drainScript, gateScript } from "../../render/release";
import {
    byName,
    CONTAINER,
    ofType,
    programFailures,
    promiseOf,
    recorded,
    REMOTE_COMMAND,
    REMOTE_IMAGE,
    resetRecorded,
    setExitCode,
} from "../mocks";
import { build, byTypeName, container, expectSameResources, filesCommand, filesOfCommand, hostMode, KEY, mockImageId, preprodConfig, rawProps, rel, resetCaptured, upload, uploadIsSecret } from "./helpers";

beforeEach(resetCaptured);

describe("ApiService", () => {
    it("runs each replica on edge (with its release's alias) and data networks, never published", async () => {
        const stack = await build(preprodConfig());
        const r = rel(stack, "api");
        for (const n of [1, 2]) {
            const api = container(`vps-stack-preprod-api-${r}-${n}`);
            expect(api.networksAdvanced).toEqual([{ name: "vps-stack-preprod-edge", aliases: [`api-${r}`] }, { name: "vps-stack-preprod-data" }]);
            expect(api.ports ?? []).toEqual([]);
        }
        expect(() => container(`vps-stack-preprod-api-${r}-3`)).toThrow();
        expect(stack.apps.api.containerNames).toEqual([`vps-stack-preprod-api-${r}-1`, `vps-stack-preprod-api-${r}-2`]);
        expect(stack.apps.api.upstreamHost).toBe(`api-${r}`);
    });

    it("keeps an app without database or cache off the data network", async () => {
        const stack = await build(preprodConfig());
        const web = container(`vps-stack-preprod-web-${rel(stack, "web")}-1`);
        expect(web.networksAdvanced).toEqual([{ name: "vps-stack-preprod-edge", aliases: [`web-${rel(stack, "web")}`] }]);
        expect(web.envs.join(" ")).not.toMatch(/DATABASE_URL|REDIS_URL/);
    });

    it("delivers DATABASE_URL, REDIS_URL and app secrets as files, with *_FILE variables", async () => {
        const stack = await build(preprodConfig());
        const api = container(`vps-stack-preprod-api-${rel(stack, "api")}-1`);
        for (const n of ["DATABASE_URL", "REDIS_URL", "JWT_SECRET", "WHATSAPP_API_KEY"]) {
            expect(api.envs).toContain(`${n}_FILE=/run/secrets/${n}`);
            expect(await uploadIsSecret(`vps-stack-app-api-${rel(stack, "api")}-1`, `/run/secrets/${n}`)).toBe(true);
        }
        // In a read-only volume of the release's own, shared by its replicas; 0444 like Docker's secrets.
        const api2 = container(`vps-stack-preprod-api-${rel(stack, "api")}-2`);
        expect(api.volumes).toEqual([{ volumeName: expect.stringMatching(new RegExp(`^vps-stack-preprod-api-${rel(stack, "api")}-files-[0-9a-f]{12}$`)), containerPath: "/run/secrets", readOnly: true }]);
        expect(api2.volumes).toEqual(api.volumes);
        expect(upload(api, "/run/secrets/JWT_SECRET")).toMatchObject({ permissions: "0444", uid: 0, gid: 0 });
        expect(upload(api, "/run/secrets/DATABASE_URL").content).toMatch(/^postgresql:\/\/app:[A-Za-z0-9]{32}@postgres:5432\/app$/);
        expect(upload(api, "/run/secrets/REDIS_URL").content).toMatch(/^redis:\/\/default:[A-Za-z0-9]{32}@redis:6379\/0$/);
        expect(upload(api, "/run/secrets/WHATSAPP_API_KEY").content).toBe("provided-whatsapp-key");
        expect(upload(api, "/run/secrets/JWT_SECRET").content).toHaveLength(64);
    });

    it("puts secrets in the environment only when the app asks for it, and then as secrets", async () => {
        const stack = await build(preprodConfig((c) => (c.apps[0].secretDelivery = "env")));
        const api = container(`vps-stack-preprod-api-${rel(stack, "api")}-1`);
        expect(api.envs.find((e: string) => e.startsWith("WHATSAPP_API_KEY="))).toBe("WHATSAPP_API_KEY=provided-whatsapp-key");
        const envs = rawProps.get(`vps-stack-app-api-${rel(stack, "api")}-1`)!.props.envs as pulumi.Input<string>[];
        const secretFlags = await Promise.all(envs.map((e) => pulumi.isSecret(pulumi.output(e))));
        const secretCount = secretFlags.filter(Boolean).length;
        expect(secretCount).toBe(4);
    });

    it("has a healthcheck on the health path, restart policy, limits, log rotation and hardening", async () => {
        const stack = await build(preprodConfig((c) => (c.apps[0].memory = "768m")));
        const api = container(`vps-stack-preprod-api-${rel(stack, "api")}-1`);
        // Exec form: the URL is sh's $1, never parsed as shell text.
        expect(api.healthcheck.tests).toEqual(["CMD", "sh", "-c", 'curl -fsS -o /dev/null "$1" || wget -q -O /dev/null "$1"', "sh", "http://127.0.0.1:3001/api/health"]);
        expect(api.restart).toBe("unless-stopped");
        expect(api.memory).toBe(768);
        expect(api.logOpts).toEqual(LOG_OPTS);
        expect(api.securityOpts).toEqual(["no-new-privileges:true"]);
        expect(api.capabilities).toEqual({ drops: ["ALL"], adds: [] });
        // A read-only root by default (apps[].readOnly), its secret files in a volume.
        expect(api.readOnly).toBe(true);
        expect(api.uploads).toBeUndefined();
        // The PIDs limit (apps[].pidsLimit, 512 by default), declared and applied on the host once it exists.
        expect(api.labels).toContainEqual({ label: "vps-stack.pids-limit", value: "512" });
        const pids = byTypeName(REMOTE_COMMAND, `vps-stack-app-api-${rel(stack, "api")}-1-pids`).inputs;
        expect(pids.create).toBe(`docker update --pids-limit 512 vps-stack-preprod-api-${rel(stack, "api")}-1 >/dev/null`);
        // Release mode: the gate waits (and removes a release that never gets healthy), not the provider.
        expect(api.wait).toBe(false);
    });

    it("supports a custom health command, a non-root user and a read-only root", async () => {
        const stack = await build(
            preprodConfig((c) => Object.assign(c.apps[0], { healthCommand: ["node", "healthcheck.js"], user: "1000:1000", secretDelivery: "env" })),
        );
        const api = container(`vps-stack-preprod-api-${rel(stack, "api")}-1`);
        expect(api.healthcheck.tests).toEqual(["CMD", "node", "healthcheck.js"]);
        expect(api.user).toBe("1000:1000");
        expect(api.readOnly).toBe(true);
        expect(api.tmpfs).toEqual({ "/tmp": "rw,noexec,nosuid,size=64m" });
        // No files: no files volume.
        expect(api.volumes).toEqual([]);
    });

    it("leaves the root writable with apps[].readOnly false, the secret files still in their read-only volume", async () => {
        const stack = await build(preprodConfig((c) => Object.assign(c.apps[0], { readOnly: false })));
        const api = container(`vps-stack-preprod-api-${rel(stack, "api")}-1`);
        expect(api.readOnly).toBeUndefined();
        expect(api.tmpfs).toBeUndefined();
        expect(api.volumes).toEqual([expect.objectContaining({ containerPath: "/run/secrets", readOnly: true })]);
        expect(upload(api, "/run/secrets/JWT_SECRET").content).toHaveLength(64);
    });

    it("deploys a re-pushed tag: the registry digest is a pull trigger, unless tag tracking is off", async () => {
        const stack = await build(preprodConfig((c) => (c.apps[1].trackTag = false)));
        const apiImage = byName("vps-stack-app-api-image").inputs;
        expect(apiImage.name).toBe("ghcr.io/acme/api:1.4.2");
        expect(apiImage.pullTriggers).toEqual([expect.stringMatching(/^sha256:[a-f0-9]{64}$/)]);
        expect(byName("vps-stack-app-web-image").inputs.pullTriggers ?? []).toEqual([]);
        // The container runs the pulled image's id, so a new digest replaces it.
        expect(container(`vps-stack-preprod-api-${rel(stack, "api")}-1`).image).toMatch(/^sha256:/);
    });

    it("within a release (fixed names) is replaced delete-first, on any healthcheck change, and when found not running", async () => {
        const stack = await build(preprodConfig());
        const opts = rawProps.get(`vps-stack-app-api-${rel(stack, "api")}-1`)!.opts as pulumi.CustomResourceOptions;
        expect(opts.deleteBeforeReplace).toBe(true);
        expect(opts.replaceOnChanges).toEqual(["healthcheck", "mustRun"]);
    });

    it("writes capabilities as Docker reads them back", async () => {
        const stack = await build(preprodConfig((c) => (c.apps[0].capAdd = ["NET_BIND_SERVICE", "CAP_SYS_NICE"])));
        expect(container(`vps-stack-preprod-api-${rel(stack, "api")}-1`).capabilities).toEqual({ drops: ["ALL"], adds: ["CAP_NET_BIND_SERVICE", "CAP_SYS_NICE"] });
        expect(container("vps-stack-preprod-nginx").capabilities.adds).toEqual(["CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_NET_BIND_SERVICE", "CAP_SETGID", "CAP_SETUID"]);
    });
});

describe("migrations", () => {
    it("run in the new image with the app's environment, secrets and networks, before the replicas", async () => {
        const stack = await build(preprodConfig((c) => (c.apps[0].migrate = { command: ["alembic", "upgrade", "head"] })));
        const r = rel(stack, "api");
        // The release's own migration; auto-named (no name input): a new run is created before the old one is deleted.
        const m = byName(`vps-stack-preprod-api-${r}-migrate`).inputs;
        expect(m.name).toBeUndefined();
        const api = container(`vps-stack-preprod-api-${r}-1`);
        expect(m.command).toEqual(["alembic", "upgrade", "head"]);
        expect(m.image).toBe(api.image);
        expect(m.envs).toEqual(api.envs);
        // The release's files volume, read-only, like its replicas.
        expect(m.volumes).toEqual(api.volumes);
        expect(m.readOnly).toBe(true);
        expect(m.networksAdvanced).toEqual(api.networksAdvanced);
        expect(m).toMatchObject({ attach: true, mustRun: false, restart: "no", logs: false });
        expect(m.labels).toContainEqual({ label: "vps-stack.one-shot", value: "true" });
        // Create-before-delete under a new name: never delete-first, which would take the replicas down with it.
        expect((rawProps.get(`vps-stack-preprod-api-${r}-migrate`)!.opts as pulumi.CustomResourceOptions).deleteBeforeReplace).toBeFalsy();
        // The replicas wait for it.
        expect(rawProps.get(`vps-stack-app-api-${r}-1`)!.opts.dependsOn as pulumi.Resource[]).toContain(stack.apps.api.migration);
    });

    it("gate the replicas on a zero exit code", async () => {
        const cfg = preprodConfig((c) => (c.apps[0].migrate = { command: ["migrate"] }));
        const r = appRelease(cfg, cfg.apps[0]);
        const replicas = () => ofType(CONTAINER).filter((c) => c.name.startsWith(`vps-stack-app-api-${r}-`));
        // Exit 0: the replicas run the pulled image.
        let stack = await build(cfg);
        expect(stack.apps.api.migration).toBeDefined();
        expect(stack.apps.web.migration).toBeUndefined();
        const pulled = await promiseOf(stack.apps.api.migration!.image);
        expect(replicas().map((c) => c.inputs.image)).toEqual([pulled, pulled]);

        // Exit 1: no replica is created, and `pulumi up` fails (Pulumi rethrows a resource's failure as an
        // unhandled rejection) with an error that names the app, the code and where to look.
        resetRecorded();
        setExitCode(`vps-stack-preprod-api-${r}-migrate`, 1);
        const failures = await programFailures(async () => {
            stack = await build(cfg);
        });
        expect(byName(`vps-stack-preprod-api-${r}-migrate`)).toBeDefined();
        expect(replicas()).toEqual([]);
        const migrationName = await promiseOf(stack.apps.api.migration!.name);
        expect(migrationName).toMatch(new RegExp(`^vps-stack-preprod-api-${r}-migrate-`));
        const message = `the migration of app "api" exited with 1; the running version was left in place (docker logs ${migrationName})`;
        expect(failures.length).toBeGreaterThan(0);
        for (const f of failures) expect(f.message).toContain(message);
        // The other app has no migration and is not held back.
        expect(container(`vps-stack-preprod-web-${rel(stack, "web")}-1`)).toBeDefined();
    });
});

describe("static sites", () => {
    // The site is written out once per content under the stack's state directory, copied to the host over
    // SFTP (CopyToRemote) and mounted read-only: its files are in no resource's inputs, hence not in the
    // state.
    async function siteApp(staticCfg: Record<string, string>) {
        const stack = await build(preprodConfig((c) => (c.apps[1] = { name: "web", kind: "static", static: staticCfg, paths: ["/"] })));
        const web = container(`vps-stack-preprod-web-${rel(stack, "web")}-1`);
        const copy = recorded.find((r) => r.type === "command:remote:CopyToRemote")!;
        return { stack, web, copy };
    }
    async function expectCopiedAndMounted(web: any, copy: any, stack: VpsStack, files: Record<string, Buffer>) {
        const fs = require("fs") as typeof import("fs");
        const path = require("path") as typeof import("path");
        // The local copy holds exactly the site's files.
        // The raw inputs keep the FileArchive (its path is a promise); the recorded ones are plain data.
        const local: string = await copy.raw.source.path;
        expect(local.startsWith(stack.host.stateDir)).toBe(true);
        expect(path.basename(local)).toBe("site");
        for (const [rel_, bytes] of Object.entries(files)) expect(fs.readFileSync(path.join(local, rel_))).toEqual(bytes);
        const name = path.basename(path.dirname(local));
        expect(name).toMatch(/^site-web-[0-9a-f]{12}$/);
        expect(copy.inputs.remotePath).toBe(`/home/deploy/.local/share/vps-stack/preprod/${name}`);
        expect(copy.inputs.connection).toMatchObject({ host: "203.0.113.10", port: 2222, user: "deploy", hostKey: KEY });
        // Mounted read-only where the site's nginx serves it; only its config is uploaded, into a volume of the
        // container's own (the root is read-only), and nginx's temporary files go to volumes too.
        expect(web.volumes).toEqual([
            { containerPath: "/var/cache/nginx" },
            { containerPath: "/var/lib/nginx" },
            { volumeName: expect.stringMatching(/^vps-stack-preprod-web-[0-9a-f]{10}-files-[0-9a-f]{12}$/), containerPath: "/etc/nginx/conf.d", readOnly: true },
            { hostPath: `/home/deploy/.local/share/vps-stack/preprod/${name}/site`, containerPath: "/usr/share/nginx/html", readOnly: true },
        ]);
        expect(web.readOnly).toBe(true);
        expect([...filesOfCommand(filesCommand(web, "/etc/nginx/conf.d")).keys()]).toEqual(["default.conf"]);
        // The copy goes when the site changes or the app goes, after the containers that mount it.
        const dir = byTypeName(REMOTE_COMMAND, `vps-stack-host-copy-${name}-dir`).inputs;
        expect(dir.create).toBe(`test -d /home/deploy/.local/share/vps-stack/preprod/${name}/site`);
        expect(dir.delete).toBe(`rm -rf /home/deploy/.local/share/vps-stack/preprod/${name}`);
        const deps = rawProps.get(`${CONTAINER}::vps-stack-app-web-${rel(stack, "web")}-1`)!.opts.dependsOn as pulumi.Resource[];
        // The copy (its directory check and its cleanup) and the files volume.
        expect(deps.length).toBe(3);
        // No resource carries the files' contents.
        const bundle = files["index.html"].toString("base64");
        expect(recorded.filter((r) => JSON.stringify(r.inputs).includes(bundle))).toEqual([]);
    }

    it("serves a local build from the Nginx image: copied to the host and mounted read-only, off the data network", async () => {
        const fs = await import("fs");
        const os = await import("os");
        const path = await import("path");
        const dist = fs.mkdtempSync(path.join(os.tmpdir(), "vps-stack-dist-"));
        fs.mkdirSync(path.join(dist, "assets"));
        fs.writeFileSync(path.join(dist, "index.html"), "<!doctype html>");
        fs.writeFileSync(path.join(dist, "assets", "app-3f9a1c2b.js"), Buffer.from([0, 1, 2, 255]));
        const { stack, web, copy } = await siteApp({ dir: dist });
        expect(byName("vps-stack-app-web-image").inputs.name).toBe("nginx:1.27-alpine");
        expect(web.networksAdvanced).toEqual([{ name: "vps-stack-preprod-edge", aliases: [`web-${rel(stack, "web")}`] }]);
        const conf = upload(web, "/etc/nginx/conf.d/default.conf");
        expect(conf.content).toContain("listen 8080 default_server;");
        expect(conf.content).toContain("try_files $uri $uri/ /index.html;");
        await expectCopiedAndMounted(web, copy, stack, { "index.html": Buffer.from("<!doctype html>"), "assets/app-3f9a1c2b.js": Buffer.from([0, 1, 2, 255]) });
        expect(web.envs ?? []).toEqual([]);
        expect(web.healthcheck.tests[web.healthcheck.tests.length - 1]).toBe("http://127.0.0.1:8080/health");
        expect(web.capabilities.adds).toEqual(["CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_SETGID", "CAP_SETUID"]);
    });

    it("unpacks a site archive (a CI artifact) the same way, its top-level directory as the root", async () => {
        const path = await import("path");
        const archive = path.join(__dirname, "..", "fixtures", "site-archives", "dist-gnu.tgz");
        const { stack, web, copy } = await siteApp({ archive });
        await expectCopiedAndMounted(web, copy, stack, {
            "index.html": Buffer.from("<!doctype html><title>fixture</title>"),
            "assets/app-3f9a1c2b.js": Buffer.from([0, 1, 2, 255]),
        });
        const fs = await import("fs");
        const files: string[] = [];
        const walk = (d: string, prefix = "") => {
            for (const e of fs.readdirSync(d, { withFileTypes: true })) {
                if (e.isDirectory()) walk(path.join(d, e.name), `${prefix}${e.name}/`);
                else files.push(`${prefix}${e.name}`);
            }
        };
        walk(await copy.raw.source.path);
        // The archive's four files; its directories come with them.
        expect(files.sort()).toEqual(["assets/app-3f9a1c2b.js", "assets/menu-café.txt", `assets/vendor/${"a".repeat(60)}/${"b".repeat(40)}/chunk-3f9a1c2b.js`, "index.html"].sort());
    });

    it("serves a site baked into its own image from static.root", async () => {
        const stack = await build(
            preprodConfig((c) => (c.apps[1] = { name: "web", kind: "static", image: "ghcr.io/acme/web:2.0.0", static: { root: "/srv/site" }, paths: ["/"] })),
        );
        const web = container(`vps-stack-preprod-web-${rel(stack, "web")}-1`);
        expect(byName("vps-stack-app-web-image").inputs.name).toBe("ghcr.io/acme/web:2.0.0");
        expect(upload(web, "/etc/nginx/conf.d/default.conf").content).toContain("root /srv/site;");
        expect([...filesOfCommand(filesCommand(web, "/etc/nginx/conf.d")).keys()]).toEqual(["default.conf"]);
    });
});

describe("releases (nginx.mode container)", () => {
    it("names each app's containers, alias, gate and drain after its release, which is appRelease of its config", async () => {
        const cfg = preprodConfig();
        const stack = await build(cfg);
        for (const app of cfg.apps) {
            const r = rel(stack, app.name);
            expect(r).toBe(appRelease(cfg, app));
            expect(r).toMatch(/^[0-9a-f]{10}$/);
            const names = Array.from({ length: app.replicas }, (_, i) => `vps-stack-preprod-${app.name}-${r}-${i + 1}`);
            expect(stack.apps[app.name].containerNames).toEqual(names);
            for (const [i, n] of names.entries()) {
                expect(byTypeName(CONTAINER, `vps-stack-app-${app.name}-${r}-${i + 1}`).inputs.name).toBe(n);
                expect(container(n).networksAdvanced[0]).toEqual({ name: "vps-stack-preprod-edge", aliases: [`${app.name}-${r}`] });
            }
            expect(byTypeName(REMOTE_COMMAND, `vps-stack-app-${app.name}-${r}-gate`)).toBeDefined();
            expect(byTypeName(REMOTE_COMMAND, `vps-stack-app-${app.name}-${r}-drain`)).toBeDefined();
        }
        expect(rel(stack, "api")).not.toBe(rel(stack, "web"));
        // Nothing is named without its release (the host-mode names).
        expect(ofType(CONTAINER).map((c) => c.inputs.name)).not.toContain("vps-stack-preprod-api-1");
    });

    it("gates each release with the gate script on stdin, after its containers", async () => {
        const stack = await build(preprodConfig());
        const r = rel(stack, "api");
        const gate = byTypeName(REMOTE_COMMAND, `vps-stack-app-api-${r}-gate`);
        expect(gate.inputs.create).toBe("sh -s");
        expect(gate.inputs.stdin).toBe(
            gateScript({
                app: "api",
                stack: "preprod",
                release: r,
                image: "ghcr.io/acme/api:1.4.2",
                containers: [`vps-stack-preprod-api-${r}-1`, `vps-stack-preprod-api-${r}-2`],
                timeoutSeconds: 120,
                http: { image: mockImageId("nginx:1.27-alpine"), network: "vps-stack-preprod-edge", port: 3001, path: "/api/health" },
                keepImages: 3,
                // What the provider should have connected: the gate reconnects what an interrupted create missed.
                networks: [
                    { name: "vps-stack-preprod-edge", aliases: [`api-${r}`] },
                    { name: "vps-stack-preprod-data", aliases: [] },
                ],
            }),
        );
        expect(gate.inputs.delete).toBeUndefined();
        expect(gate.inputs.addPreviousOutputInEnv).toBe(false);
        expect(stack.apps.api.gate).toBeDefined();
        // After the containers and their PIDs limits: a release is judged as it will run.
        const deps = rawProps.get(`vps-stack-app-api-${r}-gate`)!.opts.dependsOn as unknown[];
        expectSameResources(deps.slice(0, 2), stack.apps.api.containers);
        expect(deps).toHaveLength(4);
        for (const i of [1, 2]) expect(byTypeName(REMOTE_COMMAND, `vps-stack-app-api-${r}-${i}-pids`).inputs.create).toBe(`docker update --pids-limit 512 vps-stack-preprod-api-${r}-${i} >/dev/null`);
        expect(stack.apps.api.containers).toHaveLength(2);
    });

    it("drains a retired release by the delete of its drain command: wait for the proxy's old workers, then stop", async () => {
        const stack = await build(preprodConfig());
        const r = rel(stack, "api");
        const drain = byTypeName(REMOTE_COMMAND, `vps-stack-app-api-${r}-drain`);
        expect(drain.inputs.create).toBe("true");
        expect(drain.inputs.delete).toBe(
            drainScript({ proxy: "vps-stack-preprod-nginx", containers: [`vps-stack-preprod-api-${r}-1`, `vps-stack-preprod-api-${r}-2`], drainSeconds: 30, stopSeconds: 10 }),
        );
        expect(drain.inputs.delete).toContain(`docker stop -t 10 vps-stack-preprod-api-${r}-1 vps-stack-preprod-api-${r}-2`);
        expectSameResources(rawProps.get(`vps-stack-app-api-${r}-drain`)!.opts.dependsOn, stack.apps.api.containers);
    });

    it("takes timeouts and keepImages from the releases section", async () => {
        const stack = await build(preprodConfig((c) => (c.releases = { healthTimeout: "3m", drainTimeout: "45s", stopTimeout: "20s", keepImages: 5 })));
        const r = rel(stack, "web");
        const gate = byTypeName(REMOTE_COMMAND, `vps-stack-app-web-${r}-gate`).inputs.stdin as string;
        expect(gate).toContain("deadline=$(( $(date +%s) + 180 ))");
        expect(gate).toContain("head -n 5)");
        const drain = byTypeName(REMOTE_COMMAND, `vps-stack-app-web-${r}-drain`).inputs.delete as string;
        expect(drain).toContain("deadline=$(( $(date +%s) + 45 ))");
        expect(drain).toContain(`docker stop -t 20 vps-stack-preprod-web-${r}-1 `);
        expect(stack.proxy!.config).toContain("worker_shutdown_timeout 45s;");
    });

    it("skips the HTTP check of an app that has its own health command", async () => {
        const stack = await build(preprodConfig((c) => (c.apps[0].healthCommand = ["node", "healthcheck.js"])));
        expect(byTypeName(REMOTE_COMMAND, `vps-stack-app-api-${rel(stack, "api")}-gate`).inputs.stdin).not.toContain("docker run");
        expect(byTypeName(REMOTE_COMMAND, `vps-stack-app-web-${rel(stack, "web")}-gate`).inputs.stdin).toContain(
            `docker run --rm --network vps-stack-preprod-edge --entrypoint sh ${mockImageId("nginx:1.27-alpine")} -c `,
        );
    });

    it("points the proxy at each release's alias and bounds old workers by drainTimeout", async () => {
        const stack = await build(preprodConfig());
        const config = stack.proxy!.config;
        expect(config).toContain("worker_shutdown_timeout 30s;");
        expect(config).toContain(`server api-${rel(stack, "api")}:3001`);
        expect(config).toContain(`server web-${rel(stack, "web")}:3000`);
        expect(config).not.toMatch(/server (api|web):/);
    });

    it("starts apps after the proxy's image is pulled (their gates use it)", async () => {
        const stack = await build(preprodConfig());
        const deps = rawProps.get("vps-stack-app-api")!.opts.dependsOn as pulumi.Resource[];
        expect(byName("vps-stack-nginx-image").type).toBe(REMOTE_IMAGE);
        expect(deps).toHaveLength(3);
        expectSameResources(deps.slice(0, 2), [stack.postgres, stack.redis]);
        expect(pulumi.CustomResource.isInstance(deps[2])).toBe(true);
    });

    it("gives every host command addPreviousOutputInEnv false", async () => {
        await build(preprodConfig((c) => (c.tls = { mode: "acme", acme: { email: "ops@example.com" } })));
        const cmds = ofType(REMOTE_COMMAND);
        expect(cmds.length).toBeGreaterThan(5);
        for (const c of cmds) expect([c.name, c.inputs.addPreviousOutputInEnv]).toEqual([c.name, false]);
    });

    it("changes only the changed app's release", async () => {
        const a = await build(preprodConfig());
        const [api, web] = [rel(a, "api"), rel(a, "web")];
        resetRecorded();
        rawProps.clear();
        const b = await build(preprodConfig((c) => (c.apps[0].image = "ghcr.io/acme/api:1.4.3")));
        expect(rel(b, "api")).not.toBe(api);
        expect(rel(b, "web")).toBe(web);
    });
});

describe("no releases with the host's nginx (nginx.mode host)", () => {
    it("keeps fixed names, the app's own alias and the provider's wait; no gate, drain, proxy image or drain timeout", async () => {
        const stack = await build(preprodConfig(hostMode));
        expect(stack.apps.api.release).toBeUndefined();
        expect(stack.apps.api.gate).toBeUndefined();
        expect(stack.apps.api.upstreamHost).toBe("api");
        expect(stack.apps.api.containerNames).toEqual(["vps-stack-preprod-api-1", "vps-stack-preprod-api-2"]);
        const api = byTypeName(CONTAINER, "vps-stack-app-api-1").inputs;
        expect(api.name).toBe("vps-stack-preprod-api-1");
        expect(api.networksAdvanced[0]).toEqual({ name: "vps-stack-preprod-edge", aliases: ["api"] });
        expect(api.wait).toBe(true);
        expect(byTypeName(CONTAINER, "vps-stack-app-web-1").inputs.name).toBe("vps-stack-preprod-web-1");
        expect(ofType(REMOTE_COMMAND).filter((c) => /-(gate|drain)$/.test(c.name))).toEqual([]);
        expect(recorded.filter((r) => r.name === "vps-stack-nginx-image" || r.name === "vps-stack-nginx-config")).toEqual([]);
        expect(stack.hostSite!.config).not.toContain("worker_shutdown_timeout");
        expectSameResources(rawProps.get("vps-stack-app-api")!.opts.dependsOn, [stack.postgres, stack.redis]);
    });

    it("names a migration without a release", async () => {
        await build(preprodConfig((c) => (hostMode(c), (c.apps[0].migrate = { command: ["migrate"] }))));
        expect(byName("vps-stack-preprod-api-migrate").type).toBe(CONTAINER);
    });
});
