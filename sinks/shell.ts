// The POSIX shell sink: every value that reaches a command line run by sh goes through shellWord.
// Rule: bare when made only of characters no POSIX shell treats specially; otherwise single-quoted, with
// each ' written as '\'' (inside single quotes nothing is special, not even backslash). NUL is refused:
// no argv can carry it.

const BARE_WORD_RE = /^[A-Za-z0-9_@%+=:,./-]+$/;

/** `value` as exactly one shell word that the shell reads back unchanged. */
export function shellWord(value: string): string {
    if (value.includes("\0")) throw new Error(`shell sink: ${JSON.stringify(value)} contains NUL, which no command argument can carry`);
    if (BARE_WORD_RE.test(value)) return value;
    return `'${value.replace(/'/g, `'\\''`)}'`;
}

/** A command line whose words are read back by the shell exactly as given. */
export function shellCommand(words: string[]): string {
    return words.map(shellWord).join(" ");
}
