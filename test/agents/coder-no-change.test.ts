/**
 * A Coder revision that changes no file: an error for every feedback but the repository's CI,
 * where it is the Coder's answer that the failure is not the change's to fix (nothing pushed).
 */
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";

import { afterEach, beforeEach, describe, expect, it } from "vitest";

import type { Plan } from "../../src/agents/architect.js";
import { type CoderInput, type CoderWorkspace, implementChanges, type RevisionFeedback } from "../../src/agents/coder.js";
import type { AgentRuntime } from "../../src/agents/context.js";
import { AgentOutputError } from "../../src/domain/errors.js";
import type { BotIdentity } from "../../src/ports/github.js";
import { fakeAnthropicRuntime, greetingPlan } from "../helpers/agent-runtime.js";
import { FakeAnthropic, text, toolUse } from "../helpers/anthropic-fake.js";

const USAGE = { input_tokens: 100, output_tokens: 20 };
const BOT = { login: "mc[bot]", id: 1, email: "1+mc[bot]@users.noreply.github.com", name: "mc[bot]" } as unknown as BotIdentity;
const PLAN: Plan = greetingPlan("src/greet.js");

let anthropic: FakeAnthropic;
let runtime: AgentRuntime;
let root: string;

beforeEach(() => {
  anthropic = new FakeAnthropic().start();
  runtime = fakeAnthropicRuntime();
  root = mkdtempSync(path.join(tmpdir(), "mc-coder-no-change-"));
  writeFileSync(path.join(root, "greet.js"), 'export const greet = (name) => "Hello " + name;\n');
});

afterEach(() => {
  anthropic.stop();
  rmSync(root, { recursive: true, force: true });
});

/** A clone where nothing changes; `heads` are what successive `headSha()` calls answer (the last repeats). */
function unchangedWorkspace(heads: string[] = ["a".repeat(40)]): { workspace: CoderWorkspace; pushes: string[] } {
  const pushes: string[] = [];
  let call = 0;
  const workspace: CoderWorkspace = {
    root,
    listFiles: async () => ["greet.js"],
    grep: async () => [],
    hasChanges: async () => false,
    changedFiles: async () => [],
    discardChanges: async () => {},
    filesChangedSince: async () => [],
    commitAll: async () => "b".repeat(40),
    push: async (branch) => {
      pushes.push(branch);
    },
    headSha: async () => heads[Math.min(call++, heads.length - 1)] ?? "",
    recentSubjects: async () => [],
  };
  return { workspace, pushes };
}

function input(feedback: RevisionFeedback): CoderInput {
  return {
    issue: { number: 7, title: "Greeting", body: "Fix greet.", author: "octocat", comments: [] },
    plan: PLAN,
    defaultBranch: "main",
    branch: "mc/issue-7-greeting",
    pullRequest: null,
    feedback,
    limits: { maxTurns: 5, maxTokens: 100_000, maxOutputTokens: 10_000, maxMs: 60_000 },
    protectedPaths: [],
    protectedPathsApproved: true,
    coAuthor: null,
  };
}

/** The Coder reads a file, then answers with `answer` without changing anything. */
function scriptNoChange(answer: string): void {
  anthropic.script("coder", { content: [toolUse("read_file", { path: "greet.js" })], usage: USAGE }, { content: [text(answer)], usage: USAGE });
}

describe("a Coder revision that changes no file", () => {
  it.each<RevisionFeedback["source"]>(["tests", "command", "review"])("%s feedback: still an AgentOutputError, nothing pushed", async (source) => {
    const { workspace, pushes } = unchangedWorkspace();
    scriptNoChange("I think it is fine as it is.");
    const run = implementChanges(runtime, { workspace, bot: BOT }, input({ source, text: "Please fix it.", comments: [], requestedBy: "octocat" }));
    await expect(run).rejects.toBeInstanceOf(AgentOutputError);
    await expect(run).rejects.toThrow("the model finished without changing any file");
    expect(pushes).toEqual([]);
  });

  it("ci feedback: not an error — the Coder's final message is the reason, nothing is pushed (even when it committed and reverted)", async () => {
    const start = "a".repeat(40);
    const { workspace, pushes } = unchangedWorkspace([start, "c".repeat(40)]);
    scriptNoChange("The runner ran out of disk space while installing; nothing in this change causes it.");
    const result = await implementChanges(
      runtime,
      { workspace, bot: BOT },
      input({ source: "ci", text: "The repository's own CI failed.", comments: [], requestedBy: "mission-control", checks: ["CI / test"] }),
    );
    expect(result).toMatchObject({
      nothingToFix: true,
      changedFiles: [],
      headSha: start,
      stopped: null,
      summary: "The runner ran out of disk space while installing; nothing in this change causes it.",
    });
    expect(pushes).toEqual([]);
  });
});
