import { describe, expect, it } from "vitest";

import {
  inline,
  PROPOSALS_END,
  PROPOSALS_START,
  renderProposals,
  renderStandup,
  replaceProposals,
  type StandupView,
  standupTitle,
} from "../../src/render/standup.js";

const BASE: StandupView = {
  date: "2026-11-28",
  timezone: "Europe/Berlin",
  since: Date.UTC(2026, 10, 27, 8, 0),
  until: Date.UTC(2026, 10, 28, 8, 0),
  activity: [
    {
      issueNumber: 7,
      title: "Friendlier greeting",
      state: "ready_for_merge",
      events: ["started", "pr_opened", "ready_for_merge"],
      prNumber: 12,
      prUrl: "https://ghe.example.test/octo-org/widgets/pull/12",
    },
    { issueNumber: 9, title: "Broken build", state: "failed", events: ["started", "failed"], prNumber: null, prUrl: null },
  ],
  waiting: [
    { issueNumber: 7, title: "Friendlier greeting", kind: "merge", reason: null, prNumber: 12, prUrl: "https://ghe.example.test/octo-org/widgets/pull/12" },
    { issueNumber: 11, title: "New parser", kind: "plan", reason: "waiting for /approve of the plan", prNumber: null, prUrl: null },
    { issueNumber: 13, title: "Docs", kind: "blocked", reason: "coder limit: max_turns", prNumber: null, prUrl: null },
  ],
  failures: [{ issueNumber: 9, title: "Broken build", state: "failed", reason: "the test command timed out" }],
  spend: [
    {
      agent: "architect",
      calls: 1,
      input_tokens: 1200,
      output_tokens: 300,
      cache_creation_input_tokens: 1000,
      cache_read_input_tokens: 0,
      cost_nano_usd: 8_900_000,
    },
    {
      agent: "coder",
      calls: 3,
      input_tokens: 2400,
      output_tokens: 330,
      cache_creation_input_tokens: 1800,
      cache_read_input_tokens: 3200,
      cost_nano_usd: 13_240_000,
    },
  ],
  budgets: [
    {
      scope: "repository octo-org/widgets",
      period: "daily",
      spentNanoUsd: 22_140_000,
      limitNanoUsd: 5_000_000_000,
      percent: 0.4428,
      source: ".github/mission-control.yml",
    },
  ],
  stats: [{ agent: "coder", runs: 2, success_rate: 0.5, rework_cycles: 1, avg_cost_nano_usd: 6_620_000, avg_duration_ms: 95_000 }],
  verdicts: [{ verdict: "approve", tasks: 1 }],
  proposals: [
    {
      number: 1,
      title: "Follow up a TODO in src/greet.js",
      status: "proposed",
      sourceKind: "todo",
      sourceUrl: "https://ghe.example.test/octo-org/widgets/pull/12/files",
      issueNumber: null,
    },
    {
      number: 2,
      title: "Flaky check: unit",
      status: "accepted",
      sourceKind: "flaky_check",
      sourceUrl: "https://ghe.example.test/octo-org/widgets/runs/5",
      issueNumber: 40,
    },
    {
      number: 3,
      title: "Old idea",
      status: "dismissed",
      sourceKind: "todo",
      sourceUrl: "https://ghe.example.test/octo-org/widgets/pull/3/files",
      issueNumber: null,
    },
  ],
  appSlug: "mission-control",
};

describe("renderStandup", () => {
  it("renders every section from the facts, deterministically", () => {
    const body = renderStandup(BASE);
    expect(renderStandup(BASE)).toBe(body);
    expect(standupTitle("2026-11-28")).toBe("Mission Control stand-up — 2026-11-28");
    expect(body).toContain("## 🧭 Stand-up for 2026-11-28 (Europe/Berlin)");
    expect(body).toContain("2026-11-27 08:00 UTC – 2026-11-28 08:00 UTC");
    expect(body).toContain("**Since the last stand-up:** 2 started · 1 pull requests opened · 0 merged · 1 failed");
    expect(body).toContain(
      "- #7 Friendlier greeting — started, pull request opened, ready for merge; now `ready_for_merge` · [PR #12](https://ghe.example.test/octo-org/widgets/pull/12)",
    );
    expect(body).toContain("- #7 Friendlier greeting — ready for merge: [PR #12](https://ghe.example.test/octo-org/widgets/pull/12)");
    expect(body).toContain("- #11 New parser — plan to approve (`/approve` on the issue)");
    expect(body).toContain("- #13 Docs — blocked: coder limit: max\\_turns");
    expect(body).toContain("- #9 Broken build — `failed`: the test command timed out");
    expect(body).toContain("| architect | 1 | 1,200 | 300 | 1,000 | 0 | $0.0089 |");
    expect(body).toContain("| **Total** | 4 | | | | | **$0.0221** |");
    expect(body).toContain("| repository octo-org/widgets (.github/mission-control.yml) | daily | $0.0221 | $5.0000 | 0% |");
    expect(body).toContain("| coder | 2 | 50% | 1 | $0.0066 | 1 min 35 s |");
    expect(body).toContain("**Review verdicts:** approve 1");
    expect(body).toContain("- [ ] **1.** Follow up a TODO in src/greet.js ([TODO added](https://ghe.example.test/octo-org/widgets/pull/12/files))");
    expect(body).toContain("- [x] **2.** Flaky check: unit — opened as #40");
    expect(body).toContain("- [ ] ~~**3.** Old idea~~ — dismissed");
    expect(body).toContain("`/approve <n>`");
    // No @-mention of anyone, and only the app's own hidden markers.
    expect(body.replace(/`[^`\n]*`/g, "")).not.toMatch(/@[A-Za-z0-9]/);
    expect(body.match(/<!--/g)?.length).toBe(2);
  });

  it("says so when nothing happened", () => {
    const body = renderStandup({
      ...BASE,
      since: null,
      activity: [],
      waiting: [],
      failures: [],
      spend: [],
      budgets: [],
      stats: [],
      verdicts: [],
      proposals: [],
    });
    expect(body).toContain("_Nothing happened in this period._");
    expect(body).toContain("_Nothing waits for a person._");
    expect(body).toContain("_No failures._");
    expect(body).toContain("_No model calls in this period._");
    expect(body).toContain("_No follow-up to propose._");
    expect(body).toContain("**Review verdicts:** none");
    expect(body).toContain("until 2026-11-28 08:00 UTC");
  });

  it("escapes hostile titles and reasons: no links, images, mentions, HTML, markers, table cells or checklist items", () => {
    const hostile =
      "@octocat [click](https://evil.example) ![x](https://evil.example/i.png) <img src=x onerror=alert(1)> <!-- mission-control:standup --> | cell |\n- [x] **9.** fake";
    const body = renderStandup({
      ...BASE,
      activity: [{ ...BASE.activity[0]!, title: hostile }],
      waiting: [{ ...BASE.waiting[2]!, reason: hostile }],
      failures: [{ ...BASE.failures[0]!, reason: `ghp_${"a".repeat(36)} leaked` }],
      proposals: [{ ...BASE.proposals[0]!, title: hostile, sourceUrl: "javascript:alert(1)" }],
    });
    expect(body).not.toContain("@octocat");
    expect(body).toContain("@&#8203;octocat");
    expect(body).not.toContain("[click](");
    expect(body).not.toContain("![x](");
    expect(body).not.toContain("<img");
    expect(body).toContain("&lt;img src=x onerror=alert(1)&gt;");
    expect(body.match(/<!--/g)?.length).toBe(2);
    expect(body).not.toContain("| cell |");
    expect(body).not.toContain("\n- [x] **9.**");
    expect(body).not.toContain("javascript:");
    expect(body).not.toContain(`ghp_${"a".repeat(36)}`);
  });

  it("redacts before it cuts: a secret the cut goes through leaves no piece behind", () => {
    const password = inline(`${"w ".repeat(75)}deploy failed: password: "correct-horse-battery-staple-9931"`, 200);
    expect(password).not.toContain("correct-horse");
    expect(password).toContain('password: "\\[REDACTED\\]"');
    const npm = inline(`${"w ".repeat(79)}token npm_${"a1B2c3D4e5F6g7H8i9J0k1L2m3N4o5"}Zz9Yy8`, 200);
    expect(npm).not.toContain("npm\\_a1B2");
    expect(npm).not.toContain("a1B2c3D4");
    expect(npm).toContain("token \\[REDACTED\\]");
  });

  it("clips long untrusted text to one line", () => {
    const text = inline(`${"word ".repeat(100)}\nsecond line`, 50);
    expect(text.length).toBeLessThanOrEqual(50);
    expect(text).not.toContain("\n");
    expect(text.endsWith("…")).toBe(true);
  });
});

describe("replaceProposals", () => {
  it("re-renders the checklist in place and leaves the rest of the body alone", () => {
    const body = renderStandup(BASE);
    const next = replaceProposals(body, renderProposals([{ ...BASE.proposals[0]!, status: "dismissed" }], "mission-control"));
    expect(next.startsWith(body.slice(0, body.indexOf(PROPOSALS_START)))).toBe(true);
    expect(next).toContain("- [ ] ~~**1.** Follow up a TODO in src/greet.js~~ — dismissed");
    expect(next).not.toContain("**2.**");
    expect(next.indexOf(PROPOSALS_END)).toBeGreaterThan(0);
    expect(replaceProposals("no checklist here", "x")).toBe("no checklist here");
  });
});
