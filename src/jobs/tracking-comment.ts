import type { UsageTotals } from "../ledger/usage.js";

/** The stages shown in the tracking comment, in order. */
export const STAGES = ["plan", "code", "review"] as const;
export type Stage = (typeof STAGES)[number];

/** Where a task stands: the `tasks.stage` column and the `mc:` label mirror it. */
export type TaskStage = "planning" | "coding" | "reviewing" | "done" | "failed";

const RUNNING_STAGE: Record<Stage, TaskStage> = { plan: "planning", code: "coding", review: "reviewing" };

/** Label for each task stage. */
export function stageLabel(stage: TaskStage): string {
  return `mc:${stage}`;
}

/** The task fields the tracking comment shows. */
export interface TrackingView {
  stage: TaskStage;
  /** The stage that was running when the task failed. */
  failedStage?: Stage | null;
  failureReason?: string | null;
  planUrl?: string | null;
  prNumber?: number | null;
  prUrl?: string | null;
  reviewUrl?: string | null;
  reviewVerdict?: string | null;
  usage: UsageTotals;
}

const fmt = (n: number) => n.toLocaleString("en-US");

/** USD with 4 decimals: small calls cost fractions of a cent. */
export function formatUsd(usd: number): string {
  return `$${usd.toFixed(4)}`;
}

function stageStatus(view: TrackingView, stage: Stage): string {
  const order = STAGES.indexOf(stage);
  if (view.stage === "failed") {
    const failedAt = view.failedStage ? STAGES.indexOf(view.failedStage) : -1;
    if (order < failedAt) return "✅ done";
    if (order === failedAt) return "❌ failed";
    return "⏹️ not run";
  }
  if (view.stage === "done") return "✅ done";
  const current = STAGES.findIndex((s) => RUNNING_STAGE[s] === view.stage);
  if (order < current) return "✅ done";
  if (order === current) return "⏳ running";
  return "⬜ pending";
}

function stageLink(view: TrackingView, stage: Stage): string {
  if (stage === "plan" && view.planUrl) return ` — [plan](${view.planUrl})`;
  if (stage === "code" && view.prUrl) return ` — [#${view.prNumber}](${view.prUrl})`;
  if (stage === "review" && view.reviewUrl) return ` — [review](${view.reviewUrl})${view.reviewVerdict ? ` (${view.reviewVerdict.replace("_", " ")})` : ""}`;
  return "";
}

/**
 * The tracking comment's Markdown (without its hidden marker): a checklist of stages with
 * links, the tokens and cost so far, and — once the task ended — a final line, so no
 * "running" state is ever left behind.
 */
export function renderTrackingComment(view: TrackingView): string {
  const rows = STAGES.map((s) => `| ${s[0]?.toUpperCase()}${s.slice(1)} | ${stageStatus(view, s)}${stageLink(view, s)} |`);
  const u = view.usage;
  const usage =
    `**Usage so far:** ${fmt(u.calls)} LLM calls · ${fmt(u.input_tokens)} input · ${fmt(u.output_tokens)} output · ` +
    `${fmt(u.cache_creation_input_tokens)} cache write · ${fmt(u.cache_read_input_tokens)} cache read tokens · **${formatUsd(u.cost_usd)}**`;
  const footer =
    view.stage === "done"
      ? "**Done.** The pull request is ready for a human review and merge."
      : view.stage === "failed"
        ? `**Stopped:** ${view.failureReason ?? "the job failed."} Remove and re-add the trigger label to try again.`
        : "_Working… this comment is updated as each stage completes._";
  return ["### 🤖 Mission Control", "", "| Stage | Status |", "|---|---|", ...rows, "", usage, "", footer].join("\n");
}
