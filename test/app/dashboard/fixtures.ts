import { createServer, type Server } from "node:http";

import { pino } from "pino";
import { afterEach, beforeEach, expect } from "vitest";

import { dashboardHandler } from "../../../src/app/dashboard/handler.js";
import { parseServerEnv, type ServerEnv } from "../../../src/config/env.js";
import type { Db } from "../../../src/store/db.js";
import { enqueueJob, queueOf } from "../../../src/store/queue.js";
import { recordUsage } from "../../../src/store/usage.js";
import { createTask, updateTask } from "../../../src/store/tasks.js";
import { transition } from "../../../src/store/transitions.js";
import { createTestDatabase, type TestDatabase } from "../../helpers/db.js";
import { type FakeOAuth, type FakeOAuthUser, startOAuthFake } from "../../helpers/oauth-fake.js";

export const DAY = 86_400_000;
export const OPERATOR_TOKEN = "op-token-0123456789abcdef0123456789abcdef";
export const CLIENT_ID = "Iv1.dashboardtest";
export const CLIENT_SECRET = "dashboard-client-secret-0123456789";

/** Installation 100 holds acme/alpha (alice may push) and acme/gamma (alice may only read); 200 holds beta-org/beta. */
export const ALPHA = "acme/alpha";
export const GAMMA = "acme/gamma";
export const BETA = "beta-org/beta";

/** alice: push on acme/alpha only. bob: admin on beta-org/beta. */
export const USERS: FakeOAuthUser[] = [
  {
    login: "alice",
    id: 501,
    installations: [
      {
        id: 100,
        repositories: [
          { full_name: ALPHA, push: true },
          { full_name: GAMMA, push: false },
        ],
      },
      { id: 200, repositories: [{ full_name: BETA, push: false }] },
    ],
  },
  { login: "bob", id: 502, installations: [{ id: 200, repositories: [{ full_name: BETA, admin: true }] }] },
];

/** What {@link seedDashboard} created. */
export interface Seeded {
  /** acme/alpha#11 in coding, with a running `code` job. */
  alphaLive: number;
  /** acme/alpha#12, failed. */
  alphaFailed: number;
  /** acme/gamma#4, merged. */
  gammaMerged: number;
  /** beta-org/beta#7 in reviewing. */
  betaLive: number;
  /** n$ of every ledger row of each repository. */
  spent: Record<string, number>;
  /** Ledger rows per repository. */
  calls: Record<string, number>;
}

async function newTask(db: Db, repository: string, installationId: number, issue: number, title: string, startedAt: number): Promise<number> {
  const [owner = "", repo = ""] = repository.split("/");
  const task = await createTask(db, {
    installation_id: installationId,
    owner,
    repo,
    issue_number: issue,
    run: 1,
    stage: "new",
    triggered_by: "maintainer",
    clone_url: `https://github.com/${repository}.git`,
    default_branch: "main",
    config: "{}",
    issue_title: title,
    created_at: startedAt,
    updated_at: startedAt,
    started_at: startedAt,
  });
  return task.id;
}

/**
 * Tasks and ledger rows over the last 10 days in three repositories of two installations:
 * coder and reviewer calls on two models, one live task per installation with a job, one
 * failure, one merged task.
 */
export async function seedDashboard(db: Db, now = Date.now()): Promise<Seeded> {
  const start = now - 3 * 3_600_000;
  const alphaLive = await newTask(db, ALPHA, 100, 11, "Add retries to the importer", start);
  await transition(db, alphaLive, "planning", { reason: "triggered by the label", actor: "maintainer", now: start });
  await transition(db, alphaLive, "coding", { reason: "plan ready", actor: "mission-control", now: start + 600_000 });
  const alphaFailed = await newTask(db, ALPHA, 100, 12, "Fix the flaky login test", now - 2 * DAY);
  await transition(db, alphaFailed, "planning", { reason: "triggered by the label", actor: "maintainer", now: now - 2 * DAY });
  await transition(db, alphaFailed, "failed", { reason: "the tests failed after 3 revisions", actor: "mission-control", now: now - DAY });
  await updateTask(db, alphaFailed, { failure_reason: "the tests failed after 3 revisions" });
  const gammaMerged = await newTask(db, GAMMA, 100, 4, "Gamma docs", now - 5 * DAY);
  await transition(db, gammaMerged, "planning", { reason: "triggered by the label", actor: "maintainer", now: now - 5 * DAY });
  await transition(db, gammaMerged, "coding", { reason: "plan ready", actor: "mission-control", now: now - 5 * DAY });
  await transition(db, gammaMerged, "merged", { reason: "merged by a maintainer", actor: "maintainer", now: now - 4 * DAY });
  const betaLive = await newTask(db, BETA, 200, 7, "Secret beta work", start);
  await transition(db, betaLive, "reviewing", { reason: "pull request opened", actor: "maintainer", now: start });

  await startJob(db, alphaLive, 100, "code", `${ALPHA}#11`);
  await startJob(db, betaLive, 200, "review", `${BETA}#7`);

  const spent: Record<string, number> = {};
  const calls: Record<string, number> = {};
  const rows: Array<[string, number, number, number, string, string, number]> = [];
  // [repository, installation, task, days ago, agent, model, n$]
  for (let d = 0; d < 10; d++) {
    rows.push([ALPHA, 100, alphaLive, d, "coder", "claude-sonnet-5-5", 120_000_000 + d * 1_000_000]);
    rows.push([ALPHA, 100, alphaFailed, d, "reviewer", "claude-haiku-5", 30_000_000]);
    if (d % 2 === 0) rows.push([GAMMA, 100, gammaMerged, d, "coder", "claude-sonnet-5-5", 50_000_000]);
    rows.push([BETA, 200, betaLive, d, "coder", "claude-opus-5", 900_000_000]);
  }
  for (const [repository, installationId, taskId, daysAgo, agent, model, cost] of rows) {
    await recordUsage(db, {
      created_at: now - daysAgo * DAY - 60_000,
      installation_id: installationId,
      repository,
      subject_number: null,
      task_id: taskId,
      job_id: null,
      agent,
      model,
      input_tokens: 1_000 + daysAgo,
      output_tokens: 200,
      cache_creation_input_tokens: 0,
      cache_read_input_tokens: 500,
      cost_nano_usd: cost,
      request_id: `req_${repository.replace("/", "_")}_${daysAgo}_${agent}`,
    });
    spent[repository] = (spent[repository] ?? 0) + cost;
    calls[repository] = (calls[repository] ?? 0) + 1;
  }
  return { alphaLive, alphaFailed, gammaMerged, betaLive, spent, calls };
}

/** Enqueues a stage job for the task and claims it, so it is running. */
export async function startJob(db: Db, taskId: number, installationId: number, kind: "code" | "review" | "plan", lockKey: string): Promise<void> {
  await enqueueJob(db, { kind, taskId, installationId, lockKey, dedupeKey: `${taskId}:${kind}:${Math.random()}`, payload: { taskId }, maxAttempts: 3 });
  await queueOf(db).claim(db, "dashboard-test", 60_000, { only: [kind] });
}

/** The server environment of a dashboard test. */
export function dashboardEnv(overrides: Record<string, string> = {}): ServerEnv {
  return parseServerEnv({ APP_ID: "1", WEBHOOK_SECRET: "secret", ANTHROPIC_API_KEY: "sk-test", LOG_LEVEL: "silent", ...overrides });
}

/** The dashboard's handler alone on an HTTP server on loopback (no Probot, no worker). */
export async function startDashboard(db: Db, env: (port: number) => ServerEnv): Promise<{ url: string; close(): Promise<void> }> {
  const server: Server = createServer();
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const address = server.address();
  const port = typeof address === "object" && address ? address.port : 0;
  const handler = dashboardHandler({ db, env: env(port), log: pino({ level: "silent" }) });
  server.on("request", (req, res) => {
    handler(req, res).then(
      (handled) => {
        if (!handled) res.writeHead(404).end("not the dashboard\n");
      },
      (err: unknown) => res.writeHead(500).end(String(err)),
    );
  });
  return {
    url: `http://127.0.0.1:${port}`,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

/** A dashboard served by {@link startDashboard}. */
export interface StartedDashboard {
  url: string;
  close(): Promise<void>;
}

/** What {@link useDashboardWorld} sets up before each test (read the fields inside tests, not at definition time). */
export interface DashboardWorld {
  store: TestDatabase;
  seeded: Seeded;
  oauth: FakeOAuth;
  /**
   * The full environment: sign-in with GitHub against the fake, the operator token, cookies
   * without Secure (loopback http); an `undefined` override removes that variable.
   */
  env(port: number, overrides?: Record<string, string | undefined>): ServerEnv;
  /** Serves the dashboard with {@link DashboardWorld.env}; returns its URL. Closed after the test. */
  start(overrides?: Record<string, string | undefined>): Promise<string>;
  /** Serves the dashboard with another environment. Closed after the test. */
  startWith(env: (port: number) => ServerEnv): Promise<StartedDashboard>;
}

/**
 * Registers `beforeEach`/`afterEach` hooks that give every test a database seeded by
 * {@link seedDashboard} and an OAuth fake knowing {@link USERS}, and close whatever was started.
 */
export function useDashboardWorld(): DashboardWorld {
  let dashboard: StartedDashboard | undefined;
  const world = {
    env(port, overrides = {}) {
      const env: Record<string, string | undefined> = {
        GHE_HOST: world.oauth.host,
        GHE_PROTOCOL: "http",
        GITHUB_CLIENT_ID: CLIENT_ID,
        GITHUB_CLIENT_SECRET: CLIENT_SECRET,
        DASHBOARD_TOKEN: OPERATOR_TOKEN,
        DASHBOARD_URL: `http://127.0.0.1:${port}`,
        DASHBOARD_COOKIE_SECURE: "off",
        ...overrides,
      };
      return dashboardEnv(Object.fromEntries(Object.entries(env).filter((e): e is [string, string] => e[1] !== undefined)));
    },
    async start(overrides = {}) {
      return (await world.startWith((port) => world.env(port, overrides))).url;
    },
    async startWith(env) {
      dashboard = await startDashboard(world.store.db, env);
      return dashboard;
    },
  } as DashboardWorld;
  beforeEach(async () => {
    world.store = await createTestDatabase();
    world.seeded = await seedDashboard(world.store.db);
    world.oauth = await startOAuthFake({ clientId: CLIENT_ID, clientSecret: CLIENT_SECRET, users: USERS });
  });
  afterEach(async () => {
    await dashboard?.close();
    dashboard = undefined;
    await world.oauth.close();
    await world.store.cleanup();
  });
  return world;
}

/**
 * Signs `login` in through the OAuth flow against the fake, following each redirect by hand and
 * keeping the state cookie; returns the callback's `Location` and the session's `Set-Cookie`.
 */
export async function signInWithGitHub(url: string, oauth: FakeOAuth, login: string): Promise<{ location: string | null; setCookie: string }> {
  oauth.signInAs(login);
  const begin = await fetch(`${url}/dashboard/login/github`, { redirect: "manual" });
  expect(begin.status).toBe(302);
  const stateCookie = begin.headers.getSetCookie().find((c) => c.startsWith("mc_oauth_state="))!;
  const authorize = await fetch(begin.headers.get("location")!, { redirect: "manual" });
  expect(authorize.status).toBe(302);
  const callback = await fetch(authorize.headers.get("location")!, { redirect: "manual", headers: { cookie: stateCookie.split(";")[0]! } });
  expect(callback.status).toBe(303);
  return { location: callback.headers.get("location"), setCookie: callback.headers.getSetCookie().find((c) => c.startsWith("mc_session="))! };
}
