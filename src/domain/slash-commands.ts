/**
 * Slash commands in issue and pull-request comments: `/plan`, `/code …`, `@<app> status`.
 *
 * A comment is a command only when its first meaningful line — after leading blank lines and
 * HTML comments — is the command. That line must render as an ordinary paragraph: a line that
 * opens a fenced code block, is indented into a code block or is quoted (`> /code …`, what
 * GitHub's "Quote reply" produces) is never a command, so quoting or documenting a command
 * does not run it.
 */

import type { CommandName } from "./jobs.js";

/** Every command the app answers: the zod enum in `domain/jobs.ts` is the one definition. */
export type { CommandName } from "./jobs.js";

/** What {@link parseCommand} found in a comment. */
export type ParsedCommand =
  | {
      kind: "command";
      name: CommandName;
      /**
       * The rest of the command line, HTML comments removed and trimmed. For `/code` and `/plan`
       * (free-text instructions) the lines that follow are included too, up to
       * {@link MAX_ARGS_LENGTH} characters. `/stop` gives `""` or `"all"`. Other commands take no
       * arguments; whatever followed them on the line is here and may be ignored.
       */
      args: string;
    }
  | {
      kind: "unknown";
      /** The first word as written, e.g. `/deploy`. */
      text: string;
    }
  | {
      kind: "malformed";
      name: CommandName;
      /** Why the arguments were refused; it does not quote the comment. */
      reason: string;
    };

/** Who may run a command: repository write (or maintain, admin), repository admin, organisation owner. */
export type CommandPermission = "write" | "admin" | "org_owner";

/** The longest `args` {@link parseCommand} returns; longer instructions are cut. */
export const MAX_ARGS_LENGTH = 4000;

/** Usage, one-line summary and required permission of every command, in the order `/help` lists them. */
export const COMMAND_HELP: Record<CommandName, { usage: string; summary: string; permission: CommandPermission }> = {
  plan: {
    usage: "/plan [notes]",
    summary: "(Re)plan the issue; optional notes guide the Architect.",
    permission: "write",
  },
  code: {
    usage: "/code [instructions]",
    summary: "Implement the plan; on a pull request, revise it following the instructions.",
    permission: "write",
  },
  test: {
    usage: "/test",
    summary: "Run the Tester on the pull request's head.",
    permission: "write",
  },
  review: {
    usage: "/review",
    summary: "Review the pull request (any pull request, including people's).",
    permission: "write",
  },
  status: {
    usage: "/status",
    summary: "Current state, the running job, the last transitions and the spend so far.",
    permission: "write",
  },
  budget: {
    usage: "/budget",
    summary: "Spend by agent and model, and every limit that applies.",
    permission: "write",
  },
  stop: {
    usage: "/stop [all]",
    summary: "Stop the running job of this issue or pull request. `/stop all` (organisation owners only) pauses all new LLM calls for the installation.",
    permission: "write",
  },
  retry: {
    usage: "/retry",
    summary: "Resume after a failure or a budget stop.",
    permission: "write",
  },
  approve: {
    usage: "/approve",
    summary: "Approve the plan, or the changes to protected paths, of this issue or pull request.",
    permission: "write",
  },
  report: {
    usage: "/report",
    summary: "The task's report: timeline, agents, approvals, checks, reviews, tokens and cost.",
    permission: "write",
  },
  help: {
    usage: "/help",
    summary: "This text.",
    permission: "write",
  },
  learn: {
    usage: "/learn <text>",
    summary: "Remember something about this repository; the Architect, the Coder and the Reviewer get the learnings relevant to each task.",
    permission: "write",
  },
  memory: {
    usage: "/memory [page]",
    summary: "List what Mission Control remembers about this repository, with each learning's number.",
    permission: "write",
  },
  forget: {
    usage: "/forget <number>",
    summary: "Forget one learning of this repository (its number from `/memory`).",
    permission: "write",
  },
  dismiss: {
    usage: "/dismiss <n>",
    summary: "On the stand-up issue: dismiss proposed follow-up <n>; it is never proposed again. `/approve <n>` there opens it as an issue instead.",
    permission: "write",
  },
};

const COMMAND_NAMES = new Set<string>(Object.keys(COMMAND_HELP));

/** Commands whose arguments are free text and may continue on the following lines. */
const FREE_TEXT = new Set<CommandName>(["plan", "code", "learn"]);

/** `/word` where word is a command-like name; anything else (`/usr/bin`, `/2`, `/plan.`) is not a command. */
const SLASH_WORD = /^\/([a-z][a-z-]*)$/i;

/** `@login` or `@login[bot]`, optionally followed by `:` or `,` (`@app: plan`). */
const MENTION = /^@([a-z0-9](?:[a-z0-9-]*[a-z0-9])?)(\[bot\])?[:,]?(?=\s|$)/i;

/** An HTML comment, or an unterminated one through the end of the text (GitHub hides both). */
export const HTML_COMMENT = /<!--[\s\S]*?(?:-->|$)/g;

/** A line opening a fenced code block: up to three spaces, then three or more backticks or tildes. */
export const FENCE = /^ {0,3}(?:`{3,}|~{3,})/;

/** A line opening a block quote: up to three spaces, then `>`. */
export const BLOCKQUOTE = /^ {0,3}>/;

/**
 * Parses the command a comment gives, if any.
 *
 * The first meaningful line (after blank lines and HTML comments) must be `/name …`,
 * `@<appSlug> name …`, `@<appSlug> /name …` or `@<appSlug>[bot] …`; mentions and names are
 * case-insensitive. That line may not be in a code block (fenced or indented) or a block
 * quote, nor start with inline code. Returns `null` for every other comment, so ordinary
 * discussion never gets an answer; `{ kind: "unknown" }` for `/word` that is no command;
 * `{ kind: "malformed" }` for `/stop` with an argument other than `all`.
 *
 * @param body the comment's Markdown, as in the webhook payload (CRLF or LF).
 * @param appSlug the app's slug (`mission-control`); a leading `@` or trailing `[bot]` is ignored.
 */
export function parseCommand(body: string, appSlug: string): ParsedCommand | null {
  const found = firstMeaningfulLine(body.replace(/\r\n?/g, "\n").replace(/^\uFEFF/, ""));
  if (found === null) return null;
  const { line, following } = found;
  if (FENCE.test(line) || BLOCKQUOTE.test(line) || indentation(line) >= 4) return null;

  let text = line.trim();
  let addressed = false;
  const mention = MENTION.exec(text);
  if (mention) {
    const slug = normaliseSlug(appSlug);
    if (slug === "" || mention[1]?.toLowerCase() !== slug) return null;
    addressed = true;
    text = text.slice(mention[0].length).trim();
  }

  const word = /^\S+/.exec(text)?.[0];
  if (word === undefined) return null;
  const rest = text.slice(word.length);

  let name: string;
  if (word.startsWith("/")) {
    const slash = SLASH_WORD.exec(word);
    if (!slash?.[1]) return null;
    name = slash[1].toLowerCase();
    if (!COMMAND_NAMES.has(name)) return { kind: "unknown", text: word };
  } else {
    // Without a slash only a mention makes a command, and only of a name we know:
    // `@app thanks!` is conversation, not a request for help.
    name = word.toLowerCase();
    if (!addressed || !COMMAND_NAMES.has(name)) return null;
  }
  return withArgs(name as CommandName, rest, following);
}

/** Builds the result for a known command from the rest of its line and the lines after it. */
function withArgs(name: CommandName, rest: string, following: string): ParsedCommand {
  if (FREE_TEXT.has(name)) {
    return { kind: "command", name, args: cut(`${rest}\n${following}`.replace(HTML_COMMENT, "").trim()) };
  }
  const args = cut(rest.replace(HTML_COMMENT, "").trim());
  if (name === "stop") {
    if (args === "") return { kind: "command", name, args: "" };
    if (args.toLowerCase() === "all") return { kind: "command", name, args: "all" };
    return { kind: "malformed", name, reason: "`/stop` takes no argument, or `all` (organisation owners only)." };
  }
  return { kind: "command", name, args };
}

/**
 * The first line that is neither blank nor (part of) an HTML comment, and the text after it;
 * `null` when there is none. A comment that ends mid-line leaves the rest of that line.
 */
function firstMeaningfulLine(text: string): { line: string; following: string } | null {
  let rest = text;
  for (;;) {
    const newline = rest.indexOf("\n");
    const line = newline < 0 ? rest : rest.slice(0, newline);
    const following = newline < 0 ? "" : rest.slice(newline + 1);
    if (line.trim() === "") {
      if (newline < 0) return null;
      rest = following;
      continue;
    }
    const opening = /^ {0,3}<!--/.exec(line);
    if (!opening) return { line, following };
    // Search from the dashes of `<!--` so `<!-->` and `<!--->` close themselves, as in CommonMark.
    const close = rest.indexOf("-->", opening[0].length - 2);
    if (close < 0) return null;
    rest = rest.slice(close + 3);
  }
}

/** Leading indentation in columns, a tab reaching the next multiple of four (4 or more: an indented code block). */
export function indentation(line: string): number {
  let columns = 0;
  for (const char of line) {
    if (char === " ") columns += 1;
    else if (char === "\t") columns += 4 - (columns % 4);
    else break;
  }
  return columns;
}

/** Cuts `text` to {@link MAX_ARGS_LENGTH} characters without splitting a surrogate pair. */
export function cut(text: string): string {
  if (text.length <= MAX_ARGS_LENGTH) return text;
  let end = MAX_ARGS_LENGTH;
  const last = text.charCodeAt(end - 1);
  if (last >= 0xd800 && last <= 0xdbff) end -= 1;
  return text.slice(0, end).trimEnd();
}

/** The bare, lower-case slug: `@Mission-Control[bot]` → `mission-control`. */
export function normaliseSlug(appSlug: string): string {
  return appSlug
    .trim()
    .replace(/^@/, "")
    .replace(/\[bot\]$/i, "")
    .toLowerCase();
}

/** What an @-mention in plain words does, as `/help` says it (`domain/mentions.ts`, `pipeline/intake.ts`). */
const MENTION_HELP =
  "On an issue: plan it (again) with your words as notes. On Mission Control's pull request: revise it following them. " +
  'On any other pull request: the Reviewer answers your question about it in a comment (a formal review when you ask for one, e.g. "review this").';

const WHO: Record<CommandPermission, string> = {
  write: "write access",
  admin: "admins",
  org_owner: "organisation owners",
};

/**
 * The `/help` answer: a Markdown table of every command (usage, what it does, who may use it),
 * then the `@<appSlug> <request>` mention in plain words (`domain/mentions.ts`), and a line on
 * the `@<appSlug> command` form and on quoted or code-block commands being ignored.
 */
export function helpText(appSlug: string): string {
  const slug = normaliseSlug(appSlug);
  const rows = (Object.keys(COMMAND_HELP) as CommandName[]).map((name) => {
    const { usage, summary, permission } = COMMAND_HELP[name];
    return `| \`${usage}\` | ${summary.replace(/\|/g, "\\|")} | ${WHO[permission]} |`;
  });
  return [
    "| Command | What it does | Who may use it |",
    "|---|---|---|",
    ...rows,
    `| \`@${slug} <request in plain words>\` | ${MENTION_HELP} | ${WHO.write} |`,
    "",
    `Start a comment with the command, or with \`@${slug} command\` (for example \`@${slug} status\`). ` +
      "Only the comment's first line counts; commands inside quotes or code blocks are ignored. " +
      `A mention \`@${slug}\` anywhere else in a comment that is not a command is a request in plain words (mentions inside quotes or code do not count).`,
  ].join("\n");
}
