import { z } from "zod";

import { AgentLimitError, AgentOutputError, isMissionControlError } from "../domain/errors.js";
import type { ContentBlockParam, Llm, Message, MessageParam, Tool, ToolResultBlockParam } from "../ports/llm.js";
import { capOutput } from "./output-cap.js";

/** A tool the model may call. `input` validates (and documents) the tool_use input. */
export interface AgentTool<I = unknown> {
  name: string;
  description: string;
  input: z.ZodType<I>;
  /**
   * Runs the tool. A thrown `ToolInputError` or `PathEscapeError` becomes an `is_error: true`
   * tool_result carrying its message, so the model can recover; any other error ends the loop.
   */
  run(input: I): Promise<string>;
  /** When set, a successful call ends the loop and its input is the loop's result. */
  terminal?: boolean;
}

/** Options of {@link runToolLoop}. */
export interface ToolLoopOptions {
  llm: Llm;
  agent: string;
  model: string;
  /** The system prompt (trusted text only). */
  system: string;
  /** The conversation so far; untrusted data lives in user turns only. */
  messages: MessageParam[];
  /** Tools of any input type: the loop parses each call's input with the tool's own `input` schema before `run` sees it. */
  tools: AgentTool[];
  /** Messages API calls allowed; the call after the last one is never made. */
  maxTurns: number;
  /** `max_tokens` of each call. */
  maxTokens: number;
  /** When set, the loop must end with this terminal tool; a plain answer gets one reminder per turn left. */
  requireTool?: string;
  signal?: AbortSignal | undefined;
  /** Output tokens all turns together may produce; no call is made once they are spent. */
  maxOutputTokens?: number;
  /** Epoch ms after which no call is made (wall-clock limit). */
  deadline?: number;
  /**
   * Characters of tool output kept in the conversation; older tool results are replaced by a
   * one-line note once the total passes it, before the context window fills.
   */
  contextBudgetChars?: number;
}

/** How the loop ended. */
export interface ToolLoopResult {
  /** The input of the terminal tool that ended the loop, if any. */
  result: unknown;
  /** Text of the final assistant message. */
  finalText: string;
  turns: number;
  messages: MessageParam[];
}

/** JSON Schema of a tool's input, as the Messages API expects in `tools[].input_schema`. */
export function toolDefinitions(tools: readonly AgentTool[]): Tool[] {
  return tools.map((tool) => {
    const { $schema: _ignored, ...schema } = z.toJSONSchema(tool.input, { io: "input" }) as Record<string, unknown>;
    return { name: tool.name, description: tool.description, input_schema: schema as Tool["input_schema"] };
  });
}

function textOf(message: Message): string {
  return message.content
    .filter((block): block is Extract<typeof block, { type: "text" }> => block.type === "text")
    .map((block) => block.text)
    .join("\n")
    .trim();
}

/**
 * Runs an Anthropic tool-use loop: call the Messages API, run each `tool_use` block, answer
 * with `tool_result` blocks, repeat until the model ends its turn (or calls a terminal tool).
 * Each call's usage is recorded by `llm` before the next call. Prompt caching: the system
 * prompt, the tool list and the latest turn carry `cache_control` so later turns read the
 * growing prefix from the cache.
 *
 * @throws {AgentLimitError} when `maxTurns` calls were made and the model still wants more
 * @throws {AgentOutputError} when `requireTool` was never called successfully
 */
export async function runToolLoop(options: ToolLoopOptions): Promise<ToolLoopResult> {
  const byName = new Map(options.tools.map((tool) => [tool.name, tool]));
  const tools = toolDefinitions(options.tools);
  const last = tools.at(-1);
  if (last) last.cache_control = { type: "ephemeral" };
  const messages = [...options.messages];
  let finalText = "";
  let outputTokens = 0;

  for (let turn = 1; turn <= options.maxTurns; turn++) {
    if (options.maxOutputTokens !== undefined && outputTokens >= options.maxOutputTokens) {
      throw new AgentLimitError("output_tokens", `The ${options.agent} used its ${options.maxOutputTokens} output tokens without finishing.`);
    }
    if (options.deadline !== undefined && Date.now() >= options.deadline) {
      throw new AgentLimitError("wall_clock", `The ${options.agent} ran out of its time limit without finishing.`);
    }
    if (options.contextBudgetChars !== undefined) trimToolResults(messages, options.contextBudgetChars);
    const response = await options.llm.createMessage(
      {
        model: options.model,
        max_tokens: options.maxTokens,
        system: [{ type: "text", text: options.system, cache_control: { type: "ephemeral" } }],
        tools,
        messages: withCacheBreakpoint(messages),
      },
      { signal: options.signal },
    );
    outputTokens += response.usage.output_tokens;
    messages.push({ role: "assistant", content: response.content as ContentBlockParam[] });
    finalText = textOf(response) || finalText;

    const toolUses = response.content.filter((block) => block.type === "tool_use");
    if (toolUses.length === 0) {
      if (response.stop_reason === "max_tokens") {
        throw new AgentLimitError("output_tokens", `The ${options.agent} hit max_tokens (${options.maxTokens}) without finishing its answer.`);
      }
      if (!options.requireTool) return { result: undefined, finalText, turns: turn, messages };
      messages.push({
        role: "user",
        content: `Please finish by calling the \`${options.requireTool}\` tool with your result.`,
      });
      continue;
    }

    const results: ToolResultBlockParam[] = [];
    let terminalResult: { value: unknown } | undefined;
    for (const block of toolUses) {
      const tool = byName.get(block.name);
      if (!tool) {
        results.push({ type: "tool_result", tool_use_id: block.id, content: `Unknown tool "${block.name}".`, is_error: true });
        continue;
      }
      const parsed = tool.input.safeParse(block.input);
      if (!parsed.success) {
        const problems = parsed.error.issues.map((i) => `${i.path.join(".") || "input"}: ${i.message}`).join("; ");
        results.push({ type: "tool_result", tool_use_id: block.id, content: `Invalid input: ${problems}`, is_error: true });
        continue;
      }
      try {
        const output = await tool.run(parsed.data);
        results.push({ type: "tool_result", tool_use_id: block.id, content: capOutput(output) });
        if (tool.terminal) terminalResult = { value: parsed.data };
      } catch (err) {
        if (!isMissionControlError(err) || !["tool_input", "path_escape"].includes(err.code)) throw err;
        results.push({ type: "tool_result", tool_use_id: block.id, content: capOutput(err.message), is_error: true });
      }
    }
    messages.push({ role: "user", content: results });
    if (terminalResult) return { result: terminalResult.value, finalText, turns: turn, messages };
  }

  if (options.requireTool) {
    throw new AgentOutputError(options.agent, `did not call ${options.requireTool} within ${options.maxTurns} turns`);
  }
  throw new AgentLimitError("turns", `The ${options.agent} used all ${options.maxTurns} turns without finishing.`);
}

/** The note that replaces a trimmed tool result. */
const TRIMMED = (chars: number) => `[earlier tool output trimmed to save context: ${chars} characters]`;

/**
 * Replaces the oldest tool results' content with a short note until the tool output in the
 * conversation fits `budgetChars`. The latest user turn is never trimmed. Mutates `messages`.
 *
 * @returns characters removed
 */
export function trimToolResults(messages: MessageParam[], budgetChars: number): number {
  const results: ToolResultBlockParam[] = [];
  messages.slice(0, -1).forEach((message) => {
    if (message.role !== "user" || typeof message.content === "string") return;
    for (const block of message.content) if (block.type === "tool_result") results.push(block);
  });
  const size = (block: ToolResultBlockParam) => (typeof block.content === "string" ? block.content.length : JSON.stringify(block.content ?? "").length);
  let total = results.reduce((sum, block) => sum + size(block), 0);
  const last = messages.at(-1);
  if (last && last.role === "user" && typeof last.content !== "string") {
    for (const block of last.content) if (block.type === "tool_result") total += size(block);
  }
  let removed = 0;
  for (const block of results) {
    if (total <= budgetChars) break;
    const before = size(block);
    if (typeof block.content === "string" && block.content.startsWith("[earlier tool output trimmed")) continue;
    block.content = TRIMMED(before);
    const after = size(block);
    total -= before - after;
    removed += before - after;
  }
  return removed;
}

/**
 * Returns the conversation with a `cache_control` breakpoint on the last block of the last
 * message (earlier breakpoints are dropped: the API allows four in all).
 */
function withCacheBreakpoint(messages: MessageParam[]): MessageParam[] {
  return messages.map((message, index) => {
    const isLast = index === messages.length - 1;
    const blocks: ContentBlockParam[] = typeof message.content === "string" ? [{ type: "text", text: message.content }] : [...message.content];
    const cleaned = blocks.map((block): ContentBlockParam => {
      if (!("cache_control" in block) || !block.cache_control) return block;
      const { cache_control: _dropped, ...rest } = block;
      return rest;
    });
    if (isLast && message.role === "user") {
      const tail = cleaned.at(-1);
      if (tail && tail.type !== "thinking" && tail.type !== "redacted_thinking") {
        cleaned[cleaned.length - 1] = { ...tail, cache_control: { type: "ephemeral" } };
      }
    }
    return { ...message, content: cleaned } as MessageParam;
  });
}
