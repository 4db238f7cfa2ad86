// tls.mode "acme": publicly trusted certificates from Let's Encrypt, or any ACME CA, proved
// over HTTP-01 through the proxy's /.well-known/acme-challenge/.
//
// The ACME client is a container of its own (the certbot image) running vps-stack-acme.sh, which keeps
// ONE file for the proxy: chain + key, replaced by a rename. The first-run deadlock (nginx needs a
// certificate to start, the CA needs nginx to prove the names) is broken with a self-signed placeholder
// made here: the container serves it before the proxy starts, `pulumi up` then asks the CA once the
// proxy answers on port 80, installs the result and reloads the proxy; a failure fails `pulumi up` with
// certbot's message. Renewals happen in the container (`certbot renew` every renewInterval); the proxy
// picks a changed file up by itself (see certificateWatcher), after `nginx -t`.
import * as crypto from "crypto";
import * as fs from "fs";
import * as path from "path";
import * as docker from "@pulumi/docker";
import * as pulumi from "@pulumi/pulumi";
import * as tls from "@pulumi/tls";
import { baseContainerArgs, CONTAINER_REPLACE_ON_CHANGES, dockerCaps, healthcheck } from "./container-defaults";
import { pullImage } from "./image";
import { VpsHost } from "./vps-host";

export const ACME_CLIENT_TYPE = "vps-stack:index:AcmeClient";

export const ACME_SCRIPT = "/usr/local/lib/vps-stack/vps-stack-acme.sh";
export const ACME_PLACEHOLDER_FILE = "/run/vps-stack/placeholder.pem";
export const ACME_CA_BUNDLE_FILE = "/run/vps-stack/acme-ca.pem";
/** Inside the ACME container (and the proxy container, which mounts the same volume read-only). */
export const ACME_CONFIG_DIR = "/etc/letsencrypt";
export const ACME_WEBROOT = "/var/www/acme";
export const ACME_SERVED_FILE = `${ACME_CONFIG_DIR}/vps-stack/tls.pem`;

/** The script, read from the repository: it is uploaded into the container. */
export const acmeScript = (): string => fs.readFileSync(path.join(__dirname, "acme", "vps-stack-acme.sh"), "utf8");

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

/**
 * A shell loop for the proxy container, started beside nginx: every `interval` seconds it compares the
 * served certificate with the one nginx loaded and reloads nginx, after `nginx -t`, when it changed.
 * (The ACME container cannot signal nginx without the Docker socket, which it must not have.)
 */
export function certificateWatcher(file: string, opts: { nginx?: string; interval?: number } = {}): string {
    const nginx = opts.nginx ?? "nginx";
    const interval = opts.interval ?? 60;
    return [
        `f='${file}'`,
        'last=$(cksum < "$f" 2>/dev/null || true)',
        `while sleep ${interval}; do`,
        '  now=$(cksum < "$f" 2>/dev/null) || continue',
        '  [ "$now" = "$last" ] && continue',
        `  if ${nginx} -t -q 2>/dev/null; then ${nginx} -s reload && last=$now && echo "vps-stack: certificate changed, nginx reloaded" >&2;`,
        `  else echo "vps-stack: certificate changed but nginx -t fails; not reloading" >&2; fi`,
        "done",
    ].join("\n");
}

/** Commands an operator runs from a workstation to inspect, test and force renewals (`certbot certificates`, `renew --dry-run`…). */
export function acmeCommands(containerName: string, ssh?: { address: string; port: number; user: string }) {
    const on = (cmd: string) => (ssh ? `ssh -p ${ssh.port} ${ssh.user}@${ssh.address} ${cmd}` : cmd);
    const exec = (args: string) => on(`docker exec ${containerName} sh ${ACME_SCRIPT} ${args}`);
    return {
        status: exec("status"),
        issue: exec("issue"),
        renewDryRun: exec("renew --dry-run --no-random-sleep-on-renew"),
        forceRenew: exec("renew --force-renewal --no-random-sleep-on-renew"),
        logs: on(`docker logs --tail 100 ${containerName}`),
    };
}

export interface AcmeClientArgs {
    host: VpsHost;
    prefix: string;
    stack: string;
    image: string;
    /** Every host name the certificate covers (the first is its subject). */
    domains: string[];
    email: string;
    /** ACME directory URL. */
    server: string;
    /** PEM CA of a private ACME server's HTTPS certificate. */
    caCertificate?: string;
    /** Seconds between `certbot renew` runs. */
    renewIntervalSeconds: number;
    memory: string;
    /** Network with a route out (the edge network). */
    network: pulumi.Input<string>;
    /**
     * Where certbot's state and the challenge answers live: Docker volumes shared with the proxy
     * container, or host directories read by the host's nginx.
     */
    storage: "volumes" | "host";
}

export class AcmeClient extends pulumi.ComponentResource {
    readonly containerName: string;
    readonly container: docker.Container;
    readonly certName: string;
    /** Volumes for the proxy container to mount read-only (storage "volumes"). */
    readonly configVolume?: docker.Volume;
    readonly webrootVolume?: docker.Volume;
    /** The served chain+key and the challenge directory as the proxy sees them. */
    readonly servedFile: string;
    readonly webroot: string;
    private readonly args: AcmeClientArgs;

    constructor(name: string, args: AcmeClientArgs, opts?: pulumi.ComponentResourceOptions) {
        super(ACME_CLIENT_TYPE, name, {}, opts);
        this.args = args;
        const child = { parent: this };
        const provider = args.host.provider;
        this.containerName = `${args.prefix}-acme`;
        this.certName = acmeCertName(args.server, args.domains);

        // The bootstrap certificate: never trusted by anyone, only there so nginx can start.
        const key = new tls.PrivateKey(`${name}-placeholder-key`, { algorithm: "ECDSA", ecdsaCurve: "P256" }, child);
        const cert = new tls.SelfSignedCert(
            `${name}-placeholder`,
            {
                privateKeyPem: key.privateKeyPem,
                subject: { commonName: args.domains[0], organization: "vps-stack placeholder (not issued yet)" },
                dnsNames: args.domains,
                validityPeriodHours: 90 * 24,
                allowedUses: ["digital_signature", "server_auth"],
            },
            // Changing the names does not need a new placeholder: it is only used before the first issue.
            { ...child, ignoreChanges: ["dnsNames", "subject"] },
        );
        const placeholder = pulumi.secret(pulumi.all([cert.certPem, key.privateKeyPem]).apply(([c, k]) => `${c.trim()}\n${k.trim()}\n`));

        let mounts: docker.types.input.ContainerVolume[];
        if (args.storage === "volumes") {
            // certbot's account key and certificates: losing them means asking the CA again (rate limits).
            const labels = [{ label: "vps-stack.stack", value: args.stack }];
            this.configVolume = new docker.Volume(`${name}-letsencrypt`, { name: `${args.prefix}-letsencrypt`, labels }, { parent: this, provider, retainOnDelete: args.stack === "prod" });
            this.webrootVolume = new docker.Volume(`${name}-webroot`, { name: `${args.prefix}-acme-webroot`, labels }, { parent: this, provider });
            mounts = [
                { volumeName: this.configVolume.name, containerPath: ACME_CONFIG_DIR },
                { volumeName: this.webrootVolume.name, containerPath: ACME_WEBROOT },
            ];
            this.servedFile = ACME_SERVED_FILE;
            this.webroot = ACME_WEBROOT;
        } else {
            const dirs = hostAcmeDirs(args.stack);
            mounts = [
                { hostPath: dirs.config, containerPath: ACME_CONFIG_DIR },
                { hostPath: dirs.webroot, containerPath: ACME_WEBROOT },
            ];
            this.servedFile = dirs.served;
            this.webroot = dirs.webroot;
        }

        const image = pullImage(`${name}-image`, { ref: args.image, trackTag: false }, { parent: this, provider });
        this.container = new docker.Container(
            name,
            {
                name: this.containerName,
                image: image.imageId,
                ...baseContainerArgs(args.stack, "acme", { memory: args.memory, cpus: 0.5 }),
                // The certbot image's entrypoint is certbot itself.
                entrypoints: ["sh", ACME_SCRIPT],
                command: ["daemon"],
                envs: [
                    `ACME_DOMAINS=${args.domains.join(" ")}`,
                    `ACME_EMAIL=${args.email}`,
                    `ACME_SERVER=${args.server}`,
                    `ACME_CERT_NAME=${this.certName}`,
                    `ACME_RENEW_INTERVAL=${args.renewIntervalSeconds}`,
                    ...(args.caCertificate ? [`REQUESTS_CA_BUNDLE=${ACME_CA_BUNDLE_FILE}`] : []),
                ],
                uploads: [
                    { file: ACME_SCRIPT, content: acmeScript(), permissions: "0555" },
                    { file: ACME_PLACEHOLDER_FILE, content: placeholder, permissions: "0400" },
                    ...(args.caCertificate ? [{ file: ACME_CA_BUNDLE_FILE, content: args.caCertificate, permissions: "0444" }] : []),
                ],
                volumes: mounts,
                networksAdvanced: [{ name: args.network }],
                // Root in the container writes certbot's 0700 directories and chmods the served file.
                capabilities: { drops: ["ALL"], adds: dockerCaps(["CHOWN", "DAC_OVERRIDE", "FOWNER"]) },
                healthcheck: healthcheck({
                    tests: ["CMD", "sh", ACME_SCRIPT, "check"],
                    interval: "15s",
                    timeout: "10s",
                    retries: 2,
                    startPeriod: "10s",
                }),
                waitTimeout: 90,
            },
            { parent: this, provider, deleteBeforeReplace: true, replaceOnChanges: CONTAINER_REPLACE_ON_CHANGES },
        );
        this.registerOutputs({ containerName: this.containerName, certName: this.certName });
    }

    /**
     * The first certificate (and one for every new set of names): once the proxy answers on port 80,
     * certbot asks the CA, the result is installed and the proxy reloaded by `reload`. Re-runs when the
     * ACME container is replaced; certbot keeps a certificate that is still valid.
     */
    issueThenReload(name: string, reload: string, dependsOn: pulumi.Resource[]): pulumi.Resource {
        return this.args.host.run(
            name,
            {
                create: `docker exec ${this.containerName} sh ${ACME_SCRIPT} issue && ${reload}`,
                triggers: [this.container.id, this.certName],
            },
            { dependsOn: [this.container, ...dependsOn] },
        );
    }
}
