import { readdirSync } from "node:fs";
import path from "node:path";

import type { Logger } from "pino";
import type { Probot } from "probot";

import type { CommandOutcome } from "../agents/tester.js";
import type { ServerEnv } from "../config/env.js";
import { createOctokitOutput } from "../adapters/github/outbound/octokit-output.js";
import { createMeteredLlm } from "../adapters/anthropic/metered-llm.js";
import type { Metrics } from "./metrics.js";
import type { PipelineDeps } from "../pipeline/pipeline-deps.js";
import { failTask } from "../pipeline/reporter.js";
import { runJob } from "../pipeline/runner.js";
import { type QueuedJob, queueOf } from "../store/queue.js";
import { type ClaimedJob, Worker } from "../worker/worker.js";
import type { Db } from "../store/db.js";
import { createAnthropic } from "../adapters/anthropic/client.js";
import { cloneRepository, type GitSettings } from "../workspace/git.js";
import { EgressGate } from "../workspace/egress-gate.js";
import { runSandboxed, sandboxOwner, type SandboxOptions } from "../workspace/sandbox.js";
import { loadNotificationsConfig } from "../config/notifications.js";
import { createChannels } from "../adapters/notify/index.js";
import { Notifier } from "../pipeline/notifications.js";

/** What the composition root needs from outside. */
export interface ServiceOptions {
  env: ServerEnv;
  db: Db;
  log: Logger;
  metrics?: Metrics;
}

/** Paths a sandboxed command must never see: the app's secrets, database and other clones. */
function hiddenPaths(env: ServerEnv): string[] {
  const paths = [path.resolve(".env"), path.dirname(path.resolve(env.DATABASE_PATH)), path.resolve(env.WORKSPACES_DIR)];
  if (env.PRIVATE_KEY_PATH) paths.push(path.resolve(env.PRIVATE_KEY_PATH));
  // Probot also picks up a private key from any *.pem file in the working directory.
  for (const name of readdirSync(".").filter((n) => n.endsWith(".pem"))) paths.push(path.resolve(name));
  return paths;
}

/**
 * The operator's sandbox settings: isolation mode, limits, the host folders commands may read,
 * the paths hidden from them and the uid they run as (when the app runs as root).
 */
export function sandboxOptions(env: ServerEnv): SandboxOptions {
  return {
    mode: env.SANDBOX,
    cgroups: env.SANDBOX_CGROUPS,
    hidePaths: hiddenPaths(env),
    readonlyPaths: env.SANDBOX_READONLY_PATHS,
    uid: env.SANDBOX_UID,
    gid: env.SANDBOX_GID,
    limits: {
      memoryBytes: env.SANDBOX_MEMORY_BYTES,
      maxProcesses: env.SANDBOX_MAX_PROCESSES,
      cpus: env.SANDBOX_CPUS,
      diskBytes: env.SANDBOX_DISK_BYTES,
      diskInodes: env.SANDBOX_DISK_INODES,
      tmpBytes: env.SANDBOX_TMP_BYTES,
    },
  };
}

/** The GitHub web host notifications link to: `https://github.com`, or `${GHE_PROTOCOL}://${GHE_HOST}`. */
export function githubWebUrl(env: Pick<ServerEnv, "GHE_HOST" | "GHE_PROTOCOL">): string {
  return env.GHE_HOST ? `${env.GHE_PROTOCOL}://${env.GHE_HOST}` : "https://github.com";
}

/**
 * The operator's notifications (NOTIFICATIONS_FILE): channels, routes, and the store observer
 * that turns transitions and budget alerts into `notify` jobs.
 *
 * @throws {ConfigError} when the file is invalid or a secret it names is missing
 */
export function createNotifier(env: ServerEnv, log: Logger, metrics?: Metrics): Notifier {
  const config = loadNotificationsConfig(env.NOTIFICATIONS_FILE);
  return new Notifier({
    config,
    channels: createChannels(config.channels),
    githubWebUrl: githubWebUrl(env),
    log: log.child({ component: "notifications" }),
    ...(metrics ? { onOutcome: (channel, event, outcome) => metrics.notifications.inc({ channel, event, outcome }) } : {}),
  });
}

/**
 * The composition root: wires the pipeline's ports to their real implementations (Octokit
 * through Probot's auth, the Anthropic SDK metered by the budget ledger, simple-git,
 * bubblewrap) and builds the workers (stages and commands, intake, notifications).
 *
 * @throws {ConfigError} when the default model has no price, or NOTIFICATIONS_FILE is invalid
 */
export function createServices(
  app: Probot,
  options: ServiceOptions,
): { worker: Worker; intakeWorker: Worker; notifyWorker: Worker; pipeline: PipelineDeps; notifier: Notifier } {
  const { env, db, log } = options;
  const prices = env.prices;
  prices.priceOf(env.DEFAULT_MODEL);
  const serverLimits = env.budgetLimits;
  const anthropic = createAnthropic({
    apiKey: env.ANTHROPIC_API_KEY,
    baseURL: env.ANTHROPIC_BASE_URL,
    maxRetries: env.ANTHROPIC_MAX_RETRIES,
    timeoutMs: env.ANTHROPIC_TIMEOUT_MS,
  });
  const sandbox = sandboxOptions(env);
  // Notifications outside GitHub: an invalid NOTIFICATIONS_FILE stops the start-up here.
  const notifier = createNotifier(env, log, options.metrics);
  if (notifier.enabled) notifier.attach(db);
  const git: GitSettings = { sandbox, allowedProtocols: env.GIT_ALLOWED_PROTOCOLS };
  const egress = new EgressGate({
    allow: env.SANDBOX_NETWORK_ALLOW,
    registries: { npmRegistry: env.npm_config_registry ?? env.NPM_CONFIG_REGISTRY, pipIndexUrl: env.PIP_INDEX_URL, pipExtraIndexUrls: env.PIP_EXTRA_INDEX_URL },
    owner: sandboxOwner(sandbox),
    log: log.child({ component: "egress" }),
  });

  const pipeline: PipelineDeps = {
    db,
    async github({ installationId, owner, repo, log: jobLog }) {
      const [installationOctokit, appOctokit] = await Promise.all([app.auth(installationId), app.auth()]);
      // The request log lines of this job's client carry the job's delivery, job, repository and issue.
      if (jobLog) (installationOctokit as unknown as { log: Logger }).log = jobLog.child({ name: "github" });
      const gauge = options.metrics?.githubRateLimitRemaining;
      if (gauge) {
        installationOctokit.hook.after("request", (response) => {
          const remaining = Number(response.headers["x-ratelimit-remaining"]);
          if (Number.isFinite(remaining) && response.headers["x-ratelimit-remaining"] !== undefined) {
            gauge.set({ installation: String(installationId) }, remaining);
          }
        });
      }
      return createOctokitOutput({ installationOctokit, appOctokit, installationId, owner, repo });
    },
    llm: (context) => createMeteredLlm({ db, anthropic, prices, serverLimits, pausedByOperator: env.PAUSE === "1", log }, context),
    clone: (clone) => cloneRepository({ ...clone, settings: git }),
    git,
    sandbox:
      (root) =>
      async (command, { timeoutMs, network, signal }) => {
        // Network only through the egress proxy, for the operator-allowed set-up step.
        const wrapped = network ? await egress.wrap(command) : null;
        const result = await runSandboxed(
          { ...sandbox, limits: { ...sandbox.limits, timeoutMs } },
          { cwd: root, command: wrapped?.command ?? command, ...(wrapped ? { network: wrapped.network } : {}), ...(signal ? { signal } : {}) },
        );
        const outcome: CommandOutcome = {
          command,
          exitCode: result.exitCode,
          timedOut: result.timedOut,
          durationMs: result.durationMs,
          stdout: result.stdout,
          stderr: result.stderr,
          truncated: result.truncated,
        };
        return outcome;
      },
    workspacesDir: env.WORKSPACES_DIR,
    workspacesMaxBytes: env.WORKSPACES_MAX_BYTES,
    defaultModel: env.DEFAULT_MODEL,
    maxAttempts: env.JOB_MAX_ATTEMPTS,
    coderCeilings: { maxTurns: env.CODER_MAX_TURNS, maxMinutes: env.CODER_MAX_MINUTES, maxOutputTokens: env.CODER_MAX_OUTPUT_TOKENS },
    allowSetupNetwork: env.SANDBOX_SETUP_NETWORK === "on",
    serverLimits,
    ...(notifier.enabled ? { notifier } : {}),
  };

  const common = {
    db,
    run: (job: ClaimedJob, signal: AbortSignal, jobLog: Logger) => runJob(pipeline, job, signal, jobLog),
    onFailed: (job: QueuedJob, reason: string, error: unknown, jobLog: Logger) => failTask(pipeline, job, reason, error, jobLog),
    pollMs: env.WORKER_POLL_MS,
    // SQLite: the lease the worker renews; PostgreSQL: pg-boss's heartbeat window (renewed every third of it).
    leaseMs: queueOf(db).backend === "postgres" ? env.JOB_HEARTBEAT_SECONDS * 1000 : env.JOB_LEASE_MS,
    retryBaseMs: env.JOB_RETRY_BASE_MS,
    retryMaxMs: env.JOB_RETRY_MAX_MS,
    ...(options.metrics
      ? { onJobFinished: (job: QueuedJob, state: string, seconds: number) => options.metrics?.jobSeconds.observe({ kind: job.kind, state }, seconds) }
      : {}),
    ...(notifier.enabled ? { onJobStuck: (job: QueuedJob) => notifier.jobStuck(db, job) } : {}),
  };
  // Stages and commands; intake has its own lane, so the first step of a delivery never waits for a Coder to finish.
  const worker = new Worker({
    ...common,
    log: log.child({ component: "worker" }),
    lane: { except: ["intake", "notify"] },
    concurrency: env.WORKER_CONCURRENCY,
  });
  // Notifications outside GitHub have a lane of their own (one send at a time per channel, by lock
  // key): a slow channel never holds a stage up, and a failed notification never fails a task.
  const notifyWorker = new Worker({
    ...common,
    onFailed: async (_job: QueuedJob, reason: string, _error: unknown, jobLog: Logger) => {
      jobLog.error({ reason }, "notification dropped after its attempts");
      await Promise.resolve();
    },
    log: log.child({ component: "notify" }),
    noun: "notification",
    lane: { only: ["notify"] },
    concurrency: 2,
  });
  const intakeWorker = new Worker({
    ...common,
    // The work an intake enqueued (a stage, a command) is picked up at once, not at the next poll.
    run: async (job: ClaimedJob, signal: AbortSignal, jobLog: Logger) => {
      const result = await runJob(pipeline, job, signal, jobLog);
      worker.notify();
      notifyWorker.notify();
      return result;
    },
    log: log.child({ component: "intake" }),
    noun: "intake",
    lane: { only: ["intake"] },
    concurrency: env.WORKER_CONCURRENCY,
  });
  return { worker, intakeWorker, notifyWorker, pipeline, notifier };
}
