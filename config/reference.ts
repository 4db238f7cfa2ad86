// The config reference, derived from the zod schema: one row per key with its type, default and
// description. It generates Pulumi.yaml's `config:` block and the table in docs/configuration.md, and the
// tests check both are up to date, so the documentation cannot drift from the validation.
import { z } from "zod";
import { configSchema } from "./schema";

export interface ReferenceRow {
    /** `pulumi config set --path` syntax; array items as `apps[].name`. */
    path: string;
    type: string;
    /** The schema's default, or undefined when the key has none (or a stack-dependent one). */
    default: unknown;
    required: boolean;
    description: string;
}

interface Unwrapped {
    inner: z.ZodType;
    description?: string;
    hasDefault: boolean;
    optional: boolean;
}

function unwrap(schema: z.ZodType): Unwrapped {
    let s: any = schema;
    let description: string | undefined;
    let hasDefault = false;
    let optional = false;
    for (;;) {
        description ??= s.description;
        const t = s._zod.def.type;
        if (t === "optional" || t === "nullable") optional = true;
        else if (t === "default" || t === "prefault") hasDefault = true;
        else break;
        s = s._zod.def.innerType;
    }
    description ??= s.description;
    return { inner: s, description, hasDefault, optional };
}

function typeName(s: any): string {
    const t = s._zod.def.type;
    if (t === "enum") return Object.values(s._zod.def.entries).map((v) => JSON.stringify(v)).join(" \\| ");
    if (t === "array") return `array of ${typeName(unwrap(s._zod.def.element).inner)}`;
    if (t === "record") return `map of ${typeName(unwrap(s._zod.def.valueType).inner)}`;
    return t;
}

function defaultOf(schema: z.ZodType): unknown {
    const r = schema.safeParse(undefined);
    return r.success ? r.data : undefined;
}

function rowsOf(path: string, schema: z.ZodType): ReferenceRow[] {
    const u = unwrap(schema);
    const t = (u.inner as any)._zod.def.type;
    const row: ReferenceRow = {
        path,
        type: t === "object" ? "object" : typeName(u.inner),
        default: defaultOf(schema),
        required: !u.hasDefault && !u.optional,
        description: u.description ?? "",
    };
    if (t === "object") {
        const shape = (u.inner as z.ZodObject).shape as Record<string, z.ZodType>;
        return [row, ...Object.entries(shape).flatMap(([k, v]) => rowsOf(`${path}.${k}`, v))];
    }
    if (t === "array") {
        const el = unwrap((u.inner as any)._zod.def.element);
        if ((el.inner as any)._zod.def.type === "object") {
            const shape = (el.inner as z.ZodObject).shape as Record<string, z.ZodType>;
            return [row, ...Object.entries(shape).flatMap(([k, v]) => rowsOf(`${path}[].${k}`, v))];
        }
    }
    return [row];
}

export function configReference(): ReferenceRow[] {
    return Object.entries(configSchema.shape).flatMap(([k, v]) => rowsOf(k, v as z.ZodType));
}

/**
 * Keys Pulumi.yaml declares without a `type`. The CLI checks a typed key before the program runs and
 * stops with only "must be of type 'array<object>'"; `apps` written as a map (a common slip) has a fix
 * the loader can give, so the value has to reach it. An untyped key is not checked by the CLI.
 */
export const UNTYPED_PROJECT_KEYS: readonly string[] = ["apps"];

export interface ProjectConfigDecl {
    type?: string;
    description: string;
    default: unknown;
    items?: { type: string };
}

/** Pulumi.yaml's `config:` block: every top-level key described and defaulted like the schema, typed but for UNTYPED_PROJECT_KEYS. */
export function projectConfigBlock(): Record<string, ProjectConfigDecl> {
    const out: Record<string, ProjectConfigDecl> = {};
    for (const [key, schema] of Object.entries(configSchema.shape)) {
        const u = unwrap(schema as z.ZodType);
        const t = (u.inner as any)._zod.def.type;
        const type = t === "record" ? "object" : t;
        const description = u.description ?? "";
        const def = defaultOf(schema as z.ZodType);
        out[key] = UNTYPED_PROJECT_KEYS.includes(key)
            ? { description, default: def }
            : { type, description, default: def, ...(t === "array" ? { items: { type: "object" } } : {}) };
    }
    return out;
}

function cell(v: unknown): string {
    if (v === undefined) return "";
    const s = typeof v === "string" ? v : JSON.stringify(v);
    return "`" + s.replace(/\|/g, "\\|") + "`";
}

/** The config table of docs/configuration.md (markdown), nested keys only: sections are headings of the table. */
export function referenceMarkdown(): string {
    const rows = configReference();
    const lines = ["| key | type | default | description |", "|---|---|---|---|"];
    for (const r of rows) {
        const def = r.type === "object" || r.type.startsWith("array of object") ? "" : cell(r.default);
        lines.push(`| \`${r.path}\`${r.required ? " (required)" : ""} | ${r.type} | ${def} | ${r.description.replace(/\|/g, "\\|")} |`);
    }
    return lines.join("\n");
}
