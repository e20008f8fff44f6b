import { createHash } from "node:crypto";
import { readFileSync } from "node:fs";
import type { IncomingMessage, ServerResponse } from "node:http";
import { createRequire } from "node:module";
import path from "node:path";

import type { Logger } from "pino";

import type { ServerEnv } from "../../config/env.js";
import { formatNanoUsd } from "../../domain/money.js";
import { renderReport } from "../../pipeline/reports.js";
import { ledgerRows } from "../../store/analytics.js";
import { recentFailures, taskInScope, taskTimeline } from "../../store/dashboard.js";
import type { Db } from "../../store/db.js";
import type { LlmUsage } from "../../store/schema.js";
import { CLIENT_JS } from "./assets/client.js";
import { STYLES_CSS } from "./assets/styles.js";
import {
  authorizeRedirect,
  clearStateCookie,
  completeSignIn,
  cookieNames,
  csrfValid,
  dashboardAuthConfig,
  dashboardEnabled,
  endSession,
  loginFormToken,
  loginFormTokenValid,
  operatorSignIn,
  redirect,
  setCookie,
  SignInError,
  startSession,
  type Viewer,
  viewerOf,
} from "./auth.js";
import { memoryQueryOf, memoryView } from "./memory-view.js";
import { type AssetUrls, dashboardPage, loginPage, memoryPage, messagePage, taskPage } from "./pages.js";
import { agentView, analyticsFilterOf, budgetView, dimensionsOf, liveView, spendQueryOf, spendView } from "./views.js";

/** Options of {@link dashboardHandler}. */
export interface DashboardOptions {
  db: Db;
  env: ServerEnv;
  log: Logger;
}

/** The one line a disabled dashboard answers with. */
export const DASHBOARD_OFF =
  "The dashboard is off: set DASHBOARD_TOKEN, or GITHUB_CLIENT_ID, GITHUB_CLIENT_SECRET and DASHBOARD_URL (docs/OPERATIONS.md, Dashboard).\n";

/** Largest form body read (sign-in and sign-out forms), in bytes. */
const MAX_FORM_BYTES = 4_096;
/** Rows per page read from the ledger while streaming the CSV export. */
const CSV_PAGE_ROWS = 1_000;

/**
 * The Content-Security-Policy of every dashboard answer: scripts, styles, data from the app
 * itself only; no inline script or style; no framing; forms post to the app only.
 */
const CSP =
  "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

const SECURITY_HEADERS = {
  "content-security-policy": CSP,
  "x-content-type-options": "nosniff",
  // Not no-referrer: with it, Chromium sends `Origin: null` on the page's own form posts.
  "referrer-policy": "same-origin",
  "x-frame-options": "DENY",
  "cross-origin-opener-policy": "same-origin",
} as const;

/** A served file: its bytes, its type, and a version for a long-cached URL. */
interface Asset {
  body: Buffer;
  type: string;
  version: string;
}

function assetOf(body: Buffer | string, type: string): Asset {
  const bytes = Buffer.isBuffer(body) ? body : Buffer.from(body, "utf8");
  return { body: bytes, type, version: createHash("sha256").update(bytes).digest("hex").slice(0, 16) };
}

/**
 * Chart.js's UMD build from the installed package (`node_modules/chart.js/dist/chart.umd.min.js`),
 * found through Node's resolution of the package, so the app serves it itself (no CDN).
 */
function chartAsset(): Asset {
  const entry = createRequire(import.meta.url).resolve("chart.js");
  return assetOf(readFileSync(path.join(path.dirname(entry), "chart.umd.min.js")), "text/javascript; charset=utf-8");
}

/**
 * The `/dashboard` routes for Probot's `addHandler`: the operators' dashboard (live work, spend
 * over time with filters and CSV export, budgets, agent statistics, recent failures, a page per
 * task with its timeline and `/report`), its JSON API and its sign-in. Answers `false` for any
 * other path. Read-only: the only rows it writes are its sessions.
 *
 * Routes: `GET /dashboard`, `GET /dashboard/api/{live,spend,budgets,agents,failures}.json`,
 * `GET /dashboard/export.csv`, `GET /dashboard/tasks/:id`, `GET /dashboard/tasks/:id/report.md`,
 * `GET /dashboard/memory`, `GET /dashboard/api/memory.json` (repository memory, read-only),
 * `GET /dashboard/assets/*`, `GET /dashboard/login`, `POST /dashboard/login` (operator token),
 * `GET /dashboard/login/github`, `GET /dashboard/oauth/callback`, `POST /dashboard/logout`.
 */
export function dashboardHandler(options: DashboardOptions): (req: IncomingMessage, res: ServerResponse) => Promise<boolean> {
  const { db, env } = options;
  const log = options.log.child({ component: "dashboard" });
  const config = dashboardAuthConfig(env);
  const enabled = dashboardEnabled(config);
  const pollMs = env.DASHBOARD_POLL_MS;
  let assets: { chart: Asset; script: Asset; styles: Asset; urls: AssetUrls } | undefined;
  const loadAssets = () => {
    if (!assets) {
      const chart = chartAsset();
      const script = assetOf(CLIENT_JS, "text/javascript; charset=utf-8");
      const styles = assetOf(STYLES_CSS, "text/css; charset=utf-8");
      assets = {
        chart,
        script,
        styles,
        urls: {
          chart: `/dashboard/assets/chart.umd.min.js?v=${chart.version}`,
          script: `/dashboard/assets/dashboard.js?v=${script.version}`,
          styles: `/dashboard/assets/dashboard.css?v=${styles.version}`,
        },
      };
    }
    return assets;
  };

  return async (req, res) => {
    const url = new URL(req.url ?? "/", "http://dashboard.invalid");
    const route = url.pathname;
    if (route !== "/dashboard" && !route.startsWith("/dashboard/")) return false;
    if (!enabled) {
      res.writeHead(404, { "content-type": "text/plain; charset=utf-8" }).end(DASHBOARD_OFF);
      return true;
    }
    try {
      await serve(req, res, url);
    } catch (err) {
      log.error({ err, route }, "dashboard request failed");
      if (!res.headersSent) send(res, 500, "text/plain; charset=utf-8", "internal error\n");
      else res.destroy();
    }
    return true;
  };

  async function serve(req: IncomingMessage, res: ServerResponse, url: URL): Promise<void> {
    const route = url.pathname.replace(/\/+$/, "") || "/";
    const method = req.method ?? "GET";
    const reading = method === "GET" || method === "HEAD";
    const a = loadAssets();

    if (route.startsWith("/dashboard/assets/")) {
      const asset = { "/dashboard/assets/chart.umd.min.js": a.chart, "/dashboard/assets/dashboard.js": a.script, "/dashboard/assets/dashboard.css": a.styles }[
        route
      ];
      if (!asset || !reading) return notFound(res, a.urls);
      res.writeHead(200, {
        ...SECURITY_HEADERS,
        "content-type": asset.type,
        "cache-control": "public, max-age=31536000, immutable",
        etag: `"${asset.version}"`,
      });
      res.end(asset.body);
      return;
    }

    // Not a GET: only the two forms, each with its CSRF check, from this origin.
    if (!reading) {
      if (method !== "POST" || (route !== "/dashboard/login" && route !== "/dashboard/logout")) {
        return send(res, method === "POST" ? 403 : 405, "text/plain; charset=utf-8", "forbidden\n");
      }
      if (!sameOrigin(req)) return send(res, 403, "text/plain; charset=utf-8", "cross-origin request refused\n");
      const form = await readForm(req);
      if (form === null) return send(res, 400, "text/plain; charset=utf-8", "bad form\n");
      if (route === "/dashboard/login") return tokenSignIn(req, res, form, a.urls);
      const viewer = await viewerOf(db, config, req);
      if (!viewer || !csrfValid(viewer, form.get("_csrf") ?? headerOf(req, "x-csrf-token"))) {
        return send(res, 403, "text/plain; charset=utf-8", "missing or wrong CSRF token\n");
      }
      redirect(res, "/dashboard/login", [await endSession(db, config, viewer)]);
      return;
    }

    switch (route) {
      case "/dashboard/login": {
        if (await viewerOf(db, config, req)) return redirect(res, "/dashboard");
        return showLogin(res, a.urls, 200);
      }
      case "/dashboard/login/github": {
        if (config.oauth === null) return notFound(res, a.urls);
        const { location, cookie } = authorizeRedirect(config);
        res.writeHead(302, { location, "set-cookie": cookie, "cache-control": "no-store", "referrer-policy": "no-referrer" }).end();
        return;
      }
      case "/dashboard/oauth/callback":
        return oauthCallback(req, res, url, a.urls);
    }

    const viewer = await viewerOf(db, config, req);
    if (!viewer) {
      if (route.startsWith("/dashboard/api/") || route.endsWith(".csv") || route.endsWith(".md")) {
        return send(res, 401, "application/json", JSON.stringify({ message: "sign in at /dashboard/login, or send Authorization: Bearer <DASHBOARD_TOKEN>" }));
      }
      return redirect(res, "/dashboard/login");
    }
    const now = Date.now();
    const { scope } = viewer;

    if (route === "/dashboard") {
      const query = spendQueryOf(url.searchParams);
      const page = dashboardPage({
        assets: a.urls,
        viewer,
        now,
        pollMs,
        live: await liveView(db, scope),
        spend: await spendView(db, scope, query, now),
        dimensions: await dimensionsOf(db, scope),
        budgets: await budgetView(db, scope, env.budgetLimits, now),
        agents: await agentView(db, scope, query, now),
        failures: await recentFailures(db, scope),
      });
      return send(res, 200, "text/html; charset=utf-8", page);
    }
    switch (route) {
      case "/dashboard/api/live.json":
        return json(res, { now, tasks: await liveView(db, scope) });
      case "/dashboard/api/spend.json":
        return json(res, await spendView(db, scope, spendQueryOf(url.searchParams), now));
      case "/dashboard/api/budgets.json":
        return json(res, { budgets: await budgetView(db, scope, env.budgetLimits, now) });
      case "/dashboard/api/agents.json":
        return json(res, { agents: await agentView(db, scope, spendQueryOf(url.searchParams), now) });
      case "/dashboard/api/failures.json":
        return json(res, { failures: await recentFailures(db, scope) });
      case "/dashboard/export.csv":
        return exportCsv(res, viewer, url, now);
    }
    if (route === "/dashboard/memory" || route === "/dashboard/api/memory.json") {
      const memory = await memoryView(db, scope, memoryQueryOf(url.searchParams));
      const api = route === "/dashboard/api/memory.json";
      // A repository outside the scope is "not found", so neither its memory nor its existence is disclosed.
      if (memory === null)
        return api ? send(res, 404, "application/json; charset=utf-8", JSON.stringify({ message: "not found" })) : notFound(res, a.urls, viewer);
      return api ? json(res, memory) : send(res, 200, "text/html; charset=utf-8", memoryPage({ assets: a.urls, viewer, view: memory }));
    }
    const taskRoute = /^\/dashboard\/tasks\/(\d{1,12})(\/report\.md)?$/.exec(route);
    if (taskRoute) {
      const task = await taskInScope(db, scope, Number(taskRoute[1]));
      // A task outside the scope is "not found", so its existence is not disclosed.
      if (!task) return notFound(res, a.urls, viewer);
      const report = await renderReport(db, task);
      if (taskRoute[2]) {
        res.writeHead(200, {
          ...SECURITY_HEADERS,
          "content-type": "text/markdown; charset=utf-8",
          "content-disposition": `attachment; filename="${task.owner}-${task.repo}-${task.issue_number}-report.md"`.replace(/[^\x20-\x7e]/g, "_"),
          "cache-control": "no-store",
        });
        res.end(`${report}\n`);
        return;
      }
      return send(res, 200, "text/html; charset=utf-8", taskPage({ assets: a.urls, viewer, task, timeline: await taskTimeline(db, task.id), report, now }));
    }
    return notFound(res, a.urls, viewer);
  }

  function showLogin(res: ServerResponse, urls: AssetUrls, status: number, error?: string): void {
    const token = loginFormToken(config);
    const page = loginPage({ assets: urls, oauth: config.oauth !== null, token: config.operatorToken !== null, loginToken: token.value, error });
    res.writeHead(status, { ...SECURITY_HEADERS, "content-type": "text/html; charset=utf-8", "cache-control": "no-store", "set-cookie": token.cookie });
    res.end(page);
  }

  async function tokenSignIn(req: IncomingMessage, res: ServerResponse, form: URLSearchParams, urls: AssetUrls): Promise<void> {
    if (config.operatorToken === null) return notFound(res, urls);
    if (!loginFormTokenValid(config, req, form.get("_login") ?? undefined)) {
      return showLogin(res, urls, 403, "The sign-in form expired or did not come from this page. Try again.");
    }
    const cookie = await operatorSignIn(db, config, form.get("token") ?? "");
    if (cookie === null) {
      log.warn("dashboard: operator sign-in with a wrong token");
      return showLogin(res, urls, 401, "Wrong operator token.");
    }
    log.info("dashboard: operator signed in");
    redirect(res, "/dashboard", [cookie, setCookie(config, cookieNames(config).login, "", 0)]);
  }

  async function oauthCallback(req: IncomingMessage, res: ServerResponse, url: URL, urls: AssetUrls): Promise<void> {
    try {
      const access = await completeSignIn(config, req, url.searchParams, log);
      const cookie = await startSession(db, config, access);
      log.info(
        { login: access.login, installations: access.scope.installationIds.length, repositories: access.scope.repositories.length },
        "dashboard: signed in with GitHub",
      );
      redirect(res, "/dashboard", [cookie, clearStateCookie(config)]);
    } catch (err) {
      if (err instanceof SignInError) {
        log.warn({ code: err.code }, "dashboard: sign-in with GitHub refused");
        res.setHeader("set-cookie", clearStateCookie(config));
        return send(
          res,
          err.code === "github_error" ? 502 : 400,
          "text/html; charset=utf-8",
          messagePage({ assets: urls, title: "Sign-in failed", message: err.message }),
        );
      }
      log.error({ err }, "dashboard: sign-in with GitHub failed");
      return send(
        res,
        502,
        "text/html; charset=utf-8",
        messagePage({ assets: urls, title: "Sign-in failed", message: "GitHub's answer could not be read. Try again." }),
      );
    }
  }

  /**
   * The ledger rows of the current filter (period, installation, repository, agent, model)
   * within the viewer's scope, streamed page by page (keyset pagination, never all in memory).
   * Stops, and logs how many rows were sent, when the client goes away (a cancelled download).
   */
  async function exportCsv(res: ServerResponse, viewer: Viewer, url: URL, now: number): Promise<void> {
    const query = spendQueryOf(url.searchParams);
    const filter = analyticsFilterOf(viewer.scope, query, now);
    const day = (ms: number) => new Date(ms).toISOString().slice(0, 10);
    res.writeHead(200, {
      ...SECURITY_HEADERS,
      "content-type": "text/csv; charset=utf-8",
      "content-disposition": `attachment; filename="mission-control-ledger-${day(filter.from)}-${day(now)}.csv"`,
      "cache-control": "no-store",
    });
    res.write(`${CSV_COLUMNS.join(",")}\r\n`);
    let afterId = 0;
    let sent = 0;
    for (;;) {
      if (gone(res)) {
        log.info({ rows: sent }, "dashboard: CSV export cancelled by the client");
        return;
      }
      const rows = await ledgerRows(db, filter, { limit: CSV_PAGE_ROWS, afterId });
      if (rows.length === 0) break;
      if (gone(res)) continue; // logged and ended at the top of the loop
      const flushed = res.write(rows.map(csvLine).join(""));
      sent += rows.length;
      afterId = Number(rows.at(-1)!.id);
      if (!flushed) await drainedOrClosed(res);
    }
    res.end();
  }
}

/** `true` once the response can take no more: destroyed, or its connection closed. */
function gone(res: ServerResponse): boolean {
  return res.destroyed || res.closed || res.socket?.destroyed === true;
}

/** Resolves on the response's `drain` or `close`, whichever comes first (or at once when it is already gone). */
function drainedOrClosed(res: ServerResponse): Promise<void> {
  if (gone(res)) return Promise.resolve();
  return new Promise((resolve) => {
    const done = () => {
      res.off("drain", done);
      res.off("close", done);
      resolve();
    };
    res.on("drain", done);
    res.on("close", done);
  });
}

/** The CSV export's columns: the ledger's, with `created_at` as ISO time and the cost also in exact decimal USD. */
export const CSV_COLUMNS = [
  "id",
  "created_at",
  "installation_id",
  "repository",
  "subject_number",
  "task_id",
  "job_id",
  "agent",
  "model",
  "input_tokens",
  "output_tokens",
  "cache_creation_input_tokens",
  "cache_read_input_tokens",
  "cost_nano_usd",
  "cost_usd",
  "request_id",
] as const;

function csvLine(row: LlmUsage): string {
  const values: Array<string | number | null> = [
    row.id,
    new Date(Number(row.created_at)).toISOString(),
    row.installation_id,
    row.repository,
    row.subject_number,
    row.task_id,
    row.job_id,
    row.agent,
    row.model,
    row.input_tokens,
    row.output_tokens,
    row.cache_creation_input_tokens,
    row.cache_read_input_tokens,
    row.cost_nano_usd,
    formatNanoUsd(Number(row.cost_nano_usd), 9).replace("$", ""),
    row.request_id,
  ];
  return `${values.map(csvField).join(",")}\r\n`;
}

/**
 * One CSV field (RFC 4180): quoted when it holds a comma, quote or line break; a text that a
 * spreadsheet would run as a formula (`=`, `+`, `-`, `@`, tab, CR first) gets a leading `'`.
 */
export function csvField(value: string | number | null): string {
  if (value === null) return "";
  if (typeof value === "number") return String(value);
  const text = /^[=+\-@\t\r]/.test(value) ? `'${value}` : value;
  return /[",\r\n]/.test(text) ? `"${text.replace(/"/g, '""')}"` : text;
}

function send(res: ServerResponse, status: number, type: string, body: string): void {
  res.writeHead(status, { ...SECURITY_HEADERS, "content-type": type, "cache-control": "no-store" });
  res.end(body);
}

function json(res: ServerResponse, value: unknown): void {
  send(res, 200, "application/json; charset=utf-8", JSON.stringify(value));
}

function notFound(res: ServerResponse, urls: AssetUrls, viewer?: Viewer): void {
  send(
    res,
    404,
    "text/html; charset=utf-8",
    messagePage({ assets: urls, viewer, title: "Not found", message: "There is nothing here, or you may not see it." }),
  );
}

function headerOf(req: IncomingMessage, name: string): string | undefined {
  const value = req.headers[name];
  return Array.isArray(value) ? value[0] : value;
}

/** A browser's form post carries `Origin`; when it does, it must be this host (a second check beside the CSRF token). */
function sameOrigin(req: IncomingMessage): boolean {
  const origin = headerOf(req, "origin");
  if (origin === undefined) return true;
  try {
    return new URL(origin).host === headerOf(req, "host");
  } catch {
    return false;
  }
}

/** Reads an `application/x-www-form-urlencoded` body of at most {@link MAX_FORM_BYTES}; `null` for anything else. */
async function readForm(req: IncomingMessage): Promise<URLSearchParams | null> {
  const type = headerOf(req, "content-type") ?? "";
  if (!type.startsWith("application/x-www-form-urlencoded")) return null;
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req as AsyncIterable<Buffer>) {
    size += chunk.length;
    if (size > MAX_FORM_BYTES) return null;
    chunks.push(chunk);
  }
  return new URLSearchParams(Buffer.concat(chunks).toString("utf8"));
}
