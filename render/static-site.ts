// Renders the Nginx server for a static front end (a built SPA): index.html fallback for client-side
// routes, gzip, a year of caching for content-hashed assets and none for index.html. Pure; the root goes
// through the nginx sink.
import { nginxToken } from "../sinks/nginx";

export interface StaticSite {
    /** Port inside the container. */
    port: number;
    /** Directory holding index.html and the assets. */
    root: string;
}

/** File names with a content hash (Vite, webpack, CRA style: app-3f9a1c2b.js, main.3f9a1c2b.chunk.js). */
export const HASHED_ASSET_RE = "[.-][A-Za-z0-9_-]{8,}(?:\\.chunk)?\\.(?:js|mjs|css|woff2?|ttf|otf|eot|png|jpe?g|gif|svg|webp|avif|ico|map|wasm)$";

export function renderStaticSiteConf(s: StaticSite): string {
    return [
        "# Rendered by vps-stack: a built single-page app behind the stack's proxy.",
        "server {",
        `    listen ${s.port} default_server;`,
        "    server_name _;",
        `    root ${nginxToken(s.root)};`,
        "    index index.html;",
        "    server_tokens off;",
        "",
        "    gzip on;",
        "    gzip_vary on;",
        "    gzip_min_length 256;",
        "    gzip_types text/plain text/css text/xml application/javascript application/json application/xml image/svg+xml application/wasm;",
        "",
        "    # A hashed name changes with the content: the file itself never does.",
        `    location ~* "${HASHED_ASSET_RE}" {`,
        '        add_header Cache-Control "public, max-age=31536000, immutable" always;',
        "        try_files $uri =404;",
        "        access_log off;",
        "    }",
        "",
        "    # index.html names the current assets: browsers must revalidate it every time.",
        "    location = /index.html {",
        '        add_header Cache-Control "no-cache" always;',
        "    }",
        "",
        "    # Client-side routes: anything that is not a file is the app.",
        "    location / {",
        "        try_files $uri $uri/ /index.html;",
        '        add_header Cache-Control "no-cache" always;',
        "    }",
        "}",
        "",
    ].join("\n");
}
