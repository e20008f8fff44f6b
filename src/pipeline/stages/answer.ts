/**
 * The answer stage: a writer mentioned the app in plain words on a pull request it did not
 * open (`domain/mentions.ts`, routed by `pipeline/intake.ts`); the Reviewer answers the
 * question about that pull request in one comment. The task's state does not change.
 */
import { answerQuestion } from "../../agents/answer.js";
import { loadRepositoryGuidance } from "../../agents/load-instructions.js";
import { quietMarkdown } from "../../render/thread-reply.js";
import { isMissionControlError } from "../../domain/errors.js";
import { marker } from "../../domain/markers.js";
import { configProblemsOf } from "../../store/tasks.js";
import type { StageOutcome } from "../pipeline-deps.js";
import { reportConfigProblems } from "../reporter.js";
import type { StageContext } from "../stage-context.js";

/** Characters of the model's answer posted (GitHub's comment limit is 65,536). */
const ANSWER_CHARS = 20_000;

/** At most this many files the Reviewer was not shown are named under the answer. */
const NOT_SHOWN_LISTED = 20;

/** The marker topic of the answer to comment `commentId`: the command replies' form, so one comment answers one mention. */
export function answerTopic(commentId: number): string {
  return `command:${commentId}:answer`;
}

/**
 * `answer`: the Reviewer reads the pull request's diff (`GET /repos/{owner}/{repo}/pulls/{pull_number}`
 * and `…/files`) and answers the mention's question in a comment on the pull request
 * (`POST /repos/{owner}/{repo}/issues/{issue_number}/comments`), marked
 * `<!-- mission-control:command:<comment id>:answer -->`.
 *
 * - **Idempotent**: when the app's comment with that marker exists (a retried or redelivered
 *   job), nothing is asked of the model and nothing is posted.
 * - **Config**: with an invalid `.github/mission-control.yml` no model is called; the problems
 *   are posted (once) and the answer says so.
 * - **Budgets**: the call goes through the metered LLM of the task, as the Reviewer's.
 * - **Failures**: a permanent error while reading the pull request or answering (a budget or
 *   pause stop, no usable output, a 404) or the last attempt's error is answered with its
 *   reason in the same comment, and the job ends there: answering a question never moves the
 *   task to `failed`. A retryable error is retried first; a stopped job (`job_aborted`) writes
 *   nothing.
 */
export async function answerStage(ctx: StageContext): Promise<StageOutcome> {
  const data = ctx.job.data;
  if (data.kind !== "answer") throw new Error(`answerStage cannot run a ${data.kind} job`);
  const { question, commentId, actor } = data.payload;
  const askedBy = actor ?? "maintainer";
  const task = ctx.task;
  const number = task.pr_number ?? task.issue_number;
  const topic = answerTopic(commentId);
  const reply = (body: string) => ctx.github.ensureComment({ issueNumber: number, topic, body });

  const bot = await ctx.github.getBotIdentity();
  const tag = marker(topic);
  // Only our own comment counts: anyone can paste the marker into theirs.
  if ((await ctx.github.listIssueComments(number)).some((c) => c.author === bot.login && c.body.startsWith(tag))) {
    ctx.log.info({ commentId }, "the mention was answered already");
    return {};
  }

  const problems = configProblemsOf(task);
  if (problems.length > 0) {
    await reportConfigProblems(ctx.github, task, problems);
    await reply(
      `⚠️ @${askedBy}, I cannot answer: \`.github/mission-control.yml\` is invalid (its problems are listed in a comment here), so no model is called until it is fixed.`,
    );
    return {};
  }

  let pr;
  let result;
  try {
    pr = await ctx.github.getPullRequest(number);
    const files = await ctx.github.listPullRequestFiles(number);
    const guidance = await loadRepositoryGuidance(ctx.github, {
      ref: task.default_branch,
      settings: ctx.config.instructions,
      agent: "reviewer",
      paths: files.map((f) => f.filename),
    });
    result = await answerQuestion(ctx.runtime("reviewer"), { pr, files, question, askedBy, guidance });
  } catch (err) {
    const typed = isMissionControlError(err) ? err : undefined;
    if (typed?.code === "job_aborted") throw err;
    if (typed?.retryable && ctx.job.attempts < ctx.job.max_attempts) throw err;
    ctx.log.warn({ err }, "the Reviewer could not answer the mention");
    const why = typed?.userMessage ?? "An internal error stopped it; the operator's logs have the details.";
    await reply(`⚠️ @${askedBy}, the Reviewer could not answer: ${why}`);
    return {};
  }

  const slug = bot.login.replace(/\[bot\]$/, "");
  const footer = [
    `<sub>🔎 The Reviewer's answer to @${askedBy}, from the diff of #${pr.number} at \`${pr.headSha.slice(0, 7)}\`. ` +
      `Not a formal review: for one, comment \`/review\` (or ask \`@${slug}\` to "review this").</sub>`,
  ];
  if (result.notShown.length > 0) {
    const listed = result.notShown.slice(0, NOT_SHOWN_LISTED).map((f) => `\`${f.replace(/[`\r\n]/g, " ")}\``);
    const more = result.notShown.length > NOT_SHOWN_LISTED ? ` and ${result.notShown.length - NOT_SHOWN_LISTED} more` : "";
    footer.push(`<sub>Not shown to the Reviewer: ${listed.join(", ")}${more}.</sub>`);
  }
  // The model read a diff the PR's author wrote: its answer pings no one, carries no marker and no secret.
  await reply(`${quietMarkdown(result.answer, ANSWER_CHARS)}\n\n${footer.join("\n")}`);
  ctx.log.info({ commentId, pull: pr.number, notShown: result.notShown.length }, "mention answered");
  return {};
}
