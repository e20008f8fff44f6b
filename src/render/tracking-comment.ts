import { formatNanoUsd, usdToNano } from "../domain/money.js";
import type { UsageTotals } from "../domain/usage.js";
import { STAGE_ENTRY_STATE, STOPPED_STATES, type TaskState } from "../domain/task-state.js";

/** The stages shown in the tracking comment, in order. */
const STAGES = ["plan", "code", "test", "review"] as const;
export type Stage = (typeof STAGES)[number];

/** The task fields the tracking comment shows. */
export interface TrackingView {
  state: TaskState;
  /** For a stopped task (blocked, failed, budget_exceeded, cancelled): the state it stopped in. */
  stoppedIn?: TaskState | null;
  reason?: string | null;
  planUrl?: string | null;
  prNumber?: number | null;
  prUrl?: string | null;
  reviewUrl?: string | null;
  reviewVerdict?: string | null;
  /** Conclusion of the Tester's check run on the head: success, failure, neutral, timed_out. */
  testsConclusion?: string | null;
  reworkCycles: number;
  usage: UsageTotals;
  /** Milliseconds from the first trigger to the end (shown once merged). */
  wallTimeMs?: number | null;
  /**
   * Notes of this run, Markdown written by the app (an ignored edit of the issue, a close that
   * did not stop the run), shown above the final line in the order they were added.
   */
  notes?: readonly string[];
}

const fmt = (n: number) => n.toLocaleString("en-US");

/**
 * A USD amount (a JS number) with 4 decimals, `$0.0123`: small calls cost fractions of a cent.
 * Rounded half-up from the amount's decimal text. Amounts from the ledger are nano-dollars:
 * format those with {@link formatNanoUsd}.
 */
export function formatUsd(usd: number): string {
  return formatNanoUsd(usdToNano(usd, "half-up"), 4);
}

/** Milliseconds as `1 h 2 min`, `3 min 4 s` or `5 s`. */
export function formatDuration(ms: number): string {
  const s = Math.round(ms / 1000);
  if (s < 60) return `${s} s`;
  const m = Math.floor(s / 60);
  if (m < 60) return `${m} min ${s % 60} s`;
  return `${Math.floor(m / 60)} h ${m % 60} min`;
}

const STOPPED = STOPPED_STATES;
const FINISHED: ReadonlySet<TaskState> = new Set(["ready_for_merge", "merged"]);

function stageIndexOf(state: TaskState | null | undefined): number {
  if (state === "changes_requested") return STAGES.indexOf("code");
  return STAGES.findIndex((s) => STAGE_ENTRY_STATE[s] === state);
}

function stageStatus(view: TrackingView, stage: Stage): string {
  const order = STAGES.indexOf(stage);
  if (FINISHED.has(view.state)) return stage === "test" ? testStatus(view) : "✅ done";
  if (STOPPED.has(view.state)) {
    const at = stageIndexOf(view.stoppedIn);
    if (order < at) return stage === "test" ? testStatus(view) : "✅ done";
    if (order === at) return view.state === "failed" ? "❌ failed" : view.state === "cancelled" ? "⏹️ cancelled" : "⏸️ stopped";
    return "⏹️ not run";
  }
  const current = stageIndexOf(view.state);
  if (order < current) return stage === "test" ? testStatus(view) : "✅ done";
  if (order === current) return view.state === "changes_requested" ? "🔁 revision requested" : "⏳ running";
  return "⬜ pending";
}

function testStatus(view: TrackingView): string {
  switch (view.testsConclusion) {
    case "success":
      return "✅ passed";
    case "failure":
    case "timed_out":
      return "❌ failed";
    case "neutral":
      return "➖ no tests";
    default:
      return "✅ done";
  }
}

function stageLink(view: TrackingView, stage: Stage): string {
  if (stage === "plan" && view.planUrl) return ` — [plan](${view.planUrl})`;
  if (stage === "code" && view.prUrl) return ` — [#${view.prNumber}](${view.prUrl})`;
  if (stage === "review" && view.reviewUrl) return ` — [review](${view.reviewUrl})${view.reviewVerdict ? ` (${view.reviewVerdict.replace("_", " ")})` : ""}`;
  return "";
}

function footer(view: TrackingView): string {
  const reason = view.reason ? ` ${view.reason}` : "";
  switch (view.state) {
    case "ready_for_merge":
      return "**Ready for merge.** A human reviews and merges the pull request.";
    case "merged":
      return `**Merged.** Total ${formatNanoUsd(view.usage.cost_nano_usd)} · wall time ${formatDuration(view.wallTimeMs ?? 0)} · ${view.reworkCycles} rework cycle${view.reworkCycles === 1 ? "" : "s"}.`;
    case "blocked":
      return `**Waiting for a human:**${reason || " see the latest comment."}`;
    case "failed":
      return `**Stopped:**${reason || " the job failed."} Comment \`/retry\` to try again.`;
    case "budget_exceeded":
      return `**Stopped at a budget limit:**${reason} Comment \`/retry\` once the limit is raised or the period has rolled over.`;
    case "cancelled":
      return `**Cancelled.**${reason}`;
    default:
      return "_Working… this comment is updated as each stage completes._";
  }
}

/**
 * The tracking comment's Markdown (without its hidden marker): a checklist of stages with
 * links, the tokens and cost so far, and a final line for every resting state, so no
 * "running" mark is ever left behind.
 */
export function renderTrackingComment(view: TrackingView): string {
  const rows = STAGES.map((s) => `| ${s[0]?.toUpperCase()}${s.slice(1)} | ${stageStatus(view, s)}${stageLink(view, s)} |`);
  const u = view.usage;
  const usage =
    `**Usage so far:** ${fmt(u.calls)} LLM calls · ${fmt(u.input_tokens)} input · ${fmt(u.output_tokens)} output · ` +
    `${fmt(u.cache_creation_input_tokens)} cache write · ${fmt(u.cache_read_input_tokens)} cache read tokens · **${formatNanoUsd(u.cost_nano_usd)}**`;
  const rework = view.reworkCycles > 0 ? `\n\nRework cycles: ${view.reworkCycles}` : "";
  const notes = (view.notes ?? []).length > 0 ? [(view.notes ?? []).map((n) => `> ${n}`).join("\n>\n"), ""] : [];
  return ["### 🤖 Mission Control", "", "| Stage | Status |", "|---|---|", ...rows, "", usage + rework, "", ...notes, footer(view)].join("\n");
}
