// VpsHost under Pulumi mocks: Docker and host commands over SSH with the pinned host key (local on dev), registry credentials.
import { loadConfig } from "../../config";
import { DOCKER_PROVIDER, isWrappedSecret, LOCAL_COMMAND, ofType, REMOTE_COMMAND } from "../mocks";
import { build, KEY, preprodConfig, resetCaptured } from "./helpers";

beforeEach(resetCaptured);

describe("VpsHost", () => {
    it("reaches Docker over SSH with a pinned host key, batch mode and a shared master connection", async () => {
        await build(preprodConfig());
        const [provider] = ofType(DOCKER_PROVIDER);
        expect(provider.inputs.host).toBe("ssh://deploy@203.0.113.10:2222");
        const opts: string[] = provider.inputs.sshOpts;
        const joined = opts.join(" ");
        expect(joined).toContain("BatchMode=yes");
        expect(joined).toContain("StrictHostKeyChecking=yes");
        expect(joined).toMatch(/UserKnownHostsFile=\S+known_hosts/);
        expect(joined).toContain("ControlMaster=auto");
        expect(joined).toMatch(/ControlPath=\S+\/%C/);
        expect(joined).toContain("ControlPersist=10m");
        expect(joined).not.toMatch(/StrictHostKeyChecking=(no|accept-new)/);
    });

    it("writes the pinned key to the known_hosts file ssh is told to use", async () => {
        await build(preprodConfig());
        const opts: string[] = ofType(DOCKER_PROVIDER)[0].inputs.sshOpts;
        const file = opts.find((o) => o.startsWith("UserKnownHostsFile="))!.split("=")[1];
        const fs = await import("fs");
        expect(fs.readFileSync(file, "utf8")).toBe(`[203.0.113.10]:2222 ${KEY}\n`);
    });

    it("runs host commands over SSH with the host key set", async () => {
        await build(preprodConfig());
        const cmds = ofType(REMOTE_COMMAND);
        expect(cmds.length).toBeGreaterThan(0);
        expect(ofType(LOCAL_COMMAND)).toHaveLength(0);
        for (const c of cmds) {
            expect(c.inputs.connection).toMatchObject({ host: "203.0.113.10", port: 2222, user: "deploy", hostKey: KEY });
            // The connection carries the private key: the whole of it is stored as a secret.
            expect(isWrappedSecret(c.raw.connection)).toBe(true);
        }
    });

    it("uses the local engine and local commands on dev", async () => {
        await build(loadConfig({ apps: [{ name: "api", image: "demo:1" }] }, "dev"));
        const [provider] = ofType(DOCKER_PROVIDER);
        expect(provider.inputs.host).toBeUndefined();
        expect(provider.inputs.sshOpts).toBeUndefined();
        expect(ofType(REMOTE_COMMAND)).toHaveLength(0);
        expect(ofType(LOCAL_COMMAND).length).toBeGreaterThan(0);
    });

    it("passes private registry credentials to the provider as a secret", async () => {
        await build(
            preprodConfig((c) => {
                c.apps[0].registry = { server: "ghcr.io", username: "bot" };
                c.secrets.REGISTRY_PASSWORD = "registry-token";
            }),
        );
        const [provider] = ofType(DOCKER_PROVIDER);
        expect(isWrappedSecret(provider.raw.registryAuth)).toBe(true);
        expect(provider.inputs.registryAuth).toEqual([expect.objectContaining({ address: "ghcr.io", username: "bot", password: "registry-token" })]);
    });
});
