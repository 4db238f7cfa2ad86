// nginx.mode "host", the texts: the shell program piped to root on the host (scripts/vps-stack-nginx-site.sh
// plus one call), the command line that pipes it, and where the site and its certificates go.
import * as fs from "fs";
import * as path from "path";

export const HOST_SITE_SCRIPT = path.join(__dirname, "scripts", "vps-stack-nginx-site.sh");
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

/** The site's file in the host's nginx. */
export const hostSiteFile = (prefix: string) => `/etc/nginx/sites-available/${prefix}.conf`;
