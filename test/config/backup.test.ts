// The backup section of the config: what loadConfig refuses, named by its key.
import { loadConfig } from "../../config";

const KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAILZo+M4K9/I9XGdDpO7kpi78EwdIQGvoEOp8jPIkKOR+";

describe("backup config", () => {
    const base = { host: { address: "203.0.113.10", hostKey: KEY }, domain: "app.example.com", apps: [{ name: "api", image: "ghcr.io/acme/api:1.0.0" }] };
    it.each([
        [{ schedule: "0 25 * * *" }, "backup.schedule"],
        [{ verifySchedule: "every sunday" }, "backup.verifySchedule"],
        [{ retention: { daily: 0 } }, "backup.retention.daily"],
        [{ retention: { weekly: -1 } }, "backup.retention.weekly"],
        [{ directory: "./backups" }, "backup.directory"],
        [{ maxAgeHours: 0 }, "backup.maxAgeHours"],
        [{ timezone: "Paris" }, "backup.timezone"],
    ])("rejects %j at %s", (backup, key) => {
        expect(() => loadConfig({ ...base, backup }, "prod")).toThrow(`vps-stack:${key} `);
    });
});
