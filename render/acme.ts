// tls.mode "acme", the texts: where the ACME client's files live in its container, its script (uploaded
// from scripts/vps-stack-acme.sh), its environment, the proxy's certificate watcher, and the commands that
// issue a certificate or that an operator runs.
import * as fs from "fs";
import * as path from "path";
import { onHost, SshTarget } from "./operator";

/** On the image's PATH (`docker exec <c> vps-stack-acme.sh status`): its files volume, in a directory the images leave empty. */
export const ACME_SCRIPT = "/usr/local/sbin/vps-stack-acme.sh";
export const ACME_PLACEHOLDER_FILE = "/run/vps-stack/placeholder.pem";
export const ACME_CA_BUNDLE_FILE = "/run/vps-stack/acme-ca.pem";
/** Inside the ACME container (and the proxy container, which mounts the same volume read-only). */
export const ACME_CONFIG_DIR = "/etc/letsencrypt";
export const ACME_WEBROOT = "/var/www/acme";
/** certbot's work and log directories (its defaults, which vps-stack-acme.sh passes). */
export const ACME_WORK_DIR = "/var/lib/letsencrypt";
export const ACME_LOGS_DIR = "/var/log/letsencrypt";
export const ACME_SERVED_FILE = `${ACME_CONFIG_DIR}/vps-stack/tls.pem`;

/** The script, read from the repository: it is uploaded into the container. */
export const acmeScript = (): string => fs.readFileSync(path.join(__dirname, "scripts", "vps-stack-acme.sh"), "utf8");

/** The ACME container's environment: what vps-stack-acme.sh reads. */
export function acmeEnv(a: { domains: string[]; email: string; server: string; certName: string; renewIntervalSeconds: number; caCertificate?: string }): string[] {
    return [
        `ACME_DOMAINS=${a.domains.join(" ")}`,
        `ACME_EMAIL=${a.email}`,
        `ACME_SERVER=${a.server}`,
        `ACME_CERT_NAME=${a.certName}`,
        `ACME_RENEW_INTERVAL=${a.renewIntervalSeconds}`,
        ...(a.caCertificate ? [`REQUESTS_CA_BUNDLE=${ACME_CA_BUNDLE_FILE}`] : []),
    ];
}

/** The first certificate, then `reload` of whichever nginx serves it. */
export function acmeIssueCommand(containerName: string, reload: string): string {
    return `docker exec ${containerName} sh ${ACME_SCRIPT} issue && ${reload}`;
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
export function acmeCommands(containerName: string, ssh?: SshTarget) {
    const on = (cmd: string) => onHost(ssh, cmd);
    const exec = (args: string) => on(`docker exec ${containerName} sh ${ACME_SCRIPT} ${args}`);
    return {
        status: exec("status"),
        issue: exec("issue"),
        renewDryRun: exec("renew --dry-run --no-random-sleep-on-renew"),
        forceRenew: exec("renew --force-renewal --no-random-sleep-on-renew"),
        logs: on(`docker logs --tail 100 ${containerName}`),
    };
}
