import { createServer, type Server } from "node:http";

import { pino } from "pino";
import { afterEach, beforeEach, expect } from "vitest";

import { dashboardHandler } from "../../../src/app/dashboard/handler.js";
import { parseServerEnv, type ServerEnv } from "../../../src/config/env.js";
import { PriceTable } from "../../../src/domain/pricing.js";
import type { Db } from "../../../src/store/db.js";
import { completeJob } from "../../../src/store/jobs.js";
import { enqueueJob, queueOf } from "../../../src/store/queue.js";
import { recordUsage } from "../../../src/store/usage.js";
import { createTask, updateTask } from "../../../src/store/tasks.js";
import { transition } from "../../../src/store/transitions.js";
import { createTestDatabase, type TestDatabase } from "../../helpers/db.js";
import { prng } from "../../helpers/prng.js";
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
  /** acme/alpha#11 in coding, its `plan` job done and its `code` job running. */
  alphaLive: number;
  /** acme/alpha#12, failed after 3 revisions. */
  alphaFailed: number;
  /** acme/gamma#4, merged. */
  gammaMerged: number;
  /** beta-org/beta#7 in reviewing, with a running `review` job. */
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

const MINUTE = 60_000;
const HOUR = 3_600_000;
type Agent = "architect" | "coder" | "tester" | "reviewer";

/** Calls per run of each role, and the model each role mostly uses (with the other model some of the time). */
const ROLES: Record<Agent, { calls: [number, number]; model: string; other: string; otherShare: number; output: [number, number] }> = {
  architect: { calls: [2, 4], model: "claude-opus-5", other: "claude-opus-5", otherShare: 0, output: [1_500, 4_000] },
  coder: { calls: [4, 9], model: "claude-sonnet-5-5", other: "claude-opus-5", otherShare: 0.15, output: [600, 6_000] },
  tester: { calls: [2, 4], model: "claude-haiku-4-5", other: "claude-sonnet-5-5", otherShare: 0.25, output: [300, 2_000] },
  reviewer: { calls: [2, 3], model: "claude-sonnet-5-5", other: "claude-haiku-4-5", otherShare: 0.3, output: [800, 3_000] },
};

/**
 * Writes the ledger rows of a week's work: each role's runs are jobs (as the app records them, a
 * job id per run and several calls per job), with token counts drawn from a seeded PRNG and
 * priced by the built-in price table, so every run of the tests sees the same figures.
 */
class Ledger {
  readonly #random = prng(20_261_127);
  readonly #prices = new PriceTable();
  /** Past jobs' ids (text, as `llm_usage.job_id` holds them), far above the ids the seed's real jobs get. */
  #nextJobId = 9_001;
  readonly spent: Record<string, number> = {};
  readonly calls: Record<string, number> = {};

  constructor(private readonly db: Db) {}

  #between(low: number, high: number): number {
    return low + Math.floor(this.#random() * (high - low + 1));
  }

  /**
   * One run of `agent` on the task: its calls from `startAt` on, one to three minutes apart.
   *
   * @param jobId - the running job's id; a new past job's id when omitted
   * @returns the epoch ms of the run's last call
   */
  async run(task: { id: number; repository: string; installationId: number; issue: number }, agent: Agent, startAt: number, jobId?: string): Promise<number> {
    const role = ROLES[agent];
    const job = jobId ?? String(this.#nextJobId++);
    const count = this.#between(...role.calls);
    let at = startAt;
    let context = this.#between(6_000, 14_000);
    for (let i = 0; i < count; i++) {
      at += this.#between(40, 180) * 1_000;
      const model = this.#random() < role.otherShare ? role.other : role.model;
      // The first call writes the prompt to the cache; later ones read it and add the last turn.
      const cacheWrite = i === 0 ? context : this.#between(500, 3_000);
      const cacheRead = i === 0 ? 0 : context;
      context += cacheWrite;
      const usage = {
        input_tokens: this.#between(200, 2_500),
        output_tokens: this.#between(...role.output),
        cache_creation_input_tokens: cacheWrite,
        cache_read_input_tokens: cacheRead,
      };
      const cost = this.#prices.costNanoUsd(model, usage);
      await recordUsage(this.db, {
        created_at: at,
        installation_id: task.installationId,
        repository: task.repository,
        subject_number: task.issue,
        task_id: task.id,
        job_id: job,
        agent,
        model,
        ...usage,
        cost_nano_usd: cost,
        request_id: `req_seed_${task.id}_${job}_${i}`,
      });
      this.spent[task.repository] = (this.spent[task.repository] ?? 0) + cost;
      this.calls[task.repository] = (this.calls[task.repository] ?? 0) + 1;
    }
    return at;
  }
}

/**
 * Finished work on a task started at `startAt`: the Architect's plan, then per cycle the Coder,
 * the Tester and (unless `review` is false) the Reviewer, the reviewer asking for changes before
 * each of the `rework` revisions, `pause` ms (20 min) between cycles; then `end` with its reason. The transitions and the ledger
 * rows follow the same clock.
 */
async function finishedTask(
  db: Db,
  ledger: Ledger,
  spec: {
    repository: string;
    installationId: number;
    issue: number;
    title: string;
    startAt: number;
    rework: number;
    end: "merged" | "failed";
    reason: string;
    review?: boolean;
    pause?: number;
  },
): Promise<number> {
  const id = await newTask(db, spec.repository, spec.installationId, spec.issue, spec.title, spec.startAt);
  const task = { id, repository: spec.repository, installationId: spec.installationId, issue: spec.issue };
  const review = spec.review ?? true;
  await transition(db, id, "planning", { reason: "triggered by the label", actor: "maintainer", now: spec.startAt });
  let at = await ledger.run(task, "architect", spec.startAt);
  for (let cycle = 0; cycle <= spec.rework; cycle++) {
    await transition(db, id, "coding", { reason: cycle === 0 ? "plan ready" : "revising", actor: "mission-control", now: at });
    at = await ledger.run(task, "coder", at);
    await transition(db, id, "testing", { reason: "changes pushed", actor: "mission-control", now: at });
    at = await ledger.run(task, "tester", at);
    if (spec.end === "failed") {
      if (cycle < spec.rework) await transition(db, id, "changes_requested", { reason: "the tests failed", actor: "mission-control", now: at });
      at += spec.pause ?? 20 * MINUTE;
      continue;
    }
    if (review) {
      await transition(db, id, "reviewing", { reason: "tests passed", actor: "mission-control", now: at });
      at = await ledger.run(task, "reviewer", at);
    }
    if (cycle < spec.rework) await transition(db, id, "changes_requested", { reason: "the Reviewer asked for changes", actor: "mission-control", now: at });
    at += spec.pause ?? 20 * MINUTE;
  }
  if (spec.end === "merged" && review) {
    await transition(db, id, "ready_for_merge", { reason: "approved", actor: "mission-control", now: at });
    at += 2 * HOUR;
  }
  await transition(db, id, spec.end, { reason: spec.reason, actor: spec.end === "merged" ? "maintainer" : "mission-control", now: at });
  await updateTask(db, id, { rework_cycles: spec.rework, ...(spec.end === "failed" ? { failure_reason: spec.reason } : {}) });
  return id;
}

/**
 * A week of work in three repositories of two installations: in acme/alpha four merged or
 * failed tasks and one live task, in acme/gamma a merged task, in beta-org/beta a live task;
 * the live tasks each have a running job. Every LLM call belongs to a job (a run of its role);
 * the calls' sizes, and so their costs, vary as a seeded PRNG draws them.
 */
export async function seedDashboard(db: Db, now = Date.now()): Promise<Seeded> {
  const ledger = new Ledger(db);
  const merged = "merged by a maintainer";
  await finishedTask(db, ledger, {
    repository: ALPHA,
    installationId: 100,
    issue: 5,
    title: "Paginate the issues export",
    startAt: now - 6 * DAY - 4 * HOUR,
    rework: 1,
    end: "merged",
    reason: merged,
  });
  const gammaMerged = await finishedTask(db, ledger, {
    repository: GAMMA,
    installationId: 100,
    issue: 4,
    title: "Gamma docs",
    startAt: now - 5 * DAY - 2 * HOUR,
    rework: 0,
    end: "merged",
    reason: merged,
  });
  await finishedTask(db, ledger, {
    repository: ALPHA,
    installationId: 100,
    issue: 6,
    title: "Document the CLI flags",
    startAt: now - 5 * DAY + HOUR,
    rework: 0,
    end: "merged",
    reason: merged,
    review: false,
  });
  await finishedTask(db, ledger, {
    repository: ALPHA,
    installationId: 100,
    issue: 8,
    title: "Cache the parsed configuration",
    startAt: now - 4 * DAY - 3 * HOUR,
    rework: 0,
    end: "merged",
    reason: merged,
  });
  await finishedTask(db, ledger, {
    repository: ALPHA,
    installationId: 100,
    issue: 9,
    title: "Retry webhook deliveries on 502",
    startAt: now - 3 * DAY - 5 * HOUR,
    rework: 2,
    end: "merged",
    reason: merged,
  });
  const alphaFailed = await finishedTask(db, ledger, {
    repository: ALPHA,
    installationId: 100,
    issue: 12,
    title: "Fix the flaky login test",
    startAt: now - 2 * DAY,
    rework: 3,
    end: "failed",
    reason: "the tests failed after 3 revisions",
    pause: 8 * HOUR,
  });

  const start = now - 50 * MINUTE;
  const alphaLive = await newTask(db, ALPHA, 100, 11, "Add retries to the importer", start);
  const alphaTask = { id: alphaLive, repository: ALPHA, installationId: 100, issue: 11 };
  await transition(db, alphaLive, "planning", { reason: "triggered by the label", actor: "maintainer", now: start });
  // The Architect's plan job, run and finished, as the task page lists it.
  const planJob = await startJob(db, alphaLive, 100, "plan", `${ALPHA}#11`, start);
  const planned = await ledger.run(alphaTask, "architect", start, planJob);
  await completeJob(db, Number(planJob), "dashboard-test", planned);
  await transition(db, alphaLive, "coding", { reason: "plan ready", actor: "mission-control", now: planned });
  const betaLive = await newTask(db, BETA, 200, 7, "Secret beta work", start - HOUR);
  const betaTask = { id: betaLive, repository: BETA, installationId: 200, issue: 7 };
  await transition(db, betaLive, "planning", { reason: "triggered by the label", actor: "maintainer", now: start - HOUR });
  let betaAt = await ledger.run(betaTask, "architect", start - HOUR);
  await transition(db, betaLive, "coding", { reason: "plan ready", actor: "mission-control", now: betaAt });
  betaAt = await ledger.run(betaTask, "coder", betaAt);
  await transition(db, betaLive, "testing", { reason: "changes pushed", actor: "mission-control", now: betaAt });
  betaAt = await ledger.run(betaTask, "tester", betaAt);
  await transition(db, betaLive, "reviewing", { reason: "tests passed", actor: "mission-control", now: betaAt });

  const codeJob = await startJob(db, alphaLive, 100, "code", `${ALPHA}#11`, planned);
  await ledger.run(alphaTask, "coder", planned, codeJob);
  const reviewJob = await startJob(db, betaLive, 200, "review", `${BETA}#7`);
  await ledger.run(betaTask, "reviewer", betaAt, reviewJob);
  return { alphaLive, alphaFailed, gammaMerged, betaLive, spent: ledger.spent, calls: ledger.calls };
}

/**
 * Enqueues a stage job for the task and claims it (at `at`, epoch ms), so it is running; its
 * lease ends a minute from now.
 *
 * @returns the job's id
 */
export async function startJob(
  db: Db,
  taskId: number,
  installationId: number,
  kind: "code" | "review" | "plan",
  lockKey: string,
  at = Date.now(),
): Promise<string> {
  const id = await enqueueJob(
    db,
    { kind, taskId, installationId, lockKey, dedupeKey: `${taskId}:${kind}:${Math.random()}`, payload: { taskId }, maxAttempts: 3 },
    at,
  );
  await queueOf(db).claim(db, "dashboard-test", Date.now() - at + 60_000, { only: [kind] }, at);
  if (id === null) throw new Error(`the ${kind} job of task ${taskId} was a duplicate`);
  return id;
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
