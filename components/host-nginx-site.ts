// nginx.mode "host", for teams that already run nginx on the VPS: the stack's site goes into the host's
// own nginx over SSH instead of an nginx container. vps-stack-nginx-site.sh does the work as root
// (sudo -n): certificates into a root-only directory, the site into sites-available/-enabled, `nginx -t`
// before any reload (a rejected site puts the previous files back and fails `pulumi up` with nginx's
// message), removal on destroy.
import * as fs from "fs";
import * as path from "path";
import * as docker from "@pulumi/docker";
import * as pulumi from "@pulumi/pulumi";
import { AcmeClient } from "./acme-client";
import { NginxSite, renderNginxSiteFile } from "./render/nginx";
import { VpsHost } from "./vps-host";

export const HOST_NGINX_SITE_TYPE = "vps-stack:index:HostNginxSite";

export const HOST_SITE_SCRIPT = path.join(__dirname, "host-nginx", "vps-stack-nginx-site.sh");
/** Root-only directory of a stack's certificates on the host. */
export const hostTlsDir = (name: string) => `/etc/vps-stack/${name}`;

/**
 * The shell program piped to `sudo -n sh -s`: the script's functions, then one call with the data as
 * base64 words (no quoting to get wrong, and nothing secret on any command line).
 */
export function hostSiteScript(
    action: "install" | "remove" | "reload-if-changed",
    name: string,
    data?: { site: string; cert: string; key: string } | { site: string; watch: string } | { watch: string },
): string {
    if (!/^[a-z0-9-]+$/.test(name)) throw new Error(`hostSiteScript: invalid site name ${name}`);
    const b64 = (s: string) => Buffer.from(s).toString("base64");
    const file = (f: string) => {
        if (!/^\/[\w./-]+$/.test(f)) throw new Error(`hostSiteScript: invalid file ${f}`);
        return f;
    };
    let call: string;
    if (action === "remove") call = `vps_site_remove ${name}`;
    else if (action === "reload-if-changed") call = `vps_site_reload_if_changed ${name} ${file((data as { watch: string }).watch)}`;
    else if (data && "cert" in data) call = `vps_site_install ${name} '${b64(data.site)}' '${b64(data.cert)}' '${b64(data.key)}'`;
    else {
        const d = data as { site: string; watch: string };
        call = `vps_site_install ${name} '${b64(d.site)}' --watch ${file(d.watch)}`;
    }
    return `${fs.readFileSync(HOST_SITE_SCRIPT, "utf8")}\n${call}\n`;
}

/** A command line that pipes hostSiteScript to root, with nothing secret in it. */
export function hostSiteCommand(script: string): string {
    return `printf '%s' '${Buffer.from(script).toString("base64")}' | base64 -d | sudo -n sh -s`;
}

export interface HostNginxSiteArgs {
    host: VpsHost;
    /** `vps-stack-<stack>`: the site's file name and its certificates' directory. */
    prefix: string;
    /** What to serve; upstreams are the apps' 127.0.0.1 ports. */
    site: Omit<NginxSite, "certificatePath" | "keyPath" | "namespace">;
    /** The certificate and key to install (tls.mode "ca" and "provided"). */
    certificatePem?: pulumi.Input<string>;
    keyPem?: pulumi.Input<string>;
    /** tls.mode "acme": the site reads the ACME container's file and serves its challenge directory. */
    acme?: AcmeClient;
    /** The app containers: the site is installed once they are up. */
    upstreams: docker.Container[];
}

export class HostNginxSite extends pulumi.ComponentResource {
    readonly siteFile: string;
    readonly config: string;
    readonly site: pulumi.Resource;

    constructor(name: string, args: HostNginxSiteArgs, opts?: pulumi.ComponentResourceOptions) {
        super(HOST_NGINX_SITE_TYPE, name, {}, opts);
        const tls = hostTlsDir(args.prefix);
        const acme = args.acme;
        this.siteFile = `/etc/nginx/sites-available/${args.prefix}.conf`;
        this.config = renderNginxSiteFile({
            ...args.site,
            certificatePath: acme ? acme.servedFile : `${tls}/fullchain.pem`,
            keyPath: acme ? acme.servedFile : `${tls}/privkey.pem`,
            namespace: `${args.prefix.replace(/-/g, "_")}_`,
            ...(acme ? { acmeWebroot: acme.webroot } : {}),
        });
        let install: pulumi.Input<string>;
        if (acme) {
            install = hostSiteScript("install", args.prefix, { site: this.config, watch: acme.servedFile });
        } else {
            if (args.certificatePem === undefined || args.keyPem === undefined) throw new Error("HostNginxSite: certificatePem and keyPem are required without acme");
            install = pulumi.secret(
                pulumi.all([args.certificatePem, args.keyPem]).apply(([cert, key]) => hostSiteScript("install", args.prefix, { site: this.config, cert, key })),
            );
        }
        this.site = args.host.run(
            `${name}-site`,
            { create: "sudo -n sh -s", stdin: install, delete: hostSiteCommand(hostSiteScript("remove", args.prefix)) },
            // With ACME, nginx -t needs the placeholder the ACME container puts in place at start.
            { dependsOn: [...args.upstreams, ...(acme ? [acme.container] : [])] },
        );
        this.registerOutputs({ siteFile: this.siteFile });
    }
}
