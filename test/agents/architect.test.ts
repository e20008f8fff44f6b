import { mkdir, mkdtemp, realpath, rm, writeFile } from "node:fs/promises";
import os from "node:os";
import path from "node:path";

import { afterEach, beforeEach, describe, expect, it } from "vitest";

import { type Plan, renderPlanMarkdown, snapshotRepository } from "../../src/agents/architect.js";
import { branchName, pullRequestBody } from "../../src/agents/coder.js";
import { attr, type IssueForPrompt, renderIssue } from "../../src/agents/context.js";
import { renderDiff } from "../../src/agents/reviewer.js";
import type { WorkspaceIndex } from "../../src/agents/tools.js";
import type { PullRequestFile } from "../../src/ports/github.js";

const PLAN: Plan = {
  summary: "Fix the login page redirect.",
  files_to_change: [
    { path: "src/login.ts", reason: "redirect after sign-in" },
    { path: "src/routes.ts", reason: "" },
  ],
  steps: ["Read the handler", "Change the redirect"],
  definition_of_done: ["Login redirects home", "Tests pass"],
  test_plan: ["Unit-test the handler", "Click through manually"],
};

describe("snapshotRepository", () => {
  let root: string;

  beforeEach(async () => {
    root = await realpath(await mkdtemp(path.join(os.tmpdir(), "mc-snapshot-")));
  });

  afterEach(async () => {
    await rm(root, { recursive: true, force: true });
  });

  /** Writes the files and returns a WorkspaceIndex listing exactly them. */
  async function workspaceWith(files: Record<string, string | Buffer>): Promise<WorkspaceIndex> {
    for (const [relative, content] of Object.entries(files)) {
      await mkdir(path.dirname(path.join(root, relative)), { recursive: true });
      await writeFile(path.join(root, relative), content);
    }
    const listing = Object.keys(files).sort();
    return { root, listFiles: async () => listing, grep: async () => [] };
  }

  const META = { fullName: "octo/demo", defaultBranch: "main" };

  it("lists every file and excerpts root manifests first, then files whose path matches the issue's words", async () => {
    const ws = await workspaceWith({
      "README.md": "# Demo\n",
      "package.json": "{}\n",
      "docs/README.md": "nested readme\n",
      "src/login/page.ts": "login page\n",
      "src/login/form.ts": "login form\n",
      "src/billing.ts": "billing\n",
      "test/login/page.test.ts": "test\n",
    });
    const snapshot = await snapshotRepository(ws, { title: "Login page broken", body: "The page shows nothing." }, META);
    expect(snapshot.fullName).toBe("octo/demo");
    expect(snapshot.defaultBranch).toBe("main");
    expect(snapshot.files).toHaveLength(7);
    expect(snapshot.excerpts.map((e) => e.path)).toEqual(["package.json", "README.md", "src/login/page.ts", "test/login/page.test.ts", "src/login/form.ts"]);
    expect(snapshot.excerpts.find((e) => e.path === "src/login/page.ts")?.content).toBe("login page\n");
  });

  it("ignores short words and files that share nothing with the issue", async () => {
    const ws = await workspaceWith({ "src/db.ts": "db\n", "src/api.ts": "api\n" });
    const snapshot = await snapshotRepository(ws, { title: "db is slow", body: "" }, META);
    expect(snapshot.excerpts).toEqual([]);
    expect(snapshot.files).toEqual(["src/api.ts", "src/db.ts"]);
  });

  it("skips binary and unreadable files and clips long files", async () => {
    const ws = await workspaceWith({
      "assets/logo.png": Buffer.from([0x89, 0x50, 0x00, 0x01]),
      "src/logo.ts": "l".repeat(13_000),
    });
    // `missing/logo.md` is listed but absent: it must be skipped, not fail the snapshot.
    const listed: WorkspaceIndex = { ...ws, listFiles: async () => ["assets/logo.png", "missing/logo.md", "src/logo.ts"] };
    const snapshot = await snapshotRepository(listed, { title: "Update the logo", body: "" }, META);
    expect(snapshot.excerpts.map((e) => e.path)).toEqual(["src/logo.ts"]);
    const content = snapshot.excerpts[0]!.content;
    expect(content.startsWith("l".repeat(12_000))).toBe(true);
    expect(content).toBe(`${"l".repeat(12_000)}\n[... clipped]`);
  });

  it("keeps at most 12 excerpts", async () => {
    const files: Record<string, string> = {};
    for (let i = 0; i < 20; i++) files[`src/widget${String(i).padStart(2, "0")}/widget.ts`] = `w${i}\n`;
    const ws = await workspaceWith(files);
    const snapshot = await snapshotRepository(ws, { title: "widget bug", body: "" }, META);
    expect(snapshot.files).toHaveLength(20);
    expect(snapshot.excerpts).toHaveLength(12);
  });

  it("stays within the total excerpt budget", async () => {
    const files: Record<string, string> = {};
    for (let i = 0; i < 8; i++) files[`src/report/part${i}.ts`] = "r".repeat(12_000);
    const ws = await workspaceWith(files);
    const snapshot = await snapshotRepository(ws, { title: "report", body: "" }, META);
    const total = snapshot.excerpts.reduce((sum, e) => sum + e.content.length, 0);
    expect(total).toBeLessThanOrEqual(60_000);
    expect(snapshot.excerpts.length).toBe(5);
  });
});

describe("renderPlanMarkdown", () => {
  it("renders every section of the plan", () => {
    const md = renderPlanMarkdown(PLAN);
    expect(md).toContain("## 🧭 Plan");
    expect(md).toContain("Fix the login page redirect.");
    expect(md).toContain("- `src/login.ts` — redirect after sign-in");
    expect(md).toContain("- `src/routes.ts`\n");
    expect(md).not.toContain("`src/routes.ts` —");
    expect(md).toContain("1. Read the handler\n2. Change the redirect");
    expect(md).toContain("- [ ] Login redirects home\n- [ ] Tests pass");
    expect(md).toContain("### Test plan\n\n- Unit-test the handler\n- Click through manually");
    const order = ["## 🧭 Plan", "### Files to change", "### Steps", "### Definition of Done", "### Test plan"].map((h) => md.indexOf(h));
    expect(order).toEqual([...order].sort((a, b) => a - b));
    expect(order.every((i) => i >= 0)).toBe(true);
  });

  it("says when no files are listed", () => {
    expect(renderPlanMarkdown({ ...PLAN, files_to_change: [] })).toContain("### Files to change\n\n_None listed._");
  });
});

describe("branchName", () => {
  it("slugs the title", () => {
    expect(branchName(12, "Fix: the Login page!!")).toBe("mc/issue-12-fix-the-login-page");
  });

  it("drops a title with no ASCII letters or digits", () => {
    expect(branchName(7, "")).toBe("mc/issue-7");
    expect(branchName(7, "   !!! ")).toBe("mc/issue-7");
    expect(branchName(7, "修复登录 🚀")).toBe("mc/issue-7");
  });

  it("keeps only lowercase ASCII letters, digits and single hyphens for accented titles", () => {
    const name = branchName(8, "Ünïcödé Über-Straße");
    expect(name).toMatch(/^mc\/issue-8-[a-z0-9]+(-[a-z0-9]+)*$/);
    expect(name.startsWith("mc/issue-8-u")).toBe(true);
  });

  it("limits the slug to 40 characters with no trailing hyphen", () => {
    const long = branchName(1, "Add a much longer title that certainly goes beyond the forty character limit");
    const slug = long.slice("mc/issue-1-".length);
    expect(slug.length).toBeLessThanOrEqual(40);
    expect(slug).toBe("add-a-much-longer-title-that-certainly-g");
    const cutAtHyphen = branchName(2, `${"a".repeat(39)} b`);
    expect(cutAtHyphen).toBe(`mc/issue-2-${"a".repeat(39)}`);
  });
});

describe("pullRequestBody", () => {
  it("closes the issue and carries the marker, the plan's summary and the Coder's summary", () => {
    const body = pullRequestBody(12, PLAN, "Changed the redirect.");
    expect(body.startsWith("<!-- mission-control:pull-request -->")).toBe(true);
    expect(body).toContain("Closes #12");
    expect(body).toContain("## Summary\n\nFix the login page redirect.");
    expect(body).toContain("## What the Coder did\n\nChanged the redirect.");
  });

  it("says when there is no summary", () => {
    expect(pullRequestBody(3, PLAN, "")).toContain("_No summary was given._");
  });
});

describe("renderDiff", () => {
  const file = (filename: string, patch: string | undefined, status = "modified"): PullRequestFile => ({
    filename,
    status,
    additions: 1,
    deletions: 0,
    patch,
  });

  it("wraps each patch with its escaped path and status", () => {
    const { text, notReviewed } = renderDiff([file('src/a"<b>.ts', "@@ -1 +1 @@\n-a\n+b", "added")]);
    expect(text).toBe('<patch path="src/a&quot;&lt;b&gt;.ts" status="added">\n@@ -1 +1 @@\n-a\n+b\n</patch>');
    expect(notReviewed).toEqual([]);
  });

  it("lists files without a patch and files over the budget as not reviewed", () => {
    const small = file("small.ts", "+ok");
    const big = file("big.ts", `+${"x".repeat(500)}`);
    const binary = file("logo.png", undefined);
    const later = file("later.ts", "+fits");
    const { text, notReviewed } = renderDiff([small, binary, big, later], 200);
    expect(notReviewed).toEqual(["logo.png (no textual diff: binary or too large)", "big.ts (over the review size budget)"]);
    expect(text).toContain('<patch path="small.ts"');
    expect(text).toContain('<patch path="later.ts"');
    expect(text).not.toContain("big.ts");
    expect(text.length).toBeLessThanOrEqual(200 + 10);
  });

  it("reviews nothing when even the first file is over the budget", () => {
    const { text, notReviewed } = renderDiff([file("a.ts", "+aaaa")], 10);
    expect(text).toBe("");
    expect(notReviewed).toEqual(["a.ts (over the review size budget)"]);
  });
});

describe("renderIssue and attr", () => {
  const issue: IssueForPrompt = {
    number: 42,
    title: "Login fails",
    body: "Steps:\n1. open /login",
    author: 'mal"lory<x>&',
    comments: [{ author: 'o"ctocat', body: "Me too", createdAt: "2026-01-01T00:00:00Z", updatedAt: "2026-01-01T00:00:00Z" }],
  };

  it("wraps the issue in <issue> with escaped attributes and a reminder after it", () => {
    const out = renderIssue(issue);
    expect(out.startsWith('<issue number="42" author="mal&quot;lory&lt;x&gt;&amp;">\n<title>Login fails</title>\n')).toBe(true);
    expect(out).toContain("<body>\nSteps:\n1. open /login\n</body>");
    expect(out).toContain('<comments>\n<comment author="o&quot;ctocat" created_at="2026-01-01T00:00:00Z">\nMe too\n</comment>\n</comments>');
    expect(out).not.toContain('author="mal"');
    const close = out.indexOf("</issue>");
    expect(close).toBeGreaterThan(out.indexOf("</comments>"));
    expect(out.slice(close)).toMatch(/written by GitHub users/);
  });

  it("omits <comments> when there are none", () => {
    const out = renderIssue({ ...issue, comments: [] });
    expect(out).not.toContain("<comments>");
    expect(out).toContain("</body>\n</issue>");
  });

  it('attr escapes &, ", < and > and stringifies numbers', () => {
    expect(attr(`a&b"c<d>e'`)).toBe("a&amp;b&quot;c&lt;d&gt;e'");
    expect(attr(7)).toBe("7");
  });
});
