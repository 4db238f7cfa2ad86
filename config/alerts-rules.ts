// Cross-field rules of the alerts section: each destination's secret set and well-formed, the SMTP login's
// password, no token or password in clear.
import { AlertsConfig, SMTP_PASSWORD_SECRET, webhookSecret } from "./alerts";
import { ConfigProblem, fixFor } from "./problems";

export function checkAlerts(a: AlertsConfig | undefined, secrets: Record<string, string>, add: (p: ConfigProblem) => void): void {
    if (!a) return;
    const example = { json: "https://hooks.example.com/…", slack: "https://hooks.slack.com/services/…", discord: "https://discord.com/api/webhooks/…" } as const;
    a.webhooks.forEach((w, i) => {
        const name = webhookSecret(w);
        const fix = `pulumi config set --secret --path 'secrets.${name}' '${example[w.kind]}'`;
        const url = secrets[name];
        if (url === undefined) {
            add({ path: `secrets.${name}`, message: `is required by alerts.webhooks[${i}] (the ${w.kind} webhook's URL)`, fix });
        } else if (!/^https?:\/\/[^\s"\\]+$/.test(url)) {
            add({ path: `secrets.${name}`, message: "must be one http(s) URL without spaces, quotes or backslashes", fix });
        } else if (url.startsWith("http://") && !a.insecure) {
            add({ path: `secrets.${name}`, message: "is a plain http URL: its token would cross the network in clear; use https, or set alerts.insecure for a receiver on a private network", fix });
        }
    });
    const e = a.email;
    if (e?.user) {
        const fix = `pulumi config set --secret --path 'secrets.${SMTP_PASSWORD_SECRET}' <password>`;
        const password = secrets[SMTP_PASSWORD_SECRET];
        if (password === undefined) add({ path: `secrets.${SMTP_PASSWORD_SECRET}`, message: "is required by alerts.email.user", fix });
        else if (/[\r\n]/.test(password)) add({ path: `secrets.${SMTP_PASSWORD_SECRET}`, message: "must be one line", fix });
        if (e.tls === "none" && !a.insecure) {
            add({ path: "alerts.email.tls", message: '("none") would send the SMTP password in clear; use starttls or tls, or set alerts.insecure for a relay on a private network', fix: fixFor("alerts.email.tls", { value: "starttls" }) });
        }
    }
}
