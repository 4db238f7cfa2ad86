// An app's container, the texts: where its secret files go and the variables that point at them, and its
// healthcheck in exec form.
import { execHealthTest, httpHealthTest } from "../sinks/docker";

export const SECRETS_DIR = "/run/secrets";
/** Where a static site's server config goes in its Nginx container. */
export const STATIC_SITE_CONF = "/etc/nginx/conf.d/default.conf";

/** The file a secret is delivered in (secretDelivery "file"). */
export const secretFile = (name: string) => `${SECRETS_DIR}/${name}`;

/** `<NAME>_FILE=<its file>`: the convention images such as postgres and many frameworks read. */
export const secretFileEnv = (name: string) => `${name}_FILE=${secretFile(name)}`;

/** Exec form: the health URL is an argument, never shell text (see httpHealthTest). */
export function healthTest(a: { port: number; healthPath: string; healthCommand?: string[] }): string[] {
    if (a.healthCommand) return execHealthTest(a.healthCommand);
    return httpHealthTest(`http://127.0.0.1:${a.port}${a.healthPath}`);
}
