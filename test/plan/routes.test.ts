// hostRoutes (plan/routes.ts): each host's locations, longest prefix first, and the app that answers /health.
// The rendered config that follows them: test/render/nginx.test.ts.
import { hostRoutes } from "../../plan/routes";

describe("hostRoutes", () => {
    it("orders locations longest prefix first and picks the / owner for /health", () => {
        const apps = [
            { name: "a", servers: [], hosts: ["h.example.com"], paths: ["/"], healthPath: "/health" },
            { name: "b", servers: [], hosts: ["h.example.com"], paths: ["/api/v2", "/api/"], healthPath: "/health" },
        ];
        const [r] = hostRoutes(apps);
        expect(r.locations.map((l) => l.path)).toEqual(["/api/v2", "/api", "/"]);
        expect(r.healthApp.name).toBe("a");
    });

    it("falls back to the first app on a host without /", () => {
        const [r] = hostRoutes([{ name: "b", servers: [], hosts: ["h.example.com"], paths: ["/api"], healthPath: "/health" }]);
        expect(r.healthApp.name).toBe("b");
    });
});
