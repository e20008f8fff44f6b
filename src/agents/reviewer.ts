import { z } from "zod";

import { marker } from "../domain/markers.js";
import { partitionComments } from "./diff-lines.js";
import type { CheckConclusion, CheckRunData, PullRequestData, PullRequestFile, ReviewCommentInput, ReviewData } from "../ports/github.js";
import { escapePatchForPrompt, escapeUntrustedCode, promptSafe, type PromptSafeText, sanitizeUntrustedText } from "../prompt/index.js";
import type { Plan } from "./architect.js";
import { type AgentRuntime, attr } from "./context.js";
import { renderGuidance, type RepositoryGuidance } from "./instructions.js";
import { runToolLoop } from "./loop.js";
import { loadPrompt } from "./prompts.js";

/** One inline comment the model proposes: on `line` of `side` (RIGHT = new file, LEFT = old file) of `path`. */
export const ReviewComment = z
  .object({
    path: z.string().min(1).max(1024),
    line: z.number().int().min(1),
    side: z.enum(["LEFT", "RIGHT"]).default("RIGHT"),
    body: z.string().min(1).max(8000),
  })
  .strict();
export type ReviewComment = z.infer<typeof ReviewComment>;

/** The Reviewer's structured output: the `submit_review` tool's input. */
export const ReviewVerdict = z
  .object({
    event: z.enum(["approve", "request_changes", "comment"]),
    body: z.string().min(1).max(20_000),
    comments: z.array(ReviewComment).max(50).default([]),
  })
  .strict();
export type ReviewVerdict = z.infer<typeof ReviewVerdict>;

/** The verdict a review publishes. */
export type Verdict = ReviewVerdict["event"];

/** Name of the check run that carries the verdict on pull requests the app itself opened. */
export const REVIEW_CHECK_NAME = "Mission Control / Review";

/** Characters of diff sent to the model in one call; a larger diff is reviewed in parts. */
const DIFF_BUDGET_CHARS = 120_000;
/** Model calls one review may make; files that still do not fit are listed as not reviewed. */
const MAX_PARTS = 4;
/** GitHub refuses a review body over 65,536 characters; leave room for the markers. */
const BODY_LIMIT = 65_000;
/** Room the "Not reviewed" list may take in the body before it is clipped (with a count of the rest). */
const NOT_REVIEWED_LIMIT = 16_000;

const NO_PATCH = "no textual diff: binary or too large";
const OVER_BUDGET = "over the review size budget";

/** A file the review did not cover, and why. */
export interface NotReviewedFile {
  path: string;
  reason: typeof NO_PATCH | typeof OVER_BUDGET | `${typeof OVER_BUDGET} (more than ${number} parts)`;
}

/** A group of files whose rendered patches fit one model call. */
export interface DiffPart {
  files: PullRequestFile[];
  /** The `<patch>` elements of these files, joined by newlines; patches and names escaped. */
  text: PromptSafeText;
}

/** One file's `<patch>` element: its name and status escaped as attributes, its patch with `escapePatchForPrompt`. */
function patchBlock(file: PullRequestFile & { patch: string }): string {
  return `<patch path="${attr(file.filename)}" status="${attr(file.status)}">\n${escapePatchForPrompt(file.patch)}\n</patch>`;
}

/**
 * Packs the files' patches into at most `maxParts` parts of at most `budgetChars` characters
 * each (first fit, in the API's order). A file without a patch (binary, or too large for GitHub
 * to diff), a file whose patch alone is over the budget, and files that fit no part are listed
 * as not reviewed, with the reason. Nothing is clipped: a file is reviewed whole or not at all.
 */
export function splitDiff(
  files: readonly PullRequestFile[],
  options: { budgetChars?: number; maxParts?: number } = {},
): { parts: DiffPart[]; notReviewed: NotReviewedFile[] } {
  const budget = options.budgetChars ?? DIFF_BUDGET_CHARS;
  const maxParts = options.maxParts ?? MAX_PARTS;
  const parts: Array<{ files: PullRequestFile[]; blocks: string[]; used: number }> = [];
  const notReviewed: NotReviewedFile[] = [];
  for (const file of files) {
    if (file.patch === undefined) {
      notReviewed.push({ path: file.filename, reason: NO_PATCH });
      continue;
    }
    const block = patchBlock({ ...file, patch: file.patch });
    if (block.length > budget) {
      notReviewed.push({ path: file.filename, reason: OVER_BUDGET });
      continue;
    }
    let part = parts.find((p) => p.used + block.length <= budget);
    if (!part && parts.length < maxParts) {
      part = { files: [], blocks: [], used: 0 };
      parts.push(part);
    }
    if (!part) {
      notReviewed.push({ path: file.filename, reason: maxParts > 1 ? `${OVER_BUDGET} (more than ${maxParts} parts)` : OVER_BUDGET });
      continue;
    }
    part.files.push(file);
    part.blocks.push(block);
    part.used += block.length;
  }
  return { parts: parts.map((p) => ({ files: p.files, text: promptSafe(p.blocks.join("\n")) })), notReviewed };
}

/**
 * Renders as many of the files' patches as fit `budget` characters (one part) as `<patch>`
 * elements, and lists the rest as `path (reason)`.
 */
export function renderDiff(files: readonly PullRequestFile[], budget = DIFF_BUDGET_CHARS): { text: PromptSafeText; notReviewed: string[] } {
  const { parts, notReviewed } = splitDiff(files, { budgetChars: budget, maxParts: 1 });
  return { text: parts[0]?.text ?? promptSafe(""), notReviewed: notReviewed.map(describeNotReviewed) };
}

function describeNotReviewed(file: NotReviewedFile): string {
  return `${file.path} (${file.reason})`;
}

/** What the Reviewer did. */
export interface ReviewResult {
  review: ReviewData;
  /** The verdict as published (after the tests-failing and approval-disabled rules). */
  verdict: Verdict;
  /** `true` when a review of this head sha already existed (resumed job): the model was not called and nothing was posted. */
  reused: boolean;
  headSha: string;
  /** Comments placed inline on the diff. */
  inlineComments: number;
  /** Comments the model aimed outside the diff, written into the review body instead. */
  foldedComments: number;
  /** Files the review did not cover, as `path (reason)`. */
  notReviewed: string[];
  /** The "Mission Control / Review" check run, on pull requests the app opened; otherwise `null`. */
  checkRun: CheckRunData | null;
}

/** Input of {@link reviewPullRequest}. */
export interface ReviewInput {
  pullNumber: number;
  plan: Plan | null;
  /** Re-review: the head sha reviewed last time; only what changed since is reviewed and commented on (GitHub compare API). */
  sinceSha: string | null;
  /** The Tester's check is failing on this head: never approve, in either form. */
  testsFailing: boolean;
  /** Repo config review.approve (default true); false limits the Reviewer to COMMENT / REQUEST_CHANGES. */
  allowApprove: boolean;
  /** Characters of diff per model call (default 120,000); a larger diff is reviewed in up to 4 parts. */
  budgetChars?: number | undefined;
  /** The repository's instruction files that apply to the pull request's changed files (`loadRepositoryGuidance`), shown before the diff. */
  guidance?: RepositoryGuidance | null | undefined;
}

/** What a review body records about itself, so a resumed job can report it without the model. */
const ReviewMeta = z.object({
  /** The event the model chose (before the rules). */
  model: z.enum(["approve", "request_changes", "comment"]),
  verdict: z.enum(["approve", "request_changes", "comment"]),
  inline: z.number().int().min(0),
  folded: z.number().int().min(0),
  notReviewed: z.array(z.string()),
  /** Files with a textual diff left out for size: an approval is withheld while any is. */
  overBudget: z.number().int().min(0),
});
export type ReviewMeta = z.infer<typeof ReviewMeta>;

function metaMarker(meta: ReviewMeta): string {
  return marker(`review-meta:${Buffer.from(JSON.stringify(meta)).toString("base64url")}`);
}

/** The verdict and counts a published review carries in its hidden meta marker. */
export function readReviewMeta(review: ReviewData): ReviewMeta {
  const encoded = /<!-- mission-control:review-meta:([A-Za-z0-9_-]+) -->/.exec(review.body)?.[1];
  if (encoded) {
    try {
      const parsed = ReviewMeta.safeParse(JSON.parse(Buffer.from(encoded, "base64url").toString("utf8")));
      if (parsed.success) return parsed.data;
    } catch {
      // fall through to the visible text
    }
  }
  // A review written before the meta marker existed: read the visible verdict.
  const verdict: Verdict =
    review.state === "CHANGES_REQUESTED" || review.body.includes("Verdict: **changes requested**")
      ? "request_changes"
      : review.state === "APPROVED" || review.body.includes("Verdict: **approve**")
        ? "approve"
        : "comment";
  return { model: verdict, verdict, inline: 0, folded: 0, notReviewed: [], overBudget: 0 };
}

/** Applies the rules that may turn the model's approval into a comment, and says why. */
export function decideVerdict(
  model: Verdict,
  rules: { testsFailing: boolean; allowApprove: boolean; overBudget: number },
): { verdict: Verdict; withheld: string[] } {
  if (model !== "approve") return { verdict: model, withheld: [] };
  const withheld: string[] = [];
  if (rules.testsFailing) withheld.push("Approval is withheld while the tests are failing on this commit.");
  if (!rules.allowApprove) withheld.push("Approval is turned off for this repository (`review.approve: false`), so this review only comments.");
  if (rules.overBudget > 0) {
    withheld.push(`Approval is withheld because ${rules.overBudget} changed file(s) were too large to review (listed below).`);
  }
  return { verdict: withheld.length > 0 ? "comment" : "approve", withheld };
}

const SEVERITY: Record<Verdict, number> = { approve: 0, comment: 1, request_changes: 2 };
const VERDICT_TEXT: Record<Verdict, string> = { approve: "approve", request_changes: "changes requested", comment: "comment" };
/** The review check run's conclusion for each verdict. */
export const VERDICT_CONCLUSION: Record<Verdict, CheckConclusion> = { approve: "success", request_changes: "failure", comment: "neutral" };

/** Which files a review covers (read by the stage: the compare since the last reviewed sha, or the whole pull request). */
export interface ReviewScope {
  files: PullRequestFile[];
  pullRequestFiles: PullRequestFile[];
  sinceSha: string | null;
  /** A line for the body when the scope fell back to the whole pull request. */
  note: string;
}

/** What the Reviewer wrote for one head: the verdict, the review's body and its inline comments. The review stage publishes it. */
export interface ReviewDraft {
  /** The model's own verdict, before the rules that may withhold an approval. */
  model: Verdict;
  verdict: Verdict;
  withheld: string[];
  body: string;
  inline: ReviewCommentInput[];
  foldedComments: number;
  notReviewed: string[];
}

/**
 * Reviews the diff of `scope` with the model — in parts when it is larger than the budget (at
 * most 4 calls) — and writes the review: the most severe verdict of the parts, approval withheld
 * by the rules ({@link decideVerdict}), inline comments on lines GitHub can place and the others
 * folded into the body, the files not reviewed listed. No GitHub call.
 *
 * @param tag - the marker that makes the published review idempotent per head sha
 * @throws {AgentOutputError} when the model never calls `submit_review`
 */
export async function draftReview(runtime: AgentRuntime, pr: PullRequestData, input: ReviewInput, scope: ReviewScope, tag: string): Promise<ReviewDraft> {
  const ctx = { tag };
  const { parts, notReviewed } = splitDiff(scope.files, { budgetChars: input.budgetChars ?? DIFF_BUDGET_CHARS });
  const overBudget = notReviewed.filter((f) => f.reason !== NO_PATCH).length;

  const outputs: ReviewVerdict[] = [];
  for (const [index, part] of parts.entries()) {
    outputs.push(
      await reviewPart(runtime, pr, input.plan, {
        part,
        index,
        count: parts.length,
        all: scope.files,
        notReviewed,
        sinceSha: scope.sinceSha,
        guidance: renderGuidance(input.guidance),
      }),
    );
  }

  const model: Verdict = outputs.reduce<Verdict>(
    (worst, o) => (SEVERITY[o.event] > SEVERITY[worst] ? o.event : worst),
    outputs.length > 0 ? "approve" : "comment",
  );
  const { verdict, withheld } = decideVerdict(model, { testsFailing: input.testsFailing, allowApprove: input.allowApprove, overBudget });
  const { inline, folded } = partitionComments(
    scope.files,
    outputs.flatMap((o) => o.comments),
    scope.sinceSha ? { pullRequestFiles: scope.pullRequestFiles } : {},
  );
  const notReviewedText = notReviewed.map(describeNotReviewed);
  const meta: ReviewMeta = { model, verdict, inline: inline.length, folded: folded.length, notReviewed: notReviewedText, overBudget };

  const summaries =
    outputs.length === 0
      ? "_No file of this pull request could be reviewed: every changed file is listed below._"
      : outputs.length === 1
        ? (outputs[0]?.body ?? "")
        : outputs
            .map((o, i) => `### Part ${i + 1} of ${outputs.length}: ${(parts[i]?.files ?? []).map((f) => `\`${f.filename}\``).join(", ")}\n\n${o.body}`)
            .join("\n\n");
  const foldedText =
    folded.length === 0
      ? ""
      : `### Comments on lines outside the diff (${folded.length})\n\nGitHub only accepts inline comments on lines shown in the diff, so these are here instead.\n\n${folded
          .map((c) => `- \`${c.path}:${c.line}\`${c.side === "LEFT" ? " (old file)" : ""}: ${c.reason}\n${quote(c.body)}`)
          .join("\n")}`;
  const heading = scope.sinceSha ? `## 🔎 Re-review: changes since \`${scope.sinceSha.slice(0, 7)}\`` : "## 🔎 Review";
  const head = [
    `${ctx.tag}\n${metaMarker(meta)}\n${heading}`,
    scope.note,
    `Verdict: **${VERDICT_TEXT[verdict]}**${verdict !== model ? ` (the Reviewer found no blocking problems)` : ""}`,
    withheld.map((w) => `> ${w}`).join("\n"),
  ]
    .filter(Boolean)
    .join("\n\n");
  const notReviewedSection = renderNotReviewed(notReviewedText);
  const room = BODY_LIMIT - head.length - notReviewedSection.length - 8;
  const middle = clip([summaries, foldedText].filter(Boolean).join("\n\n"), room);
  const body = [head, middle, notReviewedSection].filter(Boolean).join("\n\n");

  return { model, verdict, withheld, body, inline, foldedComments: folded.length, notReviewed: notReviewedText };
}

/** One model call over one part of the diff. */
async function reviewPart(
  runtime: AgentRuntime,
  pr: PullRequestData,
  plan: Plan | null,
  ctx: {
    part: DiffPart;
    index: number;
    count: number;
    all: PullRequestFile[];
    notReviewed: NotReviewedFile[];
    sinceSha: string | null;
    /** The rendered repository guidance (`renderGuidance`); empty when there is none. */
    guidance?: PromptSafeText;
  },
): Promise<ReviewVerdict> {
  const prompt = loadPrompt("reviewer");
  const shown = new Set(ctx.part.files.map((f) => f.filename));
  const skipped = new Map(ctx.notReviewed.map((f) => [f.path, f.reason]));
  const others = ctx.all
    .filter((f) => !shown.has(f.filename))
    .map(
      (f) =>
        `<file path="${attr(f.filename)}" status="${attr(f.status)}" ${skipped.has(f.filename) ? `not_reviewed="${attr(skipped.get(f.filename) ?? "")}"` : `reviewed="in another part"`} />`,
    );
  const planText = plan ? `<plan>\n${escapeUntrustedCode(JSON.stringify(plan, null, 2))}\n</plan>` : "";
  const notes: string[] = [];
  if (ctx.sinceSha) {
    notes.push(
      `This is a re-review. The patches show only what changed since commit ${ctx.sinceSha}, which was reviewed before; review these changes, and place inline comments only on their lines.`,
    );
  }
  if (ctx.count > 1) {
    notes.push(
      `The diff is large, so it is reviewed in ${ctx.count} parts; this is part ${ctx.index + 1}. Review only the patches shown: the other files are listed in <other_files> and are reviewed separately (or not at all, when marked not_reviewed), so do not report them as missing.`,
    );
  }
  const pullRequest = [
    `<pull_request number="${attr(pr.number)}">`,
    `<title>${sanitizeUntrustedText(pr.title)}</title>`,
    ctx.part.text,
    ...(others.length > 0 ? [`<other_files>\n${others.join("\n")}\n</other_files>`] : []),
    "</pull_request>",
  ].join("\n");
  const ask = `Review ${ctx.sinceSha ? "these changes" : "this diff"} and submit your review with submit_review.`;
  const content = [ctx.guidance ?? "", pullRequest, planText.trimEnd(), ...notes, ask].filter(Boolean).join("\n\n");

  const { result } = await runToolLoop({
    llm: runtime.llm,
    agent: "reviewer",
    model: runtime.model,
    system: prompt.text,
    messages: [{ role: "user", content }],
    tools: [
      {
        name: "submit_review",
        description:
          "Submit the review: the event (approve, request_changes or comment), a Markdown summary of findings, and inline comments on lines shown in the patches. Call it exactly once.",
        input: ReviewVerdict,
        terminal: true,
        run: () => Promise.resolve("Review received."),
      },
    ],
    maxTurns: 3,
    maxTokens: prompt.maxTokens ?? 8192,
    requireTool: "submit_review",
    signal: runtime.signal,
  });
  return ReviewVerdict.parse(result);
}

/** The review check run's title and summary for a verdict. */
export function checkSummary(verdict: Verdict, withheld: string[], review: ReviewData, notReviewed: string[]): { title: string; summary: string } {
  const title =
    withheld.length > 0 ? "Approval withheld" : verdict === "approve" ? "Approved" : verdict === "request_changes" ? "Changes requested" : "Comments only";
  const lines = [`Verdict: **${VERDICT_TEXT[verdict]}**`, ...withheld, review.htmlUrl ? `The review: ${review.htmlUrl}` : ""];
  if (notReviewed.length > 0) lines.push(`${notReviewed.length} file(s) were not reviewed; the review lists them.`);
  return { title, summary: lines.filter(Boolean).join("\n\n") };
}

function renderNotReviewed(files: string[]): string {
  if (files.length === 0) return "";
  const lines: string[] = [];
  let used = 0;
  for (const [i, file] of files.entries()) {
    const line = `- ${file.replace(/[\r\n]/g, " ")}`;
    if (used + line.length > NOT_REVIEWED_LIMIT) {
      lines.push(`- … and ${files.length - i} more (list clipped to fit GitHub's size limit on a review)`);
      break;
    }
    lines.push(line);
    used += line.length + 1;
  }
  return `### Not reviewed (${files.length})\n\n${lines.join("\n")}`;
}

function quote(text: string): string {
  return text
    .split("\n")
    .map((line) => `  > ${line}`)
    .join("\n");
}

function clip(text: string, room: number): string {
  if (text.length <= room) return text;
  const note = "\n\n_[The rest of this review was clipped to fit GitHub's limit on the size of a review body.]_";
  return `${text.slice(0, Math.max(0, room - note.length))}${note}`;
}
