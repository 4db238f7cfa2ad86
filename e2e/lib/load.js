#!/usr/bin/env node
// A bounded load generator for release tests: a steady rate of HTTPS requests to one loopback address
// (GET /, POST /echo, and a few slow requests), at least --count of them and, with --stop-file, until
// that file appears too; never longer than --max-seconds. Prints
// one JSON summary line: what was sent, what failed, the longest gap between two successes, and whether
// every slow request completed. Any non-2xx (429 included) is a failure.
//
//   node e2e/lib/load.js --url https://host:port --resolve 127.0.0.1 --ca ca.pem --rate 200 --count 5000 \
//        [--slow-every 500] [--slow-seconds 5-10] [--stop-file F] [--max-seconds 120] [--path-prefix /]
"use strict";
const fs = require("fs");
const http = require("http");
const http2 = require("http2");
const https = require("https");

function args(argv) {
    const out = { rate: 200, count: 5000, slowEvery: 500, slowSeconds: "5-10", maxSeconds: 180, pathPrefix: "" };
    for (let i = 2; i < argv.length; i += 2) {
        const key = argv[i].replace(/^--/, "").replace(/-([a-z])/g, (_, c) => c.toUpperCase());
        out[key] = argv[i + 1];
    }
    for (const k of ["rate", "count", "slowEvery", "maxSeconds"]) out[k] = Number(out[k]);
    return out;
}

const opt = args(process.argv);
const target = new URL(opt.url);
// Loopback only: this tool must never be pointed elsewhere.
if (!["127.0.0.1", "::1", "localhost"].includes(opt.resolve ?? target.hostname)) {
    console.error("load.js: refusing a non-loopback target");
    process.exit(2);
}
// http:// is for benchmarks of other designs (bench/); the e2e goes through the stack's HTTPS.
const client = target.protocol === "http:" ? http : https;
const agent = new client.Agent({ keepAlive: true, maxSockets: 64, ca: opt.ca ? fs.readFileSync(opt.ca) : undefined });
const [slowMin, slowMax] = String(opt.slowSeconds).split("-").map(Number);
// HTTPS is spoken as browsers speak it: HTTP/2. When nginx reloads, an old worker ends each connection
// with GOAWAY, naming the last stream it took; a stream after that was refused unprocessed (RFC 9113
// 6.8), and every HTTP/2 client sends it again on a new connection: so does this one, and counts it. A
// reload ends every connection at once, so the one a retry picks may be refused too, before its GOAWAY
// reached us: like Chromium (HttpNetworkTransaction's kMaxRetryAttempts), it tries at most twice more.
// Anything else that goes wrong is a failure. (--http1 gives HTTP/1.1 keep-alive instead, where a
// request can race the old worker closing its idle connection: reported as ECONNRESET.)
const useH2 = target.protocol === "https:" && !opt.http1;
const sessions = [];
function session() {
    const live = sessions.filter((s) => !s.closed && !s.destroyed && !s.goneAway);
    if (live.length >= 4) return live[Math.floor(Math.random() * live.length)];
    const s = http2.connect(`https://${opt.resolve ?? target.hostname}:${target.port}`, {
        ca: opt.ca ? fs.readFileSync(opt.ca) : undefined,
        servername: target.hostname,
    });
    s.goneAway = false;
    s.on("goaway", () => (s.goneAway = true));
    s.on("error", () => (s.goneAway = true));
    s.on("close", () => (s.goneAway = true));
    sessions.push(s);
    return s;
}

const stats = { refusedRetried: 0, sent: 0, ok: 0, non2xx: 0, connErrors: 0, statuses: {}, errors: {}, slowSent: 0, slowOk: 0, maxGapMs: 0, latencies: [] };
let lastSuccess = null;
let inFlight = 0;
const started = Date.now();

/** Records a request that got an answer (any status), whichever protocol carried it. */
function answered(status, slow, t0) {
    inFlight--;
    const ms = Number(process.hrtime.bigint() - t0) / 1e6;
    stats.statuses[status] = (stats.statuses[status] ?? 0) + 1;
    if (status < 200 || status >= 300) return void stats.non2xx++;
    stats.ok++;
    if (slow) return void stats.slowOk++;
    // The gap that matters is between two ordinary answers (a slow one ends after the rest).
    stats.latencies.push(ms);
    const now = Date.now();
    if (lastSuccess !== null) stats.maxGapMs = Math.max(stats.maxGapMs, now - lastSuccess);
    lastSuccess = now;
}

const MAX_REFUSED_RETRIES = 2;

function request(i, retries = 0) {
    const slow = opt.slowEvery > 0 && i % opt.slowEvery === Math.floor(opt.slowEvery / 2);
    const post = !slow && i % 3 === 1;
    const seconds = slow ? slowMin + ((i / opt.slowEvery) % (slowMax - slowMin + 1)) : 0;
    const path = opt.pathPrefix + (slow ? `/slow?seconds=${Math.floor(seconds)}` : post ? "/echo" : "/");
    const body = post ? JSON.stringify({ i, pad: "x".repeat(200) }) : undefined;
    if (retries === 0) {
        stats.sent++;
        if (slow) stats.slowSent++;
    }
    inFlight++;
    const t0 = process.hrtime.bigint();
    // Every request ends exactly once: as a status, or as an error (whichever comes first).
    let ended = false;
    const fail = (e) => {
        if (ended) return;
        ended = true;
        inFlight--;
        stats.connErrors++;
        // The code and the message: for a stream, the message names the RST_STREAM code.
        const key = e.code ? `${e.code}: ${e.message}` : e.message;
        stats.errors[key] = (stats.errors[key] ?? 0) + 1;
    };
    if (useH2) return requestH2(i, { slow, post, path, body, t0, retries, fail: (e) => fail(e), done: () => (ended = true) }, () => ended);
    const req = client.request(
        {
            host: opt.resolve ?? target.hostname,
            servername: target.hostname,
            port: target.port,
            path,
            method: post ? "POST" : "GET",
            agent,
            headers: { Host: target.host, ...(body ? { "Content-Type": "application/json", "Content-Length": Buffer.byteLength(body) } : {}) },
            timeout: 30000,
        },
        (res) => {
            res.on("error", fail);
            res.on("aborted", () => fail(new Error("response aborted")));
            res.resume();
            res.on("end", () => {
                if (ended) return;
                ended = true;
                answered(res.statusCode, slow, t0);
            });
        },
    );
    req.on("timeout", () => req.destroy(new Error("timeout")));
    req.on("error", fail);
    if (body) req.write(body);
    req.end();
}

function requestH2(i, r, isEnded) {
    let stream;
    try {
        stream = session().request({
            ":method": r.post ? "POST" : "GET",
            ":path": r.path,
            ":authority": target.host,
            ...(r.body ? { "content-type": "application/json", "content-length": Buffer.byteLength(r.body) } : {}),
        });
    } catch (e) {
        return r.fail(e);
    }
    let status = 0;
    stream.setTimeout(30000, () => stream.close(http2.constants.NGHTTP2_CANCEL));
    stream.on("response", (h) => (status = h[":status"]));
    stream.on("error", (e) => {
        if (isEnded()) return;
        // Refused before any processing (GOAWAY or REFUSED_STREAM): safe to send again, up to MAX_REFUSED_RETRIES times.
        const refused = status === 0 && (e.code === "ERR_HTTP2_STREAM_ERROR" || e.code === "ERR_HTTP2_GOAWAY_SESSION") && /REFUSED_STREAM|GOAWAY/.test(`${e.message} ${e.code}`);
        if (refused && r.retries < MAX_REFUSED_RETRIES) {
            r.done();
            inFlight--;
            stats.refusedRetried++;
            return request(i, r.retries + 1);
        }
        r.fail(e);
    });
    stream.on("data", () => {});
    stream.on("end", () => {
        if (isEnded()) return;
        if (status === 0) return r.fail(new Error("stream ended without a response"));
        r.done();
        answered(status, r.slow, r.t0);
    });
    if (r.body) stream.end(r.body);
    else stream.end();
}

const interval = 1000 / opt.rate;
let i = 0;
function tick() {
    const due = Math.floor((Date.now() - started) / interval);
    const timeUp = (Date.now() - started) / 1000 > opt.maxSeconds;
    const enough = i >= opt.count && (!opt.stopFile || fs.existsSync(opt.stopFile));
    if (enough || timeUp) return drain();
    while (i < due) request(i++);
    setTimeout(tick, Math.max(1, interval / 2));
}
let drainStarted = 0;
function drain() {
    drainStarted ||= Date.now();
    // Requests time out after 30 s; past 40 s whatever is still open counts as failed.
    if (inFlight > 0 && Date.now() - drainStarted < 40000) return setTimeout(drain, 50);
    if (inFlight > 0) {
        stats.connErrors += inFlight;
        stats.errors.unfinished = inFlight;
    }
    const lat = stats.latencies.sort((a, b) => a - b);
    const pct = (p) => (lat.length ? Math.round(lat[Math.min(lat.length - 1, Math.floor((p / 100) * lat.length))]) : null);
    const summary = {
        sent: stats.sent,
        ok: stats.ok,
        failed: stats.non2xx + stats.connErrors,
        non2xx: stats.non2xx,
        connErrors: stats.connErrors,
        statuses: stats.statuses,
        errors: stats.errors,
        protocol: useH2 ? "h2" : target.protocol === "https:" ? "http/1.1+tls" : "http/1.1",
        refusedRetried: stats.refusedRetried,
        slowSent: stats.slowSent,
        slowCompleted: stats.slowOk,
        maxGapMs: stats.maxGapMs,
        p50Ms: pct(50),
        p99Ms: pct(99),
        seconds: Math.round((Date.now() - started) / 100) / 10,
    };
    console.log(JSON.stringify(summary));
    agent.destroy();
    for (const s of sessions) s.destroy();
    process.exit(0);
}
tick();
