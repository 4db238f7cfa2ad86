// StackSecrets under Pulumi mocks: generated passwords and secrets, rotated through keepers.
import { byName, ofType, RANDOM_PASSWORD } from "../mocks";
import { build, preprodConfig, resetCaptured } from "./helpers";

beforeEach(resetCaptured);

describe("StackSecrets", () => {
    it("generates Postgres and Redis passwords of at least 32 chars and JWT_SECRET of 64", async () => {
        await build(preprodConfig());
        const pw = ofType(RANDOM_PASSWORD);
        expect(byName("vps-stack-secrets-postgres-password").inputs.length).toBeGreaterThanOrEqual(32);
        expect(byName("vps-stack-secrets-redis-password").inputs.length).toBeGreaterThanOrEqual(32);
        expect(byName("vps-stack-secrets-secret-jwt-secret").inputs.length).toBeGreaterThanOrEqual(64);
        for (const p of pw) expect(p.inputs.special).toBe(false);
    });

    it("rotates through keepers", async () => {
        await build(preprodConfig((c) => (c.rotate = { postgres: "2026-11-22", JWT_SECRET: "r2" })));
        expect(byName("vps-stack-secrets-postgres-password").inputs.keepers).toEqual({ rotation: "2026-11-22" });
        expect(byName("vps-stack-secrets-secret-jwt-secret").inputs.keepers).toEqual({ rotation: "r2" });
        expect(byName("vps-stack-secrets-redis-password").inputs.keepers).toEqual({ rotation: "initial" });
    });
});
