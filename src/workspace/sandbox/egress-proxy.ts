import { execFile } from "node:child_process";
import { lookup } from "node:dns/promises";
import { chmod, unlink } from "node:fs/promises";
import http from "node:http";
import net from "node:net";
import os from "node:os";
import path from "node:path";
import type { Duplex } from "node:stream";

import { ConfigError } from "../../domain/errors.js";
import { canonicalAddress, classifyAddress } from "./classify-address.js";

// Network for a sandboxed set-up step without sharing the host's network.
//
// The sandbox keeps its own network namespace (loopback only). On the host, startEgressProxy
// serves HTTP proxy requests on a Unix socket; the socket's folder is bound into the sandbox.
// Inside, a small Node.js forwarder (egressForwarderScript) listens on 127.0.0.1:<port> in the
// sandbox's namespace and pipes each connection to that socket; the command gets proxy
// variables (egressEnv) pointing at it. The proxy lets through only allowlisted host names on
// allowed ports, resolves them itself, refuses unless every address is public, and connects to
// the address it checked.

/** Ports a destination may use unless {@link EgressProxyOptions.ports} says otherwise: HTTPS, HTTP. */
const DEFAULT_EGRESS_PORTS: readonly number[] = Object.freeze([443, 80]);

/** Milliseconds from a request to an established upstream connection (DNS included) before 504. */
const EGRESS_CONNECT_TIMEOUT_MS = 10_000;

/** Milliseconds without a byte in either direction after which a connection is closed. */
const EGRESS_IDLE_TIMEOUT_MS = 60_000;

/**
 * A port for the forwarder inside the sandbox (the sandbox has its own loopback, so any free
 * port there works; this one is the conventional proxy port).
 */
export const DEFAULT_EGRESS_PROXY_PORT = 3128;

/** Most connections the proxy serves at once (the sandboxed client side). */
const MAX_CONNECTIONS = 256;
/** Most distinct refusals kept in {@link EgressStats.refused} and logged. */
const MAX_REFUSALS_KEPT = 100;

/** Where the proxy reports refusals and upstream failures; a pino logger fits. */
export interface EgressLog {
  warn(obj: Record<string, unknown>, msg: string): void;
}

/** How {@link startEgressProxy} behaves. */
export interface EgressProxyOptions {
  /**
   * Absolute path of the Unix socket to listen on. Must not exist yet; its folder should be
   * private to the app (mode 0700) and hold nothing else, since it is bound into the sandbox.
   * The socket itself is made mode 0600.
   */
  socketPath: string;
  /**
   * Destinations allowed, case-insensitive: exact host names (`registry.example.test`),
   * wildcard suffixes (`*.example.org` — any name ending in `.example.org`, not `example.org`
   * itself; the suffix needs at least two labels), or IP addresses, which match only the same
   * literal address in a request. Anything else is a {@link ConfigError}.
   */
  allow: readonly string[];
  /** Receives one warning per distinct refusal and per upstream failure. */
  log?: EgressLog;
  /**
   * Resolves a host name to IP addresses. Default: `dns.lookup(host, { all: true })` on the
   * host. Called once per request; the proxy connects to the addresses returned, never to the
   * name. For tests.
   */
  resolve?: (host: string) => Promise<string[]>;
  /**
   * Replaces the default address policy ({@link classifyAddress}: public unicast only). Every
   * resolved address must pass. For tests; production code should keep the default.
   */
  isAllowedAddress?: (ip: string) => boolean;
  /** Destination ports allowed. Default {@link DEFAULT_EGRESS_PORTS}. */
  ports?: readonly number[];
  /** Default {@link EGRESS_CONNECT_TIMEOUT_MS} (milliseconds). */
  connectTimeoutMs?: number;
  /** Default {@link EGRESS_IDLE_TIMEOUT_MS} (milliseconds). */
  idleTimeoutMs?: number;
}

/** One kind of refused request: the host asked for and why, with how often it happened. */
export interface EgressRefusal {
  /** The requested host, lower-cased (an IPv6 literal without brackets). */
  host: string;
  /** The one-line reason also sent in the 403 body, e.g. `host not in the allowlist: x`. */
  reason: string;
  /** How many requests were refused with this host and reason. */
  count: number;
}

/** What the proxy did so far. */
export interface EgressStats {
  /** Requests that passed the policy (an upstream connection was attempted). */
  allowed: number;
  /**
   * Requests refused by the policy (403), one entry per distinct host and reason, in order of
   * first occurrence, at most 100 entries.
   */
  refused: EgressRefusal[];
}

/** A running egress proxy. */
export interface EgressProxy {
  /** The Unix socket it listens on. */
  readonly socketPath: string;
  /** Stops listening, closes every open connection and removes the socket file. Idempotent. */
  close(): Promise<void>;
  /** A snapshot of the counters. */
  stats(): EgressStats;
}

// ---------------------------------------------------------------------------------------------
// Host names and the allowlist

type HostName = { kind: "name"; host: string } | { kind: "ip"; host: string };

const LABEL = /^[a-z0-9_](?:[a-z0-9_-]{0,61}[a-z0-9_])?$/;

/**
 * A host as it appears in a request or the allowlist, normalised: IP literals (IPv6 with or
 * without brackets) in canonical form ({@link canonicalAddress}), names lower-cased without a trailing dot.
 * `null` when it is neither a valid IP literal nor a valid DNS name — including names whose
 * last label is numeric (`127.1`, `0x7f.1`), which resolvers read as IPv4 addresses.
 */
function normalizeHost(raw: string): HostName | null {
  let host = raw.trim().toLowerCase();
  const bracketed = host.startsWith("[") && host.endsWith("]");
  if (bracketed) host = host.slice(1, -1);
  if (host.includes("%")) return null;
  const ipKind = net.isIP(host);
  if (ipKind !== 0) {
    const canonical = canonicalAddress(host);
    if (canonical === null || (bracketed && ipKind !== 6)) return null;
    return { kind: "ip", host: canonical };
  }
  if (bracketed) return null;
  if (host.endsWith(".")) host = host.slice(0, -1);
  if (host.length === 0 || host.length > 253) return null;
  const labels = host.split(".");
  if (!labels.every((label) => LABEL.test(label))) return null;
  if (/^(?:[0-9]+|0x[0-9a-f]*)$/.test(labels[labels.length - 1]!)) return null;
  return { kind: "name", host };
}

interface Allowlist {
  names: Set<string>;
  suffixes: string[];
  ips: Set<string>;
}

function compileAllowlist(entries: readonly string[]): Allowlist {
  const list: Allowlist = { names: new Set(), suffixes: [], ips: new Set() };
  for (const entry of entries) {
    const wildcard = entry.trim().startsWith("*.");
    const parsed = normalizeHost(wildcard ? entry.trim().slice(2) : entry);
    const ok = parsed !== null && (!wildcard || (parsed.kind === "name" && parsed.host.includes(".")));
    if (!ok) {
      throw new ConfigError(`egress allowlist entry is not a host name, a *.domain wildcard or an IP address: ${JSON.stringify(entry)}`);
    }
    if (wildcard) list.suffixes.push(`.${parsed.host}`);
    else if (parsed.kind === "ip") list.ips.add(parsed.host);
    else list.names.add(parsed.host);
  }
  return list;
}

function allowlistMatches(list: Allowlist, host: HostName): boolean {
  if (host.kind === "ip") return list.ips.has(host.host);
  return list.names.has(host.host) || list.suffixes.some((suffix) => host.host.endsWith(suffix));
}

/**
 * Whether `host` (a name or IP literal, as in a request) matches `allow` under the rules of
 * {@link EgressProxyOptions.allow}: exact names and `*.domain` suffixes, case-insensitive,
 * ignoring a trailing dot; IP literals only when listed exactly. Says nothing about the
 * addresses the name resolves to.
 *
 * @throws {ConfigError} an entry of `allow` is malformed
 */
export function isHostAllowed(host: string, allow: readonly string[]): boolean {
  const list = compileAllowlist(allow);
  const parsed = normalizeHost(host);
  return parsed !== null && allowlistMatches(list, parsed);
}

// ---------------------------------------------------------------------------------------------
// Request targets

interface Target {
  host: HostName;
  port: number;
}

/** `host:port`, `[v6]:port`, or without the port when `defaultPort` is given. */
function parseAuthority(authority: string, defaultPort: number | null): Target | null {
  let hostPart: string;
  let portPart: string | undefined;
  if (authority.startsWith("[")) {
    const close = authority.indexOf("]");
    if (close < 0) return null;
    hostPart = authority.slice(0, close + 1);
    const rest = authority.slice(close + 1);
    if (rest !== "" && !rest.startsWith(":")) return null;
    portPart = rest === "" ? undefined : rest.slice(1);
  } else {
    const colon = authority.lastIndexOf(":");
    hostPart = colon < 0 ? authority : authority.slice(0, colon);
    portPart = colon < 0 ? undefined : authority.slice(colon + 1);
    if (hostPart.includes(":")) return null;
  }
  let port: number;
  if (portPart === undefined || portPart === "") {
    if (defaultPort === null) return null;
    port = defaultPort;
  } else {
    if (!/^[0-9]{1,5}$/.test(portPart)) return null;
    port = Number(portPart);
    if (port < 1 || port > 65_535) return null;
  }
  const host = normalizeHost(hostPart);
  return host ? { host, port } : null;
}

function displayHost(host: HostName): string {
  return host.kind === "ip" && host.host.includes(":") ? `[${host.host}]` : host.host;
}

// ---------------------------------------------------------------------------------------------
// Plain HTTP forwarding

/** Methods accepted in absolute-form requests; CONNECT is handled on its own. */
const FORWARDED_METHODS = new Set(["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"]);

/** Hop-by-hop headers (RFC 9110 §7.6.1) and the proxy's own, never forwarded. */
const HOP_BY_HOP = new Set([
  "connection",
  "keep-alive",
  "proxy-connection",
  "proxy-authorization",
  "proxy-authenticate",
  "te",
  "trailer",
  "transfer-encoding",
  "upgrade",
]);

/** The end-to-end headers of `rawHeaders`, minus hop-by-hop ones, those named in Connection, and `drop`. */
function endToEndHeaders(rawHeaders: readonly string[], drop: readonly string[] = []): Record<string, string[]> {
  const named = new Set(drop);
  for (let i = 0; i + 1 < rawHeaders.length; i += 2) {
    if (rawHeaders[i]!.toLowerCase() === "connection") {
      for (const token of rawHeaders[i + 1]!.split(",")) named.add(token.trim().toLowerCase());
    }
  }
  const headers: Record<string, string[]> = {};
  for (let i = 0; i + 1 < rawHeaders.length; i += 2) {
    const name = rawHeaders[i]!.toLowerCase();
    if (HOP_BY_HOP.has(name) || named.has(name)) continue;
    (headers[name] ??= []).push(rawHeaders[i + 1]!);
  }
  return headers;
}

/**
 * An agent whose only connection is one already established to a checked address. Handing the
 * socket over through an agent (rather than the `createConnection` request option) also works
 * when something has patched `http.request`, e.g. request interceptors in tests or tracing.
 */
class ConnectedSocketAgent extends http.Agent {
  readonly #socket: net.Socket;

  constructor(socket: net.Socket) {
    super({ keepAlive: false, maxSockets: 1 });
    this.#socket = socket;
  }

  override createConnection(): net.Socket {
    return this.#socket;
  }
}

// ---------------------------------------------------------------------------------------------
// The proxy

interface Refusal {
  ok: false;
  status: 403 | 502 | 504;
  reason: string;
}

type Admission = { ok: true; addresses: string[] } | Refusal;

class TimeoutError extends Error {}

function withTimeout<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new TimeoutError(`${what} timed out after ${ms} ms`)), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

async function defaultResolve(host: string): Promise<string[]> {
  const results = await lookup(host, { all: true, verbatim: true });
  return results.map((r) => r.address);
}

function errorCode(err: unknown): string {
  if (err instanceof TimeoutError) return err.message;
  const code = (err as { code?: unknown } | null)?.code;
  return typeof code === "string" ? code : err instanceof Error ? err.message : String(err);
}

function plainBody(reason: string): Buffer {
  return Buffer.from(`${reason.replace(/[\r\n]+/g, " ")}\n`, "utf8");
}

const STATUS_TEXT: Readonly<Record<number, string>> = {
  400: "Bad Request",
  403: "Forbidden",
  405: "Method Not Allowed",
  502: "Bad Gateway",
  504: "Gateway Timeout",
};

/** Answers on a raw socket (CONNECT) and closes it. */
function answerSocket(socket: Duplex, status: number, reason: string): void {
  const body = plainBody(reason);
  const head =
    `HTTP/1.1 ${status} ${STATUS_TEXT[status] ?? "Error"}\r\n` +
    `Content-Type: text/plain; charset=utf-8\r\nContent-Length: ${body.length}\r\nConnection: close\r\n\r\n`;
  if (!socket.writable) {
    socket.destroy();
    return;
  }
  socket.end(Buffer.concat([Buffer.from(head, "latin1"), body]));
}

/** Answers an ordinary request and closes the connection. */
function answerRequest(res: http.ServerResponse, status: number, reason: string, extra: Record<string, string> = {}): void {
  if (res.headersSent) {
    res.destroy();
    return;
  }
  const body = plainBody(reason);
  res.writeHead(status, {
    ...extra,
    "content-type": "text/plain; charset=utf-8",
    "content-length": String(body.length),
    connection: "close",
  });
  res.end(body);
}

/**
 * Starts an HTTP proxy on a Unix socket, for a sandboxed command's network access.
 *
 * Accepted, nothing else:
 * - `CONNECT host:port` (HTTPS and any other TLS): answered `200 Connection Established`, then
 *   bytes are piped both ways unchanged.
 * - Absolute-form plain HTTP (`GET http://host[:port]/path`; also HEAD, POST, PUT, PATCH,
 *   DELETE, OPTIONS): forwarded with `Connection: close`, `Host` set from the request target
 *   (RFC 9112 §3.2.2), hop-by-hop headers and `Proxy-Authorization` removed; the proxy never
 *   adds credentials.
 * Origin-form requests (`GET /path`), `https://` or other schemes in absolute form, and
 * credentials in the target answer 400; other methods 405.
 *
 * A destination is allowed when its host matches `allow` (see {@link EgressProxyOptions.allow}),
 * its port is in `ports`, and every address the proxy resolves it to passes the address policy
 * (default {@link classifyAddress}: public unicast only — no loopback, private, link-local
 * including 169.254.169.254, CGNAT, multicast, reserved, or IPv6 forms embedding those). The
 * proxy then connects to those checked addresses in order — never to the name again, so a
 * second DNS answer cannot redirect it. Refusals answer 403 with a one-line reason
 * (`host not in the allowlist: x`, `port not allowed: 22`,
 * `address not allowed: 127.0.0.1 (loopback)`), are counted in {@link EgressProxy.stats} and
 * logged once per distinct host and reason. DNS failures answer 502, connection failures 502,
 * and a connection not established within `connectTimeoutMs` (DNS included) 504. A connection
 * idle for `idleTimeoutMs` in both directions is closed.
 *
 * @returns once the socket is listening
 * @throws {ConfigError} an allowlist entry or a port is malformed
 * @throws the `listen` error, e.g. `EADDRINUSE` when `socketPath` exists
 */
export async function startEgressProxy(options: EgressProxyOptions): Promise<EgressProxy> {
  const allowlist = compileAllowlist(options.allow);
  const ports = new Set(options.ports ?? DEFAULT_EGRESS_PORTS);
  for (const port of ports) {
    if (!Number.isInteger(port) || port < 1 || port > 65_535) throw new ConfigError(`egress port is not a port number: ${port}`);
  }
  const resolve = options.resolve ?? defaultResolve;
  const connectTimeoutMs = options.connectTimeoutMs ?? EGRESS_CONNECT_TIMEOUT_MS;
  const idleTimeoutMs = options.idleTimeoutMs ?? EGRESS_IDLE_TIMEOUT_MS;
  const log = options.log;

  let allowed = 0;
  const refusals = new Map<string, EgressRefusal>();
  const failuresLogged = new Set<string>();
  const open = new Set<Duplex>();
  let closing: Promise<void> | null = null;

  const track = (socket: Duplex): void => {
    open.add(socket);
    socket.once("close", () => open.delete(socket));
  };

  const refuse = (target: string, reason: string): Refusal => {
    const key = `${target}\n${reason}`;
    const known = refusals.get(key);
    if (known) known.count += 1;
    else if (refusals.size < MAX_REFUSALS_KEPT) {
      refusals.set(key, { host: target, reason, count: 1 });
      log?.warn({ host: target, reason }, "egress proxy refused a request");
    }
    return { ok: false, status: 403, reason };
  };

  const fail = (target: Target, status: 502 | 504, reason: string): Refusal => {
    const key = `${target.host.host}\n${reason}`;
    if (!failuresLogged.has(key) && failuresLogged.size < MAX_REFUSALS_KEPT) {
      failuresLogged.add(key);
      log?.warn({ host: target.host.host, port: target.port, reason }, "egress proxy could not reach a destination");
    }
    return { ok: false, status, reason };
  };

  /** The policy: allowlist, port, resolution, every address checked. */
  const admit = async (target: Target, deadline: number): Promise<Admission> => {
    const host = target.host.host;
    if (!allowlistMatches(allowlist, target.host)) {
      const hint = target.host.kind === "ip" ? " (IP addresses must be listed exactly)" : "";
      return refuse(host, `host not in the allowlist: ${host}${hint}`);
    }
    if (!ports.has(target.port)) return refuse(host, `port not allowed: ${target.port}`);
    let addresses: string[];
    if (target.host.kind === "ip") {
      addresses = [host];
    } else {
      try {
        addresses = await withTimeout(resolve(host), Math.max(0, deadline - Date.now()), `DNS lookup of ${host}`);
      } catch (err) {
        return err instanceof TimeoutError ? fail(target, 504, err.message) : fail(target, 502, `DNS lookup of ${host} failed: ${errorCode(err)}`);
      }
      addresses = [...new Set(addresses)];
      if (addresses.length === 0) return fail(target, 502, `DNS lookup of ${host} returned no address`);
    }
    for (const address of addresses) {
      if (net.isIP(address) === 0) return refuse(host, `address not allowed: ${address} (not an IP address)`);
      if (options.isAllowedAddress) {
        if (!options.isAllowedAddress(address)) return refuse(host, `address not allowed: ${address} (refused by the address policy)`);
      } else {
        const verdict = classifyAddress(address);
        if (!verdict.allowed) return refuse(host, `address not allowed: ${address} (${verdict.reason})`);
      }
    }
    allowed += 1;
    return { ok: true, addresses };
  };

  /** Connects to the first of `addresses` that answers before the deadline. */
  const connect = async (addresses: string[], port: number, deadline: number, signal: AbortSignal): Promise<net.Socket> => {
    let lastError: unknown = new TimeoutError(`connecting timed out after ${connectTimeoutMs} ms`);
    for (const address of addresses) {
      const remaining = deadline - Date.now();
      if (remaining <= 0 || signal.aborted) break;
      try {
        return await new Promise<net.Socket>((resolvePromise, reject) => {
          const socket = net.connect({ host: address, port, allowHalfOpen: true });
          track(socket);
          // Later errors also close the socket, which the users of the socket act on.
          socket.on("error", () => socket.destroy());
          const onAbort = (): void => {
            socket.destroy();
            reject(new Error("client went away"));
          };
          const timer = setTimeout(() => {
            socket.destroy();
            reject(new TimeoutError(`connecting to ${address} port ${port} timed out after ${connectTimeoutMs} ms`));
          }, remaining);
          signal.addEventListener("abort", onAbort, { once: true });
          socket.once("connect", () => {
            clearTimeout(timer);
            signal.removeEventListener("abort", onAbort);
            resolvePromise(socket);
          });
          socket.once("error", (err) => {
            clearTimeout(timer);
            signal.removeEventListener("abort", onAbort);
            socket.destroy();
            reject(err);
          });
        });
      } catch (err) {
        lastError = err;
      }
    }
    throw lastError;
  };

  const unreachable = (target: Target, err: unknown): Refusal =>
    err instanceof TimeoutError
      ? fail(target, 504, `${err.message}`)
      : fail(target, 502, `cannot connect to ${displayHost(target.host)} port ${target.port}: ${errorCode(err)}`);

  // Absolute-form and CONNECT requests carry their destination in the target; a missing Host
  // header is no reason to refuse them (Node.js answers 400 by default).
  const server = http.createServer({ requireHostHeader: false });
  server.maxConnections = MAX_CONNECTIONS;
  server.timeout = idleTimeoutMs;
  server.on("connection", (socket: net.Socket) => track(socket));

  server.on("connect", (req: http.IncomingMessage, socket: Duplex, head: Buffer) => {
    const client = socket as net.Socket; // http.Server's connections are net.Sockets
    void (async () => {
      client.on("error", () => client.destroy());
      client.setTimeout(idleTimeoutMs, () => client.destroy());
      const target = parseAuthority(req.url ?? "", null);
      if (!target) {
        answerSocket(client, 400, "CONNECT needs host:port");
        return;
      }
      const deadline = Date.now() + connectTimeoutMs;
      const admission = await admit(target, deadline);
      if (!admission.ok) {
        answerSocket(client, admission.status, admission.reason);
        return;
      }
      if (client.destroyed) return;
      const gone = new AbortController();
      const onGone = (): void => gone.abort();
      client.once("close", onGone);
      let upstream: net.Socket;
      try {
        upstream = await connect(admission.addresses, target.port, deadline, gone.signal);
      } catch (err) {
        if (gone.signal.aborted) return;
        const failure = unreachable(target, err);
        answerSocket(client, failure.status, failure.reason);
        return;
      } finally {
        client.off("close", onGone);
      }
      if (client.destroyed) {
        upstream.destroy();
        return;
      }
      const teardown = (): void => {
        client.destroy();
        upstream.destroy();
      };
      upstream.setTimeout(idleTimeoutMs, teardown);
      client.setTimeout(idleTimeoutMs, teardown);
      upstream.on("error", teardown);
      client.on("error", teardown);
      upstream.on("close", teardown);
      client.on("close", teardown);
      client.write("HTTP/1.1 200 Connection Established\r\n\r\n");
      if (head.length > 0) upstream.write(head);
      client.pipe(upstream);
      upstream.pipe(client);
    })();
  });

  server.on("request", (req: http.IncomingMessage, res: http.ServerResponse) => {
    void (async () => {
      const url = req.url ?? "";
      const method = req.method ?? "";
      const absolute = /^([a-z][a-z0-9+.-]*):\/\/([^/?#]*)([^#]*)/i.exec(url);
      if (!absolute) {
        answerRequest(res, 400, "this proxy accepts CONNECT host:port and absolute-form http:// requests only");
        return;
      }
      if (absolute[1]!.toLowerCase() !== "http") {
        answerRequest(res, 400, `only http:// targets are forwarded (use CONNECT for ${absolute[1]!.toLowerCase()})`);
        return;
      }
      if (!FORWARDED_METHODS.has(method)) {
        answerRequest(res, 405, `method not allowed: ${method}`, { allow: [...FORWARDED_METHODS, "CONNECT"].join(", ") });
        return;
      }
      if (absolute[2]!.includes("@")) {
        answerRequest(res, 400, "credentials in the request target are not accepted");
        return;
      }
      const target = parseAuthority(absolute[2]!, 80);
      if (!target) {
        answerRequest(res, 400, "invalid host in the request target");
        return;
      }
      const requestPath = absolute[3] === "" ? "/" : absolute[3]!.startsWith("/") ? absolute[3]! : `/${absolute[3]!}`;

      const deadline = Date.now() + connectTimeoutMs;
      const admission = await admit(target, deadline);
      if (!admission.ok) {
        answerRequest(res, admission.status, admission.reason);
        return;
      }
      if (res.destroyed) return;
      const gone = new AbortController();
      const onGone = (): void => gone.abort();
      res.once("close", onGone);
      let upstream: net.Socket;
      try {
        upstream = await connect(admission.addresses, target.port, deadline, gone.signal);
      } catch (err) {
        res.off("close", onGone);
        if (gone.signal.aborted) return;
        const failure = unreachable(target, err);
        answerRequest(res, failure.status, failure.reason);
        return;
      }
      res.off("close", onGone);
      if (res.destroyed) {
        upstream.destroy();
        return;
      }
      upstream.setTimeout(idleTimeoutMs, () => upstream.destroy(new TimeoutError(`idle for ${idleTimeoutMs} ms`)));

      const headers: http.OutgoingHttpHeaders = endToEndHeaders(req.rawHeaders, ["host"]);
      headers.host = target.port === 80 ? displayHost(target.host) : `${displayHost(target.host)}:${target.port}`;
      headers.connection = "close";
      if (req.headers["transfer-encoding"] !== undefined) headers["transfer-encoding"] = "chunked";

      const forwarded = http.request({
        method,
        path: requestPath,
        headers,
        setHost: false,
        agent: new ConnectedSocketAgent(upstream),
      });
      forwarded.on("error", (err) => {
        upstream.destroy();
        if (res.headersSent) res.destroy();
        else {
          const failure = unreachable(target, err);
          answerRequest(res, failure.status, failure.reason);
        }
      });
      forwarded.on("response", (upstreamRes: http.IncomingMessage) => {
        const responseHeaders = endToEndHeaders(upstreamRes.rawHeaders);
        res.writeHead(upstreamRes.statusCode ?? 502, upstreamRes.statusMessage, responseHeaders);
        upstreamRes.on("error", () => res.destroy());
        upstreamRes.on("aborted", () => res.destroy());
        upstreamRes.pipe(res);
      });
      res.on("close", () => {
        if (!res.writableFinished) upstream.destroy();
      });
      req.pipe(forwarded);
    })();
  });

  server.on("clientError", (_err: Error, socket: Duplex) => {
    answerSocket(socket, 400, "malformed request");
  });

  await new Promise<void>((resolvePromise, reject) => {
    server.once("error", reject);
    server.listen(options.socketPath, () => {
      server.off("error", reject);
      resolvePromise();
    });
  });
  await chmod(options.socketPath, 0o600);

  return {
    socketPath: options.socketPath,
    stats: () => ({ allowed, refused: [...refusals.values()].map((r) => ({ ...r })) }),
    close: () => {
      closing ??= (async () => {
        const closed = new Promise<void>((resolvePromise) => server.close(() => resolvePromise()));
        for (const socket of open) socket.destroy();
        await closed;
        await unlink(options.socketPath).catch(() => undefined);
      })();
      return closing;
    },
  };
}

// ---------------------------------------------------------------------------------------------
// Inside the sandbox

function checkPort(port: number): void {
  if (!Number.isInteger(port) || port < 1 || port > 65_535) throw new ConfigError(`egress forwarder port is not a port number: ${port}`);
}

function checkSocketPath(socketPath: string): void {
  if (!path.isAbsolute(socketPath) || socketPath.includes("\0")) {
    throw new ConfigError(`egress proxy socket path must be absolute: ${JSON.stringify(socketPath)}`);
  }
}

/**
 * A self-contained CommonJS script for `node -e` (run with the host's Node.js,
 * `process.execPath`, inside the sandbox): listens on `127.0.0.1:port` in the sandbox's own
 * network namespace and pipes every connection, both ways, to the proxy's Unix socket at
 * `socketPath`. It prints nothing and writes no file. It exits with status 70 when it cannot
 * listen, and on its own when its parent process changes (the command it served has ended;
 * read from `/proc/self/stat` every 500 milliseconds).
 *
 * @throws {ConfigError} `port` is not 1–65535 or `socketPath` is not absolute
 */
export function egressForwarderScript(port: number, socketPath: string): string {
  checkPort(port);
  checkSocketPath(socketPath);
  return [
    `"use strict";const net=require("node:net");const S=${JSON.stringify(socketPath)};`,
    `const server=net.createServer({allowHalfOpen:true},(c)=>{const u=net.connect({path:S,allowHalfOpen:true});`,
    `const end=()=>{c.destroy();u.destroy();};c.on("error",end);u.on("error",end);c.on("close",end);u.on("close",end);`,
    `c.pipe(u);u.pipe(c);});`,
    `server.on("error",()=>process.exit(70));server.listen(${port},"127.0.0.1");`,
    // process.ppid is read once at start-up; /proc/self/stat has the current parent.
    `const fs=require("node:fs");const ppid=()=>{try{return fs.readFileSync("/proc/self/stat","utf8").replace(/^.*\\) /s,"").split(" ")[1];}catch{return "";}};`,
    `const parent=ppid();setInterval(()=>{if(ppid()!==parent)process.exit(0);},500).unref();`,
  ].join("");
}

/**
 * A self-contained script for `node -e` that waits until `127.0.0.1:port` accepts a
 * connection (polling every 25 milliseconds) and exits 0, or after `timeoutMs` milliseconds
 * writes one line to stderr and exits 1. Prints nothing on success.
 *
 * @throws {ConfigError} `port` is not 1–65535
 */
function egressWaitScript(port: number, timeoutMs = 5_000): string {
  checkPort(port);
  return [
    `"use strict";const net=require("node:net");const end=Date.now()+${Math.max(0, Math.floor(timeoutMs))};`,
    `(function attempt(){const s=net.connect(${port},"127.0.0.1");`,
    `s.on("connect",()=>{s.destroy();process.exit(0);});`,
    `s.on("error",()=>{s.destroy();if(Date.now()>end){process.stderr.write("egress proxy forwarder did not start on 127.0.0.1:${port}\\n");process.exit(1);}setTimeout(attempt,25);});})();`,
  ].join("");
}

/** Single-quotes a word for `sh`. */
function shellQuote(word: string): string {
  return `'${word.replace(/'/g, `'\\''`)}'`;
}

/** Exit status of {@link egressShellCommand} when the forwarder did not start. */
const EGRESS_FORWARDER_FAILED_EXIT = 125;

/**
 * `command` wrapped for `sh -c` inside the sandbox: starts the forwarder
 * ({@link egressForwarderScript}) in the background with its output discarded, waits until its
 * port accepts connections ({@link egressWaitScript}; on failure exits
 * {@link EGRESS_FORWARDER_FAILED_EXIT} after one line on stderr), then `exec`s
 * `/bin/sh -c -- command`, so the command's exit status and output are its own.
 *
 * @param nodePath - the Node.js binary as seen inside the sandbox; default `process.execPath`
 * @throws {ConfigError} `port` or `socketPath` is malformed
 */
export function egressShellCommand(command: string, port: number, socketPath: string, nodePath: string = process.execPath): string {
  const node = shellQuote(nodePath);
  return [
    `${node} -e ${shellQuote(egressForwarderScript(port, socketPath))} </dev/null >/dev/null 2>&1 &`,
    `${node} -e ${shellQuote(egressWaitScript(port))} </dev/null >/dev/null || exit ${EGRESS_FORWARDER_FAILED_EXIT}`,
    `exec /bin/sh -c -- ${shellQuote(command)}`,
  ].join("\n");
}

/**
 * The environment variables that send a command's HTTP and HTTPS traffic through the
 * forwarder on `127.0.0.1:port`: `HTTP_PROXY`, `HTTPS_PROXY`, `http_proxy`, `https_proxy`,
 * `npm_config_proxy`, `npm_config_https_proxy` set to `http://127.0.0.1:<port>`, and
 * `NO_PROXY`/`no_proxy` empty (nothing bypasses the proxy; there is nothing else to reach).
 * Several names are lower-case, so they must be added after any upper-case-only filter.
 *
 * @throws {ConfigError} `port` is not 1–65535
 */
export function egressEnv(port: number): Record<string, string> {
  checkPort(port);
  const url = `http://127.0.0.1:${port}`;
  return {
    HTTP_PROXY: url,
    HTTPS_PROXY: url,
    http_proxy: url,
    https_proxy: url,
    npm_config_proxy: url,
    npm_config_https_proxy: url,
    NO_PROXY: "",
    no_proxy: "",
  };
}

// ---------------------------------------------------------------------------------------------
// The default allowlist

/** The host name of a URL, lower-cased, or `null`. */
function urlHost(value: string | undefined): string | null {
  if (!value) return null;
  try {
    const parsed = normalizeHost(new URL(value.trim()).hostname);
    return parsed ? parsed.host : null;
  } catch {
    return null;
  }
}

/** `npm config get registry` with npm's own configuration variables only; `null` on any failure. */
function npmConfigRegistry(): Promise<string | null> {
  const env: Record<string, string> = {
    PATH: [process.env.PATH, path.dirname(process.execPath)].filter(Boolean).join(":"),
    HOME: os.homedir(),
  };
  for (const [name, value] of Object.entries(process.env)) {
    if (/^npm_config_/i.test(name) && value !== undefined) env[name] = value;
  }
  return new Promise((resolvePromise) => {
    execFile("npm", ["config", "get", "registry"], { env, cwd: os.homedir(), timeout: 10_000, maxBuffer: 64 * 1024, windowsHide: true }, (err, stdout) =>
      resolvePromise(err ? null : stdout.trim()),
    );
  });
}

/** The package registries configured for this server, as the operator's environment names them (parsed in `config/`). */
export interface EgressRegistrySources {
  /** npm's registry URL (`npm_config_registry`); when absent, `npm config get registry` is asked. */
  npmRegistry?: string | undefined;
  /** `PIP_INDEX_URL`. */
  pipIndexUrl?: string | undefined;
  /** `PIP_EXTRA_INDEX_URL`: URLs separated by whitespace. */
  pipExtraIndexUrls?: string | undefined;
}

/**
 * The hosts of the package registries configured on this machine, for
 * {@link EgressProxyOptions.allow}: the npm registry's host name from `sources.npmRegistry`
 * or else from `npm config get registry` (run with npm's own configuration variables, HOME and
 * PATH, from the home folder, at most 10 seconds), plus the hosts of `sources.pipIndexUrl` and
 * of each URL in `sources.pipExtraIndexUrls` when set. Host names only — no
 * scheme, port or path — lower-cased, without duplicates. A source that is missing or fails
 * contributes nothing; never throws.
 */
export async function defaultEgressAllowlist(sources: EgressRegistrySources = {}): Promise<string[]> {
  const hosts: string[] = [];
  const npmHost = urlHost(sources.npmRegistry || (await npmConfigRegistry()) || undefined);
  if (npmHost) hosts.push(npmHost);
  const pipHost = urlHost(sources.pipIndexUrl);
  if (pipHost) hosts.push(pipHost);
  for (const extra of (sources.pipExtraIndexUrls ?? "").split(/\s+/)) {
    const host = urlHost(extra);
    if (host) hosts.push(host);
  }
  return [...new Set(hosts)];
}
