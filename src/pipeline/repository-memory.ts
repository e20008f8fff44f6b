/**
 * Repository memory for the agents (issue 14): the learnings relevant to a task, searched in the
 * store with the task's issue, plan and paths, attached to the repository guidance the stage
 * already loaded (`agents/instructions.ts` renders them as `<repository_memory>`).
 */
import type { Logger } from "pino";

import type { RepositoryGuidance } from "../agents/instructions.js";
import type { MemoryLearning } from "../agents/memory.js";
import type { RepoConfig } from "../config/repo-config.js";
import type { DbOrTrx } from "../store/db.js";
import { searchLearnings } from "../store/memory.js";
import type { Task } from "../store/schema.js";
import { confirmLearningProposals } from "./memory-proposals.js";

/** The search text of a task: the issue's title and body as stored at the trigger, the plan's summary and steps, the paths. */
export function memoryQuery(task: Pick<Task, "issue_title" | "issue_body" | "plan">, paths: readonly string[] | null): string {
  const parts = [task.issue_title ?? "", task.issue_body ?? ""];
  if (task.plan) {
    try {
      const plan = JSON.parse(task.plan) as { summary?: unknown; steps?: unknown };
      if (typeof plan.summary === "string") parts.push(plan.summary);
      if (Array.isArray(plan.steps)) parts.push(...plan.steps.filter((s): s is string => typeof s === "string"));
    } catch {
      // A plan that does not parse adds nothing to the query.
    }
  }
  parts.push(...(paths ?? []));
  return parts.join("\n");
}

/**
 * `guidance` with the learnings of the task's repository most relevant to it (at most
 * `memory.max_learnings`; the most recent ones when none matches); `guidance` unchanged when
 * `memory` is turned off or the repository has no learning. A task without guidance (no
 * instruction file read) gets an otherwise empty one carrying the learnings. With `confirm`,
 * the pending proposals' 👍 reactions are read first (`confirmLearningProposals`).
 */
export async function withRepositoryMemory(
  db: DbOrTrx,
  task: Pick<Task, "installation_id" | "owner" | "repo" | "default_branch" | "issue_title" | "issue_body" | "plan">,
  config: Pick<RepoConfig, "memory">,
  guidance: RepositoryGuidance | null,
  paths: readonly string[] | null,
  confirm?: { github: Parameters<typeof confirmLearningProposals>[1]; log: Logger },
): Promise<RepositoryGuidance | null> {
  if (!config.memory.enabled) return guidance;
  // Proposals a writer confirmed with 👍 since the last check become learnings first (GitHub sends no webhook for reactions).
  if (confirm) await confirmLearningProposals(db, confirm.github, task, confirm.log);
  const found = await searchLearnings(db, task.installation_id, `${task.owner}/${task.repo}`, memoryQuery(task, paths), config.memory.max_learnings);
  if (found.length === 0) return guidance;
  const learnings: MemoryLearning[] = found.map((l) => ({ id: l.id, author: l.author, sourceUrl: l.source_url, text: l.text }));
  return { ...(guidance ?? { ref: task.default_branch, files: [], omitted: [], scoped: [], notes: [] }), learnings };
}
