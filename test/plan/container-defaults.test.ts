// The provider reads some values back in its own canonical form; writing anything else makes every
// `pulumi up` after a refresh replace the container. These pin the forms found in a real deploy.
import { dockerCaps, dockerCpus, dockerDuration, healthcheck } from "../../plan/container-defaults";

describe("canonical forms the Docker provider reads back", () => {
    it.each([
        [1, "1.0"],
        [2, "2.0"],
        [0.5, "0.5"],
        [1.5, "1.5"],
        [0.25, "0.25"],
        [0.125, "0.125"],
    ])("cpus %s → %s", (n, s) => {
        expect(dockerCpus(n)).toBe(s);
    });

    it.each([
        ["10s", "10s"],
        ["60s", "1m0s"],
        ["1m", "1m0s"],
        ["90s", "1m30s"],
        ["5m", "5m0s"],
        ["1h", "1h0m0s"],
        ["0s", "0s"],
        ["500ms", "500ms"],
        ["2000ms", "2s"],
    ])("duration %s → %s (Go's time.Duration.String)", (d, s) => {
        expect(dockerDuration(d)).toBe(s);
    });

    it("rejects durations it cannot normalise", () => {
        expect(() => dockerDuration("1d")).toThrow(/unsupported duration/);
    });

    it("prefixes capabilities with CAP_ and leaves ALL alone", () => {
        expect(dockerCaps(["ALL", "CHOWN", "CAP_SETUID"])).toEqual(["ALL", "CAP_CHOWN", "CAP_SETUID"]);
    });

    it("normalises every duration of a healthcheck", () => {
        expect(healthcheck({ tests: ["CMD", "true"], interval: "1m", timeout: "5s", retries: 3, startPeriod: "120s" })).toEqual({
            tests: ["CMD", "true"],
            interval: "1m0s",
            timeout: "5s",
            retries: 3,
            startPeriod: "2m0s",
        });
    });
});
