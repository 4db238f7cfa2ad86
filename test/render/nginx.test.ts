// nginx.conf renderer: snapshots of the committed stacks' shapes plus targeted assertions for each option
// that changes the output. The same text is checked by a real `nginx -t` in test/integration.
import * as fc from "fast-check";
import { hostRoutes } from "../../plan/routes";
import { NGINX_HEALTH_PATH, NginxSite, renderNginxConf, renderNginxSiteFile } from "../../render/nginx";
import { HASHED_ASSET_RE, renderStaticSiteConf } from "../../render/static-site";

function site(overrides: Partial<NginxSite> = {}): NginxSite {
    return {
        apps: [{ name: "api", servers: ["api:8000"], hosts: ["api.example.com"], paths: ["/"], healthPath: "/health" }],
        httpsPort: 443,
        clientMaxBodySize: "100M",
        rateLimit: { enabled: true, rate: "10r/s", burst: 20 },
        timeouts: { connect: "60s", send: "60s", read: "60s" },
        hsts: { maxAge: 31536000, includeSubDomains: true, preload: false },
        keepalive: 32,
        certificatePath: "/etc/nginx/tls/server.crt",
        keyPath: "/etc/nginx/tls/server.key",
        ...overrides,
    };
}

const twoAppsByPath: NginxSite["apps"] = [
    { name: "api", servers: ["api:3001"], hosts: ["app.example.com"], paths: ["/api"], healthPath: "/api/health" },
    { name: "web", servers: ["web:3000"], hosts: ["app.example.com"], paths: ["/"], healthPath: "/" },
];
const twoAppsByHost: NginxSite["apps"] = [
    { name: "api", servers: ["api:3000"], hosts: ["api.example.com"], paths: ["/"], healthPath: "/api/health" },
    { name: "web", servers: ["web:80"], hosts: ["example.com", "www.example.com"], paths: ["/"], healthPath: "/" },
];

/** The text of the `server` block whose server_name is `host` on port 443. */
function serverBlock(conf: string, host: string): string {
    const start = conf.indexOf(`server_name ${host};`);
    expect(start).toBeGreaterThan(0);
    const open = conf.lastIndexOf("server {", start);
    let depth = 0;
    for (let i = open; i < conf.length; i++) {
        if (conf[i] === "{") depth++;
        if (conf[i] === "}" && --depth === 0) return conf.slice(open, i + 1);
    }
    throw new Error("unbalanced braces");
}

describe("renderNginxConf", () => {
    it("matches the snapshot for one app", () => {
        expect(renderNginxConf(site())).toMatchSnapshot();
    });

    it("matches the snapshot for two apps routed by path (API under /api, web front end under /)", () => {
        expect(renderNginxConf(site({ apps: twoAppsByPath, timeouts: { connect: "60s", send: "300s", read: "300s" } }))).toMatchSnapshot();
    });

    it("matches the snapshot for two apps routed by host (API on its own host name, SPA on the domain)", () => {
        expect(renderNginxConf(site({ apps: twoAppsByHost }))).toMatchSnapshot();
    });

    it("redirects all plain HTTP to HTTPS with 301, keeping host and URI", () => {
        const conf = renderNginxConf(site());
        expect(conf).toContain("listen 80 default_server;");
        expect(conf).toContain("return 301 https://$host$request_uri;");
    });

    it("puts the public HTTPS port in the redirect when it is not 443 (dev)", () => {
        const conf = renderNginxConf(site({ httpsPort: 8443 }));
        expect(conf).toContain("return 301 https://$host:8443$request_uri;");
        expect(conf).not.toContain("return 301 https://$host$request_uri;");
    });

    it("serves TLS 1.2/1.3 only, with HTTP/2, on 443", () => {
        const block = serverBlock(renderNginxConf(site()), "api.example.com");
        expect(block).toContain("listen 443 ssl http2;");
        expect(block).toContain("ssl_protocols TLSv1.2 TLSv1.3;");
        expect(block).not.toMatch(/TLSv1(\.1)?[ ;]/);
        expect(block).toContain("ssl_certificate     /etc/nginx/tls/server.crt;");
        expect(block).toContain("ssl_certificate_key /etc/nginx/tls/server.key;");
    });

    it("refuses handshakes for unknown host names", () => {
        expect(renderNginxConf(site())).toMatch(/listen 443 ssl http2 default_server;\s+server_name _;\s+ssl_reject_handshake on;/);
    });

    it("sends HSTS and security headers on every response", () => {
        const block = serverBlock(renderNginxConf(site()), "api.example.com");
        expect(block).toContain('add_header Strict-Transport-Security "max-age=31536000; includeSubDomains" always;');
        expect(block).toContain('add_header X-Content-Type-Options "nosniff" always;');
        expect(block).toContain('add_header X-Frame-Options "SAMEORIGIN" always;');
        expect(block).toContain('add_header Referrer-Policy "strict-origin-when-cross-origin" always;');
    });

    it("renders HSTS options", () => {
        const conf = renderNginxConf(site({ hsts: { maxAge: 600, includeSubDomains: false, preload: true } }));
        expect(conf).toContain('Strict-Transport-Security "max-age=600; preload" always;');
    });

    it("limits requests per client IP with 429, on app locations but not on /health", () => {
        const conf = renderNginxConf(site());
        expect(conf).toContain("limit_req_zone $binary_remote_addr zone=perip_api:10m rate=10r/s;");
        expect(conf).toContain("limit_req_status 429;");
        const block = serverBlock(conf, "api.example.com");
        const health = block.slice(block.indexOf("location = /health"), block.indexOf("}", block.indexOf("location = /health")));
        expect(health).not.toContain("limit_req");
        expect(block).toContain("limit_req zone=perip_api burst=20 nodelay;");
    });

    it("omits rate limiting entirely when disabled", () => {
        const conf = renderNginxConf(site({ rateLimit: { enabled: false, rate: "10r/s", burst: 20 } }));
        expect(conf).not.toContain("limit_req");
    });

    it("sets body size and proxy timeouts", () => {
        const conf = renderNginxConf(site({ clientMaxBodySize: "25M", timeouts: { connect: "5s", send: "300s", read: "301s" } }));
        expect(conf).toContain("client_max_body_size 25M;");
        expect(conf).toContain("proxy_connect_timeout 5s;");
        expect(conf).toContain("proxy_send_timeout 300s;");
        expect(conf).toContain("proxy_read_timeout 301s;");
    });

    it("forwards Host, X-Real-IP, X-Forwarded-For and X-Forwarded-Proto", () => {
        const block = serverBlock(renderNginxConf(site()), "api.example.com");
        for (const h of [
            "proxy_set_header Host              $host;",
            "proxy_set_header X-Real-IP         $remote_addr;",
            "proxy_set_header X-Forwarded-For   $proxy_add_x_forwarded_for;",
            "proxy_set_header X-Forwarded-Proto $scheme;",
        ]) {
            expect(block).toContain(h);
        }
    });

    it("passes /health through to the app without access logging", () => {
        const block = serverBlock(renderNginxConf(site()), "api.example.com");
        expect(block).toMatch(/location = \/health \{\s+proxy_pass http:\/\/app_api\/health;[\s\S]*?access_log off;\s+\}/);
    });

    it("keeps upstream connections alive", () => {
        const conf = renderNginxConf(site());
        expect(conf).toMatch(/upstream app_api \{\s+server api:8000 max_fails=3 fail_timeout=10s;\s+keepalive 32;/);
        expect(conf).toContain("proxy_http_version 1.1;");
        expect(conf).toContain("proxy_set_header Connection        $connection_upgrade;");
        expect(renderNginxConf(site({ keepalive: 0 }))).not.toContain("keepalive 32;");
    });

    it("routes by path prefix: /api and /api/… to api, the rest to web, never /apix to api", () => {
        const block = serverBlock(renderNginxConf(site({ apps: twoAppsByPath })), "app.example.com");
        expect(block).toMatch(/location = \/api \{[^}]*proxy_pass http:\/\/app_api;/);
        expect(block).toMatch(/location \/api\/ \{[^}]*proxy_pass http:\/\/app_api;/);
        expect(block).toMatch(/location \/ \{[^}]*proxy_pass http:\/\/app_web;/);
        expect(block).not.toMatch(/location \/api \{/);
        // /health on a shared host goes to the app that owns "/".
        expect(block).toContain("proxy_pass http://app_web/;");
    });

    it("routes by host name with one server block per host", () => {
        const conf = renderNginxConf(site({ apps: twoAppsByHost }));
        expect(serverBlock(conf, "api.example.com")).toContain("proxy_pass http://app_api;");
        expect(serverBlock(conf, "api.example.com")).toContain("proxy_pass http://app_api/api/health;");
        expect(serverBlock(conf, "example.com")).toContain("proxy_pass http://app_web;");
        expect(serverBlock(conf, "www.example.com")).toContain("proxy_pass http://app_web;");
        expect(conf.match(/listen 443 ssl http2;/g)).toHaveLength(3);
    });

    it("answers the proxy's own health check on port 80 to localhost only", () => {
        const conf = renderNginxConf(site());
        expect(conf).toMatch(new RegExp(`location = ${NGINX_HEALTH_PATH} \\{[^}]*allow 127\\.0\\.0\\.1;\\s+deny all;`));
    });

    it("refuses to render with no app", () => {
        expect(() => renderNginxConf(site({ apps: [] }))).toThrow(/at least one app/);
    });

    it("uses the given runtime paths (tests run nginx in a temporary prefix)", () => {
        const conf = renderNginxConf(site({ runtime: { pid: "/tmp/x/nginx.pid", errorLog: "/tmp/x/error.log", accessLog: "/tmp/x/access.log", mimeTypes: "/tmp/x/mime.types" } }));
        expect(conf).toContain("pid /tmp/x/nginx.pid;");
        expect(conf).toContain("include /tmp/x/mime.types;");
        expect(conf).not.toContain("/var/log/nginx");
    });
});

describe("per-app proxy settings", () => {
    const apps: NginxSite["apps"] = [
        {
            name: "api",
            servers: ["api:3001"],
            hosts: ["app.example.com"],
            paths: ["/api"],
            healthPath: "/api/health",
            clientMaxBodySize: "1M",
            rateLimit: { rate: "5r/s", burst: 1 },
            timeouts: { read: "300s" },
            headers: { "Content-Security-Policy": "default-src 'self'", "X-Frame-Options": "DENY", "Permissions-Policy": "" },
        },
        { name: "web", servers: ["web:3000"], hosts: ["app.example.com"], paths: ["/"], healthPath: "/", rateLimit: { enabled: false } },
    ];
    const conf = renderNginxConf(site({ apps }));
    const location = (match: string) => {
        // The app server comes last; the port-80 server has a "location /" of its own.
        const start = conf.lastIndexOf(`location ${match} {`);
        expect(start).toBeGreaterThan(0);
        return conf.slice(start, conf.indexOf("}", start));
    };

    it("gives each app its own rate-limit zone, or none", () => {
        expect(conf).toContain("limit_req_zone $binary_remote_addr zone=perip_api:10m rate=5r/s;");
        expect(conf).not.toContain("zone=perip_web");
        expect(location("/api/")).toContain("limit_req zone=perip_api burst=1 nodelay;");
        expect(location("/")).not.toContain("limit_req");
    });

    it("sets body size and timeouts per app, defaults elsewhere", () => {
        expect(location("/api/")).toContain("client_max_body_size 1M;");
        expect(location("/api/")).toContain("proxy_read_timeout 300s;");
        expect(location("/api/")).toContain("proxy_connect_timeout 60s;");
        expect(location("/")).toContain("client_max_body_size 100M;");
        expect(location("/")).toContain("proxy_read_timeout 60s;");
    });

    it("adds, replaces and removes response headers per app, keeping the others", () => {
        const api = location("/api/");
        expect(api).toContain(`add_header Content-Security-Policy "default-src 'self'" always;`);
        expect(api).toContain('add_header X-Frame-Options "DENY" always;');
        expect(api).not.toContain("SAMEORIGIN");
        expect(api).not.toContain("Permissions-Policy");
        expect(api).toContain('add_header Strict-Transport-Security "max-age=31536000; includeSubDomains" always;');
        expect(location("/")).toContain('add_header X-Frame-Options "SAMEORIGIN" always;');
    });

    it("repeats the headers on /health, whose location would otherwise drop them", () => {
        expect(location("= /health")).toContain('add_header X-Content-Type-Options "nosniff" always;');
    });

    it("listens where asked (tests run nginx on free ports)", () => {
        const c = renderNginxConf(site({ listen: { http: 18080, https: 18443 } }));
        expect(c).toContain("listen 18080 default_server;");
        expect(c).toContain("listen 18443 ssl http2;");
        expect(c).not.toMatch(/listen 443/);
    });
});

describe("renderNginxSiteFile (the host's own nginx)", () => {
    const file = renderNginxSiteFile(site({ apps: twoAppsByPath, namespace: "vps_stack_prod_", httpsPort: 443 }));

    it("matches the snapshot", () => {
        expect(file).toMatchSnapshot();
    });

    it("namespaces every name nginx keeps globally, so stacks can share one nginx", () => {
        expect(file).toContain("upstream vps_stack_prod_app_api {");
        expect(file).toContain("zone=vps_stack_prod_perip_api:10m");
        expect(file).toContain("map $http_upgrade $vps_stack_prod_connection_upgrade {");
        expect(file).toContain("proxy_set_header Connection        $vps_stack_prod_connection_upgrade;");
        expect(file).not.toMatch(/upstream app_|zone=perip_|\$connection_upgrade/);
    });

    it("claims no default server and sets nothing http-wide", () => {
        expect(file).not.toContain("default_server");
        expect(file).not.toMatch(/^(gzip|server_tokens|access_log|include|events|http|worker_processes|limit_req_status)\b/m);
        expect(file).toMatch(/listen 80;\s+server_name app.example.com;\s+location \/ \{\s+return 301 https:\/\/\$host\$request_uri;/);
    });

    it("needs a namespace", () => {
        expect(() => renderNginxSiteFile(site())).toThrow(/namespace/);
    });
});

describe("renderStaticSiteConf", () => {
    const conf = renderStaticSiteConf({ port: 8080, root: "/usr/share/nginx/html" });

    it("matches the snapshot", () => {
        expect(conf).toMatchSnapshot();
    });

    it("falls back to index.html for client-side routes", () => {
        expect(conf).toMatch(/location \/ \{\s+try_files \$uri \$uri\/ \/index.html;/);
    });

    it("never lets index.html be cached, and caches hashed assets for a year", () => {
        expect(conf).toMatch(/location = \/index.html \{\s+add_header Cache-Control "no-cache" always;/);
        expect(conf).toContain('add_header Cache-Control "public, max-age=31536000, immutable" always;');
    });

    it.each([
        ["/assets/index-3f9a1c2b.js", true],
        ["/assets/index-BmZ4x_9Q.css", true],
        ["/static/js/main.3f9a1c2b.chunk.js", true],
        ["/assets/logo-a1b2c3d4e5.svg", true],
        ["/favicon.ico", false],
        ["/app.js", false],
        ["/index.html", false],
    ])("treats %s as hashed: %s", (path, hashed) => {
        expect(new RegExp(HASHED_ASSET_RE, "i").test(path)).toBe(hashed);
    });

    it("compresses text assets", () => {
        expect(conf).toContain("gzip on;");
        expect(conf).toMatch(/gzip_types[^;]*application\/javascript/);
    });
});

describe("the ACME challenge location (tls.mode acme)", () => {
    const challenge = ["location ^~ /.well-known/acme-challenge/ {", "    root /var/www/acme;", "    default_type text/plain;", "    try_files $uri =404;"];

    it("is served on port 80 before the HTTPS redirect, for every host name (the default server)", () => {
        const conf = renderNginxConf(site({ acmeWebroot: "/var/www/acme" }));
        const port80 = conf.slice(conf.indexOf("listen 80 default_server;"), conf.indexOf("listen 443 ssl http2 default_server;"));
        const at = port80.indexOf(challenge[0]);
        expect(at).toBeGreaterThan(0);
        expect(at).toBeLessThan(port80.indexOf("return 301"));
        for (const l of challenge) expect(port80).toContain(l);
        // Never on the HTTPS servers: the CA only asks over HTTP.
        expect(conf.split(challenge[0]).length).toBe(2);
    });

    it("is in the host-mode site's port-80 server", () => {
        const conf = renderNginxSiteFile(site({ acmeWebroot: "/var/lib/vps-stack/prod/acme-webroot", namespace: "vps_stack_prod_" }));
        const port80 = conf.slice(conf.indexOf("listen 80;"), conf.indexOf("listen 443 ssl http2;"));
        expect(port80).toContain("root /var/lib/vps-stack/prod/acme-webroot;");
        expect(port80.indexOf("acme-challenge")).toBeLessThan(port80.indexOf("return 301"));
    });

    it("is absent without ACME", () => {
        expect(renderNginxConf(site())).not.toContain("acme-challenge");
        expect(renderNginxSiteFile(site({ namespace: "n_" }))).not.toContain("acme-challenge");
    });
});

describe("routing precedence (property)", () => {
    // Whatever routes the apps claim, the request nginx sends to each app is the one the config meant: the
    // longest claimed prefix that the path equals or continues with "/" ("/api" never takes "/apix").
    const segment = fc.constantFrom("api", "api-v2", "v1", "a.b", "x", "_~u");
    const route = fc.tuple(fc.array(segment, { maxLength: 3 }), fc.boolean()).map(([s, slash]) => (s.length === 0 ? "/" : `/${s.join("/")}${slash ? "/" : ""}`));
    const hostsArb = fc.subarray(["a.example.com", "b.example.com"], { minLength: 1 });
    const normalize = (p: string) => (p === "/" ? "/" : p.replace(/\/+$/, ""));
    const appsArb = fc
        .array(fc.record({ hosts: hostsArb, paths: fc.uniqueArray(route, { minLength: 1, maxLength: 3, selector: normalize }) }), { minLength: 1, maxLength: 4 })
        .map((apps) => apps.map((a, i) => ({ name: `app${i}`, servers: [`app${i}:80`], hosts: a.hosts, paths: a.paths, healthPath: "/" })))
        // The config refuses two apps claiming the same route; so do we.
        .filter((apps) => {
            const keys = apps.flatMap((a) => a.hosts.flatMap((h) => a.paths.map((p) => `${h}${normalize(p)}`)));
            return new Set(keys).size === keys.length;
        });

    /** The app the config means for a request: the longest matching claimed prefix, from the apps alone. */
    function meant(apps: NginxSite["apps"], host: string, path: string): string | undefined {
        let best: { app: string; len: number } | undefined;
        for (const a of apps.filter((x) => x.hosts.includes(host))) {
            for (const q of a.paths.map(normalize)) {
                const hit = q === "/" || path === q || path.startsWith(`${q}/`);
                if (hit && (!best || q.length > best.len)) best = { app: a.name, len: q.length };
            }
        }
        return best?.app;
    }

    /** The app nginx picks from the rendered server block: an exact location first, else the longest prefix. */
    function picked(server: string, path: string): string | undefined {
        const locations: { exact: boolean; match: string; app?: string }[] = [];
        for (const line of server.split("\n")) {
            const loc = /^\s*location (=\s+|\^~\s+)?(\S+) \{$/.exec(line);
            if (loc) locations.push({ exact: (loc[1] ?? "").startsWith("="), match: loc[2] });
            const pass = /^\s*proxy_pass http:\/\/app_(\S+);$/.exec(line);
            if (pass && locations.length > 0) locations[locations.length - 1].app = pass[1];
        }
        const exact = locations.find((l) => l.exact && l.match === path);
        if (exact) return exact.app;
        const prefixes = locations.filter((l) => !l.exact && path.startsWith(l.match)).sort((a, b) => b.match.length - a.match.length);
        return prefixes[0]?.app;
    }

    it("sends every request to the app with the longest matching prefix, in the rendered config and in hostRoutes", () => {
        fc.assert(
            fc.property(appsArb, fc.array(fc.tuple(route, fc.constantFrom("", "/", "/z", "z", "-")), { maxLength: 6 }), (apps, extra) => {
                const conf = renderNginxConf(site({ apps }));
                const routes = hostRoutes(apps);
                for (const host of [...new Set(apps.flatMap((a) => a.hosts))]) {
                    const server = serverBlock(conf, host);
                    const claimed = apps.filter((a) => a.hosts.includes(host)).flatMap((a) => a.paths.map(normalize));
                    const requests = [...claimed, ...extra.map(([p]) => normalize(p))].flatMap((p) => ["", "/", "/z", "z", "-"].map((s) => (p === "/" ? `/${s.replace(/^\//, "")}` : `${p}${s}`)));
                    const locations = routes.find((r) => r.host === host)!.locations;
                    // Each claimed route once, longest first: reading the file top-down gives nginx's choice.
                    expect(locations.map((l) => l.path).sort()).toEqual([...claimed].sort());
                    for (const path of requests.filter((p) => p !== "/health")) {
                        const want = meant(apps, host, path);
                        expect({ host, path, app: picked(server, path) }).toEqual({ host, path, app: want });
                        const first = locations.find((l) => l.path === "/" || path === l.path || path.startsWith(`${l.path}/`));
                        expect({ host, path, app: first?.app }).toEqual({ host, path, app: want });
                    }
                }
            }),
            { numRuns: 200 },
        );
    });
});
