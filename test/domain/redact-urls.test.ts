import { describe, expect, it } from "vitest";

import { REDACTED, redactSecrets } from "../../src/domain/redact.js";

const R = REDACTED;

describe("redactSecrets: passwords in URLs", () => {
  it.each([
    ["redis, password only", "redis://:s3cr3t-pw@cache.internal:6379/0", `redis://:${R}@cache.internal:6379/0`],
    ["redis with a user (ACL)", "redis://mission:s3cr3t-pw@cache.internal:6379", `redis://mission:${R}@cache.internal:6379`],
    ["rediss (TLS)", "rediss://default:s3cr3t-pw@cache.example.test:6380", `rediss://default:${R}@cache.example.test:6380`],
    ["postgres", "postgres://mission:s3cr3t-pw@db.internal:5432/mission", `postgres://mission:${R}@db.internal:5432/mission`],
    [
      "postgresql with query",
      "postgresql://mission:s3cr3t-pw@db.internal/mission?sslmode=require",
      `postgresql://mission:${R}@db.internal/mission?sslmode=require`,
    ],
    ["https basic auth", "https://deploy:s3cr3t-pw@git.example.test/o/r.git", `https://deploy:${R}@git.example.test/o/r.git`],
    ["percent-encoded password", "postgres://mission:p%40ss%2Fw0rd@db/mission", `postgres://mission:${R}@db/mission`],
    ["an unencoded @ in the password", "redis://:p@ss@cache:6379", `redis://:${R}@cache:6379`],
  ])("%s", (_name, url, expected) => {
    expect(redactSecrets(`connecting to ${url} failed`)).toBe(`connecting to ${expected} failed`);
  });

  it("in an environment line and in JSON", () => {
    expect(redactSecrets("REDIS_URL=redis://:s3cr3t-pw@cache:6379\nDATABASE_URL=postgres://u:s3cr3t-pw@db/x")).toBe(
      `REDIS_URL=redis://:${R}@cache:6379\nDATABASE_URL=postgres://u:${R}@db/x`,
    );
    expect(redactSecrets(`{"redisConfig":"redis://:s3cr3t-pw@cache:6379"}`)).toBe(`{"redisConfig":"redis://:${R}@cache:6379"}`);
  });

  it("keeps URLs without a password, ports, user-only URLs and placeholders", () => {
    const text = [
      "redis://127.0.0.1:6379",
      "redis://cache:6379/2",
      "ssh://git@github.com:22/o/r.git",
      "https://example.com:8443/users/@me",
      "http://[::1]:8080/healthz",
      "postgres://mission@db/mission",
      "postgres://user:${DB_PASSWORD}@db/mission",
      "redis://:<password>@host:6379",
    ].join("\n");
    expect(redactSecrets(text)).toBe(text);
  });

  it("does not redact twice what the x-access-token rule already redacted", () => {
    expect(redactSecrets("https://x-access-token:ghs_0123456789abcdef@github.com/o/r.git")).toBe(`https://x-access-token:${R}@github.com/o/r.git`);
  });

  it("stays linear on long runs that look like schemes", () => {
    const started = performance.now();
    redactSecrets(`${"a.".repeat(200_000)}://x:y`);
    redactSecrets(`redis://u:${"p".repeat(200_000)}`);
    expect(performance.now() - started).toBeLessThan(2_000);
  });
});
