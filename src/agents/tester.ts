import { z } from "zod";

import type { CheckConclusion, CheckRunData } from "../ports/github.js";
import { escapeCommandOutput, escapeUntrustedCode, type PromptSafeText } from "../prompt/index.js";
import { redactSecrets } from "../domain/redact.js";
import type { Plan } from "./architect.js";
import { type AgentRuntime, attr } from "./context.js";
import { renderGuidance, type RepositoryGuidance } from "./instructions.js";
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

/** Lines of the log kept for the check run and a Coder revision. */
export const LOG_TAIL_LINES = 80;

/** The last `lines` lines of `text`. */
export function tail(text: string, lines = LOG_TAIL_LINES): string {
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
 * Asks the model to judge each Definition of Done item. The test output is the repository's
 * (anything its tests print): it is redacted over the whole log first (a private key cut by the
 * tail would otherwise lose its BEGIN line), then its tail is escaped (`escapeCommandOutput`),
 * so it cannot close `<test_output>`. The plan's JSON is escaped like code; the diff arrives
 * escaped ({@link PromptSafeText}). The repository's guidance for the changed files
 * (`loadRepositoryGuidance`), when given, comes first (`renderGuidance`).
 */
export async function judgeDefinitionOfDone(
  runtime: AgentRuntime,
  plan: Plan,
  diffText: PromptSafeText,
  outcome: CommandOutcome,
  guidance: RepositoryGuidance | null = null,
): Promise<DodJudgement> {
  const prompt = loadPrompt("tester");
  const guidanceText = renderGuidance(guidance);
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
        content: `${guidanceText ? `${guidanceText}\n\n` : ""}<plan>\n${planJson}\n</plan>\n\n<diff>\n${diffText.slice(0, 80_000)}\n</diff>\n\n<test_output command="${attr(outcome.command)}" exit_code="${attr(outcome.exitCode ?? "killed")}">\n${log}\n</test_output>\n\nJudge each Definition of Done item and submit with submit_judgement.`,
      },
    ],
    tools: [
      {
        name: "submit_judgement",
        description: "Submit the judgement of every Definition of Done item: met, not_met or unclear, with one sentence of evidence.",
        input: DodJudgement,
        terminal: true,
        run: () => Promise.resolve("Judgement received."),
      },
    ],
    maxTurns: 3,
    maxTokens: prompt.maxTokens ?? 2048,
    requireTool: "submit_judgement",
    signal: runtime.signal,
  });
  return DodJudgement.parse(result);
}
