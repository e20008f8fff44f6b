import type { Context } from "probot";

import { ENDED_STATES, isTaskState } from "../../../domain/task-state.js";
import { findTaskByIssue } from "../../../store/tasks.js";
import { enqueueIntake, finish, intakeSubject, prologue, subjectOf, type InboundDeps, type TriggerOutcome } from "./prologue.js";

/**
 * An issue closed by a person, on an issue with a live task (a local read): an `intake` job
 * checks the closer's permission and whether the app's pull request was merged, then cancels
 * the run or notes in the tracking comment that it goes on (`pipeline/intake.ts`).
 */
export async function handleIssueClosed(context: Context<"issues.closed">, deps: InboundDeps): Promise<TriggerOutcome> {
  const { payload } = context;
  const s = subjectOf(context, payload.issue.number);
  const early = await prologue(deps, context);
  if (early === "sender_is_bot") return early;
  if (early) return finish(deps, s, early, "issue closed handled");
  const current = await findTaskByIssue(deps.db, s.owner, s.repo, s.number);
  if (!current || (isTaskState(current.stage) && ENDED_STATES.has(current.stage))) return finish(deps, s, "no_task", "issue closed handled");
  // A merged PR that closes the issue is handled by pull_request.closed.
  if (current.stage === "ready_for_merge") return finish(deps, s, "ignored", "issue closed handled");
  const outcome = await enqueueIntake(
    deps,
    s,
    { event: "issue_closed", subject: intakeSubject(s), sender: { login: payload.sender.login, id: payload.sender.id } },
    current.id,
  );
  return finish(deps, s, outcome, "issue closed handled");
}
