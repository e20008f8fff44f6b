/**
 * Repository memory's slash-commands (issue 14): `/learn <text>`, `/memory [page]`,
 * `/forget <number>`. Only writers reach them (the intake step drops everyone else's commands).
 * Each answers with one reply comment whose marker names the command's comment, so a retried
 * job edits the same reply; `/learn` is idempotent by the comment's id as well.
 */
import type { CommandJobPayload } from "../domain/jobs.js";
import type { Task } from "../store/schema.js";
import { addLearning, forgetLearning, type Learning, listLearnings, MAX_LEARNING_CHARS } from "../store/memory.js";
import type { DbOrTrx } from "../store/db.js";
import { quietMarkdown } from "../render/thread-reply.js";

/** Learnings per `/memory` page. */
export const MEMORY_PAGE_SIZE = 10;

/** The longest excerpt of a learning a `/memory` line shows, in characters. */
const LIST_EXCERPT_CHARS = 300;

/** What the memory commands need from the command job. */
export interface MemoryCommandContext {
  db: DbOrTrx;
  task: Pick<Task, "installation_id" | "owner" | "repo" | "clone_url">;
  payload: CommandJobPayload;
  /** Posts (or updates) the command's reply. */
  reply: (topic: string, body: string) => Promise<unknown>;
  /** Epoch ms (tests pass a fixed time). */
  now?: number;
  /** Turns proposals a writer confirmed with 👍 into learnings before `/memory` lists them (`confirmLearningProposals`). */
  confirm?: () => Promise<unknown>;
}

/** `owner/repo` of the task. */
function repositoryOf(task: MemoryCommandContext["task"]): string {
  return `${task.owner}/${task.repo}`;
}

/**
 * The web address of the command's comment. GitHub's payload URL is not kept on the job, so it
 * is built from the repository's clone URL (`https://host/owner/repo.git` → `https://host/owner/repo`,
 * GitHub Enterprise aware); a clone URL that is not HTTP(S) falls back to github.com.
 * `/issues/<n>` also reaches a pull request's conversation (GitHub redirects).
 */
export function commentUrl(task: MemoryCommandContext["task"], subjectNumber: number, commentId: number): string {
  return `${repositoryWebUrl(task)}/issues/${subjectNumber}#issuecomment-${commentId}`;
}

/** The repository's web address, from its clone URL (see {@link commentUrl}). */
export function repositoryWebUrl(task: Pick<Task, "owner" | "repo" | "clone_url">): string {
  let base = `https://github.com/${task.owner}/${task.repo}`;
  try {
    const url = new URL(task.clone_url);
    if (url.protocol === "https:" || url.protocol === "http:") {
      url.username = "";
      url.password = "";
      base = `${url.origin}${url.pathname.replace(/\.git$/, "").replace(/\/+$/, "")}`;
    }
  } catch {
    // Not a URL (a local path in tests): github.com.
  }
  return base;
}

/** A learning's text as a Markdown block quote: nobody pinged, no hidden comment, secrets redacted. */
export function quoteLearning(text: string, maxChars = MAX_LEARNING_CHARS): string {
  return quietMarkdown(text, maxChars)
    .split("\n")
    .map((line) => `> ${line}`)
    .join("\n");
}

/** One `/memory` line: number, an excerpt on one line, author (not pinged), date, source. */
function listLine(learning: Learning): string {
  const oneLine = learning.text.replace(/\s+/g, " ").trim();
  const excerpt = quietMarkdown(oneLine, LIST_EXCERPT_CHARS).replace(/\|/g, "\\|");
  const date = new Date(learning.created_at).toISOString().slice(0, 10);
  return `- **#${learning.id}** ${excerpt} — ${quietMarkdown(`@${learning.author}`)}, [${date}](${learning.source_url})`;
}

/** `/learn <text>`: stores the learning (once per comment) and quotes it back with its number. */
export async function learnCommand(ctx: MemoryCommandContext): Promise<void> {
  const { payload, task } = ctx;
  const text = payload.args.trim();
  if (text === "") {
    await ctx.reply("learn", "Tell me what to remember: `/learn <text>` (one learning per comment).");
    return;
  }
  if (text.length > MAX_LEARNING_CHARS) {
    await ctx.reply(
      "learn",
      `That learning is too long to remember: ${text.length.toLocaleString("en-US")} characters, and a learning may have at most ${MAX_LEARNING_CHARS.toLocaleString("en-US")}. Shorten it (or split it into several \`/learn\` comments) and try again.`,
    );
    return;
  }
  const { learning } = await addLearning(ctx.db, {
    installationId: task.installation_id,
    repository: repositoryOf(task),
    text,
    sourceUrl: commentUrl(task, payload.subjectNumber, payload.commentId),
    sourceKey: `comment:${payload.commentId}`,
    author: payload.actor,
    createdAt: ctx.now ?? Date.now(),
  });
  await ctx.reply(
    "learn",
    [
      `🧠 Learning **#${learning.id}** remembered for ${quietMarkdown(repositoryOf(task))}:`,
      "",
      quoteLearning(learning.text),
      "",
      `The Architect, the Coder and the Reviewer get it when it is relevant to their task. \`/memory\` lists every learning; \`/forget ${learning.id}\` removes this one.`,
    ].join("\n"),
  );
}

/** `/memory [page]`: one page of the repository's learnings, newest first. */
export async function memoryCommand(ctx: MemoryCommandContext): Promise<void> {
  const { payload, task } = ctx;
  const arg = payload.args.trim();
  const page = arg === "" ? 1 : /^\d{1,6}$/.test(arg) ? Math.max(1, Number(arg)) : null;
  if (page === null) {
    await ctx.reply("memory", "`/memory` takes no argument, or a page number: `/memory 2`.");
    return;
  }
  await ctx.confirm?.();
  const { learnings, total } = await listLearnings(ctx.db, task.installation_id, repositoryOf(task), {
    limit: MEMORY_PAGE_SIZE,
    offset: (page - 1) * MEMORY_PAGE_SIZE,
  });
  const pages = Math.max(1, Math.ceil(total / MEMORY_PAGE_SIZE));
  const name = quietMarkdown(repositoryOf(task));
  if (total === 0) {
    await ctx.reply("memory", `Mission Control remembers nothing about ${name} yet. A writer's \`/learn <text>\` teaches it something.`);
    return;
  }
  if (learnings.length === 0) {
    await ctx.reply("memory", `There is no page ${page}: ${name} has ${total} learning${total === 1 ? "" : "s"} on ${pages} page${pages === 1 ? "" : "s"}.`);
    return;
  }
  const more = page < pages ? ` \`/memory ${page + 1}\` shows the next page.` : "";
  await ctx.reply(
    "memory",
    [
      `🧠 What Mission Control remembers about ${name}: ${total} learning${total === 1 ? "" : "s"}, page ${page} of ${pages}, newest first.`,
      "",
      ...learnings.map(listLine),
      "",
      `\`/forget <number>\` removes one.${more}`,
    ].join("\n"),
  );
}

/** `/forget <number>`: removes one learning of this repository (in this installation). */
export async function forgetCommand(ctx: MemoryCommandContext): Promise<void> {
  const { payload, task } = ctx;
  const match = /^#?(\d{1,15})$/.exec(payload.args.trim());
  if (!match?.[1]) {
    await ctx.reply("forget", "`/forget` takes the number of one learning, as `/memory` lists it: `/forget 12`.");
    return;
  }
  const id = Number(match[1]);
  const removed = await forgetLearning(ctx.db, task.installation_id, repositoryOf(task), id);
  if (!removed) {
    // A retried job finds it gone too: the reply says the same thing either way.
    await ctx.reply("forget", `Learning #${id} is not (or no longer) remembered for ${quietMarkdown(repositoryOf(task))}. \`/memory\` lists the learnings.`);
    return;
  }
  await ctx.reply("forget", [`🗑️ Forgot learning **#${id}**:`, "", quoteLearning(removed.text)].join("\n"));
}

/**
 * Runs `/learn`, `/memory` or `/forget`.
 *
 * @returns `false` for any other command (the caller handles it)
 */
export async function runMemoryCommand(ctx: MemoryCommandContext): Promise<boolean> {
  switch (ctx.payload.name) {
    case "learn":
      await learnCommand(ctx);
      return true;
    case "memory":
      await memoryCommand(ctx);
      return true;
    case "forget":
      await forgetCommand(ctx);
      return true;
    default:
      return false;
  }
}
