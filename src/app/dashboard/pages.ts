import { formatNanoUsd } from "../../domain/money.js";
import type { AgentStatistics } from "../../store/analytics.js";
import type { FailedTask, LedgerDimensions, TaskTimeline } from "../../store/dashboard.js";
import type { Task } from "../../store/schema.js";
import type { Viewer } from "./auth.js";
import { html, SafeHtml } from "./html.js";
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

function liveRows(rows: readonly LiveRow[], now: number): SafeHtml {
  if (rows.length === 0)
    return html`<tr>
      <td colspan="7">No task in progress.</td>
    </tr>`;
  return html`${rows.map((t) => {
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
  })}`;
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
      <div class="table-wrap">
        <table>
          <caption>
            Tasks in progress, newest first (updates every ${Number((options.pollMs / 1000).toFixed(1))} s)
          </caption>
          <thead>
            <tr>
              <th scope="col">Issue</th>
              <th scope="col">Repository</th>
              <th scope="col">PR</th>
              <th scope="col">State</th>
              <th scope="col">Elapsed</th>
              <th scope="col" class="num">Spend so far</th>
              <th scope="col">Job</th>
            </tr>
          </thead>
          <tbody id="live-rows">
            ${liveRows(options.live, options.now)}
          </tbody>
        </table>
      </div>
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
        <div class="table-wrap">
          <table>
            <caption>
              Spend per bucket and group
            </caption>
            <thead>
              <tr>
                <th scope="col">Bucket (UTC)</th>
                <th scope="col">Group</th>
                <th scope="col" class="num">Calls</th>
                <th scope="col" class="num">Input / output tokens</th>
                <th scope="col" class="num">USD</th>
              </tr>
            </thead>
            <tbody id="spend-rows">
              ${
                spend.rows.length === 0
                  ? html`<tr>
                      <td colspan="5">No LLM calls in this period.</td>
                    </tr>`
                  : spend.rows.map(
                      (r) =>
                        html`<tr>
                          <th scope="row">${r.bucket}</th>
                          <td>${r.key}</td>
                          <td class="num">${r.calls}</td>
                          <td class="num">${r.inputTokens} / ${r.outputTokens}</td>
                          <td class="num">${r.cost}</td>
                        </tr>`,
                    )
              }
            </tbody>
          </table>
        </div>
      </details>
    </section>

    <section id="budgets" aria-labelledby="budgets-title">
      <h2 id="budgets-title">Budgets</h2>
      <div class="table-wrap">
        <table>
          <caption>
            Limits in force and their use in the current window
          </caption>
          <thead>
            <tr>
              <th scope="col">Scope</th>
              <th scope="col">Period</th>
              <th scope="col" class="num">Spent</th>
              <th scope="col" class="num">Limit</th>
              <th scope="col">Used</th>
              <th scope="col">Action</th>
              <th scope="col">Resets</th>
            </tr>
          </thead>
          <tbody>
            ${
              options.budgets.length === 0
                ? html`<tr>
                    <td colspan="7">No budget limit applies to what you can see.</td>
                  </tr>`
                : options.budgets.map(
                    (b) =>
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
                  )
            }
          </tbody>
        </table>
      </div>
    </section>

    <section id="agents" aria-labelledby="agents-title">
      <h2 id="agents-title">Agents</h2>
      <div class="table-wrap">
        <table>
          <caption>
            Agent statistics over the spend filter's period
          </caption>
          <thead>
            <tr>
              <th scope="col">Agent</th>
              <th scope="col" class="num">Runs</th>
              <th scope="col" class="num">Tasks</th>
              <th scope="col" class="num">Success rate</th>
              <th scope="col" class="num">Rework cycles</th>
              <th scope="col" class="num">Avg cost / run</th>
              <th scope="col" class="num">Avg duration</th>
            </tr>
          </thead>
          <tbody>
            ${
              options.agents.length === 0
                ? html`<tr>
                    <td colspan="7">No agent ran in this period.</td>
                  </tr>`
                : options.agents.map(
                    (a) =>
                      html`<tr>
                        <th scope="row">${a.agent}</th>
                        <td class="num">${fmt(a.runs)}</td>
                        <td class="num">${fmt(a.tasks)}</td>
                        <td class="num">${a.success_rate === null ? "—" : `${(a.success_rate * 100).toFixed(0)} %`}</td>
                        <td class="num">${fmt(a.rework_cycles)}</td>
                        <td class="num">${formatNanoUsd(a.avg_cost_nano_usd)}</td>
                        <td class="num">${a.avg_duration_ms === null ? "—" : duration(a.avg_duration_ms)}</td>
                      </tr>`,
                  )
            }
          </tbody>
        </table>
      </div>
    </section>

    <section id="failures" aria-labelledby="failures-title">
      <h2 id="failures-title">Recent failures</h2>
      <div class="table-wrap">
        <table>
          <caption>
            Tasks that stopped most recently, and why
          </caption>
          <thead>
            <tr>
              <th scope="col">Issue</th>
              <th scope="col">Repository</th>
              <th scope="col">State</th>
              <th scope="col">Reason</th>
              <th scope="col">When</th>
            </tr>
          </thead>
          <tbody>
            ${
              options.failures.length === 0
                ? html`<tr>
                    <td colspan="5">No failures.</td>
                  </tr>`
                : options.failures.map(
                    (f) =>
                      html`<tr>
                        <th scope="row"><a href="/dashboard/tasks/${f.id}">#${f.issueNumber}${f.issueTitle ? ` ${f.issueTitle}` : ""}</a></th>
                        <td>${f.repository}</td>
                        <td><span class="state state-${f.state}">${f.state}</span></td>
                        <td>${f.reason}</td>
                        <td>${utc(f.at)}</td>
                      </tr>`,
                  )
            }
          </tbody>
        </table>
      </div>
    </section>`;
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

    <section aria-labelledby="transitions-title">
      <h2 id="transitions-title">Transitions</h2>
      <div class="table-wrap">
        <table>
          <caption>
            Every state change, oldest first
          </caption>
          <thead>
            <tr>
              <th scope="col">Time</th>
              <th scope="col">From</th>
              <th scope="col">To</th>
              <th scope="col">Reason</th>
              <th scope="col">By</th>
            </tr>
          </thead>
          <tbody>
            ${
              timeline.transitions.length === 0
                ? html`<tr>
                    <td colspan="5">No transitions yet.</td>
                  </tr>`
                : timeline.transitions.map(
                    (t) =>
                      html`<tr>
                        <th scope="row">${utc(t.created_at)}</th>
                        <td>${t.from_state ?? "new"}</td>
                        <td>${t.to_state}</td>
                        <td>${t.reason}</td>
                        <td>@${t.actor}</td>
                      </tr>`,
                  )
            }
          </tbody>
        </table>
      </div>
    </section>

    <section aria-labelledby="jobs-title">
      <h2 id="jobs-title">Jobs</h2>
      <div class="table-wrap">
        <table>
          <caption>
            The task's jobs, oldest first
          </caption>
          <thead>
            <tr>
              <th scope="col">Job</th>
              <th scope="col">Kind</th>
              <th scope="col">State</th>
              <th scope="col" class="num">Attempts</th>
              <th scope="col">Queued</th>
              <th scope="col">Last change</th>
              <th scope="col">Last error</th>
            </tr>
          </thead>
          <tbody>
            ${
              timeline.jobs.length === 0
                ? html`<tr>
                    <td colspan="7">No jobs.</td>
                  </tr>`
                : timeline.jobs.map(
                    (j) =>
                      html`<tr>
                        <th scope="row">${j.id.slice(0, 8)}</th>
                        <td>${j.kind}</td>
                        <td>${j.state}</td>
                        <td class="num">${j.attempts}</td>
                        <td>${j.createdAt === null ? "—" : utc(j.createdAt)}</td>
                        <td>${utc(j.updatedAt)}</td>
                        <td>${j.lastError ?? ""}</td>
                      </tr>`,
                  )
            }
          </tbody>
        </table>
      </div>
    </section>

    <section aria-labelledby="calls-title">
      <h2 id="calls-title">LLM calls</h2>
      <div class="table-wrap">
        <table>
          <caption>
            Every Messages API call of the task, with tokens and cost
          </caption>
          <thead>
            <tr>
              <th scope="col">Time</th>
              <th scope="col">Agent</th>
              <th scope="col">Model</th>
              <th scope="col" class="num">Input</th>
              <th scope="col" class="num">Output</th>
              <th scope="col" class="num">Cache write</th>
              <th scope="col" class="num">Cache read</th>
              <th scope="col" class="num">USD</th>
            </tr>
          </thead>
          <tbody>
            ${
              timeline.calls.length === 0
                ? html`<tr>
                    <td colspan="8">No LLM calls yet.</td>
                  </tr>`
                : timeline.calls.map(
                    (c) =>
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
                  )
            }
          </tbody>
        </table>
      </div>
    </section>

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
