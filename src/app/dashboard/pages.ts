import { formatNanoUsd } from "../../domain/money.js";
import type { AgentStatistics } from "../../store/analytics.js";
import type { FailedTask, LedgerDimensions, TaskTimeline } from "../../store/dashboard.js";
import type { Task } from "../../store/schema.js";
import type { Viewer } from "./auth.js";
import { html, SafeHtml } from "./html.js";
import { memoryBody, type MemoryView } from "./memory-view.js";
import type { BudgetRow, LiveRow, SpendView } from "./views.js";

// Server-rendered pages: every value is escaped by `html`; the only script is the served file
// `/dashboard/assets/dashboard.js` (no inline script, so the CSP forbids `unsafe-inline`).

/** The versioned URLs of the served assets (long-cached: the version changes with the content). */
export interface AssetUrls {
  chart: string;
  script: string;
  styles: string;
}

const fmt = (n: number) => Number(n).toLocaleString("en-US");
const utc = (ms: number) => `${new Date(ms).toISOString().slice(0, 16).replace("T", " ")} UTC`;

function duration(ms: number): string {
  const s = Math.max(0, Math.round(ms / 1000));
  if (s < 60) return `${s} s`;
  const m = Math.floor(s / 60);
  if (m < 60) return `${m} min ${s % 60} s`;
  return `${Math.floor(m / 60)} h ${m % 60} min`;
}

/** Only http(s) links from stored rows become `href`s (a `javascript:` URL never does). */
const safeUrl = (url: string | null): string | null => (url && /^https?:\/\//i.test(url) ? url : null);

function layout(options: { title: string; assets: AssetUrls; viewer?: Viewer; body: SafeHtml; pollMs?: number; chart?: boolean }): string {
  const { viewer } = options;
  return html`<!doctype html>
    <html lang="en">
      <head>
        <meta charset="utf-8" />
        <meta name="viewport" content="width=device-width, initial-scale=1" />
        <title>${options.title} · Mission Control</title>
        <link rel="stylesheet" href="${options.assets.styles}" />
        ${options.chart ? html`<script src="${options.assets.chart}" defer></script>` : ""}
        <script src="${options.assets.script}" defer></script>
      </head>
      <body data-poll-ms="${options.pollMs ?? 5000}">
        <a class="skip" href="#main">Skip to content</a>
        <header class="top">
          <h1><a href="/dashboard">Mission Control</a></h1>
          ${
            viewer
              ? html`<nav aria-label="Views">
                    <ul>
                      <li><a href="/dashboard#live">Live</a></li>
                      <li><a href="/dashboard#spend">Spend</a></li>
                      <li><a href="/dashboard#budgets">Budgets</a></li>
                      <li><a href="/dashboard#agents">Agents</a></li>
                      <li><a href="/dashboard#failures">Failures</a></li>
                      <li><a href="/dashboard/memory">Memory</a></li>
                    </ul>
                  </nav>
                  <div class="who">
                    <span>Signed in as <strong id="viewer-login">${viewer.operator ? "operator (all installations)" : viewer.login}</strong></span> ${
                      viewer.csrfToken
                        ? html`<form method="post" action="/dashboard/logout">
                            <input type="hidden" name="_csrf" value="${viewer.csrfToken}" /><button class="link" type="submit">Sign out</button>
                          </form>`
                        : ""
                    }
                  </div>`
              : ""
          }
        </header>
        <main id="main">${options.body}</main>
      </body>
    </html> `.text;
}

/** The sign-in page: "Sign in with GitHub" and/or the operator-token form. */
export function loginPage(options: { assets: AssetUrls; oauth: boolean; token: boolean; loginToken: string; error?: string }): string {
  return layout({
    title: "Sign in",
    assets: options.assets,
    body: html`<div class="login">
      <h2>Sign in to the dashboard</h2>
      ${options.error ? html`<p class="error" role="alert">${options.error}</p>` : ""}
      ${
        options.oauth
          ? html`<p>You see the installations and repositories you can administer or write to.</p>
              <p><a class="button" id="github-sign-in" href="/dashboard/login/github">Sign in with GitHub</a></p>`
          : ""
      }
      ${
        options.token
          ? html`<form method="post" action="/dashboard/login">
              <input type="hidden" name="_login" value="${options.loginToken}" />
              <label for="operator-token">Operator token (DASHBOARD_TOKEN)</label>
              <input id="operator-token" name="token" type="password" autocomplete="current-password" required minlength="32" />
              <button type="submit">Sign in as operator</button>
            </form>`
          : ""
      }
    </div>`,
  });
}

function select(name: string, label: string, value: string | undefined, options: Array<[string, string]>): SafeHtml {
  return html`<div class="field">
    <label for="f-${name}">${label}</label>
    <select id="f-${name}" name="${name}">
      ${options.map(([v, text]) => html`<option value="${v}" ${v === (value ?? "") ? html` selected` : ""}>${text}</option>`)}
    </select>
  </div>`;
}

/** A column heading of {@link dataTable}; `num` right-aligns a numeric column. */
type Column = string | { label: string; num: true };
const num = (label: string): Column => ({ label, num: true });

/** Table rows, or one row spanning every column that says there are none. */
function tableRows<T>(items: readonly T[], columns: number, empty: string, row: (item: T) => SafeHtml): SafeHtml {
  if (items.length === 0)
    return html`<tr>
      <td colspan="${columns}">${empty}</td>
    </tr>`;
  return html`${items.map(row)}`;
}

interface TableOptions<T> {
  caption: string;
  columns: readonly Column[];
  items: readonly T[];
  /** The text of the one row shown when there are no items. */
  empty: string;
  row: (item: T) => SafeHtml;
  bodyId?: string;
}

/** A scrollable table with a caption, column headings and one row per item. */
function dataTable<T>(t: TableOptions<T>): SafeHtml {
  return html`<div class="table-wrap">
    <table>
      <caption>
        ${t.caption}
      </caption>
      <thead>
        <tr>
          ${t.columns.map((c) => (typeof c === "string" ? html`<th scope="col">${c}</th>` : html`<th scope="col" class="num">${c.label}</th>`))}
        </tr>
      </thead>
      <tbody ${t.bodyId ? html`id="${t.bodyId}"` : ""}>
        ${tableRows(t.items, t.columns.length, t.empty, t.row)}
      </tbody>
    </table>
  </div>`;
}

/** A section around one {@link dataTable}, headed by an `<h2>` whose id is `${name}-title`; `id` is the section's anchor. */
function tableSection<T>(s: { id?: string; name: string; title: string } & TableOptions<T>): SafeHtml {
  return html`<section ${s.id ? html`id="${s.id}" ` : ""}aria-labelledby="${s.name}-title">
    <h2 id="${s.name}-title">${s.title}</h2>
    ${dataTable(s)}
  </section>`;
}

function liveRow(t: LiveRow, now: number): SafeHtml {
  const pr = safeUrl(t.prUrl);
  return html`<tr data-task-id="${t.id}">
    <th scope="row"><a href="/dashboard/tasks/${t.id}">#${t.issueNumber}${t.issueTitle ? ` ${t.issueTitle}` : ""}</a></th>
    <td>${t.repository}</td>
    <td>${pr ? html`<a href="${pr}" rel="noreferrer">#${t.prNumber}</a>` : t.prNumber ? `#${t.prNumber}` : "—"}</td>
    <td><span class="state state-${t.state}">${t.state}</span></td>
    <td data-started="${t.startedAt}">${duration(now - t.startedAt)}</td>
    <td class="num">${t.spent}</td>
    <td>${t.job}</td>
  </tr>`;
}

/** The JSON of the first chart, as a data block (`type="application/json"` is never run); `<` is escaped so it cannot end the element. */
function jsonBlock(id: string, value: unknown): SafeHtml {
  const text = JSON.stringify(value).replace(/</g, "\\u003c").replace(/>/g, "\\u003e").replace(/&/g, "\\u0026");
  return html`<script type="application/json" id="${id}">
    ${new SafeHtml(text)}
  </script>`;
}

/** The main page: live work, spend over time with its filters, budgets, agent statistics, recent failures. */
export function dashboardPage(options: {
  assets: AssetUrls;
  viewer: Viewer;
  now: number;
  pollMs: number;
  live: readonly LiveRow[];
  spend: SpendView;
  dimensions: LedgerDimensions;
  budgets: readonly BudgetRow[];
  agents: readonly AgentStatistics[];
  failures: readonly FailedTask[];
}): string {
  const { spend, dimensions: d } = options;
  const q = spend.query;
  const body = html` <section id="live" aria-labelledby="live-title">
      <h2 id="live-title">Live work</h2>
      <p class="status" id="live-status" aria-live="polite">${options.live.length} task(s) in progress</p>
      ${dataTable({
        caption: `Tasks in progress, newest first (updates every ${Number((options.pollMs / 1000).toFixed(1))} s)`,
        columns: ["Issue", "Repository", "PR", "State", "Elapsed", num("Spend so far"), "Job"],
        items: options.live,
        empty: "No task in progress.",
        row: (t) => liveRow(t, options.now),
        bodyId: "live-rows",
      })}
    </section>

    <section id="spend" aria-labelledby="spend-title">
      <h2 id="spend-title">Spend over time</h2>
      <form class="filters" id="spend-filter" method="get" action="/dashboard#spend">
        ${select("period", "Period", q.period, [
          ["7d", "Last 7 days"],
          ["30d", "Last 30 days"],
          ["90d", "Last 90 days"],
          ["365d", "Last 365 days"],
        ])}
        ${select("bucket", "Bucket", q.bucket, [
          ["day", "Day"],
          ["week", "Week"],
          ["month", "Month"],
        ])}
        ${select("group", "Group by", q.group, [
          ["none", "Nothing"],
          ["agent", "Agent"],
          ["model", "Model"],
          ["repository", "Repository"],
          ["installation", "Installation"],
        ])}
        ${select("installation", "Installation", q.installation === undefined ? undefined : String(q.installation), [
          ["", "All"],
          ...d.installationIds.map((id): [string, string] => [String(id), String(id)]),
        ])}
        ${select("repository", "Repository", q.repository, [["", "All"], ...d.repositories.map((r): [string, string] => [r, r])])}
        ${select("agent", "Agent", q.agent, [["", "All"], ...d.agents.map((a): [string, string] => [a, a])])}
        ${select("model", "Model", q.model, [["", "All"], ...d.models.map((m): [string, string] => [m, m])])}
        <div><button type="submit">Apply</button></div>
      </form>
      <p class="status" id="spend-status" aria-live="polite"></p>
      <dl class="totals">
        <div>
          <dt>Spend</dt>
          <dd id="total-cost">${spend.totals.cost}</dd>
        </div>
        <div>
          <dt>LLM calls</dt>
          <dd id="total-calls">${fmt(spend.totals.calls)}</dd>
        </div>
        <div>
          <dt>Input read from cache</dt>
          <dd id="total-cache">${spend.totals.cacheShare}</dd>
        </div>
        <div>
          <dt>Cost per merged PR</dt>
          <dd id="total-per-pr">${spend.totals.perMergedPr}</dd>
        </div>
      </dl>
      <div class="actions"><a class="button" id="csv-link" href="${spend.csvUrl}" download>Export the ledger (CSV)</a></div>
      <div class="chart"><canvas id="spend-chart" role="img" aria-label="Spend in USD per bucket; the same numbers are in the table below"></canvas></div>
      ${jsonBlock("spend-data", spend)}
      <details>
        <summary>Spend as a table</summary>
        ${dataTable({
          caption: "Spend per bucket and group",
          columns: ["Bucket (UTC)", "Group", num("Calls"), num("Input / output tokens"), num("USD")],
          items: spend.rows,
          empty: "No LLM calls in this period.",
          row: (r) =>
            html`<tr>
              <th scope="row">${r.bucket}</th>
              <td>${r.key}</td>
              <td class="num">${r.calls}</td>
              <td class="num">${r.inputTokens} / ${r.outputTokens}</td>
              <td class="num">${r.cost}</td>
            </tr>`,
          bodyId: "spend-rows",
        })}
      </details>
    </section>

    ${tableSection({
      id: "budgets",
      name: "budgets",
      title: "Budgets",
      caption: "Limits in force and their use in the current window",
      columns: ["Scope", "Period", num("Spent"), num("Limit"), "Used", "Action", "Resets"],
      items: options.budgets,
      empty: "No budget limit applies to what you can see.",
      row: (b) =>
        html`<tr>
          <th scope="row">${b.scope}</th>
          <td>${b.period}</td>
          <td class="num">${b.spent}</td>
          <td class="num">${b.limit}</td>
          <td>
            <meter min="0" max="100" low="80" high="99" optimum="0" value="${Math.min(b.percent, 100)}" aria-label="${b.percent} % used"></meter>
            ${b.percent.toFixed(1)} %
          </td>
          <td>${b.action}</td>
          <td>${b.resetsAt ? utc(Date.parse(b.resetsAt)) : "never (per task)"}</td>
        </tr>`,
    })}
    ${tableSection({
      id: "agents",
      name: "agents",
      title: "Agents",
      caption: "Agent statistics over the spend filter's period",
      columns: ["Agent", num("Runs"), num("Tasks"), num("Success rate"), num("Rework cycles"), num("Avg cost / run"), num("Avg duration")],
      items: options.agents,
      empty: "No agent ran in this period.",
      row: (a) =>
        html`<tr>
          <th scope="row">${a.agent}</th>
          <td class="num">${fmt(a.runs)}</td>
          <td class="num">${fmt(a.tasks)}</td>
          <td class="num">${a.success_rate === null ? "—" : `${(a.success_rate * 100).toFixed(0)} %`}</td>
          <td class="num">${fmt(a.rework_cycles)}</td>
          <td class="num">${formatNanoUsd(a.avg_cost_nano_usd)}</td>
          <td class="num">${a.avg_duration_ms === null ? "—" : duration(a.avg_duration_ms)}</td>
        </tr>`,
    })}
    ${tableSection({
      id: "failures",
      name: "failures",
      title: "Recent failures",
      caption: "Tasks that stopped most recently, and why",
      columns: ["Issue", "Repository", "State", "Reason", "When"],
      items: options.failures,
      empty: "No failures.",
      row: (f) =>
        html`<tr>
          <th scope="row"><a href="/dashboard/tasks/${f.id}">#${f.issueNumber}${f.issueTitle ? ` ${f.issueTitle}` : ""}</a></th>
          <td>${f.repository}</td>
          <td><span class="state state-${f.state}">${f.state}</span></td>
          <td>${f.reason}</td>
          <td>${utc(f.at)}</td>
        </tr>`,
    })}`;
  return layout({ title: "Dashboard", assets: options.assets, viewer: options.viewer, body, pollMs: options.pollMs, chart: true });
}

/** A task's page: its facts, timeline (transitions, jobs, LLM calls with tokens and cost) and its `/report`. */
export function taskPage(options: { assets: AssetUrls; viewer: Viewer; task: Task; timeline: TaskTimeline; report: string; now: number }): string {
  const { task, timeline } = options;
  const repository = `${task.owner}/${task.repo}`;
  const pr = safeUrl(task.pr_url);
  const spent = timeline.calls.reduce((sum, c) => sum + Number(c.cost_nano_usd), 0);
  const started = task.started_at ?? task.created_at;
  const body = html` <section aria-labelledby="task-title">
      <h2 id="task-title">${repository}#${task.issue_number}${task.issue_title ? ` — ${task.issue_title}` : ""}</h2>
      <dl class="totals">
        <div>
          <dt>State</dt>
          <dd><span class="state state-${task.stage}">${task.stage}</span></dd>
        </div>
        <div>
          <dt>Pull request</dt>
          <dd>${pr ? html`<a href="${pr}" rel="noreferrer">#${task.pr_number}</a>` : "—"}</dd>
        </div>
        <div>
          <dt>Elapsed</dt>
          <dd>${duration((task.finished_at ?? options.now) - started)}</dd>
        </div>
        <div>
          <dt>Spend</dt>
          <dd id="task-spend">${formatNanoUsd(spent)}</dd>
        </div>
        <div>
          <dt>LLM calls</dt>
          <dd>${fmt(timeline.calls.length)}</dd>
        </div>
      </dl>
      <div class="actions"><a class="button" id="report-link" href="/dashboard/tasks/${task.id}/report.md" download>Download the report (Markdown)</a></div>
      ${task.failure_reason || task.blocked_reason ? html`<p><strong>Reason:</strong> ${task.failure_reason ?? task.blocked_reason}</p>` : ""}
    </section>

    ${tableSection({
      name: "transitions",
      title: "Transitions",
      caption: "Every state change, oldest first",
      columns: ["Time", "From", "To", "Reason", "By"],
      items: timeline.transitions,
      empty: "No transitions yet.",
      row: (t) =>
        html`<tr>
          <th scope="row">${utc(t.created_at)}</th>
          <td>${t.from_state ?? "new"}</td>
          <td>${t.to_state}</td>
          <td>${t.reason}</td>
          <td>@${t.actor}</td>
        </tr>`,
    })}
    ${tableSection({
      name: "jobs",
      title: "Jobs",
      caption: "The task's jobs, oldest first",
      columns: ["Job", "Kind", "State", num("Attempts"), "Queued", "Last change", "Last error"],
      items: timeline.jobs,
      empty: "No jobs.",
      row: (j) =>
        html`<tr>
          <th scope="row">${j.id.slice(0, 8)}</th>
          <td>${j.kind}</td>
          <td>${j.state}</td>
          <td class="num">${j.attempts}</td>
          <td>${j.createdAt === null ? "—" : utc(j.createdAt)}</td>
          <td>${utc(j.updatedAt)}</td>
          <td>${j.lastError ?? ""}</td>
        </tr>`,
    })}
    ${tableSection({
      name: "calls",
      title: "LLM calls",
      caption: "Every Messages API call of the task, with tokens and cost",
      columns: ["Time", "Agent", "Model", num("Input"), num("Output"), num("Cache write"), num("Cache read"), num("USD")],
      items: timeline.calls,
      empty: "No LLM calls yet.",
      row: (c) =>
        html`<tr>
          <th scope="row">${utc(c.created_at)}</th>
          <td>${c.agent}</td>
          <td>${c.model}</td>
          <td class="num">${fmt(c.input_tokens)}</td>
          <td class="num">${fmt(c.output_tokens)}</td>
          <td class="num">${fmt(c.cache_creation_input_tokens)}</td>
          <td class="num">${fmt(c.cache_read_input_tokens)}</td>
          <td class="num">${formatNanoUsd(Number(c.cost_nano_usd))}</td>
        </tr>`,
    })}

    <section aria-labelledby="report-title">
      <h2 id="report-title">Report</h2>
      <p class="muted">The same text as the <code>/report</code> command posts on the issue.</p>
      <pre class="report">${options.report}</pre>
    </section>`;
  return layout({ title: `${repository}#${task.issue_number}`, assets: options.assets, viewer: options.viewer, body });
}

/** A small page for an error (not found, forbidden, sign-in refused). */
export function messagePage(options: { assets: AssetUrls; title: string; message: string; viewer?: Viewer }): string {
  return layout({
    title: options.title,
    assets: options.assets,
    viewer: options.viewer,
    body: html`<h2>${options.title}</h2>
      <p>${options.message}</p>
      <p><a href="/dashboard">Back to the dashboard</a></p>`,
  });
}

/** The repository memory page: the viewer's repositories' learnings, read-only (`memory-view.ts`). */
export function memoryPage(options: { assets: AssetUrls; viewer: Viewer; view: MemoryView }): string {
  return layout({ title: "Repository memory", assets: options.assets, viewer: options.viewer, body: memoryBody(options.view) });
}
