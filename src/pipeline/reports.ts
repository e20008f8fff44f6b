import { BUDGET_AGENTS, type BudgetLimit, type BudgetStatus } from "../domain/budget-rules.js";
import { formatNanoUsd } from "../domain/money.js";
import { formatDuration } from "../render/tracking-comment.js";
import { spendReport } from "../store/budgets.js";
import type { Db } from "../store/db.js";
import { liveJobsOfTask } from "../store/queue.js";
import type { Task } from "../store/schema.js";
import { transitionsOf } from "../store/transitions.js";
import { spendByAgentAndModel, usageTotalsForTask } from "../store/usage.js";
import { renderRepositoryAgentStatistics } from "./orchestrator.js";

const fmt = (n: number) => Number(n).toLocaleString("en-US");
const utc = (ms: number) => `${new Date(ms).toISOString().slice(0, 16).replace("T", " ")} UTC`;

/** Every applicable limit's status, once per scope and period (agent limits for each role). */
async function limitStatuses(db: Db, task: Task, limits: readonly BudgetLimit[], now = Date.now()): Promise<BudgetStatus[]> {
  const seen = new Map<string, BudgetStatus>();
  for (const agent of BUDGET_AGENTS) {
    const subject = {
      installationId: task.installation_id,
      repository: `${task.owner}/${task.repo}`,
      agent,
      taskId: task.id,
      subjectNumber: task.issue_number,
      jobId: null,
    };
    for (const status of await spendReport(db, subject, limits, now)) {
      const key = `${status.limit.scope}:${status.scopeKey}:${status.limit.period}:${status.limit.source}`;
      if (!seen.has(key)) seen.set(key, status);
    }
  }
  return [...seen.values()];
}

/**
 * `/budget`: this issue's or PR's spend by agent and model (input, output, cache write, cache
 * read tokens, USD), and every applicable limit with its spend, percentage and reset time.
 */
export async function renderBudget(db: Db, task: Task, limits: readonly BudgetLimit[], now = Date.now()): Promise<string> {
  const rows = await spendByAgentAndModel(db, task.id);
  const spend =
    rows.length === 0
      ? "_No LLM calls yet._"
      : [
          "| Agent | Model | Calls | Input | Output | Cache write | Cache read | USD |",
          "|---|---|---:|---:|---:|---:|---:|---:|",
          ...rows.map(
            (r) =>
              `| ${r.agent} | ${r.model} | ${fmt(r.calls)} | ${fmt(r.input_tokens)} | ${fmt(r.output_tokens)} | ${fmt(r.cache_creation_input_tokens)} | ${fmt(r.cache_read_input_tokens)} | ${formatNanoUsd(r.cost_nano_usd)} |`,
          ),
        ].join("\n");
  const statuses = await limitStatuses(db, task, limits, now);
  const table =
    statuses.length === 0
      ? "_No budget limits apply._"
      : [
          "| Scope | Period | Spent | Limit | Used | Action | Resets | Set by |",
          "|---|---|---:|---:|---:|---|---|---|",
          ...statuses.map(
            (s) =>
              `| ${s.scopeLabel} | ${s.limit.period} | ${formatNanoUsd(s.spentNanoUsd, 4)} | ${formatNanoUsd(s.limitNanoUsd, 2)} | ${s.percent.toFixed(1)} % | ${s.limit.action} | ${s.resetsAt ? utc(s.resetsAt) : "never (per task)"} | ${s.limit.source} |`,
          ),
        ].join("\n");
  return `### 💰 Budget for #${task.issue_number}\n\n${spend}\n\n**Limits**\n\n${table}`;
}

/** `/status`: current state, running job, last transitions, spend. */
export async function renderStatus(db: Db, task: Task): Promise<string> {
  const jobs = await liveJobsOfTask(db, task.id);
  const transitions = (await transitionsOf(db, task.id)).slice(-5);
  const usage = await usageTotalsForTask(db, task.id);
  const running = jobs.length === 0 ? "none" : jobs.map((j) => `\`${j.kind}\` (${j.state}, attempt ${j.attempts})`).join(", ");
  const lines = transitions.map((t) => `- ${utc(t.created_at)}: ${t.from_state ?? "new"} → **${t.to_state}** — ${t.reason} (@${t.actor})`);
  return [
    `### 📍 Status of #${task.issue_number}`,
    "",
    `**State:** \`${task.stage}\`${task.blocked_reason ? ` — ${task.blocked_reason}` : task.failure_reason && task.stage === "failed" ? ` — ${task.failure_reason}` : ""}`,
    `**Jobs:** ${running}`,
    task.pr_url ? `**Pull request:** [#${task.pr_number}](${task.pr_url})` : "",
    `**Spend:** ${formatNanoUsd(usage.cost_nano_usd)} in ${fmt(usage.calls)} LLM calls`,
    "",
    "**Last transitions**",
    lines.length > 0 ? lines.join("\n") : "_none yet_",
  ]
    .filter((line, i, all) => line !== "" || all[i - 1] !== "")
    .join("\n");
}

/**
 * `/report`: the task's report — timeline of transitions, agents run, approvals, check runs,
 * review outcomes, total tokens and cost.
 */
export async function renderReport(db: Db, task: Task): Promise<string> {
  const transitions = await transitionsOf(db, task.id);
  const usage = await usageTotalsForTask(db, task.id);
  const agents = await spendByAgentAndModel(db, task.id);
  const first = transitions[0]?.created_at;
  const last = transitions.at(-1)?.created_at;
  const timeline =
    transitions.length === 0
      ? "_No transitions yet._"
      : [
          "| Time | From | To | Reason | By |",
          "|---|---|---|---|---|",
          ...transitions.map((t) => `| ${utc(t.created_at)} | ${t.from_state ?? "new"} | ${t.to_state} | ${t.reason.replace(/\|/g, "\\|")} | @${t.actor} |`),
        ].join("\n");
  const agentLines =
    agents.length === 0 ? "_None._" : agents.map((a) => `- **${a.agent}** (${a.model}): ${fmt(a.calls)} calls, ${formatNanoUsd(a.cost_nano_usd)}`).join("\n");
  return [
    `### 📋 Report for #${task.issue_number}`,
    "",
    `**State:** \`${task.stage}\` · **Rework cycles:** ${task.rework_cycles}${first && last ? ` · **Elapsed:** ${formatDuration(last - first)}` : ""}`,
    "",
    "**Timeline**",
    "",
    timeline,
    "",
    "**Agents run**",
    "",
    agentLines,
    "",
    `**Approvals:** ${task.approved_by ? `@${task.approved_by}` : "none"}`,
    `**Check runs:** Tests — ${task.tests_conclusion ?? "not run"}${task.reviewed_sha ? ` · Review — ${task.review_verdict ?? "?"} on ${task.reviewed_sha.slice(0, 7)}` : ""}`,
    `**Review:** ${task.review_url ? `[${task.review_verdict ?? "submitted"}](${task.review_url})` : "none"}`,
    "",
    `**Total:** ${fmt(usage.input_tokens)} input · ${fmt(usage.output_tokens)} output · ${fmt(usage.cache_creation_input_tokens)} cache write · ${fmt(usage.cache_read_input_tokens)} cache read tokens · **${formatNanoUsd(usage.cost_nano_usd)}**`,
    "",
    // Per-role statistics of the whole repository (orchestrator mode, issue 14).
    await renderRepositoryAgentStatistics(db, task.owner, task.repo),
  ].join("\n");
}
