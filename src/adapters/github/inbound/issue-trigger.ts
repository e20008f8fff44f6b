import type { Context } from "probot";

import { enqueueIntake, finish, intakeSubject, prologue, subjectOf, type InboundDeps, type TriggerOutcome } from "./prologue.js";

type IssueTriggerContext = Context<"issues.labeled"> | Context<"issues.opened">;

/**
 * `issues.labeled`, or `issues.opened` with labels: may start a run. Only the checks the payload
 * answers run here (redelivery, bot sender, pull request, closed issue, our own `mc:` labels, a
 * new issue without labels); then the delivery is recorded and an `intake` job enqueued. The
 * worker reads the repository config (is it the trigger label?) and the sender's permission,
 * then stores the task and enqueues the plan (`pipeline/intake.ts`). No outbound request.
 */
export async function handleIssueTrigger(context: IssueTriggerContext, deps: InboundDeps): Promise<TriggerOutcome> {
  const { payload } = context;
  const issue = payload.issue;
  const s = subjectOf(context, issue.number);
  return finish(deps, s, await decide(), "issue trigger handled");

  async function decide(): Promise<TriggerOutcome> {
    const early = await prologue(deps, context);
    if (early) return early;
    if ((issue as { pull_request?: unknown }).pull_request) return "pull_request";
    if (issue.state === "closed") return "issue_closed";
    if (payload.action === "labeled" && payload.label?.name.startsWith("mc:")) return "not_trigger_label";
    if (payload.action === "opened" && (issue.labels ?? []).length === 0) return "not_trigger_label";
    const labels = payload.action === "labeled" ? (payload.label ? [payload.label.name] : []) : (issue.labels ?? []).map((l) => l.name);
    return enqueueIntake(deps, s, {
      event: "issue_trigger",
      subject: intakeSubject(s),
      sender: { login: payload.sender.login, id: payload.sender.id },
      action: payload.action,
      labels,
      // What the maintainer saw when labelling: the agents read this copy, never a later edit.
      issue: { title: issue.title, body: issue.body ?? "" },
      receivedAt: new Date().toISOString(),
    });
  }
}
