// The documentation cannot drift from the schema: Pulumi.yaml's config block and the config table in
// docs/configuration.md are generated from it (npm run docs:config), and these tests fail when either is stale.
import * as fs from "fs";
import * as path from "path";
import YAML from "yaml";
import { configSchema, loadConfig } from "../../config";
import { configReference, projectConfigBlock, UNTYPED_PROJECT_KEYS } from "../../config/reference";
import { REFERENCE_FILE, renderedProjectFile, renderedReference } from "../../scripts/config-reference";
import { ROOT } from "../mocks";

const read = (f: string) => fs.readFileSync(path.join(ROOT, f), "utf8");

describe("config reference", () => {
    it("Pulumi.yaml's config block is generated from the schema (run npm run docs:config)", () => {
        const current = read("Pulumi.yaml");
        expect(renderedProjectFile(current)).toBe(current);
    });

    it("docs/configuration.md's table is generated from the schema (run npm run docs:config)", () => {
        const current = read(REFERENCE_FILE);
        expect(renderedReference(current)).toBe(current);
    });

    it("declares every top-level key, each described and defaulted, and typed but for the untyped ones", () => {
        const project = YAML.parse(read("Pulumi.yaml"));
        expect(Object.keys(project.config).sort()).toEqual(Object.keys(configSchema.shape).sort());
        for (const [key, decl] of Object.entries<any>(project.config)) {
            expect([key, typeof decl.description, decl.description.length > 10]).toEqual([key, "string", true]);
            if (UNTYPED_PROJECT_KEYS.includes(key)) expect([key, decl.type, decl.items]).toEqual([key, undefined, undefined]);
            else expect(["string", "integer", "boolean", "array", "object"]).toContain(decl.type);
            expect(decl.default).toBeDefined();
        }
    });

    it("leaves apps untyped, so the CLI passes a map through to the loader's message and fix", () => {
        // A type on apps makes the CLI refuse a map before the program runs, with no vps-stack message.
        expect(projectConfigBlock().apps).toEqual({ description: expect.any(String), default: [] });
    });

    it("Pulumi.yaml's defaults are exactly what the loader would use", () => {
        // A stack with nothing set gets Pulumi.yaml's defaults injected by the CLI; the result must equal
        // the schema's own defaults, or the two would disagree on what an unset key means.
        const defaults = Object.fromEntries(Object.entries(projectConfigBlock()).map(([k, v]) => [k, v.default]));
        const viaPulumi = loadConfig({ ...defaults, apps: [{ name: "api", image: "demo:1" }] }, "dev");
        const viaSchema = loadConfig({ apps: [{ name: "api", image: "demo:1" }] }, "dev");
        expect(viaPulumi).toEqual(viaSchema);
    });

    it("documents every key", () => {
        for (const row of configReference()) expect([row.path, row.description.length > 3]).toEqual([row.path, true]);
    });
});
