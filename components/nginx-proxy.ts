// The reverse proxy, in container mode: the only container that publishes ports (80/443; 8080/8443 on
// dev). Its nginx.conf is rendered by renderNginxConf; certificate and key are uploaded, the key 0400.
import * as docker from "@pulumi/docker";
import * as pulumi from "@pulumi/pulumi";
import { ACME_CONFIG_DIR, AcmeClient, certificateWatcher } from "./acme-client";
import { baseContainerArgs, CONTAINER_REPLACE_ON_CHANGES, dockerCaps, healthcheck } from "./container-defaults";
import { pullImage } from "./image";
import { NGINX_HEALTH_PATH, NginxSite, renderNginxConf } from "./render/nginx";
import { VpsHost } from "./vps-host";

export const NGINX_PROXY_TYPE = "vps-stack:index:NginxProxy";

export const NGINX_CONF_FILE = "/etc/nginx/nginx.conf";
export const NGINX_CERT_FILE = "/etc/nginx/tls/server.crt";
export const NGINX_KEY_FILE = "/etc/nginx/tls/server.key";

export interface NginxProxyArgs {
    host: VpsHost;
    prefix: string;
    stack: string;
    /** @default "nginx:1.27-alpine" */
    image: string;
    /** Everything renderNginxConf needs except the certificate paths, which are fixed here. */
    site: Omit<NginxSite, "certificatePath" | "keyPath">;
    /** Public ports. @default 80 / 443 (8080 / 8443 on dev) */
    httpPort: number;
    httpsPort: number;
    /** Address the ports are published on. @default "0.0.0.0" ("127.0.0.1" on dev) */
    bindAddress: string;
    /** The certificate and key to upload (tls.mode "ca" and "provided"). */
    certificatePem?: pulumi.Input<string>;
    keyPem?: pulumi.Input<string>;
    /**
     * tls.mode "acme": the certificate comes from the ACME client's volume instead (read-only), the
     * challenge directory is served on port 80, and nginx reloads itself when the certificate changes.
     */
    acme?: AcmeClient;
    edgeNetwork: pulumi.Input<string>;
    /** The app containers: nginx resolves them at start and reloads when they are replaced. */
    upstreams: docker.Container[];
    /** @default "256m" */
    memory: string;
    /** @default 1 */
    cpus: number;
}

/**
 * Reloads the proxy container's nginx from inside, after `nginx -t`. Never `docker kill --signal`: Docker
 * records any `docker kill` as a manual stop, and from then on `restart: unless-stopped` no longer brings
 * the container back after a crash or a daemon restart (moby/moby#41302), so the first reboot after a
 * deploy would leave the site down.
 */
export function nginxReloadCommand(container: string): string {
    return `docker exec ${container} nginx -t -q && docker exec ${container} nginx -s reload`;
}

export class NginxProxy extends pulumi.ComponentResource {
    readonly containerName: string;
    readonly config: string;
    readonly container: docker.Container;

    constructor(name: string, args: NginxProxyArgs, opts?: pulumi.ComponentResourceOptions) {
        super(NGINX_PROXY_TYPE, name, {}, opts);
        const provider = args.host.provider;
        this.containerName = `${args.prefix}-nginx`;
        const acme = args.acme;
        this.config = acme
            ? renderNginxConf({ ...args.site, certificatePath: acme.servedFile, keyPath: acme.servedFile, acmeWebroot: acme.webroot })
            : renderNginxConf({ ...args.site, certificatePath: NGINX_CERT_FILE, keyPath: NGINX_KEY_FILE });
        if (!acme && (args.certificatePem === undefined || args.keyPem === undefined)) {
            throw new Error("NginxProxy: certificatePem and keyPem are required without acme");
        }

        const image = pullImage(`${name}-image`, { ref: args.image, trackTag: false }, { parent: this, provider });
        const healthUrl = `http://127.0.0.1${NGINX_HEALTH_PATH}`;
        this.container = new docker.Container(
            name,
            {
                name: this.containerName,
                image: image.imageId,
                ...baseContainerArgs(args.stack, "nginx", args),
                command: acme
                    ? ["sh", "-c", `(\n${certificateWatcher(acme.servedFile)}\n) &\nexec nginx -g 'daemon off;'`]
                    : ["nginx", "-g", "daemon off;"],
                uploads: [
                    { file: NGINX_CONF_FILE, content: this.config, permissions: "0444" },
                    ...(acme
                        ? []
                        : [
                              { file: NGINX_CERT_FILE, content: args.certificatePem!, permissions: "0444" },
                              // Read by the master process as root before workers drop privileges.
                              { file: NGINX_KEY_FILE, content: pulumi.secret(args.keyPem!), permissions: "0400" },
                          ]),
                ],
                volumes: acme
                    ? [
                          { volumeName: acme.configVolume!.name, containerPath: ACME_CONFIG_DIR, readOnly: true },
                          { volumeName: acme.webrootVolume!.name, containerPath: acme.webroot, readOnly: true },
                      ]
                    : [],
                ports: [
                    { internal: 80, external: args.httpPort, ip: args.bindAddress, protocol: "tcp" },
                    { internal: 443, external: args.httpsPort, ip: args.bindAddress, protocol: "tcp" },
                ],
                networksAdvanced: [{ name: args.edgeNetwork }],
                // Enough for the master to bind 80/443, switch to the nginx user and own its cache dirs.
                capabilities: { drops: ["ALL"], adds: dockerCaps(["CHOWN", "DAC_OVERRIDE", "NET_BIND_SERVICE", "SETGID", "SETUID"]) },
                healthcheck: healthcheck({
                    tests: ["CMD-SHELL", `curl -fsS -o /dev/null ${healthUrl} || wget -q -O /dev/null ${healthUrl}`],
                    interval: "15s",
                    timeout: "5s",
                    retries: 3,
                    startPeriod: "10s",
                }),
                waitTimeout: 90,
            },
            // It owns the public ports, so two cannot run at once: the old one stops first (a restart of
            // about a second, only when the proxy's own config changes).
            // With ACME it starts once the ACME container serves the placeholder certificate.
            { parent: this, provider, deleteBeforeReplace: true, replaceOnChanges: CONTAINER_REPLACE_ON_CHANGES, dependsOn: [...args.upstreams, ...(acme ? [acme.container] : [])] },
        );

        // nginx resolves upstream names when it loads its config; after an app container is replaced its
        // address may change, so reload (re-reads the config and re-resolves).
        args.host.run(
            `${name}-reload`,
            { create: nginxReloadCommand(this.containerName), triggers: args.upstreams.map((c) => c.id) },
            { dependsOn: [this.container] },
        );
        this.registerOutputs({ containerName: this.containerName });
    }
}
