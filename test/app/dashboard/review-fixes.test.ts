// The review findings on the dashboard's access: budgets of a repository-scoped user, operator
// sessions after DASHBOARD_TOKEN changes, a cancelled CSV download, the sign-in session's lifetime
// and the revocation of the user-to-server token, a foreign Authorization header, and `notify`
// jobs on task pages.
import { createHash } from "node:crypto";
import { createServer, request, type Server } from "node:http";
import { Writable } from "node:stream";

import { pino } from "pino";
import { describe, expect, it } from "vitest";

import { dashboardAuthConfig, operatorSignIn } from "../../../src/app/dashboard/auth.js";
import { dashboardHandler } from "../../../src/app/dashboard/handler.js";
import type { Db } from "../../../src/store/db.js";
import { ALPHA, CLIENT_ID, dashboardEnv, GAMMA, OPERATOR_TOKEN, signInWithGitHub, useDashboardWorld } from "./fixtures.js";

const world = useDashboardWorld();

/** Signs `login` in through the OAuth flow; returns the session's `Set-Cookie`. */
async function signInCookie(url: string, login: string): Promise<string> {
  return (await signInWithGitHub(url, world.oauth, login)).setCookie;
}

const signIn = async (url: string, login: string) => (await signInCookie(url, login)).split(";")[0]!;

describe("budgets of a user scoped to some repositories", () => {
  it("leave out installation-wide, global and per-role limits (their spend includes repositories the user cannot write to)", async () => {
    const url = await world.start({ BUDGET_INSTALLATION_MONTHLY_USD: "500", BUDGET_GLOBAL_MONTHLY_USD: "5000", BUDGET_REPOSITORY_MONTHLY_USD: "100" });
    const alice = await signIn(url, "alice");
    type Budgets = { budgets: Array<{ scope: string; spent: string }> };
    const mine = (await (await fetch(`${url}/dashboard/api/budgets.json`, { headers: { cookie: alice } })).json()) as Budgets;
    expect(mine.budgets.length).toBeGreaterThan(0);
    for (const b of mine.budgets) expect(b.scope).not.toMatch(/installation|global|all/i);
    expect(mine.budgets.map((b) => b.scope).join(" ")).toContain(ALPHA);
    expect(JSON.stringify(mine)).not.toContain(GAMMA);
    // The operator still sees the installation-wide limits.
    const all = (await (await fetch(`${url}/dashboard/api/budgets.json`, { headers: { authorization: `Bearer ${OPERATOR_TOKEN}` } })).json()) as Budgets;
    expect(all.budgets.some((b) => /installation/i.test(b.scope))).toBe(true);
  });
});

describe("operator sessions", () => {
  const operatorCookie = async () =>
    (await operatorSignIn(
      world.store.db,
      { ...dashboardAuthConfig(dashboardEnv({ DASHBOARD_TOKEN: OPERATOR_TOKEN })), secureCookies: false },
      OPERATOR_TOKEN,
    ))!.split(";")[0]!;

  it("store the token's SHA-256 fingerprint, never the token, and last 8 hours", async () => {
    await operatorCookie();
    const row = await world.store.db.selectFrom("dashboard_sessions").selectAll().executeTakeFirstOrThrow();
    expect(row.operator_token_sha256).toBe(createHash("sha256").update(OPERATOR_TOKEN).digest("hex"));
    expect(JSON.stringify(row)).not.toContain(OPERATOR_TOKEN);
    expect(Number(row.expires_at) - Number(row.created_at)).toBe(8 * 3_600_000);
  });

  it("work while DASHBOARD_TOKEN is unchanged", async () => {
    const cookie = await operatorCookie();
    const url = await world.start();
    expect((await fetch(`${url}/dashboard/api/live.json`, { headers: { cookie } })).status).toBe(200);
  });

  it("are refused once DASHBOARD_TOKEN changes", async () => {
    const cookie = await operatorCookie();
    const url = await world.start({ DASHBOARD_TOKEN: "a-completely-new-token-0123456789abcdef" });
    expect((await fetch(`${url}/dashboard/api/spend.json?group=repository`, { headers: { cookie } })).status).toBe(401);
  });

  it("are refused once DASHBOARD_TOKEN is removed", async () => {
    const cookie = await operatorCookie();
    const url = await world.start({ DASHBOARD_TOKEN: undefined });
    expect((await fetch(`${url}/dashboard/api/live.json`, { headers: { cookie } })).status).toBe(401);
  });
});

describe("sign-in with GitHub", () => {
  it("lasts 1 hour, and revokes the user-to-server token once access is computed", async () => {
    const url = await world.start();
    const setCookie = await signInCookie(url, "alice");
    expect(setCookie).toMatch(/Max-Age=3600(;|$)/);
    const row = await world.store.db.selectFrom("dashboard_sessions").selectAll().executeTakeFirstOrThrow();
    expect(Number(row.expires_at) - Number(row.created_at)).toBe(3_600_000);
    expect(row.operator_token_sha256).toBeNull();
    expect(world.oauth.requests).toContain(`DELETE /api/v3/applications/${CLIENT_ID}/token`);
    expect(world.oauth.tokens).toHaveLength(1);
    expect(world.oauth.revoked).toEqual(world.oauth.tokens);
    // The revocation comes after the last read with the token.
    expect(world.oauth.requests.at(-1)).toBe(`DELETE /api/v3/applications/${CLIENT_ID}/token`);
  });

  it("still signs in when the revocation fails", async () => {
    const url = await world.start();
    world.oauth.failRevocations(true);
    const cookie = await signIn(url, "alice");
    expect(world.oauth.requests).toContain(`DELETE /api/v3/applications/${CLIENT_ID}/token`);
    expect(world.oauth.revoked).toEqual([]);
    expect((await fetch(`${url}/dashboard/api/live.json`, { headers: { cookie } })).status).toBe(200);
  });
});

describe("the Authorization header", () => {
  it("only a Bearer token is the operator's; another scheme falls back to the session cookie", async () => {
    const url = await world.start();
    const cookie = await signIn(url, "alice");
    const live = (headers: Record<string, string>) => fetch(`${url}/dashboard/api/live.json`, { headers });
    expect((await live({ cookie, authorization: "Basic eDp5" })).status).toBe(200);
    const tasks = ((await (await live({ cookie, authorization: "Basic eDp5" })).json()) as { tasks: Array<{ repository: string }> }).tasks;
    expect(tasks.map((t) => t.repository)).toEqual([ALPHA]);
    expect((await live({ cookie, authorization: `Bearer ${OPERATOR_TOKEN}x` })).status).toBe(401);
    expect((await live({ authorization: "Basic eDp5" })).status).toBe(401);
  });
});

describe("task pages", () => {
  it("leave out notify jobs (their errors name the operator's channels) and jobs of another repository", async () => {
    const now = Date.now();
    const job = (kind: string, lockKey: string, lastError: string) => ({
      kind: kind as "code",
      task_id: world.seeded.alphaLive,
      installation_id: 100,
      lock_key: lockKey,
      dedupe_key: `${lockKey}:${Math.random()}`,
      delivery_id: null,
      payload: "{}",
      state: "failed" as const,
      attempts: 1,
      max_attempts: 1,
      run_after: now,
      lease_owner: null,
      lease_expires_at: null,
      last_error: lastError,
      created_at: now,
      updated_at: now,
      finished_at: now,
    });
    await world.store.db
      .insertInto("jobs")
      .values(job("notify", "notify:ops-pager", "POST https://hooks.example/ops-pager-secret failed"))
      .execute();
    await world.store.db
      .insertInto("jobs")
      .values(job("plan", "other-org/other#3", "other-org/other private failure"))
      .execute();
    const url = await world.start();
    const cookie = await signIn(url, "alice");
    const page = await (await fetch(`${url}/dashboard/tasks/${world.seeded.alphaLive}`, { headers: { cookie } })).text();
    expect(page).toContain("code");
    expect(page).not.toContain("ops-pager");
    expect(page).not.toContain("notify");
    expect(page).not.toContain("other-org/other");
  });
});

describe("a cancelled CSV download", () => {
  /** Many wide ledger rows, so the response outgrows the socket's buffers. */
  async function manyRows(db: Db, count: number): Promise<void> {
    const wide = "r".repeat(2_000);
    const rows = Array.from({ length: count }, (_, i) => ({
      created_at: Date.now() - 5_000 - i,
      installation_id: 100,
      repository: ALPHA,
      subject_number: null,
      task_id: null,
      job_id: null,
      agent: "coder",
      model: "claude-sonnet-5-5",
      input_tokens: 1,
      output_tokens: 1,
      cache_creation_input_tokens: 0,
      cache_read_input_tokens: 0,
      cost_nano_usd: 1,
      request_id: `${wide}${i}`,
    }));
    for (let i = 0; i < rows.length; i += 500)
      await db
        .insertInto("llm_usage")
        .values(rows.slice(i, i + 500))
        .execute();
  }

  it("ends the handler when the client goes away after the first chunk", async () => {
    await manyRows(world.store.db, 12_000);
    const lines: Array<{ msg?: string; rows?: number }> = [];
    const sink = new Writable({
      write(chunk: Buffer, _encoding, callback) {
        lines.push(JSON.parse(chunk.toString("utf8")) as { msg?: string; rows?: number });
        callback();
      },
    });
    const handled: Array<Promise<boolean>> = [];
    const server: Server = createServer();
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
    const address = server.address();
    const port = typeof address === "object" && address ? address.port : 0;
    const handler = dashboardHandler({ db: world.store.db, env: world.env(port), log: pino({ level: "info" }, sink) });
    server.on("request", (req, res) => handled.push(handler(req, res)));
    try {
      await new Promise<void>((resolve, reject) => {
        const req = request(`http://127.0.0.1:${port}/dashboard/export.csv`, { headers: { authorization: `Bearer ${OPERATOR_TOKEN}` } }, (res) => {
          res.once("data", () => {
            req.destroy();
            resolve();
          });
        });
        req.on("error", (err) => (err.message.includes("socket hang up") || /aborted/i.test(err.message) ? undefined : reject(err)));
        req.end();
      });
      expect(handled).toHaveLength(1);
      let timer: NodeJS.Timeout | undefined;
      const outcome = await Promise.race([
        handled[0]!.then(() => "finished"),
        new Promise<string>((resolve) => (timer = setTimeout(() => resolve("still waiting"), 5_000))),
      ]);
      clearTimeout(timer);
      expect(outcome).toBe("finished");
      const cancelled = lines.find((l) => l.msg === "dashboard: CSV export cancelled by the client");
      expect(cancelled).toBeDefined();
      expect(cancelled!.rows).toBeLessThan(12_000);
    } finally {
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    }
  }, 20_000);
});
