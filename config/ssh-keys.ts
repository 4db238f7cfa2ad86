// SSH host keys that both SSH clients of a deploy can pin: OpenSSH (the Docker provider's `ssh`, through a
// known_hosts file) and the Go client inside Pulumi's `command` provider (remote.Command's `hostKey`).
// Pure: used by the config rules, tested without Pulumi.
import * as sshpk from "sshpk";

/**
 * Host key types that work with both clients against a current OpenSSH server. The command provider pins a
 * key by offering the server only that key's own algorithm name; for an RSA key that is "ssh-rsa" (RSA with
 * SHA-1), which OpenSSH 8.8 and later no longer accept, so the connection fails with "no common algorithm
 * for host key". No connection setting of the provider changes that list, hence RSA is refused up front.
 */
export const PINNABLE_HOST_KEY_TYPES = ["ssh-ed25519", "ecdsa-sha2-nistp256", "ecdsa-sha2-nistp384", "ecdsa-sha2-nistp521"] as const;

/** Why a pinned host key cannot be used, or undefined when it can. */
export function hostKeyProblem(value: string): string | undefined {
    const parts = value.trim().split(/\s+/);
    if (parts.length !== 2) return 'must be "<type> <base64>" as printed by ssh-keyscan, without the host name or a comment';
    const [type, blob] = parts;
    if (type === "ssh-rsa" || type === "ssh-dss") {
        return `is an ${type === "ssh-rsa" ? "RSA" : "DSA"} key: Pulumi's command provider can only pin it with the SHA-1 "${type}" signature, which OpenSSH 8.8+ servers refuse; pin the VPS's ed25519 key instead`;
    }
    if (!(PINNABLE_HOST_KEY_TYPES as readonly string[]).includes(type)) {
        return `has the type "${type}"; pin one of ${PINNABLE_HOST_KEY_TYPES.join(", ")} (ed25519 preferred)`;
    }
    let key: sshpk.Key;
    try {
        key = sshpk.parseKey(`${type} ${blob}`, "ssh");
    } catch {
        return `is not a valid ${type} key (truncated, or its type label does not match its data): copy it again from ssh-keyscan`;
    }
    // sshpk names ecdsa keys "ecdsa" with a curve; compare the algorithm SSH itself would announce.
    const announced = key.type === "ed25519" ? "ssh-ed25519" : key.type === "ecdsa" ? `ecdsa-sha2-${key.curve}` : key.type;
    if (announced !== type) return `is labelled "${type}" but holds a ${announced} key: copy it again from ssh-keyscan`;
    return undefined;
}

/**
 * Why the file at host.privateKeyPath cannot sign for Pulumi's command provider, or undefined when it can:
 * the provider gets the file's text and has no way to ask for a passphrase, so the key must be a private
 * key in the clear (an encrypted one is used through the agent instead).
 */
export function privateKeyProblem(text: string): string | undefined {
    try {
        sshpk.parsePrivateKey(text, "auto");
        return undefined;
    } catch (e) {
        if ((e as Error).name === "KeyEncryptedError") {
            return "is encrypted with a passphrase, which Pulumi's command provider cannot ask for: unset it and load the key into ssh-agent (ssh-add) instead";
        }
    }
    try {
        sshpk.parseKey(text, "auto");
        return "is a public key: point at the private key (the same path without .pub)";
    } catch {
        return "is not an SSH private key that sshpk can read (OpenSSH, PEM or PKCS#8)";
    }
}
