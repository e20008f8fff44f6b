import { execFile } from "node:child_process";
import { constants as fsConstants } from "node:fs";
import { access, mkdtemp, realpath, rm, stat, writeFile } from "node:fs/promises";
import http from "node:http";
import net from "node:net";
import os from "node:os";
import path from "node:path";

import pino from "pino";
import { afterEach, beforeEach, describe, expect, it } from "vitest";

import { ConfigError } from "../../src/domain/errors.js";
import { classifyAddress } from "../../src/workspace/sandbox/classify-address.js";
import {
  defaultEgressAllowlist,
  DEFAULT_EGRESS_PROXY_PORT,
  egressEnv,
  egressForwarderScript,
  egressShellCommand,
  isHostAllowed,
  startEgressProxy,
  type EgressLog,
  type EgressProxy,
  type EgressProxyOptions,
} from "../../src/workspace/sandbox/egress-proxy.js";

// Real sockets throughout: the proxy listens on a Unix socket in a temp folder, the destination
// is an HTTP server on 127.0.0.1, clients are raw net sockets. Host names are fake
// (`*.example.test`); an injected `resolve` maps them to addresses, so nothing leaves the host.

const HOST = "registry.example.test";

interface Destination {
  port: number;
  connections: number;
  requests: Array<{ method: string; url: string; headers: http.IncomingHttpHeaders }>;
  close(): Promise<void>;
}

async function startDestination(): Promise<Destination> {
  const server = http.createServer((req, res) => {
    destination.requests.push({ method: req.method ?? "", url: req.url ?? "", headers: req.headers });
    const body = `hello from ${req.url ?? ""}`;
    res.writeHead(200, { "content-type": "text/plain", "content-length": String(Buffer.byteLength(body)), connection: "close" });
    res.end(body);
  });
  server.on("connection", () => {
    destination.connections += 1;
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const destination: Destination = {
    port: (server.address() as net.AddressInfo).port,
    connections: 0,
    requests: [],
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
  return destination;
}

/**
 * Writes `first` to the proxy's socket; when `then` is given, writes it once a complete
 * response head has arrived. Resolves with everything received when the proxy closes (or
 * after 5 s).
 */
function exchange(socketPath: string, first: string, then?: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = net.connect(socketPath);
    let received = "";
    let sentThen = false;
    const timer = setTimeout(() => {
      socket.destroy();
      resolve(received);
    }, 5_000);
    socket.on("data", (chunk: Buffer) => {
      received += chunk.toString("utf8");
      if (then !== undefined && !sentThen && received.includes("\r\n\r\n")) {
        sentThen = true;
        socket.write(then);
      }
    });
    socket.on("close", () => {
      clearTimeout(timer);
      resolve(received);
    });
    socket.on("error", (err) => {
      clearTimeout(timer);
      reject(err);
    });
    socket.write(first);
  });
}

function statusOf(response: string): number {
  return Number(/^HTTP\/1\.1 (\d{3})/.exec(response)?.[1] ?? 0);
}

function bodyOf(response: string): string {
  return response.split("\r\n\r\n").slice(1).join("\r\n\r\n");
}

let dir: string;
let socketPath: string;
let destination: Destination;
let proxy: EgressProxy | null;
let resolveCalls: string[];

beforeEach(async () => {
  dir = await realpath(await mkdtemp(path.join(os.tmpdir(), "mc-egress-")));
  socketPath = path.join(dir, "egress.sock");
  destination = await startDestination();
  proxy = null;
  resolveCalls = [];
});

afterEach(async () => {
  await proxy?.close();
  await destination.close();
  await rm(dir, { recursive: true, force: true });
});

/** A resolver that maps every name to `addresses` and records the names asked for. */
function resolveTo(...addresses: string[]): (host: string) => Promise<string[]> {
  return (host) => {
    resolveCalls.push(host);
    return Promise.resolve(addresses);
  };
}

async function start(options: Partial<EgressProxyOptions>): Promise<EgressProxy> {
  proxy = await startEgressProxy({ socketPath, allow: [HOST], ...options });
  return proxy;
}

const innerGet = (authority: string, pathname: string): string => `GET ${pathname} HTTP/1.1\r\nHost: ${authority}\r\nConnection: close\r\n\r\n`;

describe("startEgressProxy: allowed destinations reach the server", () => {
  const onlyLoopback = (ip: string): boolean => ip === "127.0.0.1";

  it("tunnels CONNECT to the checked address, not to the name", async () => {
    const p = await start({ resolve: resolveTo("127.0.0.1"), isAllowedAddress: onlyLoopback, ports: [destination.port] });
    const authority = `${HOST}:${destination.port}`;

    const waited = await exchange(socketPath, `CONNECT ${authority} HTTP/1.1\r\nHost: ${authority}\r\n\r\n`, innerGet(authority, "/tunnel"));
    expect(waited).toMatch(/^HTTP\/1\.1 200 Connection Established\r\n\r\nHTTP\/1\.1 200 OK\r\n/);
    expect(waited).toContain("hello from /tunnel");

    // Bytes sent right behind the CONNECT head (before the 200) are forwarded too.
    const pipelined = await exchange(socketPath, `CONNECT ${authority} HTTP/1.1\r\n\r\n${innerGet(authority, "/pipelined")}`);
    expect(pipelined).toContain("hello from /pipelined");

    expect(resolveCalls).toEqual([HOST, HOST]); // the name no real DNS knows was never looked up again
    expect(destination.connections).toBe(2);
    expect(p.stats()).toEqual({ allowed: 2, refused: [] });
  });

  it("forwards absolute-form GET with Host from the target and without Proxy-Authorization", async () => {
    const p = await start({ resolve: resolveTo("127.0.0.1"), isAllowedAddress: onlyLoopback, ports: [destination.port] });
    const authority = `${HOST.toUpperCase()}.:${destination.port}`;
    const response = await exchange(
      socketPath,
      `GET http://${authority}/pkg?x=1 HTTP/1.1\r\nHost: somewhere.else\r\nProxy-Authorization: Basic c2VjcmV0\r\n` +
        `Proxy-Connection: keep-alive\r\nX-Custom: 1\r\nConnection: close, X-Drop\r\nX-Drop: gone\r\n\r\n`,
    );
    expect(statusOf(response)).toBe(200);
    expect(bodyOf(response)).toBe("hello from /pkg?x=1");
    expect(destination.requests).toHaveLength(1);
    const seen = destination.requests[0]!;
    expect(seen.url).toBe("/pkg?x=1");
    expect(seen.headers.host).toBe(`${HOST}:${destination.port}`);
    expect(seen.headers["x-custom"]).toBe("1");
    expect(seen.headers).not.toHaveProperty("proxy-authorization");
    expect(seen.headers).not.toHaveProperty("proxy-connection");
    expect(seen.headers).not.toHaveProperty("x-drop");
    expect(seen.headers).not.toHaveProperty("authorization");
    expect(p.stats().allowed).toBe(1);
  });

  it("matches *.domain wildcards", async () => {
    await start({
      allow: ["*.Example.TEST"],
      resolve: resolveTo("127.0.0.1"),
      isAllowedAddress: onlyLoopback,
      ports: [destination.port],
    });
    const response = await exchange(socketPath, `GET http://cdn.${HOST}:${destination.port}/w HTTP/1.1\r\nConnection: close\r\n\r\n`);
    expect(bodyOf(response)).toBe("hello from /w");
  });
});

describe("startEgressProxy: refusals (default address policy)", () => {
  it.each([
    ["127.0.0.1", "loopback"],
    ["10.0.0.1", "private"],
    ["169.254.169.254", "link-local"],
    ["::1", "loopback"],
    ["::ffff:127.0.0.1", "IPv4-mapped 127.0.0.1: loopback"],
    ["fe80::1", "link-local"],
    ["100.64.0.1", "carrier-grade NAT"],
  ])("an allowlisted name resolving to %s answers 403 and connects nowhere", async (address, reason) => {
    const p = await start({ resolve: resolveTo(address), ports: [destination.port] });
    const authority = `${HOST}:${destination.port}`;

    const viaConnect = await exchange(socketPath, `CONNECT ${authority} HTTP/1.1\r\n\r\n${innerGet(authority, "/x")}`);
    expect(statusOf(viaConnect)).toBe(403);
    expect(bodyOf(viaConnect)).toBe(`address not allowed: ${address} (${reason})\n`);

    const viaGet = await exchange(socketPath, `GET http://${authority}/x HTTP/1.1\r\nConnection: close\r\n\r\n`);
    expect(statusOf(viaGet)).toBe(403);
    expect(bodyOf(viaGet)).toBe(`address not allowed: ${address} (${reason})\n`);

    expect(destination.connections).toBe(0);
    expect(p.stats()).toEqual({ allowed: 0, refused: [{ host: HOST, reason: `address not allowed: ${address} (${reason})`, count: 2 }] });
  });

  it("refuses when any one of the resolved addresses is not public", async () => {
    await start({ resolve: resolveTo("8.8.8.8", "127.0.0.1"), ports: [destination.port] });
    const response = await exchange(socketPath, `CONNECT ${HOST}:${destination.port} HTTP/1.1\r\n\r\n`);
    expect(statusOf(response)).toBe(403);
    expect(bodyOf(response)).toBe("address not allowed: 127.0.0.1 (loopback)\n");
    expect(destination.connections).toBe(0);
  });

  it("resolves with the host's resolver by default and still refuses loopback answers", async () => {
    await start({ allow: ["localhost"], ports: [destination.port] });
    const response = await exchange(socketPath, `CONNECT localhost:${destination.port} HTTP/1.1\r\n\r\n`);
    expect(statusOf(response)).toBe(403);
    expect(bodyOf(response)).toMatch(/^address not allowed: (127\.0\.0\.1|::1) \(loopback\)\n$/);
    expect(destination.connections).toBe(0);
  });

  it("refuses a host not in the allowlist without resolving it", async () => {
    const p = await start({ resolve: resolveTo("127.0.0.1") });
    for (const target of ["other.example.test:443", `example.test:443`, `evil${HOST}:443`]) {
      const response = await exchange(socketPath, `CONNECT ${target} HTTP/1.1\r\n\r\n`);
      expect(statusOf(response)).toBe(403);
      expect(bodyOf(response)).toBe(`host not in the allowlist: ${target.split(":")[0]}\n`);
    }
    expect(resolveCalls).toEqual([]);
    expect(p.stats().refused.map((r) => r.host)).toEqual(["other.example.test", "example.test", `evil${HOST}`]);
  });

  it("refuses a port not allowed (default 443 and 80 only)", async () => {
    await start({ resolve: resolveTo("127.0.0.1") });
    const response = await exchange(socketPath, `CONNECT ${HOST}:22 HTTP/1.1\r\n\r\n`);
    expect(statusOf(response)).toBe(403);
    expect(bodyOf(response)).toBe("port not allowed: 22\n");
    expect(resolveCalls).toEqual([]);
  });

  it("refuses IP literals that are not listed, and checks listed ones against the address policy", async () => {
    await start({ resolve: resolveTo("127.0.0.1"), ports: [destination.port] });
    for (const request of [
      `CONNECT 127.0.0.1:${destination.port} HTTP/1.1\r\n\r\n`,
      `GET http://127.0.0.1:${destination.port}/ HTTP/1.1\r\nConnection: close\r\n\r\n`,
      `CONNECT [::ffff:127.0.0.1]:${destination.port} HTTP/1.1\r\n\r\n`,
    ]) {
      const response = await exchange(socketPath, request);
      expect(statusOf(response)).toBe(403);
      expect(bodyOf(response)).toMatch(/^host not in the allowlist: [0-9a-f:.]+ \(IP addresses must be listed exactly\)\n$/);
    }
    // Names a resolver would read as IPv4 addresses are not host names at all.
    for (const request of [`CONNECT 2130706433:${destination.port} HTTP/1.1\r\n\r\n`, `GET http://0x7f.1:${destination.port}/ HTTP/1.1\r\n\r\n`]) {
      expect(statusOf(await exchange(socketPath, request))).toBe(400);
    }
    await proxy!.close();

    proxy = await startEgressProxy({ socketPath, allow: ["127.0.0.1"], ports: [destination.port] });
    const listed = await exchange(socketPath, `CONNECT 127.0.0.1:${destination.port} HTTP/1.1\r\n\r\n`);
    expect(statusOf(listed)).toBe(403);
    expect(bodyOf(listed)).toBe("address not allowed: 127.0.0.1 (loopback)\n");
    expect(resolveCalls).toEqual([]);
    expect(destination.connections).toBe(0);
  });

  it("accepts CONNECT and absolute-form http:// only", async () => {
    await start({ resolve: resolveTo("127.0.0.1") });
    const cases: Array<[string, number, RegExp]> = [
      ["GET /index.html HTTP/1.1\r\nHost: x\r\n\r\n", 400, /absolute-form/],
      [`GET https://${HOST}/ HTTP/1.1\r\n\r\n`, 400, /use CONNECT/],
      [`TRACE http://${HOST}/ HTTP/1.1\r\n\r\n`, 405, /method not allowed: TRACE/],
      [`GET http://user:pw@${HOST}/ HTTP/1.1\r\n\r\n`, 400, /credentials/],
      [`CONNECT ${HOST} HTTP/1.1\r\n\r\n`, 400, /host:port/],
      ["NONSENSE\r\n\r\n", 400, /malformed/],
    ];
    for (const [request, status, body] of cases) {
      const response = await exchange(socketPath, request);
      expect(statusOf(response), request).toBe(status);
      expect(bodyOf(response)).toMatch(body);
    }
    expect(resolveCalls).toEqual([]);
    expect(destination.connections).toBe(0);
  });

  it("logs each distinct refusal once and counts every one", async () => {
    const warnings: Array<{ obj: Record<string, unknown>; msg: string }> = [];
    const log: EgressLog = { warn: (obj, msg) => warnings.push({ obj, msg }) };
    const p = await start({ log });
    await exchange(socketPath, "CONNECT nope.example.test:443 HTTP/1.1\r\n\r\n");
    await exchange(socketPath, "CONNECT NOPE.example.test.:443 HTTP/1.1\r\n\r\n");
    expect(warnings).toEqual([
      { obj: { host: "nope.example.test", reason: "host not in the allowlist: nope.example.test" }, msg: "egress proxy refused a request" },
    ]);
    expect(p.stats().refused).toEqual([{ host: "nope.example.test", reason: "host not in the allowlist: nope.example.test", count: 2 }]);
    // A pino logger is an EgressLog.
    const pinoLog: EgressLog = pino({ enabled: false });
    expect(typeof pinoLog.warn).toBe("function");
  });

  it("answers 502 when the name does not resolve and 504 when connecting takes too long", async () => {
    const warnings: string[] = [];
    await start({
      resolve: (host) =>
        host.startsWith("slow.") ? new Promise<string[]>(() => undefined) : Promise.reject(Object.assign(new Error("no"), { code: "ENOTFOUND" })),
      allow: [HOST, `slow.${HOST}`],
      connectTimeoutMs: 200,
      log: { warn: (_obj, msg) => warnings.push(msg) },
    });
    const missing = await exchange(socketPath, `CONNECT ${HOST}:443 HTTP/1.1\r\n\r\n`);
    expect(statusOf(missing)).toBe(502);
    expect(bodyOf(missing)).toBe(`DNS lookup of ${HOST} failed: ENOTFOUND\n`);
    const slow = await exchange(socketPath, `CONNECT slow.${HOST}:443 HTTP/1.1\r\n\r\n`);
    expect(statusOf(slow)).toBe(504);
    expect(warnings).toHaveLength(2);
    expect(proxy!.stats()).toEqual({ allowed: 0, refused: [] });
  });

  it("closes a tunnel idle longer than idleTimeoutMs", async () => {
    const idle = net.createServer((socket) => socket.on("error", () => undefined)); // accepts, never answers
    await new Promise<void>((resolve) => idle.listen(0, "127.0.0.1", resolve));
    const port = (idle.address() as net.AddressInfo).port;
    try {
      await start({ resolve: resolveTo("127.0.0.1"), isAllowedAddress: () => true, ports: [port], idleTimeoutMs: 300 });
      const startedAt = Date.now();
      const response = await exchange(socketPath, `CONNECT ${HOST}:${port} HTTP/1.1\r\n\r\n`);
      expect(statusOf(response)).toBe(200);
      expect(Date.now() - startedAt).toBeLessThan(3_000);
    } finally {
      idle.close();
    }
  });

  it("removes its socket on close and refuses a socket path in use", async () => {
    const p = await start({});
    expect((await stat(socketPath)).mode & 0o777).toBe(0o600);
    await expect(startEgressProxy({ socketPath, allow: [HOST] })).rejects.toThrow(/EADDRINUSE/);
    await p.close();
    await p.close();
    await expect(stat(socketPath)).rejects.toThrow(/ENOENT/);
  });

  it("rejects malformed allowlist entries and ports", async () => {
    for (const allow of [["*"], ["*.test"], ["http://x.example.test/"], ["a b"], ["[127.0.0.1]"], [""]]) {
      await expect(startEgressProxy({ socketPath, allow })).rejects.toBeInstanceOf(ConfigError);
    }
    await expect(startEgressProxy({ socketPath, allow: [HOST], ports: [0] })).rejects.toBeInstanceOf(ConfigError);
  });
});

describe("isHostAllowed", () => {
  it.each([
    [HOST, [HOST], true],
    ["Registry.Example.Test.", [HOST], true],
    [`a.${HOST}`, [HOST], false],
    [`a.${HOST}`, [`*.${HOST}`], true],
    [`a.b.${HOST}`, [`*.${HOST}`], true],
    [HOST, [`*.${HOST}`], false],
    [`evil${HOST}`, [`*.${HOST}`], false],
    ["127.0.0.1", [HOST], false],
    ["127.0.0.1", ["127.0.0.1"], true],
    ["[2001:db8::1]", ["2001:DB8:0::1"], true],
    ["127.1", ["127.1"], false],
  ] as const)("%s against %j → %s", (host, allow, expected) => {
    if (host === "127.1") {
      expect(() => isHostAllowed(host, allow)).toThrow(ConfigError);
      return;
    }
    expect(isHostAllowed(host, allow)).toBe(expected);
  });
});

describe("classifyAddress (RFC 6890 special-purpose ranges)", () => {
  it.each(["8.8.8.8", "1.1.1.1", "2606:4700:4700::1111", "::ffff:8.8.8.8", "64:ff9b::808:808", "2002:808:808::1"])("allows public %s", (address) => {
    expect(classifyAddress(address)).toEqual({ allowed: true, address });
  });

  it.each([
    ["0.0.0.0", "unspecified"],
    ["127.0.0.53", "loopback"],
    ["10.1.2.3", "private"],
    ["172.16.0.1", "private"],
    ["172.31.255.255", "private"],
    ["192.168.1.1", "private"],
    ["169.254.169.254", "link-local"],
    ["100.64.0.1", "carrier-grade NAT"],
    ["100.127.255.255", "carrier-grade NAT"],
    ["224.0.0.1", "multicast"],
    ["255.255.255.255", "broadcast"],
    ["240.0.0.1", "reserved"],
    ["192.0.2.1", "reserved"],
    ["198.18.0.1", "reserved"],
    ["192.0.0.8", "reserved"],
    ["::", "unspecified"],
    ["::1", "loopback"],
    ["::127.0.0.1", "not global unicast"],
    ["::8.8.8.8", "not global unicast"],
    ["fe80::1", "link-local"],
    ["fec0::1", "site-local"],
    ["fc00::1", "unique local"],
    ["fd12:3456::1", "unique local"],
    ["ff02::1", "multicast"],
    ["100::1", "discard-only"],
    ["2001:db8::1", "reserved"],
    ["::ffff:127.0.0.1", "IPv4-mapped 127.0.0.1: loopback"],
    ["::ffff:a9fe:a9fe", "IPv4-mapped 169.254.169.254: link-local"],
    ["::ffff:0:a00:1", "IPv4-translated 10.0.0.1: private"],
    ["64:ff9b::a9fe:a9fe", "NAT64 169.254.169.254: link-local"],
    ["64:ff9b::127.0.0.1", "NAT64 127.0.0.1: loopback"],
    ["64:ff9b:1::1", "local-use NAT64 prefix"],
    ["2002:7f00:1::1", "6to4 127.0.0.1: loopback"],
    ["2002:a9fe:a9fe::1", "6to4 169.254.169.254: link-local"],
    ["2001:0:4136:e378:8000:63bf:3fff:fdd2", "Teredo 192.0.2.45: reserved"],
    ["2001:0:0808:0808:0:0:80ff:fffe", "Teredo 127.0.0.1: loopback"],
    ["2001:0:7f00:1::", "Teredo 127.0.0.1: loopback"],
    ["fe80::1%eth0", "scoped address"],
    ["registry.example.test", "not an IP address"],
    ["127.1", "not an IP address"],
  ])("refuses %s (%s)", (address, reason) => {
    expect(classifyAddress(address)).toEqual({ allowed: false, address, reason });
  });
});

describe("sandbox side helpers", () => {
  it("egressEnv points every proxy variable at the forwarder and bypasses nothing", () => {
    const url = `http://127.0.0.1:${DEFAULT_EGRESS_PROXY_PORT}`;
    expect(egressEnv(DEFAULT_EGRESS_PROXY_PORT)).toEqual({
      HTTP_PROXY: url,
      HTTPS_PROXY: url,
      http_proxy: url,
      https_proxy: url,
      npm_config_proxy: url,
      npm_config_https_proxy: url,
      NO_PROXY: "",
      no_proxy: "",
    });
  });

  it("rejects bad ports and relative socket paths", () => {
    expect(() => egressEnv(0)).toThrow(ConfigError);
    expect(() => egressForwarderScript(70_000, "/tmp/x.sock")).toThrow(ConfigError);
    expect(() => egressForwarderScript(3128, "x.sock")).toThrow(ConfigError);
  });
});

describe("defaultEgressAllowlist", () => {
  const saved: Record<string, string | undefined> = {};
  const names = ["npm_config_registry", "NPM_CONFIG_REGISTRY", "npm_config_userconfig", "PIP_INDEX_URL", "PIP_EXTRA_INDEX_URL"];

  beforeEach(() => {
    for (const name of names) {
      saved[name] = process.env[name];
      delete process.env[name];
    }
  });

  afterEach(() => {
    for (const name of names) {
      if (saved[name] === undefined) delete process.env[name];
      else process.env[name] = saved[name];
    }
  });

  it("takes host names from the configured npm registry and pip's index URLs", async () => {
    const sources = {
      npmRegistry: "https://Registry.Example.Test:8443/npm/",
      pipIndexUrl: "https://pip-index.example.test/simple/",
      pipExtraIndexUrls: "https://extra.example.test/simple https://pip-index.example.test/other",
    };
    expect(await defaultEgressAllowlist(sources)).toEqual([HOST, "pip-index.example.test", "extra.example.test"]);
  });

  it("asks npm when the registry is not in the environment", async () => {
    const npmrc = path.join(dir, "npmrc");
    await writeFile(npmrc, "registry=https://npm-mirror.example.test/repository/npm/\n");
    process.env.npm_config_userconfig = npmrc;
    expect(await defaultEgressAllowlist()).toEqual(["npm-mirror.example.test"]);
  });
});

// ---------------------------------------------------------------------------------------------

async function findBwrap(): Promise<string | null> {
  for (const folder of (process.env.PATH ?? "").split(":").filter((d) => path.isAbsolute(d))) {
    const candidate = path.join(folder, "bwrap");
    try {
      await access(candidate, fsConstants.X_OK);
      return candidate;
    } catch {
      // not here
    }
  }
  return null;
}

function shellQuote(word: string): string {
  return `'${word.replace(/'/g, `'\\''`)}'`;
}

/** Runs inside the sandbox: two requests through the proxy variables, one refused, one direct. */
function insideScript(port: number): string {
  return `
const http = require("node:http"), net = require("node:net");
const proxy = new URL(process.env.HTTPS_PROXY);
const target = ${JSON.stringify(`${HOST}:${port}`)};
function viaConnect(authority) {
  return new Promise((resolve, reject) => {
    const req = http.request({ host: proxy.hostname, port: proxy.port, method: "CONNECT", path: authority });
    req.on("connect", (res, socket) => {
      if (res.statusCode !== 200) { socket.destroy(); resolve("status " + res.statusCode); return; }
      let data = "";
      socket.on("data", (c) => (data += c));
      socket.on("end", () => resolve(data.split("\\r\\n\\r\\n").slice(1).join("")));
      socket.on("error", reject);
      socket.write("GET /inside HTTP/1.1\\r\\nHost: " + authority + "\\r\\nConnection: close\\r\\n\\r\\n");
    });
    req.on("error", reject);
    req.end();
  });
}
function viaGet() {
  return new Promise((resolve, reject) => {
    http.get({ host: proxy.hostname, port: proxy.port, path: "http://" + target + "/plain", headers: { host: target } }, (res) => {
      let data = "";
      res.on("data", (c) => (data += c));
      res.on("end", () => resolve(res.statusCode + " " + data));
    }).on("error", reject);
  });
}
function direct() {
  return new Promise((resolve) => {
    const socket = net.connect(${port}, "127.0.0.1");
    socket.on("connect", () => { socket.destroy(); resolve("connected"); });
    socket.on("error", (e) => resolve(e.code));
  });
}
(async () => {
  const out = { connect: await viaConnect(target), get: await viaGet(), metadata: await viaConnect("169.254.169.254:80"), direct: await direct() };
  process.stdout.write(JSON.stringify(out));
})().catch((e) => { process.stderr.write(String(e)); process.exit(1); });
`;
}

describe("egress through real bubblewrap (needs bwrap)", () => {
  it("reaches the allowlisted host only through the proxy; the host's loopback is out of reach", async () => {
    const bwrap = await findBwrap();
    if (!bwrap) throw new Error("bubblewrap (bwrap) is not installed: this test needs it on PATH");

    const p = await start({
      resolve: resolveTo("127.0.0.1"),
      isAllowedAddress: (ip) => ip === "127.0.0.1",
      ports: [destination.port, 80],
    });
    const port = DEFAULT_EGRESS_PROXY_PORT;
    const node = process.execPath;
    const command = `${shellQuote(node)} -e ${shellQuote(insideScript(destination.port))}`;
    // /bin, /lib, /lib64 and /sbin are symbolic links into /usr on this machine (checked with ls -la /).
    // The socket folder lies under /tmp, so it is bound after the sandbox's own /tmp; read-only
    // suffices, since connect() on a socket needs no write access to the mount.
    const args = [
      "--unshare-all",
      "--die-with-parent",
      "--ro-bind",
      "/usr",
      "/usr",
      "--symlink",
      "usr/lib",
      "/lib",
      "--symlink",
      "usr/lib64",
      "/lib64",
      "--symlink",
      "usr/bin",
      "/bin",
      "--symlink",
      "usr/sbin",
      "/sbin",
      "--ro-bind",
      "/etc",
      "/etc",
      "--proc",
      "/proc",
      "--dev",
      "/dev",
      "--tmpfs",
      "/tmp",
      "--ro-bind",
      dir,
      dir,
      "--",
      "/bin/sh",
      "-c",
      egressShellCommand(command, port, socketPath, node),
    ];
    const result = await new Promise<{ code: number | null; stdout: string; stderr: string }>((resolve) => {
      execFile(bwrap, args, { env: { PATH: "/usr/bin:/bin", ...egressEnv(port) }, timeout: 20_000 }, (err, stdout, stderr) => {
        const code = err ? ((err as { code?: unknown }).code as number | null) : 0;
        resolve({ code: typeof code === "number" ? code : null, stdout, stderr });
      });
    });

    expect(result.stderr).toBe("");
    expect(result.code).toBe(0);
    // The forwarder printed nothing: stdout is exactly the command's JSON.
    expect(JSON.parse(result.stdout)).toEqual({
      connect: "hello from /inside",
      get: "200 hello from /plain",
      metadata: "status 403",
      direct: "ECONNREFUSED",
    });
    expect(destination.requests.map((r) => r.url)).toEqual(["/inside", "/plain"]);
    expect(p.stats().refused).toEqual([
      { host: "169.254.169.254", reason: "host not in the allowlist: 169.254.169.254 (IP addresses must be listed exactly)", count: 1 },
    ]);
  });
});
