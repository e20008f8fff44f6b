import { describe, expect, it } from "vitest";

import { dashboardAuthConfig, hashSessionId, secretsEqual, startSession } from "../../../src/app/dashboard/auth.js";
import { csvField, DASHBOARD_OFF } from "../../../src/app/dashboard/handler.js";
import { renderReport } from "../../../src/pipeline/reports.js";
import { findDashboardSession } from "../../../src/store/dashboard.js";
import { loadTask } from "../../../src/store/tasks.js";
import { ALPHA, BETA, CLIENT_ID, CLIENT_SECRET, dashboardEnv, GAMMA, OPERATOR_TOKEN, signInWithGitHub, useDashboardWorld } from "./fixtures.js";

const world = useDashboardWorld();

const bearer = { authorization: `Bearer ${OPERATOR_TOKEN}` };

/** Signs `login` in through the OAuth flow (following each redirect by hand, keeping cookies); returns the session cookie. */
async function signIn(url: string, login: string): Promise<string> {
  const { location, setCookie: session } = await signInWithGitHub(url, world.oauth, login);
  expect(location).toBe("/dashboard");
  expect(session).toMatch(/HttpOnly/i);
  expect(session).toMatch(/SameSite=Lax/i);
  return session.split(";")[0]!;
}

async function csrfOf(url: string, cookie: string): Promise<string> {
  const page = await (await fetch(`${url}/dashboard`, { headers: { cookie } })).text();
  return /name="_csrf" value="([^"]+)"/.exec(page)![1]!;
}

describe("dashboard configuration", () => {
  it("is off (404 with a one-line hint) when neither OAuth nor a token is configured", async () => {
    const dashboard = await world.startWith(() => dashboardEnv());
    const response = await fetch(`${dashboard.url}/dashboard`);
    expect(response.status).toBe(404);
    expect(await response.text()).toBe(DASHBOARD_OFF);
    expect(DASHBOARD_OFF.trim().split("\n")).toHaveLength(1);
  });

  it("refuses a short DASHBOARD_TOKEN, a client id without its secret or URL, and insecure cookies off loopback", () => {
    expect(() => dashboardEnv({ DASHBOARD_TOKEN: "too-short" })).toThrow(/DASHBOARD_TOKEN/);
    expect(() => dashboardEnv({ GITHUB_CLIENT_ID: CLIENT_ID, DASHBOARD_URL: "https://mc.example.org" })).toThrow(/GITHUB_CLIENT_SECRET/);
    expect(() => dashboardEnv({ GITHUB_CLIENT_ID: CLIENT_ID, GITHUB_CLIENT_SECRET: CLIENT_SECRET })).toThrow(/DASHBOARD_URL/);
    expect(() => dashboardEnv({ DASHBOARD_TOKEN: OPERATOR_TOKEN, DASHBOARD_URL: "https://mc.example.org", DASHBOARD_COOKIE_SECURE: "off" })).toThrow(
      /DASHBOARD_COOKIE_SECURE/,
    );
    expect(
      dashboardEnv({ DASHBOARD_TOKEN: OPERATOR_TOKEN, DASHBOARD_URL: "http://localhost:3000", DASHBOARD_COOKIE_SECURE: "off" }).DASHBOARD_COOKIE_SECURE,
    ).toBe("off");
  });

  it("derives the OAuth host from GHE_HOST, and uses Secure __Host- cookies by default", async () => {
    const env = dashboardEnv({
      GHE_HOST: "ghe.example.org",
      GITHUB_CLIENT_ID: CLIENT_ID,
      GITHUB_CLIENT_SECRET: CLIENT_SECRET,
      DASHBOARD_URL: "https://mc.example.org/",
    });
    const config = dashboardAuthConfig(env);
    expect(config.oauth).toMatchObject({
      webUrl: "https://ghe.example.org",
      apiUrl: "https://ghe.example.org/api/v3",
      redirectUri: "https://mc.example.org/dashboard/oauth/callback",
    });
    expect(config.secureCookies).toBe(true);
    const dashboard = await world.startWith(() => env);
    const start = await fetch(`${dashboard.url}/dashboard/login/github`, { redirect: "manual" });
    const location = new URL(start.headers.get("location")!);
    expect(location.origin + location.pathname).toBe("https://ghe.example.org/login/oauth/authorize");
    expect(location.searchParams.get("client_id")).toBe(CLIENT_ID);
    const cookie = start.headers.getSetCookie()[0]!;
    expect(cookie).toMatch(/^__Host-mc_oauth_state=/);
    expect(cookie).toMatch(/; Secure/i);
    expect(cookie).toMatch(/; Path=\//i);
    expect(cookie).toContain(location.searchParams.get("state")!);
  });
});

describe("dashboard access", () => {
  it("compares secrets in constant time by digest, whatever their lengths", () => {
    expect(secretsEqual(OPERATOR_TOKEN, OPERATOR_TOKEN)).toBe(true);
    expect(secretsEqual(`${OPERATOR_TOKEN}x`, OPERATOR_TOKEN)).toBe(false);
    expect(secretsEqual("", OPERATOR_TOKEN)).toBe(false);
  });

  it("the operator token opens the server-wide view; a wrong one or none gets 401 (HTML pages redirect to the sign-in)", async () => {
    const url = await world.start();
    const live = (await (await fetch(`${url}/dashboard/api/live.json`, { headers: bearer })).json()) as { tasks: Array<{ repository: string }> };
    expect(live.tasks.map((t) => t.repository).sort()).toEqual([ALPHA, BETA]);
    expect((await fetch(`${url}/dashboard/api/live.json`, { headers: { authorization: `Bearer ${OPERATOR_TOKEN.slice(1)}x` } })).status).toBe(401);
    expect((await fetch(`${url}/dashboard/api/live.json`)).status).toBe(401);
    const page = await fetch(`${url}/dashboard`, { redirect: "manual" });
    expect(page.status).toBe(303);
    expect(page.headers.get("location")).toBe("/dashboard/login");
  });

  it("a user with push on acme/alpha only never receives another repository's rows: API, CSV, task pages, report", async () => {
    const url = await world.start();
    const cookie = await signIn(url, "alice");
    const get = (path: string) => fetch(`${url}${path}`, { headers: { cookie } });

    const live = (await (await get("/dashboard/api/live.json")).json()) as { tasks: Array<{ repository: string }> };
    expect(live.tasks.map((t) => t.repository)).toEqual([ALPHA]);
    const spend = (await (await get("/dashboard/api/spend.json?group=repository&period=30d")).json()) as { series: Array<{ key: string }>; rows: unknown[] };
    expect(spend.series.map((s) => s.key)).toEqual([ALPHA]);
    // Asking for a repository outside the scope gives nothing, not that repository.
    const beta = (await (await get(`/dashboard/api/spend.json?repository=${BETA}`)).json()) as { rows: unknown[] };
    expect(beta.rows).toEqual([]);
    const failures = (await (await get("/dashboard/api/failures.json")).json()) as { failures: Array<{ repository: string }> };
    expect(failures.failures.map((f) => f.repository)).toEqual([ALPHA]);

    const csv = await (await get("/dashboard/export.csv?period=30d")).text();
    const lines = csv.trim().split("\r\n");
    expect(lines[0]).toMatch(/^id,created_at,installation_id,repository,/);
    expect(lines.slice(1).every((line) => line.split(",")[3] === ALPHA)).toBe(true);
    expect(lines).toHaveLength(1 + world.seeded.calls[ALPHA]!);
    expect(csv).not.toContain(BETA);
    expect(csv).not.toContain(GAMMA);

    const page = await (await get("/dashboard")).text();
    expect(page).toContain("Add retries to the importer");
    expect(page).not.toContain("Secret beta work");
    expect(page).not.toContain(BETA);
    expect((await get(`/dashboard/tasks/${world.seeded.betaLive}`)).status).toBe(404);
    expect((await get(`/dashboard/tasks/${world.seeded.gammaMerged}/report.md`)).status).toBe(404);

    const report = await get(`/dashboard/tasks/${world.seeded.alphaLive}/report.md`);
    expect(report.headers.get("content-disposition")).toMatch(/^attachment; filename="acme-alpha-11-report.md"/);
    expect(await report.text()).toBe(`${await renderReport(world.store.db, await loadTask(world.store.db, world.seeded.alphaLive))}\n`);
  });

  it("stores the session id's hash only, with the scope computed at sign-in and no GitHub token", async () => {
    const url = await world.start();
    const cookie = await signIn(url, "alice");
    const id = cookie.split("=")[1]!;
    const rows = await world.store.db.selectFrom("dashboard_sessions").selectAll().execute();
    expect(rows).toHaveLength(1);
    expect(rows[0]!.id_hash).toBe(hashSessionId(id));
    expect(JSON.stringify(rows)).not.toContain(id);
    for (const token of world.oauth.tokens) expect(JSON.stringify(rows)).not.toContain(token);
    const session = await findDashboardSession(world.store.db, hashSessionId(id));
    expect(session?.scope).toEqual({ installationIds: [100], repositories: [ALPHA] });
  });

  it("refuses a callback whose state does not match its cookie, and a denied authorization", async () => {
    const url = await world.start();
    world.oauth.signInAs("alice");
    const start1 = await fetch(`${url}/dashboard/login/github`, { redirect: "manual" });
    const authorize = await fetch(start1.headers.get("location")!, { redirect: "manual" });
    // No state cookie (another browser, or a forged link).
    const forged = await fetch(authorize.headers.get("location")!, { redirect: "manual" });
    expect(forged.status).toBe(400);
    expect(forged.headers.getSetCookie().some((c) => c.startsWith("mc_session="))).toBe(false);
    expect(await world.store.db.selectFrom("dashboard_sessions").selectAll().execute()).toEqual([]);
  });

  it("POST without the session's CSRF token is 403; with it, sign-out ends the session", async () => {
    const url = await world.start();
    const cookie = await signIn(url, "alice");
    const csrf = await csrfOf(url, cookie);
    const form = { "content-type": "application/x-www-form-urlencoded" };
    expect((await fetch(`${url}/dashboard/logout`, { method: "POST", headers: { ...form, cookie }, body: "", redirect: "manual" })).status).toBe(403);
    expect((await fetch(`${url}/dashboard/logout`, { method: "POST", headers: { ...form, cookie }, body: "_csrf=wrong", redirect: "manual" })).status).toBe(
      403,
    );
    // The right token from another site's page is refused too.
    const crossSite = await fetch(`${url}/dashboard/logout`, {
      method: "POST",
      headers: { ...form, cookie, origin: "https://evil.example" },
      body: `_csrf=${encodeURIComponent(csrf)}`,
      redirect: "manual",
    });
    expect(crossSite.status).toBe(403);
    // Any other method or path is refused.
    expect((await fetch(`${url}/dashboard/api/live.json`, { method: "POST", headers: { ...form, cookie }, body: "" })).status).toBe(403);
    expect((await fetch(`${url}/dashboard/api/live.json`, { headers: { cookie } })).status).toBe(200);

    const out = await fetch(`${url}/dashboard/logout`, {
      method: "POST",
      headers: { ...form, cookie },
      body: `_csrf=${encodeURIComponent(csrf)}`,
      redirect: "manual",
    });
    expect(out.status).toBe(303);
    expect(out.headers.getSetCookie()[0]).toMatch(/^mc_session=;.*Max-Age=0/i);
    expect((await fetch(`${url}/dashboard/api/live.json`, { headers: { cookie } })).status).toBe(401);
  });

  it("an expired session is refused", async () => {
    const url = await world.start();
    const config = dashboardAuthConfig(dashboardEnv({ DASHBOARD_TOKEN: OPERATOR_TOKEN }));
    const setCookie = await startSession(
      world.store.db,
      { ...config, secureCookies: false },
      { login: "operator", userId: null, scope: { installationIds: null, repositories: null } },
      Date.now() - config.sessionTtlMs - 1,
    );
    const cookie = setCookie.split(";")[0]!;
    expect((await fetch(`${url}/dashboard/api/live.json`, { headers: { cookie } })).status).toBe(401);
    const fresh = (
      await startSession(
        world.store.db,
        { ...config, secureCookies: false },
        { login: "operator", userId: null, scope: { installationIds: null, repositories: null } },
      )
    ).split(";")[0]!;
    expect((await fetch(`${url}/dashboard/api/live.json`, { headers: { cookie: fresh } })).status).toBe(200);
  });

  it("the operator-token form needs its login token (login CSRF) and the right token", async () => {
    const url = await world.start();
    const page = await fetch(`${url}/dashboard/login`);
    const loginCookie = page.headers
      .getSetCookie()
      .find((c) => c.startsWith("mc_login="))!
      .split(";")[0]!;
    const loginToken = /name="_login" value="([^"]+)"/.exec(await page.text())![1]!;
    const post = (cookie: string, body: string) =>
      fetch(`${url}/dashboard/login`, { method: "POST", headers: { "content-type": "application/x-www-form-urlencoded", cookie }, body, redirect: "manual" });
    expect((await post("", `_login=${loginToken}&token=${OPERATOR_TOKEN}`)).status).toBe(403);
    expect((await post(loginCookie, `_login=${loginToken}&token=${OPERATOR_TOKEN.replace(/.$/, "_")}`)).status).toBe(401);
    const ok = await post(loginCookie, `_login=${loginToken}&token=${OPERATOR_TOKEN}`);
    expect(ok.status).toBe(303);
    const session = ok.headers
      .getSetCookie()
      .find((c) => c.startsWith("mc_session="))!
      .split(";")[0]!;
    const live = (await (await fetch(`${url}/dashboard/api/live.json`, { headers: { cookie: session } })).json()) as { tasks: unknown[] };
    expect(live.tasks).toHaveLength(2);
  });

  it("serves Chart.js and its own script from the app, long-cached, under a CSP without unsafe-inline", async () => {
    const url = await world.start();
    const page = await fetch(`${url}/dashboard`, { headers: bearer });
    const csp = page.headers.get("content-security-policy")!;
    expect(csp).toContain("script-src 'self'");
    expect(csp).not.toContain("unsafe-inline");
    const html = await page.text();
    const chartUrl = /src="(\/dashboard\/assets\/chart\.umd\.min\.js\?v=[0-9a-f]+)"/.exec(html)![1]!;
    const chart = await fetch(`${url}${chartUrl}`);
    expect(chart.status).toBe(200);
    expect(chart.headers.get("cache-control")).toBe("public, max-age=31536000, immutable");
    expect(await chart.text()).toMatch(/Chart\.js v4/);
    // No inline script: every <script> either has a src or is a JSON data block.
    for (const tag of html.match(/<script[^>]*>/g) ?? []) expect(tag).toMatch(/src="|type="application\/json"/);
  });

  it("escapes CSV fields and defuses spreadsheet formulas", () => {
    expect(csvField("=HYPERLINK(1)")).toBe("'=HYPERLINK(1)");
    expect(csvField('a,"b"')).toBe('"a,""b"""');
    expect(csvField(null)).toBe("");
    expect(csvField(12)).toBe("12");
  });
});
