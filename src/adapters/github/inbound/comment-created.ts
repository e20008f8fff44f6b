import type { Context } from "probot";

import { parseMention } from "../../../domain/mentions.js";
import { parseCommand } from "../../../domain/slash-commands.js";
import { findTaskByPullRequest } from "../../../store/tasks.js";
import { enqueueIntake, finish, intakeSubject, prologue, subjectOf, type InboundDeps, type TriggerOutcome } from "./prologue.js";

/** Any `@login` that is not part of an e-mail address or a path: before the slug is known, it may be a mention of the app. */
const ANY_MENTION = /(?<![\w.+\-@/`])@[a-z0-9]/i;

/**
 * A new comment whose first line is a slash-command (or `@<slug> command`), or that mentions
 * the app in plain words (`@<slug> …` outside quotes and code, `domain/mentions.ts`): recorded
 * and handed to an `intake` job, which checks the sender's permission, reacts 👀, reads the
 * repository config and enqueues the `command` job — or, for a mention on a pull request the app
 * did not open, the `answer` job (`pipeline/intake.ts`). Unknown or malformed commands get the
 * help. Edited comments never re-trigger (only `issue_comment.created`).
 */
export async function handleComment(context: Context<"issue_comment.created">, deps: InboundDeps): Promise<TriggerOutcome> {
  const { payload } = context;
  // Most comments are conversation: decided from the text alone, before the database is touched.
  const body = payload.comment.body ?? "";
  const slug = deps.appSlug();
  // The slug is resolved in the background at start-up; until then a mention is handed on and the intake job checks it.
  const command = slug ? parseCommand(body, slug) !== null || parseMention(body, slug) !== null : parseCommand(body, "") !== null || ANY_MENTION.test(body);
  if (!command) return "not_a_command";
  const s = subjectOf(context, payload.issue.number);
  const early = await prologue(deps, context);
  if (early) return early;
  // A command on the app's pull request goes to its issue's lane, in order with the issue's own.
  const isPullRequest = Boolean((payload.issue as { pull_request?: unknown }).pull_request);
  const task = isPullRequest ? await findTaskByPullRequest(deps.db, s.owner, s.repo, s.number) : undefined;
  const outcome = await enqueueIntake(
    deps,
    s,
    {
      event: "comment",
      subject: intakeSubject(s),
      sender: { login: payload.sender.login, id: payload.sender.id },
      commentId: payload.comment.id,
      isPullRequest,
      body,
      issue: { title: payload.issue.title, body: payload.issue.body ?? "" },
      receivedAt: new Date().toISOString(),
    },
    null,
    task?.issue_number ?? s.number,
  );
  return finish(deps, s, outcome, "command handled");
}
