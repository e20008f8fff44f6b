import { describe, expect, it } from "vitest";

import { githubBaseUrl, parseServerEnv } from "../../src/config/env.js";
import { DEFAULT_REPO_CONFIG, parseRepoConfig } from "../../src/config/repo-config.js";
import { ConfigError } from "../../src/domain/errors.js";
import { formatNanoUsd } from "../../src/domain/money.js";
import { formatUsd, renderTrackingComment, type TrackingView } from "../../src/render/tracking-comment.js";
import { stateLabel } from "../../src/domain/task-state.js";
import type { UsageTotals } from "../../src/store/usage.js";

const MINIMAL_ENV = {
  APP_ID: "123456",
  WEBHOOK_SECRET: "whsec",
  ANTHROPIC_API_KEY: "sk-ant-test-KEY123456789",
};

function thrown(fn: () => unknown): unknown {
  try {
    fn();
  } catch (err) {
    return err;
  }
  throw new Error("expected a throw");
}

describe("parseServerEnv", () => {
  it("throws a ConfigError naming ANTHROPIC_API_KEY when it is missing", () => {
    const { ANTHROPIC_API_KEY: _omit, ...env } = MINIMAL_ENV;
    const err = thrown(() => parseServerEnv(env));
    expect(err).toBeInstanceOf(ConfigError);
    expect((err as ConfigError).message).toContain("ANTHROPIC_API_KEY");
    expect((err as ConfigError).message).not.toContain("APP_ID");
    expect((err as ConfigError).code).toBe("config_invalid");
  });

  it("rejects an empty ANTHROPIC_API_KEY", () => {
    expect(() => parseServerEnv({ ...MINIMAL_ENV, ANTHROPIC_API_KEY: "" })).toThrow(/ANTHROPIC_API_KEY/);
  });

  it("names every problem at once and never echoes a secret", () => {
    const err = thrown(() => parseServerEnv({ APP_ID: "my-app", PORT: "-1", ANTHROPIC_API_KEY: "sk-ant-secret-value-xyz" })) as ConfigError;
    expect(err).toBeInstanceOf(ConfigError);
    expect(err.message).toContain("APP_ID");
    expect(err.message).toContain("WEBHOOK_SECRET");
    expect(err.message).toContain("PORT");
    expect(err.message).not.toContain("sk-ant-secret-value-xyz");
  });

  it("applies the defaults", () => {
    const env = parseServerEnv(MINIMAL_ENV);
    expect(env.DATABASE_PATH).toBe("data/mission-control.sqlite");
    expect(env.PORT).toBe(3000);
    expect(env.DEFAULT_MODEL).toBe("claude-sonnet-5-5");
    expect(env.GHE_PROTOCOL).toBe("https");
    expect(env.GHE_HOST).toBeUndefined();
    expect(env.WORKER_CONCURRENCY).toBe(2);
    expect(env.JOB_MAX_ATTEMPTS).toBe(5);
    expect(env.LOG_LEVEL).toBe("info");
  });

  it("coerces numeric strings and keeps explicit values", () => {
    const env = parseServerEnv({ ...MINIMAL_ENV, PORT: "8080", DATABASE_PATH: "/var/lib/mc.sqlite", DEFAULT_MODEL: "claude-opus-5", WORKER_CONCURRENCY: "4" });
    expect(env).toMatchObject({ PORT: 8080, DATABASE_PATH: "/var/lib/mc.sqlite", DEFAULT_MODEL: "claude-opus-5", WORKER_CONCURRENCY: 4 });
  });

  it("rejects a non-numeric APP_ID and an invalid GHE_PROTOCOL", () => {
    expect(() => parseServerEnv({ ...MINIMAL_ENV, APP_ID: "abc" })).toThrow(/APP_ID/);
    expect(() => parseServerEnv({ ...MINIMAL_ENV, GHE_PROTOCOL: "ftp" })).toThrow(/GHE_PROTOCOL/);
  });
});

describe("githubBaseUrl", () => {
  it("uses GHE_HOST and GHE_PROTOCOL for GitHub Enterprise Server", () => {
    const env = parseServerEnv({ ...MINIMAL_ENV, GHE_HOST: "github.example.com", GHE_PROTOCOL: "http" });
    expect(githubBaseUrl(env)).toBe("http://github.example.com/api/v3");
    expect(githubBaseUrl({ GHE_HOST: "ghe.corp", GHE_PROTOCOL: "https" })).toBe("https://ghe.corp/api/v3");
  });

  it("defaults to api.github.com", () => {
    expect(githubBaseUrl(parseServerEnv(MINIMAL_ENV))).toBe("https://api.github.com");
    expect(githubBaseUrl({ GHE_PROTOCOL: "http" })).toBe("https://api.github.com");
  });
});

describe("parseRepoConfig", () => {
  it("gives the defaults and no problems for an absent file", () => {
    for (const raw of [null, undefined]) {
      const { config, problems } = parseRepoConfig(raw);
      expect(problems).toEqual([]);
      expect(config).toEqual(DEFAULT_REPO_CONFIG);
    }
    expect(DEFAULT_REPO_CONFIG).toEqual({
      trigger_label: "agent",
      models: {},
      coder: { max_turns: 30, max_tokens: 8_192, max_output_tokens: 100_000, max_minutes: 30, max_rework_cycles: 3 },
      test: { timeout_minutes: 15 },
      review: { approve: true },
      budget: { threshold: 0.8, action: "block", agents: {} },
      protected_paths: [".github/workflows/**"],
      require_plan_approval: false,
      auto_merge: false,
      ci: { fix_failures: true, ignore_checks: [] },
      instructions: {
        enabled: true,
        files: ["**/AGENTS.md", "CLAUDE.md", ".github/copilot-instructions.md", ".github/instructions/**/*.instructions.md"],
      },
      memory: { enabled: true, max_learnings: 5 },
      orchestrator: { max_proposals: 3 },
    });
  });

  it("accepts a valid config and fills the rest with defaults", () => {
    const { config, problems } = parseRepoConfig({ trigger_label: "ai" });
    expect(problems).toEqual([]);
    expect(config).toEqual({ ...DEFAULT_REPO_CONFIG, trigger_label: "ai" });

    const partial = parseRepoConfig({ models: { coder: "claude-opus-5" }, coder: { max_turns: 50 } });
    expect(partial.problems).toEqual([]);
    expect(partial.config.models).toEqual({ coder: "claude-opus-5" });
    expect(partial.config.coder).toEqual({ ...DEFAULT_REPO_CONFIG.coder, max_turns: 50 });
  });

  it("reports an unknown key by name and falls back to the defaults", () => {
    const { config, problems } = parseRepoConfig({ trigger_labell: "x" });
    expect(config).toEqual(DEFAULT_REPO_CONFIG);
    expect(problems).toHaveLength(1);
    expect(problems[0]).toContain("trigger_labell");
  });

  it("reports an out-of-range nested value by its dotted path", () => {
    const { config, problems } = parseRepoConfig({ coder: { max_turns: 0 } });
    expect(config).toEqual(DEFAULT_REPO_CONFIG);
    expect(problems.some((p) => p.startsWith("coder.max_turns"))).toBe(true);
  });

  it("keeps a valid trigger_label of an otherwise invalid file, so the problems reach the labelled issue", () => {
    const { config, problems } = parseRepoConfig({ trigger_label: "ai", budget: { per_task_usd: 0.01 }, coder: { max_turnz: 5 } });
    expect(problems).toHaveLength(1);
    expect(problems[0]).toContain("max_turnz");
    // Nothing else of the file is used (the caller stops work on problems).
    expect(config).toEqual({ ...DEFAULT_REPO_CONFIG, trigger_label: "ai" });
    expect(parseRepoConfig({ trigger_label: "", coder: { max_turnz: 5 } }).config.trigger_label).toBe("agent");
  });

  it("reports a wrong top-level type", () => {
    const { config, problems } = parseRepoConfig("trigger_label: ai");
    expect(config).toEqual(DEFAULT_REPO_CONFIG);
    expect(problems).toHaveLength(1);
    expect(problems[0]).toMatch(/^\(top level\)/);
  });
});

describe("renderTrackingComment", () => {
  const usage: UsageTotals = {
    calls: 12,
    input_tokens: 123_456,
    output_tokens: 7_890,
    cache_creation_input_tokens: 1_000,
    cache_read_input_tokens: 250_000,
    cost_nano_usd: 1_234_560_000, // $1.23456
  };
  const view = (overrides: Partial<TrackingView>): TrackingView => ({ state: "planning", usage, reworkCycles: 0, ...overrides });
  const row = (text: string, stage: string) => text.split("\n").find((line) => line.startsWith(`| ${stage} |`));

  it("shows Plan running and the rest pending while planning", () => {
    const text = renderTrackingComment(view({ state: "planning" }));
    expect(row(text, "Plan")).toBe("| Plan | ⏳ running |");
    expect(row(text, "Code")).toBe("| Code | ⬜ pending |");
    expect(row(text, "Test")).toBe("| Test | ⬜ pending |");
    expect(row(text, "Review")).toBe("| Review | ⬜ pending |");
    expect(text).toContain("_Working… this comment is updated as each stage completes._");
  });

  it("shows earlier stages done with their links while coding", () => {
    const text = renderTrackingComment(view({ state: "coding", planUrl: "https://github.com/o/r/issues/1#issuecomment-9" }));
    expect(row(text, "Plan")).toBe("| Plan | ✅ done — [plan](https://github.com/o/r/issues/1#issuecomment-9) |");
    expect(row(text, "Code")).toBe("| Code | ⏳ running |");
    expect(row(text, "Review")).toBe("| Review | ⬜ pending |");
  });

  it("shows a requested revision on the Code row", () => {
    const text = renderTrackingComment(view({ state: "changes_requested", testsConclusion: "failure", reworkCycles: 1 }));
    expect(row(text, "Code")).toBe("| Code | 🔁 revision requested |");
    expect(row(text, "Test")).toBe("| Test | ⬜ pending |");
    expect(text).toContain("Rework cycles: 1");
  });

  it("shows every stage done, the links and the final line once ready for merge", () => {
    const text = renderTrackingComment(
      view({
        state: "ready_for_merge",
        planUrl: "https://x/plan",
        prNumber: 42,
        prUrl: "https://x/pull/42",
        reviewUrl: "https://x/review",
        reviewVerdict: "approve",
        testsConclusion: "success",
      }),
    );
    expect(text).not.toContain("⏳");
    expect(text).not.toContain("⬜");
    expect(row(text, "Code")).toBe("| Code | ✅ done — [#42](https://x/pull/42) |");
    expect(row(text, "Test")).toBe("| Test | ✅ passed |");
    expect(row(text, "Review")).toBe("| Review | ✅ done — [review](https://x/review) (approve) |");
    expect(text.trimEnd().split("\n").at(-1)).toBe("**Ready for merge.** A human reviews and merges the pull request.");
  });

  it("shows the run's notes above the final line", () => {
    const text = renderTrackingComment(view({ state: "coding", notes: ["✏️ The issue was edited.", "🔒 The issue was closed."] }));
    expect(text).toContain("\n\n> ✏️ The issue was edited.\n>\n> 🔒 The issue was closed.\n\n_Working… this comment is updated as each stage completes._");
    expect(renderTrackingComment(view({ state: "coding", notes: [] }))).toBe(renderTrackingComment(view({ state: "coding" })));
  });

  it("shows the failed stage, the stages not run, and the reason", () => {
    const text = renderTrackingComment(view({ state: "failed", stoppedIn: "coding", reason: "The Anthropic API answered 529." }));
    expect(row(text, "Plan")).toBe("| Plan | ✅ done |");
    expect(row(text, "Code")).toBe("| Code | ❌ failed |");
    expect(row(text, "Review")).toBe("| Review | ⏹️ not run |");
    expect(text).not.toContain("⏳");
    expect(text.trimEnd().split("\n").at(-1)).toBe("**Stopped:** The Anthropic API answered 529. Comment `/retry` to try again.");
  });

  it("summarises a merged task: total cost, wall time, rework cycles", () => {
    const text = renderTrackingComment(view({ state: "merged", wallTimeMs: 3_723_000, reworkCycles: 2 }));
    expect(text.trimEnd().split("\n").at(-1)).toBe("**Merged.** Total $1.2346 · wall time 1 h 2 min · 2 rework cycles.");
  });

  it("shows the tokens and the cost formatted with formatNanoUsd", () => {
    const text = renderTrackingComment(view({}));
    expect(text).toContain("**Usage so far:** 12 LLM calls · 123,456 input · 7,890 output · 1,000 cache write · 250,000 cache read tokens · **$1.2346**");
    expect(text).toContain(`**${formatNanoUsd(usage.cost_nano_usd)}**`);
  });

  it("formatUsd shows four decimals", () => {
    expect(formatUsd(0)).toBe("$0.0000");
    expect(formatUsd(0.00042)).toBe("$0.0004");
    expect(formatUsd(12.065)).toBe("$12.0650");
    expect(formatUsd(1234.5)).toBe("$1234.5000");
    // rounded half-up from the decimal text, not from the binary double (0.00005 is stored a hair below)
    expect(formatUsd(0.00005)).toBe("$0.0001");
  });

  it("stateLabel prefixes mc:", () => {
    expect(stateLabel("coding")).toBe("mc:coding");
  });
});
