/**
 * The daily stand-up issue (orchestrator mode, issue 14): deterministic Markdown from the
 * store's facts — no model call. Untrusted text (issue titles, failure and blocked reasons,
 * proposal titles) is made inline-safe: one line, Markdown and HTML neutralised, no mention
 * pings anyone, secrets redacted.
 */
import { marker } from "../domain/markers.js";
import { formatNanoUsd } from "../domain/money.js";
import { redactSecrets } from "../domain/redact.js";
import type { UsageTotals } from "../domain/usage.js";

/** The stand-up issue's marker topic: `<!-- mission-control:standup -->` opens its body. */
export const STANDUP_TOPIC = "standup";

/** Markers around the proposals checklist, so `/approve` and `/dismiss` can re-render it in place. */
export const PROPOSALS_START = marker("standup:proposals:start");
export const PROPOSALS_END = marker("standup:proposals:end");

/** What happened to one task in the period. */
export interface StandupActivity {
  issueNumber: number;
  /** Untrusted (the issue's title as stored). */
  title: string;
  state: string;
  /** Events in the period, in order: `started`, `pr_opened`, `merged`, `failed`, `budget_exceeded`, `cancelled`, `ready_for_merge`, `blocked`. */
  events: string[];
  prNumber: number | null;
  prUrl: string | null;
}

/** A task that waits for a person. */
export interface StandupWaiting {
  issueNumber: number;
  title: string;
  /** `plan`: a plan to `/approve`; `merge`: a pull request ready for merge; `blocked`: stopped, see `reason`. */
  kind: "plan" | "merge" | "blocked";
  /** Untrusted (may quote a model or a config problem). */
  reason: string | null;
  prNumber: number | null;
  prUrl: string | null;
}

/** A run that failed in the period. */
export interface StandupFailure {
  issueNumber: number;
  title: string;
  state: string;
  reason: string | null;
}

/** Spend of one agent role in the period (nano-dollars, tokens). */
export interface StandupSpend extends UsageTotals {
  agent: string;
}

/** One budget limit's use in its current window (nano-dollars). */
export interface StandupBudget {
  /** e.g. `repository octo/widgets`, `agent coder`. */
  scope: string;
  period: string;
  spentNanoUsd: number;
  limitNanoUsd: number;
  percent: number;
  source: string;
}

/** One agent role's statistics (see `store/analytics.ts` `agentStatistics`). */
export interface StandupAgentStats {
  agent: string;
  runs: number;
  success_rate: number | null;
  rework_cycles: number;
  avg_cost_nano_usd: number;
  avg_duration_ms: number | null;
}

/** A follow-up proposal as the checklist shows it. */
export interface StandupProposal {
  number: number;
  title: string;
  status: "proposed" | "accepted" | "dismissed";
  sourceKind: string;
  sourceUrl: string;
  issueNumber: number | null;
}

/** Everything a stand-up says. */
export interface StandupView {
  /** `YYYY-MM-DD` in `timezone`. */
  date: string;
  timezone: string;
  /** Epoch ms the period starts (the previous stand-up; a day before the first); `null`: not known. */
  since: number | null;
  /** Epoch ms the facts were read. */
  until: number;
  activity: StandupActivity[];
  waiting: StandupWaiting[];
  failures: StandupFailure[];
  spend: StandupSpend[];
  budgets: StandupBudget[];
  stats: StandupAgentStats[];
  /** The Reviewer's verdicts on the tasks of the period (latest per task). */
  verdicts: Array<{ verdict: string; tasks: number }>;
  proposals: StandupProposal[];
  /** The app's slug, for the command examples (`/approve <n>`). */
  appSlug: string;
}

/** The stand-up issue's title. */
export function standupTitle(date: string): string {
  return `Mission Control stand-up — ${date}`;
}

const EVENT_TEXT: Record<string, string> = {
  started: "started",
  pr_opened: "pull request opened",
  merged: "merged",
  failed: "failed",
  budget_exceeded: "stopped by a budget",
  cancelled: "cancelled",
  ready_for_merge: "ready for merge",
  blocked: "blocked",
};

/** The lines of a Markdown table of `items` (header, alignment, a row each, then `last`), or `empty` alone when there are none. */
function table<T>(items: readonly T[], empty: string, t: { head: string; align: string; row: (item: T) => string; last?: string }): string[] {
  if (items.length === 0) return [empty];
  return [t.head, t.align, ...items.map(t.row), ...(t.last === undefined ? [] : [t.last])];
}

/**
 * The stand-up issue's body (without the marker, which `ensureIssue` adds): what the agents did
 * since the last stand-up, what waits for a person, spend by agent and against each budget,
 * failures, agent statistics, and the proposed follow-ups as a checklist.
 */
export function renderStandup(view: StandupView): string {
  const started = count(view.activity, "started");
  const opened = count(view.activity, "pr_opened");
  const merged = count(view.activity, "merged");
  const failed = view.failures.length;
  const period = view.since === null ? `until ${utc(view.until)}` : `${utc(view.since)} – ${utc(view.until)}`;
  const lines: string[] = [
    `## 🧭 Stand-up for ${view.date} (${inline(view.timezone, 64)})`,
    "",
    `_Facts from Mission Control's records, ${period}. No model wrote this text._`,
    "",
    `**Since the last stand-up:** ${started} started · ${opened} pull requests opened · ${merged} merged · ${failed} failed`,
    "",
    "### What the agents did",
    "",
  ];
  if (view.activity.length === 0) lines.push("_Nothing happened in this period._");
  for (const a of view.activity) {
    const events = a.events.map((e) => EVENT_TEXT[e] ?? e).join(", ");
    lines.push(`- #${a.issueNumber} ${inline(a.title)} — ${events || "worked on"}; now \`${a.state}\`${prLink(a.prNumber, a.prUrl, " · ")}`);
  }

  lines.push("", "### Waiting for a person", "");
  if (view.waiting.length === 0) lines.push("_Nothing waits for a person._");
  for (const w of view.waiting) {
    const what =
      w.kind === "plan"
        ? "plan to approve (`/approve` on the issue)"
        : w.kind === "merge"
          ? `ready for merge${prLink(w.prNumber, w.prUrl, ": ")}`
          : `blocked${w.reason ? `: ${inline(w.reason, 200)}` : ""}`;
    lines.push(`- #${w.issueNumber} ${inline(w.title)} — ${what}`);
  }

  lines.push("", "### Failures", "");
  if (view.failures.length === 0) lines.push("_No failures._");
  for (const f of view.failures) lines.push(`- #${f.issueNumber} ${inline(f.title)} — \`${f.state}\`${f.reason ? `: ${inline(f.reason, 200)}` : ""}`);

  lines.push("", "### Spend by agent", "");
  const total = view.spend.reduce((sum, s) => sum + s.cost_nano_usd, 0);
  lines.push(
    ...table(view.spend, "_No model calls in this period._", {
      head: "| Agent | Calls | Input | Output | Cache write | Cache read | Cost |",
      align: "|---|---:|---:|---:|---:|---:|---:|",
      row: (s) =>
        `| ${inline(s.agent, 40)} | ${num(s.calls)} | ${num(s.input_tokens)} | ${num(s.output_tokens)} | ${num(s.cache_creation_input_tokens)} | ${num(s.cache_read_input_tokens)} | ${formatNanoUsd(s.cost_nano_usd)} |`,
      last: `| **Total** | ${num(view.spend.reduce((n, s) => n + s.calls, 0))} | | | | | **${formatNanoUsd(total)}** |`,
    }),
  );

  lines.push("", "### Budgets", "");
  lines.push(
    ...table(view.budgets, "_No budget limit applies to this repository._", {
      head: "| Limit | Period | Spent | Limit | Used |",
      align: "|---|---|---:|---:|---:|",
      row: (b) =>
        `| ${inline(b.scope, 80)} (${inline(b.source, 40)}) | ${inline(b.period, 20)} | ${formatNanoUsd(b.spentNanoUsd)} | ${formatNanoUsd(b.limitNanoUsd)} | ${b.percent.toFixed(0)}% |`,
    }),
  );

  lines.push("", renderAgentStatistics(view.stats, view.verdicts, "### Agents in this repository"));

  lines.push("", "### Proposed follow-ups", "", renderProposals(view.proposals, view.appSlug));
  return lines.join("\n");
}

/**
 * The per-role statistics table (runs, success rate, rework cycles, average cost and duration)
 * and the Reviewer's verdicts, under `heading`; shared by the stand-up and `/report`.
 */
export function renderAgentStatistics(
  stats: readonly StandupAgentStats[],
  verdicts: ReadonlyArray<{ verdict: string; tasks: number }>,
  heading: string,
): string {
  const lines = [heading, ""];
  if (stats.length === 0) lines.push("_No agent has run here yet._");
  else {
    lines.push("| Agent | Runs | Success rate | Rework cycles | Avg cost per run | Avg duration per run |", "|---|---:|---:|---:|---:|---:|");
    for (const s of stats) {
      const rate = s.success_rate === null ? "—" : `${Math.round(s.success_rate * 100)}%`;
      const duration = s.avg_duration_ms === null ? "—" : formatRunDuration(s.avg_duration_ms);
      lines.push(`| ${inline(s.agent, 40)} | ${num(s.runs)} | ${rate} | ${num(s.rework_cycles)} | ${formatNanoUsd(s.avg_cost_nano_usd)} | ${duration} |`);
    }
  }
  const v = verdicts.filter((x) => x.tasks > 0);
  lines.push("", `**Review verdicts:** ${v.length === 0 ? "none" : v.map((x) => `${inline(x.verdict, 40)} ${num(x.tasks)}`).join(" · ")}`);
  return lines.join("\n");
}

/**
 * The proposals checklist between {@link PROPOSALS_START} and {@link PROPOSALS_END}: an open
 * proposal is an unticked box, an accepted one is ticked with its issue, a dismissed one struck
 * through. Numbers are the repository's (stable across days).
 */
export function renderProposals(proposals: readonly StandupProposal[], appSlug: string): string {
  const lines = [PROPOSALS_START];
  if (proposals.length === 0) lines.push("_No follow-up to propose._");
  else {
    for (const p of proposals) {
      const title = inline(p.title, 160);
      const source = `[${SOURCE_TEXT[p.sourceKind] ?? "source"}](${safeUrl(p.sourceUrl)})`;
      if (p.status === "accepted") lines.push(`- [x] **${p.number}.** ${title} — opened as #${p.issueNumber ?? "?"} (${source})`);
      else if (p.status === "dismissed") lines.push(`- [ ] ~~**${p.number}.** ${title}~~ — dismissed (${source})`);
      else lines.push(`- [ ] **${p.number}.** ${title} (${source})`);
    }
    lines.push(
      "",
      `A writer opens one with \`/approve <n>\` or drops it with \`/dismiss <n>\` in a comment here (or \`@${appSlug.replace(/[^A-Za-z0-9-]/g, "")} approve <n>\`). Nothing is opened without that; a dismissed proposal is never made again.`,
    );
  }
  lines.push(PROPOSALS_END);
  return lines.join("\n");
}

/** Replaces the proposals checklist in a stand-up body; the body unchanged when it has none. */
export function replaceProposals(body: string, checklist: string): string {
  const start = body.indexOf(PROPOSALS_START);
  const end = body.indexOf(PROPOSALS_END);
  if (start < 0 || end < start) return body;
  return `${body.slice(0, start)}${checklist}${body.slice(end + PROPOSALS_END.length)}`;
}

const SOURCE_TEXT: Record<string, string> = { todo: "TODO added", review_finding: "open review finding", flaky_check: "flaky check" };

/**
 * Untrusted text as one inline Markdown phrase: whitespace collapsed, secrets redacted, then cut
 * to at most `max` characters, HTML and Markdown syntax escaped (so it cannot open a link, an image, a
 * table cell, a heading, a checklist item or a hidden comment), and `@name` broken with a
 * zero-width space so no one is pinged.
 */
export function inline(text: string, max = 120): string {
  // Redact before cutting (a cut through a secret would hide it from its pattern): once with the
  // lines intact, for the rules that read lines, and once more on the collapsed text.
  const flat = redactSecrets(redactSecrets(text).replace(/\s+/g, " ").trim());
  const clipped = flat.length > max ? `${flat.slice(0, max - 1)}…` : flat;
  return escapeInline(clipped);
}

/**
 * Text as literal inline Markdown, nothing cut or redacted: HTML and Markdown syntax escaped
 * (`&`, `<`, `>`, `\`, backticks, `*`, `_`, `[`, `]`, `|`, `~`), so GitHub shows every character
 * as written and nothing opens a link, an image, a tag, a code span or a hidden comment; `@name`
 * broken with a zero-width space so no one is pinged. Newlines are kept (callers flatten).
 */
export function escapeInline(text: string): string {
  return text
    .replace(/&/g, "&amp;")
    .replace(/</g, "&lt;")
    .replace(/>/g, "&gt;")
    .replace(/([\\`*_[\]|~])/g, "\\$1")
    .replace(/@(?=[A-Za-z0-9])/g, "@&#8203;");
}

/** A URL the app built from GitHub's answers, kept to http(s) and without Markdown-breaking characters. */
function safeUrl(url: string): string {
  if (!/^https?:\/\//i.test(url)) return "#";
  return url.replace(/[()\s<>]/g, (c) => encodeURIComponent(c));
}

function prLink(prNumber: number | null, prUrl: string | null, prefix: string): string {
  if (!prNumber) return "";
  return prUrl ? `${prefix}[PR #${prNumber}](${safeUrl(prUrl)})` : `${prefix}PR #${prNumber}`;
}

function count(activity: readonly StandupActivity[], event: string): number {
  return activity.filter((a) => a.events.includes(event)).length;
}

function num(n: number): string {
  return n.toLocaleString("en-US");
}

function utc(ms: number): string {
  return `${new Date(ms).toISOString().slice(0, 16).replace("T", " ")} UTC`;
}

function formatRunDuration(ms: number): string {
  if (ms < 1000) return `${ms} ms`;
  const s = Math.round(ms / 1000);
  if (s < 60) return `${s} s`;
  const m = Math.floor(s / 60);
  return m < 60 ? `${m} min ${s % 60} s` : `${Math.floor(m / 60)} h ${m % 60} min`;
}
