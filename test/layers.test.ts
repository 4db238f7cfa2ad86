// The layout is the architecture (docs/architecture.md): each folder is one layer and imports only go
// down, the layers below components/ are free of Pulumi at run time, and components/ holds one
// ComponentResource per file. Checked on the source text, so a wrong import fails here, not in review.
import * as fs from "fs";
import * as path from "path";

const ROOT = path.join(__dirname, "..");
/** Lowest first: a module may import its own layer and the ones before it. */
const LAYERS = ["sinks", "config", "plan", "render", "components", "index.ts"];

function sources(dir: string): string[] {
    const full = path.join(ROOT, dir);
    if (dir.endsWith(".ts")) return [full];
    return fs.readdirSync(full, { withFileTypes: true }).flatMap((e) => {
        const p = path.join(dir, e.name);
        return e.isDirectory() ? sources(p) : e.name.endsWith(".ts") ? [path.join(ROOT, p)] : [];
    });
}

function layerOf(file: string): number {
    const top = path.relative(ROOT, file).split(path.sep)[0];
    return LAYERS.indexOf(top);
}

/** Relative module specifiers with whether the import is type-only. */
function imports(file: string): { spec: string; typeOnly: boolean }[] {
    const text = fs.readFileSync(file, "utf8");
    return [...text.matchAll(/^(?:import|export)\s+(type\s+)?[^;]*?from\s+"([^"]+)";/gms)].map((m) => ({ spec: m[2], typeOnly: !!m[1] }));
}

const files = LAYERS.flatMap(sources);

describe("layers", () => {
    test.each(files.map((f) => [path.relative(ROOT, f), f]))("%s imports only its own layer and the ones below", (_rel, file) => {
        const own = layerOf(file);
        const upward = imports(file)
            .filter((i) => i.spec.startsWith("."))
            .map((i) => ({ ...i, layer: layerOf(path.resolve(path.dirname(file), i.spec)) }))
            .filter((i) => i.layer > own)
            .map((i) => i.spec);
        expect(upward).toEqual([]);
    });

    test.each(files.filter((f) => layerOf(f) < LAYERS.indexOf("components")).map((f) => [path.relative(ROOT, f), f]))(
        "%s is pure: no Pulumi at run time",
        (_rel, file) => {
            expect(imports(file).filter((i) => i.spec.startsWith("@pulumi/") && !i.typeOnly)).toEqual([]);
        },
    );

    test.each(sources("components").map((f) => [path.relative(ROOT, f), f]))("%s holds at most one ComponentResource", (_rel, file) => {
        expect((fs.readFileSync(file, "utf8").match(/extends pulumi\.ComponentResource\b/g) ?? []).length).toBeLessThanOrEqual(1);
    });

    test("the layers are the repository's top-level source folders", () => {
        const folders = fs.readdirSync(ROOT, { withFileTypes: true }).filter((e) => e.isDirectory() && fs.readdirSync(path.join(ROOT, e.name)).some((n) => n.endsWith(".ts") && !n.endsWith(".d.ts")));
        const program = folders.map((e) => e.name).filter((n) => !["test", "scripts", "policy", "node_modules", "e2e", "bench", "examples"].includes(n));
        expect(program.sort()).toEqual(LAYERS.filter((l) => !l.endsWith(".ts")).sort());
    });
});
