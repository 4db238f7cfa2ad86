// The reverse proxy, in container mode: the only container that publishes ports (80/443; 8080/8443 on
// dev). Its configuration (nginx.conf from renderNginxConf, certificate and key) lives in a volume of its
// own and changes by `nginx -t` then a graceful reload, never by replacing the container: requests in
// flight finish on the old workers. Only a new Nginx image replaces the container.
import * as fs from "fs";
import * as path from "path";
import * as docker from "@pulumi/docker";
import * as pulumi from "@pulumi/pulumi";
import { ACME_CONFIG_DIR, AcmeClient, certificateWatcher } from "./acme-client";
import { baseContainerArgs, CONTAINER_REPLACE_ON_CHANGES, dockerCaps, healthcheck, labels } from "./container-defaults";
import { NGINX_HEALTH_PATH, NginxSite, renderNginxConf } from "./render/nginx";
import { shellCommand, shellWord } from "./sinks/shell";
import { VpsHost } from "./vps-host";

export const NGINX_PROXY_TYPE = "vps-stack:index:NginxProxy";

/** The config volume, inside the proxy (read-only) and the throwaway container that installs it. */
export const PROXY_CONFIG_DIR = "/etc/nginx/vps-stack";
/** What the proxy runs: the live version's nginx.conf (a symlink switched by vps-stack-proxy.sh). */
export const NGINX_CONF_FILE = `${PROXY_CONFIG_DIR}/live/nginx.conf`;
/** Relative to the version's directory, so `nginx -t` of a staged version reads its own files. */
export const NGINX_CERT_FILE = "tls/server.crt";
export const NGINX_KEY_FILE = "tls/server.key";

/** The install script, read from the repository: piped to `sh -s` in a throwaway proxy container. */
export const proxyScript = (): string => fs.readFileSync(path.join(__dirname, "proxy", "vps-stack-proxy.sh"), "utf8");

export interface NginxProxyArgs {
    host: VpsHost;
    prefix: string;
    stack: string;
    /** The pulled Nginx image (nginx.image), shared with the apps' release gates. */
    image: docker.RemoteImage;
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
    /** What must exist before the config names it: the app releases' gates (or containers). */
    upstreams: pulumi.Resource[];
    /**
     * Ids of the app containers: nginx resolves upstream names when it loads its config, so a container
     * replaced under the same name (a re-pushed tag) needs a reload to be found at its new address.
     */
    reloadOn: pulumi.Input<string>[];
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
    const nginx = ["docker", "exec", container, "nginx", "-c", NGINX_CONF_FILE];
    return `${shellCommand([...nginx, "-t", "-q"])} && ${shellCommand([...nginx, "-s", "reload"])}`;
}

/**
 * A shell loop started beside the proxy's nginx: nginx resolves upstream names once, when it loads its
 * config, so an app container that comes back with another address (stopped and started by hand, or
 * restarted after the others by a daemon restart) would get 502s until the next reload. Every `interval`
 * seconds this resolves the upstream hosts named in the live config and, when their addresses changed,
 * reloads nginx after `nginx -t` (which fails, and is retried, while a name does not resolve).
 */
export function upstreamWatcher(opts: { conf?: string; nginx?: string; interval?: number } = {}): string {
    const conf = opts.conf ?? NGINX_CONF_FILE;
    const nginx = opts.nginx ?? `nginx -c ${conf}`;
    return [
        `c=${shellWord(conf)}`,
        "addrs() {",
        `  for h in $(sed -n 's/^[[:space:]]*server[[:space:]][[:space:]]*\\([A-Za-z0-9._-]*\\):[0-9][0-9]*.*/\\1/p' "$c" 2>/dev/null | sort -u); do`,
        // Every address, sorted (Docker's DNS shuffles them): glibc's ahostsv4 (Debian), busybox's nslookup
        // (Alpine, whose getent prints only the first).
        '    { getent ahostsv4 "$h" 2>/dev/null || nslookup "$h" 2>/dev/null | sed -n "s/^Address[^:]*: *//p"; } | awk -v h="$h" \'{ print h, $1 }\' | sort -u',
        "  done | sort | cksum",
        "}",
        // A new config (a release) is reloaded by whoever installed it: start over from its addresses.
        'conf() { cksum < "$c" 2>/dev/null; }',
        "last=$(addrs) seen=$(conf)",
        `while sleep ${opts.interval ?? 5}; do`,
        "  now=$(addrs)",
        '  if [ "$(conf)" != "$seen" ]; then seen=$(conf) last=$now; continue; fi',
        '  [ "$now" = "$last" ] && continue',
        `  if ${nginx} -t -q 2>/dev/null; then ${nginx} -s reload && last=$now && echo "vps-stack: an upstream address changed, nginx reloaded" >&2; fi`,
        "done",
    ].join("\n");
}

export class NginxProxy extends pulumi.ComponentResource {
    readonly containerName: string;
    readonly config: string;
    readonly container: docker.Container;
    readonly imageId: pulumi.Output<string>;
    /** The command that installs the configuration and reloads the proxy. */
    readonly configCommand: pulumi.Resource;

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

        const image = args.image;
        this.imageId = image.imageId;
        const configVolume = new docker.Volume(
            `${name}-config-volume`,
            { name: `${args.prefix}-nginx-config`, labels: labels(args.stack, "nginx") },
            { parent: this, provider },
        );
        const acmeMounts = acme
            ? [
                  { volume: acme.configVolume!.name, path: ACME_CONFIG_DIR },
                  { volume: acme.webrootVolume!.name, path: acme.webroot },
              ]
            : [];

        // Installs the configuration into the volume through a throwaway container of the same image on the
        // same network (so nginx -t resolves the upstreams as the proxy will), then reloads the proxy when
        // it runs. The first time, it runs before the proxy exists, which then starts on it.
        const b64 = (v: string) => Buffer.from(v).toString("base64");
        const call = acme
            ? pulumi.output(`vps_proxy_install ${PROXY_CONFIG_DIR} ${b64(this.config)}\n`)
            : pulumi.secret(
                  pulumi
                      .all([args.certificatePem!, args.keyPem!])
                      .apply(([cert, key]) => `vps_proxy_install ${PROXY_CONFIG_DIR} ${b64(this.config)} ${b64(cert)} ${b64(key)}\n`),
              );
        const mounts = pulumi.all([configVolume.name, ...acmeMounts.map((m) => m.volume)]);
        this.configCommand = args.host.run(
            `${name}-config`,
            {
                create: pulumi.all([mounts, args.edgeNetwork, image.imageId]).apply(([[config, ...acmeVolumes], network, imageId]) =>
                    [
                        shellCommand([
                            "docker", "run", "--rm", "-i", "--network", network,
                            "-v", `${config}:${PROXY_CONFIG_DIR}`,
                            ...acmeMounts.flatMap((m, i) => ["-v", `${acmeVolumes[i]}:${m.path}:ro`]),
                            "--entrypoint", "sh", imageId, "-s",
                        ]),
                        // The running proxy (not on the first deploy) loads it with a graceful reload.
                        `if [ "$(docker inspect -f '{{.State.Running}}' ${shellWord(this.containerName)} 2>/dev/null)" = true ]; then ${nginxReloadCommand(this.containerName)}; fi`,
                    ].join(" && "),
                ),
                stdin: pulumi.all([call]).apply(([c]) => `${proxyScript()}\n${c}`),
                triggers: args.reloadOn,
            },
            { parent: this, dependsOn: [...args.upstreams, ...(acme ? [acme.container] : [])] },
        );

        const healthUrl = `http://127.0.0.1${NGINX_HEALTH_PATH}`;
        const nginx = `nginx -c ${NGINX_CONF_FILE}`;
        this.container = new docker.Container(
            name,
            {
                name: this.containerName,
                image: image.imageId,
                ...baseContainerArgs(args.stack, "nginx", args),
                command: [
                    "sh",
                    "-c",
                    [
                        `(\n${upstreamWatcher()}\n) &`,
                        ...(acme ? [`(\n${certificateWatcher(acme.servedFile, { nginx })}\n) &`] : []),
                        `exec ${nginx} -g 'daemon off;'`,
                    ].join("\n"),
                ],
                volumes: [
                    { volumeName: configVolume.name, containerPath: PROXY_CONFIG_DIR, readOnly: true },
                    ...(acme
                        ? [
                              { volumeName: acme.configVolume!.name, containerPath: ACME_CONFIG_DIR, readOnly: true },
                              { volumeName: acme.webrootVolume!.name, containerPath: acme.webroot, readOnly: true },
                          ]
                        : []),
                ],
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
                // A replaced proxy gets nginx's graceful stop (its image's STOPSIGNAL, SIGQUIT) and a few
                // seconds for the requests it holds, instead of an immediate kill.
                destroyGraceSeconds: 10,
            },
            // It owns the public ports, so two cannot run at once: the old one stops first. Only a new
            // Nginx image (or its container settings) gets here; configuration changes are reloads.
            // With ACME it starts once the ACME container serves the placeholder certificate.
            { parent: this, provider, deleteBeforeReplace: true, replaceOnChanges: CONTAINER_REPLACE_ON_CHANGES, dependsOn: [this.configCommand] },
        );
        this.registerOutputs({ containerName: this.containerName });
    }
}
