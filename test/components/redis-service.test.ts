// RedisService under Pulumi mocks: the 0400 config file and the healthcheck, on the data network only.
import { REDIS_CONF_FILE } from "../../components/redis-service";
import { REMOTE_COMMAND } from "../mocks";
import { build, byTypeName, container, filesCommand, preprodConfig, resetCaptured, upload, uploadIsSecret } from "./helpers";

beforeEach(resetCaptured);

describe("RedisService", () => {
    it("keeps password, persistence and memory policy in a config file only the container reads", async () => {
        await build(preprodConfig((c) => (c.redis = { maxmemory: "128mb", maxmemoryPolicy: "volatile-lru" })));
        const r = container("vps-stack-preprod-redis");
        const conf = upload(r, REDIS_CONF_FILE);
        // 0444: the container runs as redis, which must read it; no other user runs there.
        expect(conf.permissions).toBe("0444");
        expect(conf.content).toMatch(/^requirepass [A-Za-z0-9]{32}$/m);
        expect(conf.content).toContain("appendonly yes");
        expect(conf.content).toContain("maxmemory 128mb");
        expect(conf.content).toContain("maxmemory-policy volatile-lru");
        expect(conf).toMatchObject({ uid: 0, gid: 0 });
        expect(await uploadIsSecret("vps-stack-redis", REDIS_CONF_FILE)).toBe(true);
        const password = /^requirepass (\S+)$/m.exec(conf.content)![1];
        expect([...(r.entrypoints ?? []), ...(r.command ?? []), ...(r.envs ?? []), ...r.healthcheck.tests].join(" ")).not.toContain(password);
        // Nor in the command that makes the volume: the archive goes on stdin.
        const cmd = filesCommand(r, "/usr/local/etc/redis");
        expect(cmd.inputs.create).not.toContain(password);
        expect(cmd.inputs.create).toContain("docker cp - ");
        expect(cmd.inputs.delete).toContain(`docker volume rm ${r.volumes[0].volumeName}`);
    });

    it("checks health with REDISCLI_AUTH, on the data network only", async () => {
        await build(preprodConfig());
        const r = container("vps-stack-preprod-redis");
        expect(r.healthcheck.tests[1]).toContain("REDISCLI_AUTH=");
        expect(r.healthcheck.tests[1]).toContain("redis-cli");
        expect(r.networksAdvanced).toEqual([{ name: "vps-stack-preprod-data", aliases: ["redis"] }]);
        expect(r.volumes).toEqual([
            { volumeName: expect.stringMatching(/^vps-stack-preprod-redis-files-[0-9a-f]{12}$/), containerPath: "/usr/local/etc/redis", readOnly: true },
            { volumeName: "vps-stack-preprod-redis-data", containerPath: "/data" },
        ]);
        expect(r.command).toEqual(["redis-server", REDIS_CONF_FILE]);
    });

    it("runs as the image's redis user, with a PIDs limit", async () => {
        await build(preprodConfig((c) => (c.redis = { pidsLimit: 96 })));
        const r = container("vps-stack-preprod-redis");
        expect(r.user).toBe("redis");
        // The image's own entrypoint (which only drops privileges when started as root).
        expect(r.entrypoints).toBeUndefined();
        // Read-only root: the config comes in its own read-only volume, Redis writes only /data.
        expect(r.readOnly).toBe(true);
        expect(r.tmpfs).toEqual({ "/tmp": "rw,noexec,nosuid,size=64m" });
        expect(r.uploads).toBeUndefined();
        expect(r.labels).toContainEqual({ label: "vps-stack.pids-limit", value: "96" });
        expect(byTypeName(REMOTE_COMMAND, "vps-stack-redis-pids").inputs.create).toBe("docker update --pids-limit 96 vps-stack-preprod-redis >/dev/null");
    });
});
