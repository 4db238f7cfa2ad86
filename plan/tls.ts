// Where the proxy's certificate comes from, decided once: every component that depends on it receives the
// resolved variant, never tls.mode. Pure.
import * as crypto from "crypto";
import { durationSeconds, StackConfig } from "../config";

/** Let's Encrypt's ACME directories; `tls.acme.staging` picks the second. */
export const LETSENCRYPT_DIRECTORY = "https://acme-v02.api.letsencrypt.org/directory";
export const LETSENCRYPT_STAGING_DIRECTORY = "https://acme-staging-v02.api.letsencrypt.org/directory";

/** The ACME directory a stack uses: its own URL, else Let's Encrypt's (staging or production). */
export function acmeDirectoryUrl(acme: { staging: boolean; directoryUrl?: string }): string {
    return acme.directoryUrl ?? (acme.staging ? LETSENCRYPT_STAGING_DIRECTORY : LETSENCRYPT_DIRECTORY);
}

/**
 * certbot's name for the stack's certificate: one per directory and set of names, so that switching
 * from staging to production, or adding a host, asks for a new certificate instead of renewing the old.
 */
export function acmeCertName(server: string, domains: string[]): string {
    const h = crypto.createHash("sha256").update(`${server}\n${[...domains].sort().join(" ")}`).digest("hex");
    return `vps-stack-${h.slice(0, 10)}`;
}

/** Host directories of a stack's ACME state when the proxy is the host's own nginx. */
export function hostAcmeDirs(stack: string) {
    const base = `/var/lib/vps-stack/${stack}`;
    return { config: `${base}/letsencrypt`, webroot: `${base}/acme-webroot`, served: `${base}/letsencrypt/vps-stack/tls.pem` };
}

/** tls.mode "ca": a per-stack CA and one server certificate made by @pulumi/tls. */
export interface CaTls {
    mode: "ca";
    /** Every name the proxy answers for; the first is the certificate's subject. */
    dnsNames: string[];
    /** 127.0.0.1 on dev. */
    ipAddresses: string[];
    organization: string;
    validityDays: number;
    caValidityDays: number;
}

/** tls.mode "provided": the chain and key from the stack's secrets (checked when the config loaded). */
export interface ProvidedTls {
    mode: "provided";
    certificatePem: string;
    keyPem: string;
}

/** tls.mode "acme": an ACME client container asks the CA; the proxy serves the file it keeps. */
export interface AcmeTls {
    mode: "acme";
    image: string;
    /** Every name the proxy answers for; the stack's domain first (the certificate's subject). */
    domains: string[];
    email: string;
    /** The ACME directory URL. */
    directoryUrl: string;
    /** certbot's name for this directory and set of names. */
    certName: string;
    /** PEM CA of a private ACME server's HTTPS certificate. */
    caCertificate?: string;
    renewIntervalSeconds: number;
    memory: string;
    pidsLimit: number;
    /**
     * Where certbot's state and the challenge answers live: Docker volumes shared with the proxy
     * container, or host directories read by the host's nginx.
     */
    storage: "volumes" | "host";
}

export type TlsSource = CaTls | ProvidedTls | AcmeTls;

export function planTls(cfg: StackConfig): TlsSource {
    // Every name the proxy answers for; the stack's domain first (the certificate's subject).
    const names = [...new Set([cfg.domain, ...cfg.apps.flatMap((a) => a.hosts)])];
    const mode = cfg.tls.mode;
    switch (mode) {
        case "ca":
            return {
                mode,
                dnsNames: cfg.local ? [...new Set([...names, "localhost"])] : names,
                ipAddresses: cfg.local ? ["127.0.0.1"] : [],
                organization: cfg.tls.organization,
                validityDays: cfg.tls.validityDays,
                caValidityDays: cfg.tls.caValidityDays,
            };
        case "provided":
            // Validated at config time: parses, matches its key, valid now, covers every host.
            return { mode, certificatePem: cfg.secrets.TLS_CERTIFICATE, keyPem: cfg.secrets.TLS_PRIVATE_KEY };
        case "acme": {
            const acme = cfg.tls.acme;
            const directoryUrl = acmeDirectoryUrl(acme);
            return {
                mode,
                image: acme.image,
                domains: names,
                // The config requires it with tls.mode "acme".
                email: acme.email!,
                directoryUrl,
                certName: acmeCertName(directoryUrl, names),
                caCertificate: acme.caCertificate,
                renewIntervalSeconds: durationSeconds(acme.renewInterval),
                memory: acme.memory,
                pidsLimit: acme.pidsLimit,
                storage: cfg.nginx.mode === "host" ? "host" : "volumes",
            };
        }
        default: {
            const never: never = mode;
            throw new Error(`planTls: unknown tls.mode ${String(never)}`);
        }
    }
}
