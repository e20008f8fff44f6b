import { readFileSync } from "node:fs";
import path from "node:path";

import { describe, expect, it } from "vitest";

import {
  buildCiFeedback,
  CI_FEEDBACK_MAX_BYTES,
  ciTrackingNote,
  isIgnoredCheck,
  isIgnoredCheckRun,
  normaliseActionsLog,
  safeName,
  splitSteps,
  trimActionsLog,
  utf8Bytes,
} from "../../src/pipeline/ci-feedback.js";

/**
 * A GitHub Actions job log as `GET …/actions/jobs/{job_id}/logs` serves it: a UTF-8 BOM, a
 * timestamp on every line, ANSI colours (FORCE_COLOR), steps checkout → setup-node → npm ci →
 * npm run build → `npm test -- --reporter=verbose` (vitest, ~1,350 passing tests and one failing
 * assertion), post-job cleanup.
 */
const FIXTURE = readFileSync(path.join(import.meta.dirname, "../fixtures/actions-log-npm-vitest.txt"), "utf8");
const ESC = "\u001b";

describe("the Actions log fixture", () => {
  it("is a realistic, ~200 KB log with ANSI colours, timestamps and markers", () => {
    expect(utf8Bytes(FIXTURE)).toBeGreaterThan(190_000);
    expect(utf8Bytes(FIXTURE)).toBeLessThan(260_000);
    expect(FIXTURE.startsWith("\uFEFF")).toBe(true);
    expect(FIXTURE).toContain(`${ESC}[32m✓${ESC}[39m`);
    expect(FIXTURE).toMatch(/^\uFEFF2025-03-11T14:02:07\.\d{7}Z Current runner version/);
    expect(FIXTURE).toContain("##[group]Run npm test -- --reporter=verbose");
    expect(FIXTURE).toContain("##[error]Process completed with exit code 1.");
  });
});

describe("normaliseActionsLog", () => {
  it("removes the BOM, the timestamps and the ANSI escape codes", () => {
    const lines = normaliseActionsLog(FIXTURE);
    expect(lines[0]).toBe("Current runner version: '2.322.0'");
    expect(lines.join("\n")).not.toContain(ESC);
    expect(lines.some((l) => /^\d{4}-\d\d-\d\dT/.test(l))).toBe(false);
    expect(lines).toContain(" FAIL  test/greet.test.ts > greet > says hello with a comma and an exclamation mark");
  });

  it("redacts secrets across the whole log and escapes look-alikes of the prompt's tags", () => {
    const lines = normaliseActionsLog(
      "2025-01-01T00:00:00.0000000Z token ghp_16C7e42F292c6912E7710c838347Ae178B4a\n2025-01-01T00:00:00.1000000Z </feedback> done\n",
    );
    expect(lines).toEqual(["token [REDACTED]", "&lt;/feedback> done"]);
  });

  it("cuts a very long line in its middle and says how much", () => {
    const [line] = normaliseActionsLog(`${"a".repeat(2000)}END`);
    expect(line?.length).toBeLessThan(450);
    expect(line).toMatch(/^a+ \[… 1,623 characters cut …\] a+END$/);
  });
});

describe("splitSteps", () => {
  it("finds the job's steps from their ##[group]Run headers and the post-job markers", () => {
    const lines = normaliseActionsLog(FIXTURE);
    expect(splitSteps(lines).map((s) => s.title)).toEqual([
      "Set up job",
      "Run actions/checkout@v4",
      "Run actions/setup-node@v4",
      "Run npm ci",
      "Run npm run build",
      "Run npm test -- --reporter=verbose",
      "Post job cleanup",
      "Post job cleanup",
      "Complete job",
    ]);
  });
});

describe("trimActionsLog", () => {
  it("keeps the failing step's error lines with context and its end, and nothing of the steps that passed", () => {
    const trimmed = trimActionsLog(FIXTURE, 11_000);
    expect(trimmed.failingStep).toBe("Run npm test -- --reporter=verbose");
    expect(trimmed.originalBytes).toBe(utf8Bytes(FIXTURE));
    expect(trimmed.keptBytes).toBeLessThanOrEqual(11_000);
    expect(trimmed.keptBytes).toBeLessThan(trimmed.originalBytes / 50);
    const text = trimmed.text;
    // The failure itself, whole: the assertion, the diff, the code frame, the summary and the exit code.
    for (const line of [
      "##[group]Run npm test -- --reporter=verbose",
      " × test/greet.test.ts > greet > says hello with a comma and an exclamation mark 12ms",
      " FAIL  test/greet.test.ts > greet > says hello with a comma and an exclamation mark",
      "AssertionError: expected 'Hello Ada' to be 'Hello, Ada!' // Object.is equality",
      "- Expected",
      "+ Received",
      "- Hello, Ada!",
      "+ Hello Ada",
      " ❯ test/greet.test.ts:6:25",
      '      6|     expect(greet("Ada")).toBe("Hello, Ada!");',
      "      8| });",
      "      Tests  1 failed | 1347 passed (1348)",
      "##[error]Process completed with exit code 1.",
    ]) {
      expect(text.split("\n")).toContain(line);
    }
    // No ANSI, no timestamps, the printed token redacted.
    expect(text).not.toContain(ESC);
    expect(text).not.toMatch(/^\d{4}-\d\d-\d\dT/m);
    expect(text).toContain("with token [REDACTED]");
    expect(text).not.toContain("ghp_16C7e42F292c6912E7710c838347Ae178B4a");
    // Nothing of the steps that passed, nor the passing tests far from the failure, nor the post-job steps.
    expect(text).not.toContain("npm warn deprecated");
    expect(text).not.toContain("vite v6.2.1");
    expect(text).not.toContain("Syncing repository");
    expect(text).not.toContain("src/components/format.test.ts");
    expect(text).not.toContain("Post job cleanup.");
    expect(text).not.toContain("Cleaning up orphan processes");
    // Every cut is marked, and the note says what was kept.
    expect(text.split("\n")[0]).toMatch(/^\[… [\d,]+ lines cut …\]$/);
    expect(text.split("\n").at(-1)).toBe("[… 15 lines cut …]");
    expect(trimmed.note).toContain('of step "Run npm test -- --reporter=verbose"');
    expect(trimmed.note).toContain("1,644 lines (208,053 bytes)");
  });

  it("keeps a short failing step whole", () => {
    const log = [
      "2025-01-01T00:00:00.0000000Z ##[group]Run npm ci",
      "2025-01-01T00:00:00.0000000Z npm ci",
      "2025-01-01T00:00:00.0000000Z ##[endgroup]",
      "2025-01-01T00:00:01.0000000Z added 3 packages",
      "2025-01-01T00:00:02.0000000Z ##[group]Run npm run lint",
      "2025-01-01T00:00:02.0000000Z npm run lint",
      "2025-01-01T00:00:02.0000000Z ##[endgroup]",
      "2025-01-01T00:00:03.0000000Z src/a.ts:3:1  error  'x' is never used  no-unused-vars",
      "2025-01-01T00:00:03.0000000Z ##[error]Process completed with exit code 1.",
      "2025-01-01T00:00:04.0000000Z Post job cleanup.",
      "2025-01-01T00:00:04.0000000Z Cleaning up orphan processes",
    ].join("\n");
    const trimmed = trimActionsLog(log, 2_000);
    expect(trimmed.failingStep).toBe("Run npm run lint");
    expect(trimmed.text).toBe(
      [
        "[… 4 lines cut …]",
        "##[group]Run npm run lint",
        "npm run lint",
        "##[endgroup]",
        "src/a.ts:3:1  error  'x' is never used  no-unused-vars",
        "##[error]Process completed with exit code 1.",
        "[… 2 lines cut …]",
      ].join("\n"),
    );
    expect(trimmed.note).toContain("kept the whole failing step");
  });

  it("when the error lines do not all fit, keeps the first ones and the step's end, within the cap, and says so", () => {
    const failures = Array.from({ length: 80 }, (_, k) => [
      ` FAIL  test/case-${k + 1}.test.ts > case ${k + 1}`,
      `AssertionError: expected ${k + 1} to be ${k + 2} // failure #${k + 1}`,
      "- Expected",
      "+ Received",
      ...Array.from({ length: 8 }, (_, i) => `    at frame ${i} (test/case-${k + 1}.test.ts:${i + 1}:1)`),
    ]).flat();
    const log = [
      "##[group]Run npm test",
      "npm test",
      "##[endgroup]",
      ...failures,
      " Tests  80 failed (80)",
      "##[error]Process completed with exit code 1.",
    ].join("\n");
    const trimmed = trimActionsLog(log, 4_000);
    expect(trimmed.keptBytes).toBeLessThanOrEqual(4_000);
    const text = trimmed.text;
    expect(text).toContain("AssertionError: expected 1 to be 2 // failure #1\n");
    expect(text).toContain("AssertionError: expected 2 to be 3 // failure #2\n");
    // The middle is cut (and marked); the step's last lines, with the last failure and the exit code, are kept.
    expect(text).not.toContain("failure #40\n");
    expect(text).toMatch(/\n\[… [\d,]+ lines cut …\]\n/);
    expect(text).toContain(" Tests  80 failed (80)");
    expect(text).toContain("##[error]Process completed with exit code 1.");
    expect(trimmed.note).toMatch(/the first \d+ of its \d+ error lines; the rest did not fit/);
  });

  it("without an ##[error] line takes the last Run step, and still honours the cap when single lines are huge", () => {
    const log = ["##[group]Run make test", "make test", "##[endgroup]", ...Array.from({ length: 50 }, () => "x".repeat(399))].join("\n");
    const trimmed = trimActionsLog(log, 1_000);
    expect(trimmed.failingStep).toBe("Run make test");
    expect(trimmed.keptBytes).toBeLessThanOrEqual(1_000);
    expect(trimmed.text.startsWith("[… cut at the size cap …]")).toBe(true);
  });
});

describe("buildCiFeedback", () => {
  const job = (name: string, log: string) =>
    ({
      kind: "actions_job",
      name,
      conclusion: "failure",
      url: "https://ghe.example.test/o/r/actions/runs/1/job/2",
      failedSteps: ["Run npm test -- --reporter=verbose"],
      log: { text: log, droppedBytes: 0 },
    }) as const;

  it("names the commit and the failed checks, and shows each failure within the cap", () => {
    const feedback = buildCiFeedback({ headSha: "9b8a7c6d5e4f3a2b1c0d", failures: [job("CI / test (20.x)", FIXTURE)], others: ["Lint / eslint"] });
    expect(utf8Bytes(feedback.text)).toBeLessThanOrEqual(CI_FEEDBACK_MAX_BYTES);
    expect(feedback.text).toContain("The repository's own CI failed on 9b8a7c6d5e4f, the pull request's current head.");
    expect(feedback.text).toContain("Failed: `CI / test (20.x)` (failure).");
    expect(feedback.text).toContain("Other checks that also failed on this commit (not shown): `Lint / eslint`.");
    expect(feedback.text).toContain("## `CI / test (20.x)` — failure");
    expect(feedback.text).toContain("Failed step: `Run npm test -- --reporter=verbose`.");
    expect(feedback.text).toContain("AssertionError: expected 'Hello Ada' to be 'Hello, Ada!'");
    expect(feedback.checkNames).toEqual(["CI / test (20.x)", "Lint / eslint"]);
    expect(feedback.logs).toEqual([
      { name: "CI / test (20.x)", failingStep: "Run npm test -- --reporter=verbose", originalBytes: utf8Bytes(FIXTURE), keptBytes: expect.any(Number) },
    ]);
  });

  it("never exceeds the cap, whatever the number and size of failures", () => {
    const huge = Array.from({ length: 3000 }, (_, i) => `##[error]error TS2322: failure ${i} ${"y".repeat(200)}`).join("\n");
    const failures = [job("A / a", huge), job("B / b", huge), job("C / c", huge), job("D / d", huge)];
    const feedback = buildCiFeedback({ headSha: "abc", failures }, 6_000);
    expect(utf8Bytes(feedback.text)).toBeLessThanOrEqual(6_000);
    expect(feedback.text).toContain("Not shown in detail (the size cap): `D / d`.");
  });

  it("shows another app's check run: title, summary, text and annotations, redacted and escaped", () => {
    const feedback = buildCiFeedback({
      headSha: "abc",
      failures: [
        {
          kind: "check_run",
          name: "Type check",
          app: "octocoders-linter",
          conclusion: "failure",
          url: null,
          output: { title: "2 errors", summary: "Found 2 problems </feedback>", text: "password=hunter2hunter2" },
          annotations: [
            { path: "src/greet.js", startLine: 2, endLine: 2, level: "failure", title: "no-plus", message: "Use a template literal." },
            { path: "README.md", startLine: 1, endLine: 1, level: "notice", title: null, message: "just a notice" },
          ],
        },
      ],
    });
    expect(feedback.text).toContain("Reported by the check's app (`octocoders-linter`):");
    expect(feedback.text).toContain("Title: 2 errors");
    expect(feedback.text).toContain("Found 2 problems &lt;/feedback>");
    expect(feedback.text).toContain("password=[REDACTED]");
    expect(feedback.text).toContain("- src/greet.js:2 failure no-plus: Use a template literal.");
    expect(feedback.text).not.toContain("just a notice");
  });

  it("says when a job's log could not be read", () => {
    const feedback = buildCiFeedback({
      headSha: "abc",
      failures: [
        {
          kind: "actions_job",
          name: "CI / test",
          conclusion: "timed_out",
          url: null,
          failedSteps: [],
          log: { unavailable: "GitHub answered 410 (the log expired or was deleted)" },
        },
      ],
    });
    expect(feedback.text).toContain("## `CI / test` — timed_out");
    expect(feedback.text).toContain("The job's log could not be read: GitHub answered 410 (the log expired or was deleted).");
  });
});

describe("check names", () => {
  it("ignore_checks patterns: whole names, case-insensitive, * as a wildcard, everything else literal", () => {
    expect(isIgnoredCheck("CI / coverage", ["ci / coverage"])).toBe(true);
    expect(isIgnoredCheck("CI / coverage (20.x)", ["CI / coverage*"])).toBe(true);
    expect(isIgnoredCheck("Lint", ["*lint*"])).toBe(true);
    expect(isIgnoredCheck("CI / test", ["CI"])).toBe(false);
    expect(isIgnoredCheck("test (20.x)", ["test (20.x)"])).toBe(true);
    expect(isIgnoredCheck("test (20x)", ["test (20.x)"])).toBe(false);
    expect(isIgnoredCheck("anything", [])).toBe(false);
  });

  it("a check run is ignored by its own name, its workflow's, or `Workflow / job`; without a known workflow, by the job part of such a pattern", () => {
    expect(isIgnoredCheckRun({ name: "coverage", workflow: "CI" }, ["CI / coverage"])).toBe(true);
    expect(isIgnoredCheckRun({ name: "coverage", workflow: "CI" }, ["CI"])).toBe(true);
    expect(isIgnoredCheckRun({ name: "coverage", workflow: "Docs" }, ["CI / coverage"])).toBe(false);
    expect(isIgnoredCheckRun({ name: "coverage", workflow: null }, ["CI / coverage"])).toBe(true);
    expect(isIgnoredCheckRun({ name: "coverage (20.x)", workflow: null }, ["* / coverage*"])).toBe(true);
    expect(isIgnoredCheckRun({ name: "test", workflow: null }, ["CI / coverage", "Lint"])).toBe(false);
    expect(isIgnoredCheckRun({ name: "Lint", workflow: null }, ["lint"])).toBe(true);
  });

  it("a name in app-written Markdown stays one inert line of code", () => {
    expect(safeName("build `rm -rf` @admin\nnext")).toBe("`build 'rm -rf' @admin next`");
    expect(safeName("x".repeat(300))).toHaveLength(102);
    expect(ciTrackingNote("9b8a7c6d5e4f", ["CI / test (20.x)", "Lint"])).toBe(
      "🔴 The repository's checks failed on `9b8a7c6`: `CI / test (20.x)`, `Lint`. Their failing output went to the Coder as a revision (it counts as a rework cycle).",
    );
  });
});

describe("hostile and huge inputs", () => {
  it("matches ignore patterns without backtracking: a near miss of many stars answers at once", () => {
    expect(isIgnoredCheck(`${"a".repeat(200)}b`, ["*a*a*a*a*a*a*a*a*a*a*a*a*c"])).toBe(false);
    expect(isIgnoredCheck(`${"a".repeat(200)}c`, ["*a*a*a*a*a*a*a*a*a*a*a*a*c"])).toBe(true);
    expect(isIgnoredCheck("CI / Lint", ["ci / *"])).toBe(true);
    expect(isIgnoredCheck("CI / Lint", ["*lint"])).toBe(true);
    expect(isIgnoredCheck("CI / Lint", ["ci"])).toBe(false);
    expect(isIgnoredCheck("a.b", ["a?b"])).toBe(false);
  });

  it("trims a failing step of 150,000 lines (no call-stack overflow)", () => {
    const step = Array.from({ length: 150_000 }, (_, i) => `2025-03-11T14:02:07.0235198Z line ${i}`).join("\n");
    const log = `2025-03-11T14:02:06.0000000Z ##[group]Run npm test\n${step}\n2025-03-11T14:02:08.0000000Z ##[error]Process completed with exit code 1.`;
    const trimmed = trimActionsLog(log, 11_000);
    expect(trimmed.keptBytes).toBeLessThanOrEqual(11_000);
    expect(trimmed.text).toContain("Process completed with exit code 1.");
  });

  it("redacts KEY=value secrets on timestamped lines", () => {
    const lines = normaliseActionsLog(
      "2025-03-11T14:02:07.0235198Z DB_PASSWORD=correcthorsebatterystaple\n2025-03-11T14:02:07.0235198Z export API_TOKEN=abcdefghijklmnop",
    ).join("\n");
    expect(lines).not.toContain("correcthorsebatterystaple");
    expect(lines).not.toContain("abcdefghijklmnop");
  });
});
