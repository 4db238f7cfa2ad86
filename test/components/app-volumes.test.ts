// apps[].volumes under Pulumi mocks: named volumes that outlive releases, mounted in every replica,
// protected on prod, and archived by the backup job (read-only); the config's refusals.
import { APP_VOLUME_LABEL } from "../../components/api-service";
import { loadConfig } from "../../config";
import { APP_VOLUMES_MOUNT } from "../../render/backup";
import { ofType, VOLUME } from "../mocks";
import { build, container, KEY, preprodConfig, rawProps, rel, resetCaptured } from "./helpers";

beforeEach(resetCaptured);

const withUploads = (c: any) => {
    c.apps[0].volumes = [{ name: "uploads", path: "/app/uploads" }, { name: "cache", path: "/app/cache", backup: false }];
};

describe("app volumes", () => {
    it("creates one named volume per entry, labelled, and mounts it in every replica", async () => {
        const stack = await build(preprodConfig(withUploads));
        const vols = ofType(VOLUME).filter((v) => v.inputs.name.startsWith("vps-stack-preprod-api-"));
        expect(vols.map((v) => v.inputs.name).sort()).toEqual(["vps-stack-preprod-api-cache", "vps-stack-preprod-api-uploads"]);
        expect(vols.find((v) => v.inputs.name.endsWith("uploads"))!.inputs.labels).toContainEqual({ label: APP_VOLUME_LABEL, value: "uploads" });
        for (const i of [1, 2]) {
            const c = container(`vps-stack-preprod-api-${rel(stack, "api")}-${i}`);
            expect(c.volumes).toEqual(
                expect.arrayContaining([
                    { volumeName: "vps-stack-preprod-api-uploads", containerPath: "/app/uploads" },
                    { volumeName: "vps-stack-preprod-api-cache", containerPath: "/app/cache" },
                ]),
            );
        }
    });

    it("keeps the volume across releases: its resource name does not carry the release", async () => {
        await build(preprodConfig(withUploads));
        const before = [...rawProps.keys()].filter((k) => k.includes("volume-uploads"));
        resetCaptured();
        await build(preprodConfig((c) => (withUploads(c), (c.apps[0].image = "ghcr.io/acme/api:1.4.3"))));
        expect([...rawProps.keys()].filter((k) => k.includes("volume-uploads"))).toEqual(before);
    });

    it("protects it on prod (unless told otherwise), not elsewhere", async () => {
        await build(preprodConfig(withUploads));
        expect(rawProps.get("vps-stack-app-api-volume-uploads")!.opts.protect).toBe(false);
        resetCaptured();
        const prod = (protect?: boolean) =>
            loadConfig(
                {
                    host: { address: "203.0.113.10", hostKey: KEY },
                    domain: "app.example.com",
                    apps: [{ name: "api", image: "ghcr.io/acme/api:1.0.0", volumes: [{ name: "uploads", path: "/app/uploads", protect }] }],
                },
                "prod",
            );
        await build(prod());
        expect(rawProps.get("vps-stack-app-api-volume-uploads")!.opts.protect).toBe(true);
        resetCaptured();
        await build(prod(false));
        expect(rawProps.get("vps-stack-app-api-volume-uploads")!.opts.protect).toBe(false);
    });

    it("is archived by the backup job, read-only, on its schedule; a volume with backup: false is not", async () => {
        await build(preprodConfig((c) => (withUploads(c), (c.backup = { volumeSchedule: "0 3 * * *" }))));
        const b = container("vps-stack-preprod-backup");
        expect(b.volumes).toContainEqual({ volumeName: "vps-stack-preprod-api-uploads", containerPath: `${APP_VOLUMES_MOUNT}/api-uploads`, readOnly: true });
        expect(b.volumes.map((v: any) => v.volumeName)).not.toContain("vps-stack-preprod-api-cache");
        expect(b.envs).toEqual(expect.arrayContaining(["VOLUMES=api-uploads", `VOLUMES_DIR=${APP_VOLUMES_MOUNT}`, "VOLUME_SCHEDULE=0 3 * * *"]));
    });

    it("without volumes: no mount and no VOLUMES in the backup job", async () => {
        await build(preprodConfig());
        expect(container("vps-stack-preprod-backup").envs.join(" ")).not.toContain("VOLUMES");
    });
});

describe("apps[].volumes config", () => {
    const load = (edit: (c: any) => void) => () => preprodConfig(edit);
    it.each([
        [{ name: "Uploads", path: "/app/uploads" }, "apps[0].volumes[0].name"],
        [{ name: "uploads", path: "app/uploads" }, "apps[0].volumes[0].path"],
        [{ name: "uploads", path: "/app/up:loads" }, "apps[0].volumes[0].path"],
        [{ name: "uploads", path: "/run/secrets/x" }, "apps[0].volumes[0].path"],
        [{ name: "uploads", path: "/" }, "apps[0].volumes[0].path"],
    ])("refuses %j at %s", (v, key) => {
        expect(load((c) => (c.apps[0].volumes = [v]))).toThrow(`vps-stack:${key} `);
    });

    it("refuses two volumes of one app with the same name or path, and volumes on a static site", () => {
        expect(load((c) => (c.apps[0].volumes = [{ name: "a", path: "/x" }, { name: "a", path: "/y" }]))).toThrow("vps-stack:apps[0].volumes[1].name ");
        expect(load((c) => (c.apps[0].volumes = [{ name: "a", path: "/x" }, { name: "b", path: "/x" }]))).toThrow("vps-stack:apps[0].volumes[1].path ");
        expect(load((c) => c.apps.push({ name: "site", kind: "static", hosts: ["www.example.com"], volumes: [{ name: "a", path: "/x" }] }))).toThrow("vps-stack:apps[2].volumes[0] ");
    });

    it("needs backup.maxAgeHours to cover the volume schedule's gap, only when a volume is backed up", () => {
        expect(load((c) => (withUploads(c), (c.backup = { volumeSchedule: "0 3 * * 0" })))).toThrow("vps-stack:backup.maxAgeHours ");
        expect(load((c) => (c.backup = { volumeSchedule: "0 3 * * 0" }))).not.toThrow();
    });
});
