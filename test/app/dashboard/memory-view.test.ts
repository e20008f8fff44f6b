import { afterEach, beforeEach, describe, expect, it } from "vitest";

import { dashboardAuthConfig, startSession } from "../../../src/app/dashboard/auth.js";
import { MEMORY_PAGE_ROWS, type MemoryView } from "../../../src/app/dashboard/memory-view.js";
import { addLearning } from "../../../src/store/memory.js";
import { createTestDatabase, type TestDatabase } from "../../helpers/db.js";
import { type FakeOAuth, startOAuthFake } from "../../helpers/oauth-fake.js";
import { ALPHA, BETA, CLIENT_ID, CLIENT_SECRET, dashboardEnv, GAMMA, OPERATOR_TOKEN, seedDashboard, startDashboard, USERS } from "./fixtures.js";

const T0 = Date.UTC(2026, 10, 1, 9, 30);

let store: TestDatabase;
let oauth: FakeOAuth;
let dashboard: { url: string; close(): Promise<void> } | undefined;

beforeEach(async () => {
  store = await createTestDatabase();
  oauth = await startOAuthFake({ clientId: CLIENT_ID, clientSecret: CLIENT_SECRET, users: USERS });
});

afterEach(async () => {
  await dashboard?.close();
  dashboard = undefined;
  await oauth.close();
  await store.cleanup();
});

function env(port: number) {
  return dashboardEnv({
    GHE_HOST: oauth.host,
    GHE_PROTOCOL: "http",
    GITHUB_CLIENT_ID: CLIENT_ID,
    GITHUB_CLIENT_SECRET: CLIENT_SECRET,
    DASHBOARD_TOKEN: OPERATOR_TOKEN,
    DASHBOARD_URL: `http://127.0.0.1:${port}`,
    DASHBOARD_COOKIE_SECURE: "off",
  });
}

async function start(): Promise<string> {
  dashboard = await startDashboard(store.db, env);
  return dashboard.url;
}

/** Adds `count` learnings to `repository` (ids ascending, one minute apart). */
async function learn(repository: string, installationId: number, count: number, text = (i: number) => `${repository} learning ${i}`) {
  for (let i = 1; i <= count; i++) {
    await addLearning(store.db, {
      installationId,
      repository,
      text: text(i),
      sourceUrl: `https://github.com/${repository}/issues/1#issuecomment-${i}`,
      sourceKey: `comment:${repository}:${i}`,
      author: "alice",
      createdAt: T0 + i * 60_000,
    });
  }
}

/** Signs `login` in through the fake GitHub (state cookie kept by hand); returns the session cookie. */
async function signInWithGitHub(url: string, login: string): Promise<string> {
  oauth.signInAs(login);
  const begin = await fetch(`${url}/dashboard/login/github`, { redirect: "manual" });
  const state = begin.headers.getSetCookie()[0]!.split(";")[0]!;
  const authorize = await fetch(begin.headers.get("location")!, { redirect: "manual" });
  const callback = await fetch(authorize.headers.get("location")!, { redirect: "manual", headers: { cookie: state } });
  expect(callback.status).toBe(303);
  return callback.headers
    .getSetCookie()
    .find((c) => c.startsWith("mc_session="))!
    .split(";")[0]!;
}

async function api(url: string, query: string, cookie: string): Promise<{ status: number; body: MemoryView & { message?: string } }> {
  const response = await fetch(`${url}/dashboard/api/memory.json${query}`, { headers: { cookie } });
  expect(response.headers.get("content-type")).toMatch(/^application\/json/);
  return { status: response.status, body: (await response.json()) as MemoryView & { message?: string } };
}

describe("dashboard repository memory", () => {
  it("shows a user with push on a repository its learnings, and 404 for repositories they cannot write to", async () => {
    await learn(ALPHA, 100, 2);
    await learn(GAMMA, 100, 1);
    await learn(BETA, 200, 3);
    // The same name under an installation alice cannot see (a re-installed or transferred repository): never shown to her.
    await addLearning(store.db, {
      installationId: 999,
      repository: ALPHA,
      text: "acme/alpha of another installation",
      sourceUrl: `https://github.com/${ALPHA}/issues/2#issuecomment-1`,
      sourceKey: "comment:other-installation",
      author: "eve",
      createdAt: T0,
    });
    const url = await start();
    const cookie = await signInWithGitHub(url, "alice"); // push on acme/alpha; read only on acme/gamma and beta-org/beta

    const page = await fetch(`${url}/dashboard/memory`, { headers: { cookie } });
    expect(page.status).toBe(200);
    const text = await page.text();
    expect(text).toContain("acme/alpha learning 2");
    expect(text).not.toContain("another installation");
    expect(text).toMatch(/<option value="acme\/alpha"\s+selected>acme\/alpha<\/option>/);
    expect(text).not.toContain(GAMMA);
    expect(text).not.toContain(BETA);
    expect(text).toContain('href="/dashboard/memory">Memory</a>');

    const own = await api(url, `?repository=${ALPHA}`, cookie);
    expect(own.status).toBe(200);
    expect(own.body.repositories).toEqual([ALPHA]);
    expect(own.body.learnings.map((l) => l.text)).toEqual(["acme/alpha learning 2", "acme/alpha learning 1"]);
    expect(own.body.total).toBe(2);
    // GitHub's names are case-insensitive.
    expect((await api(url, "?repository=Acme/Alpha", cookie)).body.total).toBe(2);

    for (const other of [GAMMA, BETA]) {
      const json = await api(url, `?repository=${other}`, cookie);
      expect(json.status).toBe(404);
      expect(JSON.stringify(json.body)).not.toContain("learning");
      const html = await fetch(`${url}/dashboard/memory?repository=${other}`, { headers: { cookie } });
      expect(html.status).toBe(404);
      expect(await html.text()).not.toContain(`${other} learning`);
    }
  });

  it("needs a sign-in", async () => {
    const url = await start();
    expect((await fetch(`${url}/dashboard/api/memory.json?repository=${ALPHA}`)).status).toBe(401);
    const page = await fetch(`${url}/dashboard/memory`, { redirect: "manual" });
    expect(page.status).toBe(303);
    expect(page.headers.get("location")).toBe("/dashboard/login");
  });

  it("escapes hostile learning text and keeps only http(s) source links", async () => {
    await addLearning(store.db, {
      installationId: 100,
      repository: ALPHA,
      text: `<script>alert("x")</script> & <img src=x onerror=alert(1)>`,
      sourceUrl: "javascript:alert(document.cookie)",
      sourceKey: "comment:hostile",
      author: "mallory<b>",
      createdAt: T0,
    });
    const url = await start();
    const config = dashboardAuthConfig(env(0));
    const cookie = (await startSession(store.db, config, { login: "alice", userId: 501, scope: { installationIds: [100], repositories: [ALPHA] } })).split(
      ";",
    )[0]!;

    const text = await (await fetch(`${url}/dashboard/memory?repository=${ALPHA}`, { headers: { cookie } })).text();
    expect(text).toContain("&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt; &amp; &lt;img src=x onerror=alert(1)&gt;");
    expect(text).toContain("@mallory&lt;b&gt;");
    expect(text).not.toContain("<script>alert");
    expect(text).not.toContain("<img");
    expect(text).not.toContain("javascript:");
    const json = await api(url, `?repository=${ALPHA}`, cookie);
    expect(json.body.learnings[0]!.sourceUrl).toBeNull();
    expect(json.body.learnings[0]!.text).toBe(`<script>alert("x")</script> & <img src=x onerror=alert(1)>`);
  });

  it("pages through the learnings newest first", async () => {
    const count = MEMORY_PAGE_ROWS + 5;
    await learn(ALPHA, 100, count);
    const url = await start();
    const bearer = { authorization: `Bearer ${OPERATOR_TOKEN}` };

    const first = (await (await fetch(`${url}/dashboard/api/memory.json?repository=${ALPHA}`, { headers: bearer })).json()) as MemoryView;
    expect(first).toMatchObject({ total: count, page: 1, pages: 2, perPage: MEMORY_PAGE_ROWS });
    expect(first.learnings).toHaveLength(MEMORY_PAGE_ROWS);
    expect(first.learnings[0]!.text).toBe(`${ALPHA} learning ${count}`);
    expect(first.learnings[0]!.sourceUrl).toBe(`https://github.com/${ALPHA}/issues/1#issuecomment-${count}`);

    const second = (await (await fetch(`${url}/dashboard/api/memory.json?repository=${ALPHA}&page=2`, { headers: bearer })).json()) as MemoryView;
    expect(second.learnings.map((l) => l.text)).toEqual([5, 4, 3, 2, 1].map((i) => `${ALPHA} learning ${i}`));
    const ids = new Set([...first.learnings, ...second.learnings].map((l) => l.id));
    expect(ids.size).toBe(count);

    const small = (await (await fetch(`${url}/dashboard/api/memory.json?repository=${ALPHA}&page=3&per_page=10`, { headers: bearer })).json()) as MemoryView;
    expect(small.learnings.map((l) => l.text)).toEqual([10, 9, 8, 7, 6, 5, 4, 3, 2, 1].map((i) => `${ALPHA} learning ${i}`));
    expect(small.pages).toBe(3);

    const html = await (await fetch(`${url}/dashboard/memory?repository=${ALPHA}&page=1`, { headers: bearer })).text();
    expect(html).toContain("Page 1 of 2");
    expect(html).toContain('rel="next" href="/dashboard/memory?repository=acme%2Falpha&amp;page=2"');
    expect(html).not.toContain('rel="prev"');
    const last = await (await fetch(`${url}/dashboard/memory?repository=${ALPHA}&page=2`, { headers: bearer })).text();
    expect(last).toContain('rel="prev"');
    expect(last).not.toContain('rel="next"');
    expect(last).toContain(`${ALPHA} learning 1<`);
  });

  it("lets the operator read any repository's memory, suggesting those the ledger knows", async () => {
    await seedDashboard(store.db);
    await learn(BETA, 200, 1);
    await learn("someone/else", 300, 1);
    const url = await start();
    const bearer = { authorization: `Bearer ${OPERATOR_TOKEN}` };
    const picker = (await (await fetch(`${url}/dashboard/api/memory.json`, { headers: bearer })).json()) as MemoryView;
    expect(picker.anyRepository).toBe(true);
    expect(picker.repositories).toEqual([ALPHA, GAMMA, BETA].sort());
    const other = (await (await fetch(`${url}/dashboard/api/memory.json?repository=someone/else`, { headers: bearer })).json()) as MemoryView;
    expect(other.learnings.map((l) => l.text)).toEqual(["someone/else learning 1"]);
    const beta = (await (await fetch(`${url}/dashboard/api/memory.json?repository=${BETA}`, { headers: bearer })).json()) as MemoryView;
    expect(beta.total).toBe(1);
  });
});
