// The Nginx sink: every value that reaches a rendered nginx.conf goes through one of these two functions.
// Rule: a value is written bare only when it is made of characters nginx's tokenizer never treats specially;
// anything else is written as a double-quoted string, with `\` and `"` escaped. `$` and control characters
// are refused: nginx expands `$name` in most arguments and has no escape for `$`, and a config file cannot
// carry NUL (nor should a header carry CR/LF).

/** Characters that never end, quote, escape, comment or interpolate an unquoted nginx token. */
const BARE_TOKEN_RE = /^[A-Za-z0-9._~/:@%+=,!*?&^|-]+$/;

/** Why `value` cannot be written into an nginx config by this sink, or undefined when it can. */
export function nginxValueProblem(value: string): string | undefined {
    if (value.includes("$")) return 'must not contain "$": nginx would expand it as a variable, and nginx has no escape for it';
    // eslint-disable-next-line no-control-regex
    if (/[\x00-\x1f\x7f]/.test(value)) return "must not contain control characters (newlines, tabs, NUL)";
    return undefined;
}

/** `value` as one double-quoted nginx argument, e.g. for add_header values and return texts. */
export function nginxString(value: string): string {
    const problem = nginxValueProblem(value);
    if (problem) throw new Error(`nginx sink: ${JSON.stringify(value)} ${problem}`);
    return `"${value.replace(/[\\"]/g, (c) => `\\${c}`)}"`;
}

/**
 * `value` as one nginx argument: bare when that reads back the same (so ordinary configs render as they
 * always did), quoted otherwise. Paths and URLs go through here.
 */
export function nginxToken(value: string): string {
    if (value !== "" && BARE_TOKEN_RE.test(value)) return value;
    return nginxString(value);
}

/**
 * What nginx's config tokenizer (ngx_conf_read_token) reads back from one argument written by this sink:
 * used by the tests as an independent parser-level check, beside a real `nginx -t`.
 */
export function readNginxArgument(text: string): string {
    if (!text.startsWith('"')) return text;
    if (!text.endsWith('"') || text.length < 2) throw new Error(`unterminated string: ${text}`);
    const body = text.slice(1, -1);
    let out = "";
    for (let i = 0; i < body.length; i++) {
        const c = body[i];
        if (c === '"') throw new Error(`unescaped quote in ${text}`);
        if (c !== "\\") {
            out += c;
            continue;
        }
        const next = body[++i];
        if (next === undefined) throw new Error(`trailing backslash escapes the closing quote in ${text}`);
        if (next === '"' || next === "'" || next === "\\") out += next;
        else if (next === "t") out += "\t";
        else if (next === "r") out += "\r";
        else if (next === "n") out += "\n";
        else out += `\\${next}`;
    }
    return out;
}
