import type { Logger } from "pino";
import type { Probot } from "probot";

import type { ServerEnv } from "./config/env.js";
import { createOctokitOutput } from "./github/output/octokit-output.js";
import { failTask, type PipelineDeps, runStage } from "./jobs/pipeline.js";
import { Worker } from "./jobs/worker.js";
import type { Db } from "./ledger/db.js";
import { recordUsage } from "./ledger/usage.js";
import { createAnthropic, createRecordingLlm } from "./llm/client.js";
import { PriceTable } from "./llm/pricing.js";
import { cloneRepository } from "./workspace/git.js";

/** What the composition root needs from outside. */
export interface ServiceOptions {
  env: ServerEnv;
  db: Db;
  log: Logger;
}

/**
 * The composition root: wires the pipeline's ports to their real implementations (Octokit
 * through Probot's auth, the Anthropic SDK with the ledger, simple-git) and builds the worker.
 *
 * @throws {ConfigError} when MODEL_PRICES is malformed or the default model has no price
 */
export function createServices(app: Probot, options: ServiceOptions): { worker: Worker; pipeline: PipelineDeps } {
  const { env, db, log } = options;
  const prices = new PriceTable(env.MODEL_PRICES);
  prices.priceOf(env.DEFAULT_MODEL);
  const anthropic = createAnthropic({
    apiKey: env.ANTHROPIC_API_KEY,
    baseURL: env.ANTHROPIC_BASE_URL,
    maxRetries: env.ANTHROPIC_MAX_RETRIES,
    timeoutMs: env.ANTHROPIC_TIMEOUT_MS,
  });

  const pipeline: PipelineDeps = {
    db,
    async github({ installationId, owner, repo }) {
      const [installationOctokit, appOctokit] = await Promise.all([app.auth(installationId), app.auth()]);
      return createOctokitOutput({ installationOctokit, appOctokit, installationId, owner, repo });
    },
    llm: (context) =>
      createRecordingLlm(anthropic, prices, (usage) =>
        recordUsage(db, {
          ...usage,
          created_at: Date.now(),
          installation_id: context.installationId,
          repository: context.repository,
          subject_number: context.subjectNumber,
          task_id: context.taskId,
          job_id: context.jobId,
          agent: context.agent,
        }),
      ),
    clone: cloneRepository,
    workspacesDir: env.WORKSPACES_DIR,
    defaultModel: env.DEFAULT_MODEL,
    maxAttempts: env.JOB_MAX_ATTEMPTS,
  };

  const worker = new Worker({
    db,
    log: log.child({ component: "worker" }),
    run: (job, signal, jobLog) => runStage(pipeline, job, signal, jobLog),
    onFailed: (job, reason, jobLog) => failTask(pipeline, job, reason, jobLog),
    concurrency: env.WORKER_CONCURRENCY,
    pollMs: env.WORKER_POLL_MS,
    leaseMs: env.JOB_LEASE_MS,
    retryBaseMs: env.JOB_RETRY_BASE_MS,
    retryMaxMs: env.JOB_RETRY_MAX_MS,
  });
  return { worker, pipeline };
}
