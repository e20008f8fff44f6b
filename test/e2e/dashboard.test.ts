// The dashboard in a real browser: Playwright (playwright-core) drives Debian's Chromium against
// the real app on loopback, with a fake GitHub OAuth server. Sign-in with GitHub, the live view
// updating when a job starts, filters changing the chart, the CSV export, a user who may not see
// a repository, and the operator token. With MC_SCREENSHOTS=1 it also writes the README's
// screenshots to docs/images/.
import { existsSync, mkdirSync, writeSync } from "node:fs";
import path from "node:path";

import { type Browser, type BrowserContext, chromium, type Page } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";

import { createTask } from "../../src/store/tasks.js";
import { transition } from "../../src/store/transitions.js";
import { ALPHA, BETA, CLIENT_ID, CLIENT_SECRET, OPERATOR_TOKEN, type Seeded, seedDashboard, startJob, USERS } from "../app/dashboard/fixtures.js";
import { freePort, type RunningApp, startApp, tempDir } from "../helpers/app-harness.js";
import { type FakeOAuth, startOAuthFake } from "../helpers/oauth-fake.js";

const CHROMIUM = "/usr/bin/chromium";
const hasBrowser = existsSync(CHROMIUM);
const MISSING = `The browser tests of test/e2e/dashboard.test.ts need Chromium at ${CHROMIUM} (apt-get install -y chromium)`;
if (!hasBrowser && !process.env.MC_REQUIRE_BROWSER) writeSync(2, `\n${MISSING}; skipped (set MC_REQUIRE_BROWSER=1 to fail instead).\n\n`);

const SCREENSHOTS = process.env.MC_SCREENSHOTS === "1" ? path.resolve(import.meta.dirname, "../../docs/images") : null;

describe.skipIf(!hasBrowser && !process.env.MC_REQUIRE_BROWSER)("the dashboard in a browser", () => {
  let browser: Browser;
  let oauth: FakeOAuth;
  let app: RunningApp;
  let dirs: ReturnType<typeof tempDir>;
  let seeded: Seeded;
  let url: string;
  let alice: BrowserContext;
  let page: Page;

  beforeAll(async () => {
    if (!hasBrowser) throw new Error(`${MISSING}; MC_REQUIRE_BROWSER is set: failing.`);
    browser = await chromium.launch({ executablePath: CHROMIUM, headless: true, args: ["--no-sandbox"] });
    oauth = await startOAuthFake({ clientId: CLIENT_ID, clientSecret: CLIENT_SECRET, users: USERS });
    dirs = tempDir("mc-dashboard-");
    const port = await freePort();
    url = `http://127.0.0.1:${port}`;
    app = await startApp({
      databasePath: path.join(dirs.dir, "mc.sqlite"),
      workspacesDir: path.join(dirs.dir, "workspaces"),
      gheHost: oauth.host,
      startWorker: false,
      env: {
        PORT: String(port),
        GHE_PROTOCOL: "http",
        GITHUB_CLIENT_ID: CLIENT_ID,
        GITHUB_CLIENT_SECRET: CLIENT_SECRET,
        DASHBOARD_TOKEN: OPERATOR_TOKEN,
        DASHBOARD_URL: url,
        DASHBOARD_COOKIE_SECURE: "off",
        DASHBOARD_POLL_MS: "300",
        LOG_LEVEL: "warn",
      },
    });
    seeded = await seedDashboard(app.db);
    alice = await browser.newContext({ viewport: { width: 1280, height: 900 } });
    page = await alice.newPage();
  });

  afterAll(async () => {
    await browser?.close();
    await app?.stop(0);
    await oauth?.close();
    dirs?.cleanup();
  });

  // Run in the page (strings: this project's TypeScript has no DOM types).
  const chartLabels = (p: Page) => p.evaluate<string[] | null>('Chart.getChart("spend-chart")?.data.datasets.map((d) => d.label) ?? null');

  it("signs in with GitHub and shows only the repositories the user may write to", async () => {
    oauth.signInAs("alice");
    await page.goto(`${url}/dashboard`);
    expect(new URL(page.url()).pathname).toBe("/dashboard/login");
    await page.getByRole("link", { name: "Sign in with GitHub" }).click();
    await page.waitForURL(`${url}/dashboard`);
    expect(await page.locator("#viewer-login").textContent()).toBe("alice");
    await expect.poll(() => page.locator("#live-rows tr").allTextContents()).toEqual([expect.stringContaining("Add retries to the importer")]);
    expect(await page.locator("#live-rows").textContent()).toContain("code (running, attempt 1)");
    expect(await page.content()).not.toContain("Secret beta work");
    expect(await page.locator("#f-repository option").allTextContents()).toEqual(["All", ALPHA]);
    expect(await page.locator("#failures tbody").textContent()).toContain("the tests failed after 3 revisions");
    expect(oauth.requests).toContain("GET /api/v3/user/installations/100/repositories");
  });

  it("shows a job that starts without a reload", async () => {
    await page.evaluate("window.notReloaded = true");
    const now = Date.now();
    const task = await createTask(app.db, {
      installation_id: 100,
      owner: "acme",
      repo: "alpha",
      issue_number: 13,
      run: 1,
      stage: "new",
      triggered_by: "maintainer",
      clone_url: "https://github.com/acme/alpha.git",
      default_branch: "main",
      config: "{}",
      issue_title: "A job that just started",
      created_at: now,
      updated_at: now,
      started_at: now,
    });
    await transition(app.db, task.id, "planning", { reason: "triggered by the label", actor: "maintainer" });
    await startJob(app.db, task.id, 100, "plan", "acme/alpha#13");
    const row = page.locator(`#live-rows tr[data-task-id="${task.id}"]`);
    await row.waitFor({ timeout: 5_000 });
    expect(await row.textContent()).toContain("plan (running, attempt 1)");
    expect(await row.textContent()).toContain("planning");
    expect(await page.evaluate("window.notReloaded")).toBe(true);
    if (SCREENSHOTS) {
      mkdirSync(SCREENSHOTS, { recursive: true });
      await page.locator("#live").screenshot({ path: path.join(SCREENSHOTS, "dashboard-live.png") });
    }
  });

  it("redraws the chart and the totals when a filter changes, and exports that filter's ledger as CSV", async () => {
    await expect.poll(() => chartLabels(page)).toEqual(["architect", "coder", "reviewer", "tester"]);
    // The seed's 15 Reviewer calls in acme/alpha cost 499,772,100 n$ in all.
    const reviewerCost = "$0.4998";
    await page.getByLabel("Agent", { exact: true }).selectOption("reviewer");
    await expect.poll(() => chartLabels(page)).toEqual(["reviewer"]);
    await expect.poll(() => page.locator("#total-cost").textContent()).toBe(reviewerCost);
    expect(new URL(page.url()).searchParams.get("agent")).toBe("reviewer");
    await page.getByLabel("Group by", { exact: true }).selectOption("model");
    await expect.poll(() => chartLabels(page)).toEqual(["claude-haiku-4-5", "claude-sonnet-5-5"]);
    if (SCREENSHOTS) {
      await page.getByLabel("Agent", { exact: true }).selectOption("");
      await page.getByLabel("Group by", { exact: true }).selectOption("agent");
      await expect.poll(() => chartLabels(page)).toEqual(["architect", "coder", "reviewer", "tester"]);
      await page.locator("#spend").screenshot({ path: path.join(SCREENSHOTS, "dashboard-spend.png") });
      await page.getByLabel("Agent", { exact: true }).selectOption("reviewer");
      await expect.poll(() => page.locator("#total-cost").textContent()).toBe(reviewerCost);
    }

    const href = await page.locator("#csv-link").getAttribute("href");
    expect(href).toContain("agent=reviewer");
    const download = await page.request.get(`${url}${href}`);
    expect(download.headers()["content-type"]).toBe("text/csv; charset=utf-8");
    const [header, ...rows] = (await download.text()).trim().split("\r\n");
    expect(header?.split(",").slice(0, 4)).toEqual(["id", "created_at", "installation_id", "repository"]);
    expect(rows).toHaveLength(15);
    let total = 0;
    for (const row of rows) {
      const cells = row.split(",");
      expect(cells[3]).toBe(ALPHA);
      expect(cells[7]).toBe("reviewer");
      expect(cells[6]).toMatch(/^\d+$/);
      expect(cells[13]).toMatch(/^\d+$/);
      expect(cells[14]).toBe(`${cells[13]!.padStart(10, "0").slice(0, -9)}.${cells[13]!.padStart(10, "0").slice(-9)}`);
      total += Number(cells[13]);
    }
    expect(total).toBe(499_772_100);
  });

  it("never shows a repository the user may not see, even by its task's address", async () => {
    const response = await page.goto(`${url}/dashboard/tasks/${seeded.betaLive}`);
    expect(response?.status()).toBe(404);
    expect(await page.content()).not.toContain("Secret beta work");
    const api = await page.request.get(`${url}/dashboard/api/spend.json?repository=${BETA}`);
    expect(((await api.json()) as { rows: unknown[] }).rows).toEqual([]);

    const task = await page.goto(`${url}/dashboard/tasks/${seeded.alphaLive}`);
    expect(task?.status()).toBe(200);
    expect(await page.locator("#calls-title + .table-wrap tbody tr").count()).toBe(13);
    expect(await page.locator("pre.report").textContent()).toContain("Report for #11");
    const report = await page.request.get(`${url}${await page.locator("#report-link").getAttribute("href")}`);
    expect(await report.text()).toContain("**Timeline**");
    if (SCREENSHOTS) await page.screenshot({ path: path.join(SCREENSHOTS, "dashboard-task.png"), fullPage: true });
  });

  it("the operator token signs in to the server-wide view, also on a phone-sized screen", async () => {
    const phone = await browser.newContext({ viewport: { width: 390, height: 844 }, isMobile: true, hasTouch: true });
    try {
      const p = await phone.newPage();
      await p.goto(`${url}/dashboard/login`);
      await p.getByLabel("Operator token (DASHBOARD_TOKEN)").fill(OPERATOR_TOKEN);
      await p.getByRole("button", { name: "Sign in as operator" }).click();
      await p.waitForURL(`${url}/dashboard`, { timeout: 5_000 });
      expect(await p.locator("#viewer-login").textContent()).toBe("operator (all installations)");
      await expect.poll(() => p.locator("#live-rows").textContent()).toContain("Secret beta work");
      expect(await p.locator("#f-repository option").allTextContents()).toEqual(["All", "acme/alpha", "acme/gamma", BETA]);
      // Nothing wider than the screen: tables scroll inside their own box.
      expect(await p.evaluate<number>("document.documentElement.scrollWidth")).toBeLessThanOrEqual(390);
      if (SCREENSHOTS) await p.screenshot({ path: path.join(SCREENSHOTS, "dashboard-phone.png") });
      // The keyboard reaches the skip link first.
      await p.keyboard.press("Tab");
      expect(await p.evaluate("document.activeElement?.textContent")).toBe("Skip to content");
    } finally {
      await phone.close();
    }
  });
});
