import type { Logger } from "pino";

import type { SandboxRunner } from "../agents/tester.js";
import type { BudgetLimit } from "../domain/budget-rules.js";
import { issueLockKey, type JobData, type StageJobPayload, type StageKind, stageDedupeKey } from "../domain/jobs.js";
import type { GitHubPort } from "../ports/github.js";
import type { Llm, UsageContext } from "../ports/llm.js";
import type { Db } from "../store/db.js";
import type { JobSpec } from "../store/queue.js";
import type { Task } from "../store/schema.js";
import type { Notifier } from "./notifications.js";
import type { ClaimedJob } from "../worker/worker.js";
import type { CloneOptions, GitSettings, GitWorkspace } from "../workspace/git.js";

/** Everything the stages need, injected by the app (and by tests). */
export interface PipelineDeps {
  db: Db;
  /** The GitHub port for one installation and repository; `log` (the job's) also logs its requests. */
  github(target: { installationId: number; owner: string; repo: string; log?: Logger }): Promise<GitHubPort>;
  /** A Messages API client that checks budgets and records each call's usage against `context`. */
  llm(context: UsageContext): Llm;
  /** Clones a repository (mirror on the host, work tree in the sandbox), with {@link PipelineDeps.git}'s settings. */
  clone(options: Omit<CloneOptions, "settings">): Promise<GitWorkspace>;
  /** How git and its sandbox run (`workspace/git.ts`). */
  git: GitSettings;
  /** A sandbox runner for a clone (`workspace/sandbox.ts`). */
  sandbox(root: string): SandboxRunner;
  /** Root folder of the clones, and the most bytes they may take together. */
  workspacesDir: string;
  workspacesMaxBytes: number;
  /** The model of an agent when the repository config names none. */
  defaultModel: string;
  /** Attempts of each follow-up job. */
  maxAttempts: number;
  /** Server ceilings of the Coder's limits. */
  coderCeilings: { maxTurns: number; maxMinutes: number; maxOutputTokens: number };
  /** SANDBOX_SETUP_NETWORK=on: the repository's setup command may use the network. */
  allowSetupNetwork: boolean;
  /** Budget limits from the server environment (the ceilings), as enforced by the metered LLM. */
  serverLimits: readonly BudgetLimit[];
  /** Sends `notify` jobs (notifications outside GitHub); absent when no channel is configured. */
  notifier?: Pick<Notifier, "run" | "standupWritten">;
}

/** What a finished stage asks the worker to do next. */
export interface StageOutcome {
  next?: JobSpec;
}

/** Builds the next job of a task. `nonce` separates repeated stages (revisions, retries). */
export function nextJob(
  deps: Pick<PipelineDeps, "maxAttempts">,
  task: Task,
  kind: StageKind,
  payload: StageJobPayload,
  nonce: string,
  deliveryId: string | null,
): JobSpec {
  return {
    kind,
    taskId: task.id,
    installationId: task.installation_id,
    lockKey: issueLockKey({ owner: task.owner, repo: task.repo, issueNumber: task.issue_number }),
    dedupeKey: stageDedupeKey(task, kind, nonce),
    deliveryId,
    payload,
    maxAttempts: deps.maxAttempts,
  };
}

/** A claimed job of one of the pipeline's stages. */
export type StageJob = ClaimedJob & { data: Extract<JobData, { kind: StageKind }> };
