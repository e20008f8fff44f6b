import type { Logger } from "pino";

import type { Job } from "../ledger/schema.js";
import { runCommandJob } from "./commands.js";
import { type PipelineDeps, runStage } from "./pipeline.js";
import type { JobResult } from "./worker.js";

/** The worker's job runner: slash-commands and pipeline stages. */
export async function runJob(deps: PipelineDeps, job: Job, signal: AbortSignal, log: Logger): Promise<JobResult> {
  if (job.kind === "command") return runCommandJob(deps, job, log);
  return runStage(deps, job, signal, log);
}
