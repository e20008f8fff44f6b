/**
 * The one gateway to Redis (REDIS_URL). Probot connects to it itself for the Octokit throttling
 * plugin (Bottleneck's limiters live in Redis, so every replica counts against the same limits);
 * this module only checks, before that, that the server answers — ioredis retries for ever by
 * default, so a wrong URL would otherwise show up as GitHub requests that hang. ioredis is
 * loaded here only, and only when REDIS_URL is set (dynamic import).
 */
import type { Redis, RedisOptions } from "ioredis";

import { ConfigError } from "../domain/errors.js";
import { redactSecrets } from "../domain/redact.js";

/** `host:port` of a `redis://` or `rediss://` URL, without its credentials (for messages and logs). */
export function redisAddress(url: string): string {
  try {
    const parsed = new URL(url);
    return `${parsed.hostname || "localhost"}:${parsed.port || "6379"}`;
  } catch {
    return "(invalid URL)";
  }
}

/** A client that tries once (no reconnection, no offline queue): a failure is reported, not retried. */
async function oneShotClient(url: string, timeoutMs: number): Promise<{ client: Redis; firstError: () => Error | undefined }> {
  const { Redis } = await import("ioredis");
  const options: RedisOptions = {
    lazyConnect: true,
    connectTimeout: timeoutMs,
    maxRetriesPerRequest: 0,
    enableOfflineQueue: false,
    retryStrategy: () => null,
  };
  const client = new Redis(url, options);
  // The first error says why (ECONNREFUSED, ENOTFOUND, WRONGPASS, a TLS failure); the rejection that follows is only "Connection is closed".
  let first: Error | undefined;
  client.on("error", (err: Error) => (first ??= err));
  return { client, firstError: () => first };
}

/** Runs `work`, or rejects after `timeoutMs`. */
async function within<T>(timeoutMs: number, work: Promise<T>): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_resolve, reject) => {
    timer = setTimeout(() => reject(new Error(`no answer within ${timeoutMs} ms`)), timeoutMs);
  });
  try {
    return await Promise.race([work, timeout]);
  } finally {
    clearTimeout(timer);
  }
}

/**
 * Start-up check of REDIS_URL: connects, sends PING, disconnects.
 *
 * @param url - REDIS_URL
 * @param options.timeoutMs - how long the server may take to answer (default 5 s)
 * @throws {ConfigError} `REDIS_URL: cannot reach redis at host:port (reason)` — never with the URL's password
 */
export async function checkRedis(url: string, options: { timeoutMs?: number } = {}): Promise<void> {
  const timeoutMs = options.timeoutMs ?? 5_000;
  const { client, firstError } = await oneShotClient(url, timeoutMs);
  try {
    await within(
      timeoutMs,
      client.connect().then(() => client.ping()),
    );
  } catch (err) {
    const cause = firstError() ?? err;
    const reason = cause instanceof Error ? cause.message || cause.name : String(cause);
    throw new ConfigError(`REDIS_URL: cannot reach redis at ${redisAddress(url)} (${redactSecrets(reason)})`);
  } finally {
    client.disconnect();
  }
}

/** What `/healthz` reports for Redis. */
export type RedisHealth = "ok" | "unreachable";

/** A long-lived connection that answers "does Redis answer now?" cheaply, for `/healthz`. */
export interface RedisProbe {
  /** PING within the timeout: `ok`, else `unreachable` (never throws). */
  ping(): Promise<RedisHealth>;
  /** Closes the connection. */
  close(): void;
}

/**
 * A {@link RedisProbe} for REDIS_URL. It reconnects in the background (every 5 s at most) and
 * queues nothing while disconnected, so a ping while Redis is down answers `unreachable` at once.
 *
 * @param options.timeoutMs - how long one PING may take (default 1 s)
 */
export async function createRedisProbe(url: string, options: { timeoutMs?: number } = {}): Promise<RedisProbe> {
  const timeoutMs = options.timeoutMs ?? 1_000;
  const { Redis } = await import("ioredis");
  const client = new Redis(url, {
    lazyConnect: true,
    connectTimeout: timeoutMs,
    maxRetriesPerRequest: 0,
    enableOfflineQueue: false,
    retryStrategy: (attempt: number) => Math.min(attempt * 500, 5_000),
  });
  // Probot's own connection logs Redis errors already; this one only answers pings.
  client.on("error", () => undefined);
  return {
    async ping() {
      try {
        if (client.status === "wait") await within(timeoutMs, client.connect());
        return (await within(timeoutMs, client.ping())) === "PONG" ? "ok" : "unreachable";
      } catch {
        return "unreachable";
      }
    },
    close() {
      client.disconnect();
    },
  };
}
