/**
 * What agent-level tests share: an `AgentRuntime` whose Messages API calls go to the Anthropic
 * fake (`ANTHROPIC_TEST_URL`) with real pricing and no ledger, and a small plan to implement.
 */
import type { Plan } from "../../src/agents/architect.js";
import type { AgentRuntime } from "../../src/agents/context.js";
import { createAnthropic, createRecordingLlm } from "../../src/adapters/anthropic/client.js";
import { PriceTable } from "../../src/domain/pricing.js";
import { ANTHROPIC_TEST_URL } from "./anthropic-fake.js";

/** A runtime on the Anthropic fake (start the fake first): no retries, 5 s timeout, usage recorded nowhere. */
export function fakeAnthropicRuntime(model = "claude-sonnet-5-5"): AgentRuntime {
  const llm = createRecordingLlm(
    createAnthropic({ apiKey: "sk-ant-test-x", baseURL: ANTHROPIC_TEST_URL, maxRetries: 0, timeoutMs: 5000 }),
    new PriceTable(),
    async () => {},
  );
  return { llm, model };
}

/** A one-file plan ("Fix the greeting.") for the file at `path`. */
export function greetingPlan(path: string): Plan {
  return {
    summary: "Fix the greeting.",
    files_to_change: [{ path, reason: "the greeting" }],
    steps: ["Change the greeting"],
    definition_of_done: ["The greeting ends with an exclamation mark"],
    test_plan: ["Unit-test greet()"],
  };
}
