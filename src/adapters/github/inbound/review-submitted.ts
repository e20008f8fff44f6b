import type { Context } from "probot";

import { RepoConfig } from "../../../config/repo-config.js";
import { canTransition, isTaskState } from "../../../domain/task-state.js";
import { findTaskByPullRequest } from "../../../store/tasks.js";
import { enqueueIntake, finish, intakeSubject, prologue, subjectOf, type InboundDeps, type TriggerOutcome } from "./prologue.js";

/**
 * A person's review on the app's pull request: REQUEST_CHANGES, or a comment review, may start
 * a Coder revision (one made while the Coder works starts it after that work); with
 * `auto_merge`, an approval of a `ready_for_merge` task may merge. The payload and the task
 * decide whether it can matter; the reviewer's permission is checked by the `intake` job
 * (`pipeline/intake.ts`).
 */
export async function handleReviewSubmitted(context: Context<"pull_request_review.submitted">, deps: InboundDeps): Promise<TriggerOutcome> {
  const { payload } = context;
  const s = subjectOf(context, payload.pull_request.number);
  const early = await prologue(deps, context);
  if (early) return early;
  const state = payload.review.state.toLowerCase();
  if (state !== "changes_requested" && state !== "commented" && state !== "approved") return "ignored";
  const task = await findTaskByPullRequest(deps.db, s.owner, s.repo, s.number);
  // Only the app's own pull requests (they have a plan) are revised or merged by it.
  if (!task || !task.plan) return "no_task";
  const config = RepoConfig.parse(JSON.parse(task.config));
  if (state === "approved" && !(config.auto_merge && task.stage === "ready_for_merge")) return "ignored";
  if (state !== "approved" && !mayStartRevision(task.stage)) return "ignored";
  const outcome = await enqueueIntake(
    deps,
    s,
    {
      event: "review",
      subject: intakeSubject(s),
      sender: { login: payload.sender.login, id: payload.sender.id },
      state,
      reviewId: payload.review.id,
      waits: 0,
    },
    task.id,
    task.issue_number,
  );
  return finish(deps, s, outcome, "review handled", { review: payload.review.id });
}

/**
 * `true` when a review (or inline comment) on the app's pull request may start a revision in
 * `stage`: now (a state that can move to `changes_requested`, or is in it), or — while the
 * Coder revises or the Architect plans — after that work (the intake waits for it). Not once
 * the task is merged or cancelled.
 */
export function mayStartRevision(stage: string): boolean {
  if (!isTaskState(stage)) return false;
  return stage === "changes_requested" || stage === "coding" || stage === "planning" || canTransition(stage, "changes_requested");
}
