import { z } from "zod";

import { marker } from "../github/output/ensure.js";
import type { BotIdentity, GitHubPort, PullRequestFile, ReviewData, ReviewEvent } from "../github/output/port.js";
import { sanitizeUntrustedText } from "../github/sanitize.js";
import type { Plan } from "./architect.js";
import { type AgentRuntime, attr } from "./context.js";
import { runToolLoop } from "./loop.js";
import { loadPrompt } from "./prompts.js";

/** The Reviewer's structured verdict: the `submit_review` tool's input. */
export const ReviewVerdict = z
  .object({
    verdict: z.enum(["approve", "request_changes"]),
    summary: z.string().min(1).max(20_000),
  })
  .strict();
export type ReviewVerdict = z.infer<typeof ReviewVerdict>;

/** Characters of diff sent to the model; files past it are listed as not reviewed. */
const DIFF_BUDGET_CHARS = 120_000;

/** Splits the PR's files into those whose patch fits the budget and those left out. */
export function renderDiff(files: readonly PullRequestFile[], budget = DIFF_BUDGET_CHARS): { text: string; notReviewed: string[] } {
  const parts: string[] = [];
  const notReviewed: string[] = [];
  let used = 0;
  for (const file of files) {
    if (file.patch === undefined) {
      notReviewed.push(`${file.filename} (no textual diff: binary or too large)`);
      continue;
    }
    const block = `<patch path="${attr(file.filename)}" status="${attr(file.status)}">\n${file.patch}\n</patch>`;
    if (used + block.length > budget) {
      notReviewed.push(`${file.filename} (over the review size budget)`);
      continue;
    }
    parts.push(block);
    used += block.length;
  }
  return { text: parts.join("\n"), notReviewed };
}

/** What the Reviewer did. */
export interface ReviewResult {
  review: ReviewData;
  verdict: ReviewVerdict["verdict"];
  /** `true` when a review of this head sha already existed (resumed job): nothing was posted. */
  reused: boolean;
}

/**
 * Reviews a pull request's diff and submits a GitHub review. GitHub refuses APPROVE and
 * REQUEST_CHANGES from a pull request's own author (HTTP 422), so on PRs the app opened the
 * review event is COMMENT and the verdict is stated in the body.
 *
 * Idempotent per head sha: a review carrying this head's marker is reused, not repeated.
 *
 * @throws {AgentOutputError} when the model never calls `submit_review`
 */
export async function reviewPullRequest(
  runtime: AgentRuntime,
  deps: { github: GitHubPort; bot: BotIdentity },
  input: { pullNumber: number; plan: Plan | null },
): Promise<ReviewResult> {
  const { github, bot } = deps;
  const pr = await github.getPullRequest(input.pullNumber);
  const tag = marker(`review:${pr.headSha}`);
  const previous = (await github.listReviews(input.pullNumber)).find((r) => r.body.includes(tag));
  if (previous) {
    const verdict = previous.body.includes("Verdict: **changes requested**") ? "request_changes" : "approve";
    return { review: previous, verdict, reused: true };
  }

  const files = await github.listPullRequestFiles(input.pullNumber);
  const diff = renderDiff(files);
  const prompt = loadPrompt("reviewer");
  const plan = input.plan ? `<plan>\n${JSON.stringify(input.plan, null, 2)}\n</plan>\n\n` : "";
  const { result } = await runToolLoop({
    llm: runtime.llm,
    agent: "reviewer",
    model: runtime.model,
    system: prompt.text,
    messages: [
      {
        role: "user",
        content: `<pull_request number="${attr(pr.number)}">\n<title>${sanitizeUntrustedText(pr.title)}</title>\n${diff.text}\n</pull_request>\n\n${plan}Review this diff and submit your verdict with submit_review.`,
      },
    ],
    tools: [
      {
        name: "submit_review",
        description: "Submit the review: a verdict and a Markdown summary of findings. Call it exactly once.",
        input: ReviewVerdict,
        terminal: true,
        run: async () => "Review received.",
      },
    ],
    maxTurns: 3,
    maxTokens: prompt.maxTokens ?? 4096,
    requireTool: "submit_review",
    signal: runtime.signal,
  });
  const verdict = ReviewVerdict.parse(result);
  const ownPullRequest = pr.author === bot.login;
  const event: ReviewEvent = ownPullRequest ? "COMMENT" : verdict.verdict === "approve" ? "APPROVE" : "REQUEST_CHANGES";
  const verdictLine = `Verdict: **${verdict.verdict === "approve" ? "approve" : "changes requested"}**`;
  const notReviewed =
    diff.notReviewed.length > 0 ? `\n\n**Not reviewed** (${diff.notReviewed.length}):\n${diff.notReviewed.map((f) => `- ${f}`).join("\n")}` : "";
  const body = `${tag}\n## 🔎 Review\n\n${verdictLine}\n\n${verdict.summary}${notReviewed}`;
  const review = await github.createReview({ pullNumber: pr.number, commitId: pr.headSha, event, body });
  return { review, verdict: verdict.verdict, reused: false };
}
