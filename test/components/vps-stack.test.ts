// VpsStack under Pulumi mocks: the names of every container, network and volume, and the URLs per app.
import { loadConfig } from "../../config";
import { appUrls } from "../../plan/routes";
import { CONTAINER, NETWORK, ofType, recorded, REMOTE_IMAGE, VOLUME } from "../mocks";
import { build, preprodConfig, rawProps, resetCaptured } from "./helpers";

beforeEach(resetCaptured);

describe("VpsStack", () => {
    it("names every container, network and volume vps-stack-<stack>-…", async () => {
        await build(preprodConfig());
        const named = [...ofType(CONTAINER), ...ofType(NETWORK), ...ofType(VOLUME)].map((r) => r.inputs.name);
        // postgres, redis, backup, wal, api ×2, web, nginx; edge, data; postgres, redis and nginx-config volumes
        expect(named.length).toBe(8 + 2 + 3);
        for (const n of named) expect(n).toMatch(/^vps-stack-preprod-/);
    });

    it.each([
        ["preprod", (_c: any) => {}],
        ["migrations and ACME", (c: any) => {
            c.apps[0].migrate = { command: ["migrate"] };
            c.tls = { mode: "acme", acme: { email: "ops@example.com" } };
        }],
        ["the host's nginx", (c: any) => {
            c.nginx = { mode: "host" };
            c.apps[0].hostPort = 8000;
            c.apps[1].hostPort = 8010;
        }],
    ])("puts every child under its component and every docker resource on the stack's provider (%s)", async (_title, extra) => {
        await build(preprodConfig(extra));
        const components = new Set(recorded.filter((r) => r.type.startsWith("vps-stack:index:")).map((r) => r.name));
        for (const r of recorded) {
            if (r.type === "vps-stack:index:VpsStack") continue;
            // The stack's transformations reach only its descendants: a child created without a parent sits
            // at the root of the Pulumi stack and is never captured.
            const seen = rawProps.get(`${r.type}::${r.name}`);
            expect({ child: `${r.type}::${r.name}`, captured: seen !== undefined }).toEqual({ child: `${r.type}::${r.name}`, captured: true });
            const parent = (seen!.opts.parent as unknown as { __name: string } | undefined)?.__name;
            expect({ child: r.name, parentIsComponent: parent !== undefined && components.has(parent) }).toEqual({ child: r.name, parentIsComponent: true });
            // Named after its component; except what VpsHost runs on the host for the others (gates,
            // drains, password changes, file copies), which carries the name of the component it serves, and
            // a migration, named like the app's containers (vps-stack-<stack>-<app>-…; a rename would
            // replace every stack's migration resource).
            const onHost = parent === "vps-stack-host" && r.type.startsWith("command:");
            const migration = r.type === CONTAINER && /^vps-stack-preprod-([a-z0-9-]+?)(-[0-9a-f]{10})?-migrate$/.exec(r.name);
            if (migration) expect(parent).toBe(`vps-stack-app-${migration[1]}`);
            else if (!onHost) expect(`${r.name}-`.startsWith(`${parent}-`) || r.name === parent ? r.name : `${r.name} (under ${parent})`).toBe(r.name);
        }
        for (const r of recorded.filter((x) => x.type.startsWith("docker:index/"))) {
            expect(r.provider).toMatch(/pulumi:providers:docker::vps-stack-host-docker::/);
        }
        for (const r of ofType(REMOTE_IMAGE)) expect(r.inputs.keepLocally).toBe(true);
    });

    it("computes public and health URLs per app", () => {
        const cfg = preprodConfig();
        expect(appUrls(cfg)).toEqual({
            api: { url: "https://app.example.com/api", healthUrl: "https://app.example.com/api/health" },
            web: { url: "https://app.example.com/", healthUrl: "https://app.example.com/health" },
        });
        const dev = loadConfig({ apps: [{ name: "api", image: "demo:1" }] }, "dev");
        expect(appUrls(dev)).toEqual({ api: { url: "https://localhost:8443/", healthUrl: "https://localhost:8443/health" } });
    });
});
