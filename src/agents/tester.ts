import { z } from "zod";

import { isMissionControlError } from "../errors.js";
import type { CheckConclusion, CheckRunData, GitHubPort } from "../github/output/port.js";
import { escapeCommandOutput, escapeUntrustedCode, type PromptSafeText } from "../prompt/index.js";
import { redactSecrets } from "../redact.js";
import type { Plan } from "./architect.js";
import { type AgentRuntime, attr } from "./context.js";
import { runToolLoop } from "./loop.js";
import { loadPrompt } from "./prompts.js";

/** Name of the Tester's check run. */
export const TESTS_CHECK_NAME = "Mission Control / Tests";

/** One command's outcome, as the sandbox reports it. */
export interface CommandOutcome {
  command: string;
  exitCode: number | null;
  timedOut: boolean;
  /** Milliseconds. */
  durationMs: number;
  stdout: string;
  stderr: string;
  truncated: boolean;
}

/** Runs a repository command in the sandbox (`workspace/sandbox.ts` behind it); `signal` kills it. */
export type SandboxRunner = (command: string, options: { timeoutMs: number; network: boolean; signal?: AbortSignal | undefined }) => Promise<CommandOutcome>;

/** The Tester's judgement of one Definition of Done item. */
export const DodJudgement = z
  .object({
    items: z
      .array(
        z
          .object({
            item: z.string().min(1).max(1000),
            status: z.enum(["met", "not_met", "unclear"]),
            evidence: z.string().max(1000),
          })
          .strict(),
      )
      .max(50),
  })
  .strict();
export type DodJudgement = z.infer<typeof DodJudgement>;

/** What the Tester found. */
export interface TestReport {
  conclusion: CheckConclusion;
  checkRun: CheckRunData;
  command: string | null;
  exitCode: number | null;
  counts: { passed: number; failed: number; skipped?: number } | null;
  /** The end of the log, for a Coder revision. */
  logTail: string;
  judgement: DodJudgement | null;
  /** `true` when a completed check run for this head already existed: nothing was run. */
  reused: boolean;
}

const LOG_TAIL_LINES = 80;

function tail(text: string, lines = LOG_TAIL_LINES): string {
  const all = text.split("\n");
  return all.slice(-lines).join("\n");
}

const STATUS_ICON = { met: "✅", not_met: "❌", unclear: "❔" } as const;

/** Renders the Definition of Done checklist for the check run's text. */
export function renderJudgement(judgement: DodJudgement | null): string {
  if (!judgement || judgement.items.length === 0) return "_The Definition of Done was not judged._";
  return judgement.items.map((i) => `- ${STATUS_ICON[i.status]} ${i.item}${i.evidence ? ` — ${i.evidence}` : ""}`).join("\n");
}

/**
 * Runs the repository's tests on the PR head in the sandbox and reports the check run
 * "Mission Control / Tests" on the head sha: in_progress, then completed with success or
 * failure (neutral when there is no test command). The model then judges the plan's
 * Definition of Done against the diff and the test output; that checklist goes into the
 * check run's text. It never turns failing tests into success.
 *
 * Idempotent per head sha: a completed check run of this app for the head is reused.
 *
 * @throws {SandboxUnavailableError} when the sandbox cannot run; the check run is completed as
 *   neutral with that message first
 */
export async function testPullRequest(
  runtime: AgentRuntime,
  deps: { github: GitHubPort; run: SandboxRunner; parseCounts: (output: string) => TestReport["counts"]; signal?: AbortSignal | undefined },
  input: {
    headSha: string;
    plan: Plan | null;
    /** The pull request's patches as the Reviewer renders them for a prompt (`renderDiff(files).text`): already escaped. */
    diffText: PromptSafeText;
    testCommand: { command: string; source: string } | null;
    setupCommand: string | null;
    allowSetupNetwork: boolean;
    /** Milliseconds. */
    timeoutMs: number;
  },
): Promise<TestReport> {
  const { github } = deps;
  const externalId = `tests:${input.headSha}`;
  const check = await github.ensureCheckRun({
    name: TESTS_CHECK_NAME,
    headSha: input.headSha,
    externalId,
    status: "in_progress",
    output: { title: "Running tests", summary: input.testCommand ? `\`${input.testCommand.command}\`` : "Looking for a test command" },
  });
  if (check.status === "completed" && check.conclusion) {
    return {
      conclusion: check.conclusion as CheckConclusion,
      checkRun: check,
      command: input.testCommand?.command ?? null,
      exitCode: null,
      counts: null,
      logTail: "",
      judgement: null,
      reused: true,
    };
  }

  if (!input.testCommand) {
    const done = await github.updateCheckRun(check.id, {
      status: "completed",
      conclusion: "neutral",
      output: {
        title: "No test command found",
        summary:
          "No `test.command` in `.github/mission-control.yml`, and none could be detected (package.json, pyproject/pytest, Makefile, go.mod, Cargo.toml).",
      },
    });
    return { conclusion: "neutral", checkRun: done, command: null, exitCode: null, counts: null, logTail: "", judgement: null, reused: false };
  }

  let outcome: CommandOutcome;
  try {
    if (input.setupCommand) {
      const setup = await deps.run(input.setupCommand, { timeoutMs: input.timeoutMs, network: input.allowSetupNetwork, signal: deps.signal });
      if (setup.exitCode !== 0) {
        outcome = { ...setup, command: `${input.setupCommand} (setup)` };
        return await finish(outcome, null);
      }
    }
    outcome = await deps.run(input.testCommand.command, { timeoutMs: input.timeoutMs, network: false, signal: deps.signal });
  } catch (err) {
    if (isMissionControlError(err) && err.code === "sandbox_unavailable") {
      await github.updateCheckRun(check.id, {
        status: "completed",
        conclusion: "neutral",
        output: { title: "Tests could not run", summary: err.userMessage },
      });
    }
    throw err;
  }

  let judgement: DodJudgement | null = null;
  if (input.plan && input.plan.definition_of_done.length > 0) {
    try {
      judgement = await judgeDefinitionOfDone(runtime, input.plan, input.diffText, outcome);
    } catch (err) {
      // A budget stop or pause during the judgement: report the test results anyway, then stop.
      const reason = isMissionControlError(err) ? err.userMessage : "the judgement failed";
      await finish(outcome, null, `_The Definition of Done was not judged: ${reason}_`);
      throw err;
    }
  }
  return finish(outcome, judgement);

  async function finish(result: CommandOutcome, dod: DodJudgement | null, dodNote?: string): Promise<TestReport> {
    const log = redactSecrets(`${result.stdout}\n${result.stderr}`.trim());
    const counts = deps.parseCounts(log);
    const passed = result.exitCode === 0 && !result.timedOut;
    const conclusion: CheckConclusion = result.timedOut ? "timed_out" : passed ? "success" : "failure";
    const countText = counts ? ` (${counts.passed} passed, ${counts.failed} failed${counts.skipped ? `, ${counts.skipped} skipped` : ""})` : "";
    const title = result.timedOut ? `Tests timed out after ${Math.round(result.durationMs / 1000)} s` : passed ? `Tests passed${countText}` : `Tests failed${countText}`;
    const summary = [
      `**Command:** \`${redactSecrets(result.command)}\``,
      `**Exit code:** ${result.exitCode ?? "none (killed)"}`,
      `**Duration:** ${(result.durationMs / 1000).toFixed(1)} s`,
      counts ? `**Tests:** ${counts.passed} passed, ${counts.failed} failed${counts.skipped ? `, ${counts.skipped} skipped` : ""}` : "",
      result.truncated ? "_The output was longer than the cap; its middle was cut (the start and the end are kept)._" : "",
    ]
      .filter(Boolean)
      .join("\n");
    const logTail = tail(log);
    const text = `## Definition of Done\n\n${dodNote ?? renderJudgement(dod)}\n\n## Log (last ${LOG_TAIL_LINES} lines)\n\n\`\`\`\n${logTail.replace(/```/g, "ʼʼʼ")}\n\`\`\``;
    const done = await github.updateCheckRun(check.id, { status: "completed", conclusion, output: { title, summary, text } });
    return { conclusion, checkRun: done, command: result.command, exitCode: result.exitCode, counts, logTail, judgement: dod, reused: false };
  }
}

/**
 * Asks the model to judge each Definition of Done item. The test output is the repository's
 * (anything its tests print): it is redacted over the whole log first (a private key cut by the
 * tail would otherwise lose its BEGIN line), then its tail is escaped (`escapeCommandOutput`),
 * so it cannot close `<test_output>`. The plan's JSON is escaped like code; the diff arrives
 * escaped ({@link PromptSafeText}).
 */
async function judgeDefinitionOfDone(runtime: AgentRuntime, plan: Plan, diffText: PromptSafeText, outcome: CommandOutcome): Promise<DodJudgement> {
  const prompt = loadPrompt("tester");
  const log = escapeCommandOutput(tail(redactSecrets(`${outcome.stdout}\n${outcome.stderr}`), 200));
  const planJson = escapeUntrustedCode(JSON.stringify({ definition_of_done: plan.definition_of_done, test_plan: plan.test_plan }, null, 2));
  const { result } = await runToolLoop({
    llm: runtime.llm,
    agent: "tester",
    model: runtime.model,
    system: prompt.text,
    messages: [
      {
        role: "user",
        content: `<plan>\n${planJson}\n</plan>\n\n<diff>\n${diffText.slice(0, 80_000)}\n</diff>\n\n<test_output command="${attr(outcome.command)}" exit_code="${attr(outcome.exitCode ?? "killed")}">\n${log}\n</test_output>\n\nJudge each Definition of Done item and submit with submit_judgement.`,
      },
    ],
    tools: [
      {
        name: "submit_judgement",
        description: "Submit the judgement of every Definition of Done item: met, not_met or unclear, with one sentence of evidence.",
        input: DodJudgement,
        terminal: true,
        run: async () => "Judgement received.",
      },
    ],
    maxTurns: 3,
    maxTokens: prompt.maxTokens ?? 2048,
    requireTool: "submit_judgement",
    signal: runtime.signal,
  });
  return DodJudgement.parse(result);
}
