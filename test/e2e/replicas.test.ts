/**
 * Three replicas of Mission Control on one PostgreSQL database (issue 11): each a real process
 * running `src/main.ts`, configured by its environment only, with GitHub and Anthropic served
 * over loopback HTTP by the fakes in this process (so every replica sees one GitHub).
 *
 * - 200 deliveries spread over the replicas (redeliveries of one `X-GitHub-Delivery` raced to
 *   two replicas) produce exactly the expected jobs, comments and reactions;
 * - a replica SIGKILLed in the middle of the `code` stage (its pull request created on GitHub,
 *   the answer never received) is taken over by another after the heartbeat expires: one pull
 *   request, one plan comment, the Coder's turns not replayed;
 * - throughout, PostgreSQL is sampled every 100 ms (never two running jobs of one lock key in
 *   pgboss.job), and the replicas' logs show no two attempts of one issue's lane that ran at the
 *   same time (which the table alone could not show: a job taken over while still running).
 *
 * The budget part of issue 11's replica test (40 concurrent reservations against a limit that
 * fits 10 grant exactly 10) is test/e2e/replica-budgets.test.ts: three processes calling the
 * store's `reserve` directly. An app replica runs at most WORKER_CONCURRENCY jobs at a time, so
 * three of them could never hold 40 reservations in flight at once.
 *
 * The 200 deliveries are cheap on purpose: `src/main.ts` keeps Probot's Octokit throttling
 * (one write per second and one comment per 3 s per process), so only 15 of them lead to writes.
 *
 * Needs Node ≥ 22.12 (pg-boss 12) and PostgreSQL; otherwise skipped under a name that says so
 * (test/global-setup.ts prints the one-line notice).
 */
import type { ChildProcess } from "node:child_process";
import { randomUUID } from "node:crypto";
import path from "node:path";

import { sql } from "kysely";
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";

import type { Db } from "../../src/store/db.js";
import { openPostgres } from "../../src/store/postgres.js";
import { FakeAnthropic } from "../helpers/anthropic-fake.js";
import { freePort, TEST_ANTHROPIC_KEY, TEST_APP_ID, TEST_PRIVATE_KEY, tempDir } from "../helpers/app-harness.js";
import { startFakeServers, type FakeServers } from "../helpers/fake-servers.js";
import { createBareRepo, git } from "../helpers/git-fixtures.js";
import { FakeGitHub } from "../helpers/github-fake.js";
import { nodeRunsPostgresMode } from "../helpers/queue-backends.js";
import { createPostgresDatabase, type PostgresTestDatabase, postgresAdminUrl } from "../helpers/store-backends.js";
import { deliver } from "../helpers/webhooks.js";
import { commentPayload } from "./command-helpers.js";
import { jobRuns, logsOf, type Replica, startReplica } from "./replica-process.js";
import { INSTALLATION_ID, ISSUE, labeledPayload, OWNER, REPO, REPO_FILES, scriptHappyPath, SECRET } from "./scenario.js";

const REPLICAS = 3;
/** pg-boss's minimum: a dead replica's job is taken over after this plus one supervise pass (10 s). */
const HEARTBEAT_SECONDS = 10;

const adminUrl = postgresAdminUrl();
const runnable = adminUrl !== null && nodeRunsPostgresMode();
const title = runnable
  ? "3 replicas on one PostgreSQL database"
  : `3 replicas on one PostgreSQL database — SKIPPED: ${adminUrl === null ? "PostgreSQL did not answer" : `needs Node ≥ 22.12, this is ${process.versions.node}`}`;

/**
 * Samples pgboss.job every ~100 ms: running jobs per lock key (`singleton_key`). A violation is
 * two running jobs of one key, whatever their kind and lane: two stages of one issue (key
 * `owner/repo#n`), or an intake and a command of one issue's command lane (`cmd:owner/repo#n`).
 */
class ActiveJobMonitor {
  readonly violations: Array<{ queue: string; key: string; running: number; at: string }> = [];
  /** Queries that failed (the sampling goes on). */
  readonly errors: string[] = [];
  maxActive = 0;
  samples = 0;
  #stopped = false;
  #loop: Promise<void> | undefined;
  readonly #db: Db;

  constructor(db: Db) {
    this.#db = db;
  }

  start(): void {
    this.#loop = (async () => {
      while (!this.#stopped) {
        try {
          this.#sample(await this.#activeJobs());
        } catch (err) {
          this.errors.push(String(err));
        }
        await new Promise((resolve) => setTimeout(resolve, 100));
      }
    })();
  }

  async stop(): Promise<void> {
    this.#stopped = true;
    await this.#loop;
  }

  async #activeJobs(): Promise<Array<{ queue: string; key: string; n: number }>> {
    // Scheduled tasks (stately queues, no key) are not jobs of an issue.
    const { rows } = await sql<{ queue: string; key: string; n: number }>`
      select name as queue, singleton_key as key, count(*)::int as n from pgboss.job
       where state = 'active' and singleton_key is not null group by 1, 2`.execute(this.#db);
    return rows;
  }

  #sample(rows: Array<{ queue: string; key: string; n: number }>): void {
    const at = new Date().toISOString();
    this.samples++;
    this.maxActive = Math.max(
      this.maxActive,
      rows.reduce((sum, r) => sum + r.n, 0),
    );
    const perKey = new Map<string, number>();
    for (const r of rows) {
      if (r.n > 1) this.violations.push({ queue: r.queue, key: r.key, running: r.n, at });
      perKey.set(r.key, (perKey.get(r.key) ?? 0) + r.n);
    }
    for (const [key, n] of perKey) if (n > 1) this.violations.push({ queue: "*", key, running: n, at });
  }
}

/**
 * Pairs of job attempts (from every replica's log) that ran at the same time on one lock key,
 * whatever their lanes. An attempt still open ends at its replica's kill time, else now.
 * `toleranceMs` absorbs the gap between a commit and its log line.
 */
function overlappingRuns(replicas: Replica[], killedAt: Map<string, number>, toleranceMs = 500): string[] {
  const runs = replicas.flatMap((r) => jobRuns(r).map((run) => ({ ...run, end: run.end ?? killedAt.get(r.name) ?? Date.now() })));
  const found: string[] = [];
  for (const [i, a] of runs.entries()) {
    for (const b of runs.slice(i + 1)) {
      if (a.lockKey !== b.lockKey) continue;
      if (a.start < b.end - toleranceMs && b.start < a.end - toleranceMs) {
        found.push(`${a.lockKey}: ${a.kind} attempt ${a.attempt} on ${a.replica} and ${b.kind} attempt ${b.attempt} on ${b.replica}`);
      }
    }
  }
  return found;
}

/** Runs `tasks` with at most `limit` in flight. */
async function inPool<T>(tasks: Array<() => Promise<T>>, limit: number): Promise<T[]> {
  const results: T[] = new Array<T>(tasks.length);
  let next = 0;
  const lane = async () => {
    while (next < tasks.length) {
      const i = next++;
      results[i] = await tasks[i]!();
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, tasks.length) }, lane));
  return results;
}

/** `mc_webhook_outcomes_total` summed over the replicas, by outcome. */
async function webhookOutcomes(replicas: Replica[]): Promise<Record<string, number>> {
  const totals: Record<string, number> = {};
  for (const replica of replicas) {
    const text = await (await fetch(`${replica.url}/metrics`)).text();
    for (const match of text.matchAll(/^mc_webhook_outcomes_total\{[^}]*outcome="([^"]+)"[^}]*\} (\d+)/gm)) {
      totals[match[1]!] = (totals[match[1]!] ?? 0) + Number(match[2]);
    }
  }
  return totals;
}

(runnable ? describe : describe.skip)(title, () => {
  let dirs: ReturnType<typeof tempDir> | undefined;
  let database: PostgresTestDatabase | undefined;
  let db: Db | undefined;
  let servers: FakeServers | undefined;
  let monitor: ActiveJobMonitor | undefined;
  let github: FakeGitHub;
  let anthropic: FakeAnthropic;
  let bare = "";
  const children: ChildProcess[] = [];
  const replicas: Replica[] = [];
  const timings: Record<string, number> = {};

  /** The store's tables and pg-boss's, through the test's own pool. */
  const pg = (): Db => {
    if (!db) throw new Error("no database");
    return db;
  };

  beforeAll(async () => {
    const started = performance.now();
    dirs = tempDir("mc-replicas-");
    database = await createPostgresDatabase(adminUrl ?? "");
    db = openPostgres(database.url, { maxConnections: 3 });
    bare = createBareRepo(REPO_FILES);
    const port = await freePort();
    github = new FakeGitHub({
      baseUrl: `http://127.0.0.1:${port}/api/v3`,
      owner: OWNER,
      repo: REPO,
      bare,
      installationId: INSTALLATION_ID,
      permissions: { maintainer: "write" },
    });
    anthropic = new FakeAnthropic();
    servers = await startFakeServers({ github, anthropic }, port);

    const common = {
      PATH: process.env.PATH ?? "/usr/bin:/bin",
      HOME: process.env.HOME ?? "/tmp",
      APP_ID: TEST_APP_ID,
      PRIVATE_KEY: TEST_PRIVATE_KEY,
      WEBHOOK_SECRET: SECRET,
      GHE_HOST: servers.host,
      GHE_PROTOCOL: "http",
      ANTHROPIC_API_KEY: TEST_ANTHROPIC_KEY,
      ANTHROPIC_BASE_URL: servers.url,
      ANTHROPIC_MAX_RETRIES: "0",
      DATABASE_URL: database.url,
      HOST: "127.0.0.1",
      // The remote is a local bare repository.
      GIT_ALLOWED_PROTOCOLS: "https:http:file",
      JOB_HEARTBEAT_SECONDS: String(HEARTBEAT_SECONDS),
      WORKER_POLL_MS: "100",
      LOG_LEVEL: "info",
    };
    const ports: number[] = [];
    while (ports.length < REPLICAS) {
      const candidate = await freePort();
      if (candidate !== port && !ports.includes(candidate)) ports.push(candidate);
    }
    // All at once: the store's and pg-boss's migrations run once, under their locks.
    const starting = ports.map((replicaPort, i) => {
      const name = `r${i + 1}`;
      const env = { ...common, PORT: String(replicaPort), WORKSPACES_DIR: path.join(dirs!.dir, `workspaces-${name}`) };
      const { replica, child } = startReplica(name, env, 75_000);
      children.push(child);
      return replica;
    });
    replicas.push(...(await Promise.all(starting)));
    timings.startupMs = Math.round(performance.now() - started);

    for (const replica of replicas) {
      const health = (await (await fetch(`${replica.url}/healthz`)).json()) as { backend: string; queue: { queued: number; running: number } };
      expect(health.backend).toBe("postgres");
      expect(health.queue).toEqual({ queued: 0, running: 0 });
    }
    monitor = new ActiveJobMonitor(pg());
    monitor.start();
  }, 90_000);

  afterAll(async () => {
    await monitor?.stop();
    for (const child of children.splice(0)) if (child.exitCode === null && child.signalCode === null) child.kill("SIGKILL");
    await Promise.all(replicas.map((r) => r.exited));
    await servers?.close();
    await db?.destroy();
    await database?.drop();
    dirs?.cleanup();
    console.info(
      `replica test timings (ms): ${JSON.stringify(timings)}; monitor: ${monitor?.samples} samples, at most ${monitor?.maxActive} running jobs at once`,
    );
  }, 30_000);

  it("200 deliveries across the replicas produce exactly the expected jobs, comments and reactions", async () => {
    const started = performance.now();
    const cloneUrl = bare;
    // Writers' `/help` on 15 issues, each delivery sent twice (GitHub's redelivery: same id) to two replicas at once.
    const writerIssues = Array.from({ length: 15 }, (_, i) => 101 + i);
    // Readers' `/help` (no write permission) and non-trigger labels, crowded on 5 issues: 14 intake jobs per lock key.
    const crowdedIssues = Array.from({ length: 5 }, (_, i) => 201 + i);
    for (const number of [...writerIssues, ...crowdedIssues]) github.addIssue({ number, title: `Issue ${number}`, body: "Body." });

    type Delivery = { event: string; payload: unknown; id: string };
    const sends: Array<{ delivery: Delivery; to: number }> = [];
    const twice = (delivery: Delivery) => {
      const first = sends.length % REPLICAS;
      sends.push({ delivery, to: first }, { delivery, to: (first + 1) % REPLICAS });
    };
    const once = (delivery: Delivery) => sends.push({ delivery, to: sends.length % REPLICAS });
    const writerCommentIds = new Map<number, number>();
    for (const number of writerIssues) {
      const { payload, commentId } = commentPayload({ cloneUrl, body: "/help", issue: number, sender: "maintainer", issueTitle: `Issue ${number}` });
      writerCommentIds.set(number, commentId);
      twice({ event: "issue_comment", payload, id: randomUUID() });
    }
    for (let i = 0; i < 50; i++) {
      const { payload } = commentPayload({ cloneUrl, body: "/help", issue: crowdedIssues[i % 5]!, sender: "reader" });
      twice({ event: "issue_comment", payload, id: randomUUID() });
    }
    for (let i = 0; i < 20; i++) {
      once({ event: "issues", payload: labeledPayload({ cloneUrl, label: "bug", issue: crowdedIssues[i % 5]! }), id: randomUUID() });
    }
    for (let i = 0; i < 30; i++) {
      const { payload } = commentPayload({ cloneUrl, body: "Thanks, looks good to me.", issue: writerIssues[i % 15]!, sender: "maintainer" });
      once({ event: "issue_comment", payload, id: randomUUID() });
    }
    for (let i = 0; i < 20; i++) {
      const { payload } = commentPayload({ cloneUrl, body: "/help", issue: writerIssues[i % 15]!, sender: "dependabot[bot]", senderType: "Bot" });
      once({ event: "issue_comment", payload, id: randomUUID() });
    }
    expect(sends).toHaveLength(200);
    const expected = { intake: 15 + 50 + 20, command: 15, deliveries: 15 + 50 + 20 };

    const responses = await inPool(
      sends.map(
        ({ delivery, to }) =>
          () =>
            deliver(replicas[to]!.url, { ...delivery, secret: SECRET, noWait: true }),
      ),
      50,
    );
    timings.scenarioASendMs = Math.round(performance.now() - started);
    expect(responses.filter((r) => r.status >= 300).map((r) => r.status)).toEqual([]);

    const jobCounts = async () =>
      (
        await sql<{ name: string; kind: string; state: string; n: number }>`
          select name, data->>'kind' as kind, state::text as state, count(*)::int as n from pgboss.job
           where name = 'jobs' group by 1, 2, 3 order by 1, 2, 3`.execute(pg())
      ).rows;
    const botComments = () => github.comments.filter((c) => c.user.type === "Bot");
    await vi.waitFor(
      async () => {
        expect(botComments()).toHaveLength(15);
        expect(await jobCounts()).toEqual([
          { name: "jobs", kind: "command", state: "completed", n: expected.command },
          { name: "jobs", kind: "intake", state: "completed", n: expected.intake },
        ]);
      },
      { timeout: 50_000, interval: 200 },
    );
    timings.scenarioAMs = Math.round(performance.now() - started);

    const { rows: deliveries } = await sql<{ n: number }>`select count(*)::int as n from deliveries`.execute(pg());
    expect(deliveries[0]?.n).toBe(expected.deliveries);
    const { rows: tasks } = await sql<{ issue_number: number }>`select issue_number from tasks order by issue_number`.execute(pg());
    expect(tasks.map((t) => t.issue_number)).toEqual(writerIssues);
    // One reply per writer's command, on its issue, for that comment; nothing for anyone else.
    for (const number of writerIssues) {
      const comments = botComments().filter((c) => c.issue_number === number);
      expect(comments).toHaveLength(1);
      expect(comments[0]?.body.startsWith(`<!-- mission-control:command:${writerCommentIds.get(number)}:help`)).toBe(true);
    }
    expect(github.requestsTo("POST", /\/issues\/\d+\/comments$/)).toHaveLength(15);
    expect(github.reactions.map((r) => r.commentId).sort((a, b) => a - b)).toEqual([...writerCommentIds.values()].sort((a, b) => a - b));
    expect(github.reactions.every((r) => r.content === "eyes")).toBe(true);
    expect(await webhookOutcomes(replicas)).toEqual({ enqueued: 85, duplicate_delivery: 65, not_a_command: 30, sender_is_bot: 20 });
    // The work was spread: every replica ran jobs.
    for (const replica of replicas) {
      timings[`scenarioAJobsOn${replica.name}`] = jobRuns(replica).length;
      expect(jobRuns(replica).length).toBeGreaterThan(0);
    }
    expect(monitor?.violations).toEqual([]);
    expect(overlappingRuns(replicas, new Map())).toEqual([]);
  }, 70_000);

  it("a replica SIGKILLed in the middle of the code stage: another takes the job over and finishes, one PR, one plan comment", async () => {
    const started = performance.now();
    github.addIssue({ number: ISSUE, title: "Friendlier greeting", body: "greet() should say `Hello, <name>!`.", labels: ["agent"] });
    scriptHappyPath(anthropic);
    const coderTurns = anthropic.remaining().coder ?? 0;
    // The Coder's PR is created on GitHub, but its creator never hears back (and is killed).
    github.hangNext("POST", /\/pulls$/);
    const response = await deliver(replicas[1]!.url, { event: "issues", payload: labeledPayload({ cloneUrl: bare }), secret: SECRET, noWait: true });
    expect(response.status).toBeLessThan(300);

    const codeStarted = () => replicas.filter((r) => logsOf(r, "job started", { job: "code" }).length > 0);
    await vi.waitFor(() => expect(codeStarted()).toHaveLength(1), { timeout: 40_000, interval: 50 });
    const victim = codeStarted()[0]!;
    await vi.waitFor(() => expect(github.pulls).toHaveLength(1), { timeout: 30_000, interval: 50 });
    // The push happened and the pull request exists: kill it before it hears back.
    victim.child.kill("SIGKILL");
    expect(await victim.exited).toBe("SIGKILL");
    const killedAt = Date.now();
    timings.scenarioBKillAfterMs = Math.round(performance.now() - started);

    const survivors = replicas.filter((r) => r !== victim);
    const stage = async () => (await sql<{ stage: string }>`select stage from tasks where issue_number = ${ISSUE}`.execute(pg())).rows[0]?.stage;
    const liveJobs = async () =>
      (
        await sql<{ n: number }>`select count(*)::int as n from pgboss.job
           where name = 'jobs' and state in ('created', 'retry', 'active')`.execute(pg())
      ).rows[0]?.n;
    await vi.waitFor(
      async () => {
        expect(await stage()).toBe("ready_for_merge");
        expect(await liveJobs()).toBe(0);
      },
      { timeout: 60_000, interval: 200 },
    );
    timings.scenarioBMs = Math.round(performance.now() - started);

    // Taken over by another replica, as attempt 2, after the heartbeat expired.
    const takeovers = survivors.flatMap((r) => logsOf(r, "job started", { job: "code" }).map((l) => ({ replica: r.name, attempt: l.attempt, time: l.time })));
    expect(takeovers).toHaveLength(1);
    expect(takeovers[0]?.attempt).toBe(2);
    const taker = survivors.find((r) => r.name === takeovers[0]?.replica)!;
    expect(logsOf(taker, "resumed: branch already pushed, pull request ensured")).toHaveLength(1);
    expect(logsOf(taker, "job succeeded", { job: "code" })).toHaveLength(1);
    const takeoverAfterMs = Date.parse(String(takeovers[0]?.time)) - Date.parse(String(logsOf(victim, "job started", { job: "code" })[0]?.time));
    timings.scenarioBTakeoverAfterCodeStartMs = takeoverAfterMs;
    expect(takeoverAfterMs).toBeGreaterThanOrEqual(HEARTBEAT_SECONDS * 1000);
    timings.scenarioBTakeoverAfterKillMs = Date.parse(String(takeovers[0]?.time)) - killedAt;

    const { rows: code } = await sql<{ state: string; retry_count: number }>`
      select state::text as state, retry_count from pgboss.job where name = 'jobs' and data->>'kind' = 'code'`.execute(pg());
    expect(code).toEqual([{ state: "completed", retry_count: 1 }]);

    // One pull request (created once: the takeover found it by its branch), one plan comment, one tracking comment, one review.
    expect(github.pulls).toHaveLength(1);
    expect(github.requestsTo("POST", /\/pulls$/)).toHaveLength(1);
    const onIssue = github.comments.filter((c) => c.issue_number === ISSUE);
    expect(onIssue.filter((c) => c.body.startsWith("<!-- mission-control:plan -->"))).toHaveLength(1);
    expect(onIssue.filter((c) => c.body.startsWith("<!-- mission-control:tracking -->"))).toHaveLength(1);
    expect(github.reviews).toHaveLength(1);
    expect(git(["--git-dir", bare, "rev-list", "--count", "main..mc/issue-7-friendlier-greeting"])).toBe("1");
    // The Coder's scripted turns were used once: the takeover did not run the Coder again.
    expect(anthropic.requestsOf("coder")).toHaveLength(coderTurns);
    expect(anthropic.remaining()).toEqual({ architect: 0, coder: 0, tester: 0, reviewer: 0 });
    const { rows: usage } = await sql<{ agent: string; n: number }>`select agent, count(*)::int as n from llm_usage group by 1 order by 1`.execute(pg());
    expect(usage).toEqual([
      { agent: "architect", n: 1 },
      { agent: "coder", n: coderTurns },
      { agent: "reviewer", n: 1 },
      { agent: "tester", n: 1 },
    ]);
    expect(servers?.unrouted).toEqual([]);
    // The killed replica's code attempt never ended; it ran until the kill. Never two attempts at once on one key.
    expect(
      jobRuns(victim)
        .filter((r) => r.end === undefined)
        .map((r) => r.kind),
    ).toEqual(["code"]);
    expect(overlappingRuns(replicas, new Map([[victim.name, killedAt]]))).toEqual([]);
    expect(monitor?.violations).toEqual([]);
    expect(monitor?.errors).toEqual([]);
    expect(monitor?.samples).toBeGreaterThan(100);
  }, 90_000);
});
