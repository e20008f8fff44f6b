import { readdirSync } from "node:fs";
import path from "node:path";

import type { Logger } from "pino";
import type { Probot } from "probot";

import type { CommandOutcome } from "./agents/tester.js";
import type { ServerEnv } from "./config/env.js";
import { createOctokitOutput } from "./github/output/octokit-output.js";
import { createMeteredLlm } from "./jobs/metered-llm.js";
import type { Metrics } from "./metrics.js";
import { failTask, type PipelineDeps } from "./jobs/pipeline.js";
import { runJob } from "./jobs/run-job.js";
import { Worker } from "./jobs/worker.js";
import { serverBudgetLimits } from "./ledger/budgets.js";
import type { Db } from "./ledger/db.js";
import { createAnthropic } from "./llm/client.js";
import { PriceTable } from "./llm/pricing.js";
import { cloneRepository } from "./workspace/git.js";
import { runSandboxed } from "./workspace/sandbox.js";

/** What the composition root needs from outside. */
export interface ServiceOptions {
  env: ServerEnv;
  db: Db;
  log: Logger;
  /** The full server environment (budget variables are read from it). */
  rawEnv?: Record<string, string | undefined>;
  metrics?: Metrics;
}

/** Paths a sandboxed command must never see: the app's secrets, database and other clones. */
function hiddenPaths(env: ServerEnv, rawEnv: Record<string, string | undefined>): string[] {
  const paths = [path.resolve(".env"), path.dirname(path.resolve(env.DATABASE_PATH)), path.resolve(env.WORKSPACES_DIR)];
  if (rawEnv.PRIVATE_KEY_PATH) paths.push(path.resolve(rawEnv.PRIVATE_KEY_PATH));
  // Probot also picks up a private key from any *.pem file in the working directory.
  for (const name of readdirSync(".").filter((n) => n.endsWith(".pem"))) paths.push(path.resolve(name));
  return paths;
}

/**
 * The composition root: wires the pipeline's ports to their real implementations (Octokit
 * through Probot's auth, the Anthropic SDK metered by the budget ledger, simple-git,
 * bubblewrap) and builds the worker.
 *
 * @throws {ConfigError} when MODEL_PRICES or a budget variable is malformed, or the default model has no price
 */
export function createServices(app: Probot, options: ServiceOptions): { worker: Worker; pipeline: PipelineDeps } {
  const { env, db, log } = options;
  const rawEnv = options.rawEnv ?? process.env;
  const prices = new PriceTable(env.MODEL_PRICES);
  prices.priceOf(env.DEFAULT_MODEL);
  const serverLimits = serverBudgetLimits(rawEnv);
  const anthropic = createAnthropic({
    apiKey: env.ANTHROPIC_API_KEY,
    baseURL: env.ANTHROPIC_BASE_URL,
    maxRetries: env.ANTHROPIC_MAX_RETRIES,
    timeoutMs: env.ANTHROPIC_TIMEOUT_MS,
  });
  const hidePaths = hiddenPaths(env, rawEnv);

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
    clone: cloneRepository,
    sandbox: (root) => async (command, { timeoutMs, network, signal }) => {
      const result = await runSandboxed(
        {
          mode: env.SANDBOX,
          network,
          hidePaths,
          limits: { timeoutMs, memoryBytes: env.SANDBOX_MEMORY_BYTES, maxProcesses: env.SANDBOX_MAX_PROCESSES },
        },
        { cwd: root, command, ...(signal ? { signal } : {}) },
      );
      const outcome: CommandOutcome = {
        command: result.command,
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
  };

  const worker = new Worker({
    db,
    log: log.child({ component: "worker" }),
    run: (job, signal, jobLog) => runJob(pipeline, job, signal, jobLog),
    onFailed: (job, reason, error, jobLog) => failTask(pipeline, job, reason, error, jobLog),
    concurrency: env.WORKER_CONCURRENCY,
    pollMs: env.WORKER_POLL_MS,
    leaseMs: env.JOB_LEASE_MS,
    retryBaseMs: env.JOB_RETRY_BASE_MS,
    retryMaxMs: env.JOB_RETRY_MAX_MS,
    ...(options.metrics ? { onJobFinished: (job, state, seconds) => options.metrics?.jobSeconds.observe({ kind: job.kind, state }, seconds) } : {}),
  });
  return { worker, pipeline };
}
