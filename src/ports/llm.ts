/**
 * The Messages API as the agents see it: one call whose usage is already recorded against the
 * budgets. The message types are the SDK's (type-only: the SDK itself is loaded by
 * `adapters/anthropic/client.ts` alone).
 */
import type { Message, MessageCreateParamsNonStreaming } from "@anthropic-ai/sdk/resources/messages";

import type { BudgetAlert } from "../domain/budget-rules.js";
import type { RepoBudgetConfig } from "../config/repo-config.js";

export type {
  ContentBlock,
  ContentBlockParam,
  Message,
  MessageCreateParamsNonStreaming as MessageRequest,
  MessageParam,
  TextBlock,
  TextBlockParam,
  Tool,
  ToolResultBlockParam,
  ToolUseBlock,
  Usage,
} from "@anthropic-ai/sdk/resources/messages";

/** What one Messages API call cost, for the ledger. */
export interface UsageRecord {
  model: string;
  input_tokens: number;
  output_tokens: number;
  cache_creation_input_tokens: number;
  cache_read_input_tokens: number;
  /** Nano-dollars (1 USD = 10⁹ n$), exact: tokens × price per token in integers. */
  cost_nano_usd: number;
  /** The API's `request-id` response header. */
  request_id: string | null;
}

/** The narrow surface agents use: one Messages API call whose usage is already recorded. */
export interface Llm {
  /**
   * Sends `POST /v1/messages` (non-streaming) and returns the message once its usage has been
   * recorded.
   *
   * @throws {UnknownModelError} before any request when the model has no price
   * @throws {LlmApiError} `retryable` for 429, 529, 5xx and connection errors (after the SDK's own retries)
   */
  createMessage(request: MessageCreateParamsNonStreaming, options?: { signal?: AbortSignal }): Promise<Message>;
}

/** Who the ledger charges a call to, and where budget alerts go. */
export interface UsageContext {
  installationId: number;
  repository: string;
  subjectNumber: number;
  taskId: number;
  /** The queue's job id (SQLite row id as text, or a pg-boss uuid). */
  jobId: string;
  agent: string;
  /** The task's repository config's budget section (it adds or lowers limits). */
  config: { budget: RepoBudgetConfig };
  /** Posts a budget alert on the issue (once per scope and period: the ledger dedupes). */
  onAlert(alert: BudgetAlert): Promise<void>;
}
