// The SQL sink (PostgreSQL): identifiers and literals written into SQL text go through these.
// Rule: identifiers are double-quoted with " doubled; literals are single-quoted with ' doubled, which is
// exact under standard_conforming_strings (on by default since PostgreSQL 9.1, where backslash is not an
// escape). NUL is refused (PostgreSQL text cannot hold it) and so are identifiers longer than 63 bytes,
// which PostgreSQL would silently truncate into another name.

export const MAX_IDENTIFIER_BYTES = 63;

export function sqlIdentifier(name: string): string {
    if (name.includes("\0")) throw new Error(`sql sink: identifier ${JSON.stringify(name)} contains NUL`);
    if (name === "") throw new Error("sql sink: an identifier cannot be empty");
    if (Buffer.byteLength(name, "utf8") > MAX_IDENTIFIER_BYTES) throw new Error(`sql sink: identifier ${JSON.stringify(name)} is longer than ${MAX_IDENTIFIER_BYTES} bytes; PostgreSQL would truncate it`);
    return `"${name.replace(/"/g, '""')}"`;
}

export function sqlLiteral(value: string): string {
    if (value.includes("\0")) throw new Error("sql sink: a literal cannot contain NUL");
    return `'${value.replace(/'/g, "''")}'`;
}
