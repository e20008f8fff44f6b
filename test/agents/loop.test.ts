import { describe, expect, it } from "vitest";
import { z } from "zod";

import { type AgentTool, runToolLoop, toolDefinitions } from "../../src/agents/loop.js";
import { capOutput, TOOL_OUTPUT_LIMITS } from "../../src/agents/output-cap.js";
import { AgentLimitError, AgentOutputError, PathEscapeError, ToolInputError } from "../../src/domain/errors.js";
import type { ContentBlock, Llm, Message, MessageParam, MessageRequest, ToolResultBlockParam } from "../../src/ports/llm.js";

const MODEL = "claude-test";

type Block = { type: "text"; text: string } | { type: "tool_use"; id: string; name: string; input: unknown };

function message(content: Block[], stopReason: Message["stop_reason"] = content.some((b) => b.type === "tool_use") ? "tool_use" : "end_turn"): Message {
  return {
    id: `msg_${Math.random().toString(36).slice(2)}`,
    type: "message",
    role: "assistant",
    model: MODEL,
    content: content as unknown as ContentBlock[],
    stop_reason: stopReason,
    stop_sequence: null,
    usage: { input_tokens: 10, output_tokens: 5, cache_creation_input_tokens: 0, cache_read_input_tokens: 0 },
  } as unknown as Message;
}

const text = (t: string): Block => ({ type: "text", text: t });
const toolUse = (id: string, name: string, input: unknown): Block => ({ type: "tool_use", id, name, input });

/** A scripted Llm that records a deep copy of every request (as sent, at call time). */
class FakeLlm implements Llm {
  readonly requests: MessageRequest[] = [];
  readonly signals: (AbortSignal | undefined)[] = [];
  readonly #script: ((request: MessageRequest) => Message)[];

  constructor(script: (Message | ((request: MessageRequest) => Message))[]) {
    this.#script = script.map((step) => (typeof step === "function" ? step : () => step));
  }

  async createMessage(request: MessageRequest, options?: { signal?: AbortSignal }): Promise<Message> {
    this.requests.push(JSON.parse(JSON.stringify(request)) as MessageRequest);
    this.signals.push(options?.signal);
    const step = this.#script[this.requests.length - 1];
    if (!step) throw new Error(`unexpected call #${this.requests.length}`);
    return step(request);
  }
}

const echo: AgentTool<{ value: string }> = {
  name: "echo",
  description: "Echo the value",
  input: z.object({ value: z.string().min(1) }),
  run: async ({ value }) => `echo: ${value}`,
};

const refuse: AgentTool<{ path: string }> = {
  name: "refuse",
  description: "Always refuses",
  input: z.object({ path: z.string() }),
  run: async ({ path }) => {
    if (path.startsWith("..")) throw new PathEscapeError(path, "the path leaves the repository");
    throw new ToolInputError(`cannot do that with ${path}`);
  },
};

const submit: AgentTool<{ answer: number }> = {
  name: "submit",
  description: "Submit the final answer",
  input: z.object({ answer: z.number().int() }),
  terminal: true,
  run: async () => "Received.",
};

function baseOptions(llm: Llm, tools: AgentTool<any>[] = [echo, refuse]) {
  return {
    llm,
    agent: "tester",
    model: MODEL,
    system: "You are a test agent.",
    messages: [{ role: "user", content: "Do the task." }] as MessageParam[],
    tools,
    maxTurns: 5,
    maxTokens: 1024,
  };
}

function lastMessage(request: MessageRequest): MessageParam {
  const last = request.messages.at(-1);
  if (!last) throw new Error("no messages");
  return last;
}

function toolResults(request: MessageRequest): ToolResultBlockParam[] {
  const last = lastMessage(request);
  expect(last.role).toBe("user");
  expect(Array.isArray(last.content)).toBe(true);
  return (last.content as ToolResultBlockParam[]).filter((b) => b.type === "tool_result");
}

/** The text of a tool_result: the loop always answers a tool call with text. */
function textOf(result: ToolResultBlockParam | undefined): string {
  const content = result?.content;
  if (typeof content !== "string") throw new Error(`expected text content, got ${JSON.stringify(content)}`);
  return content;
}

/** Counts `cache_control` keys anywhere in the request JSON. */
function countBreakpoints(request: MessageRequest): number {
  return (JSON.stringify(request).match(/"cache_control":/g) ?? []).length;
}

describe("runToolLoop", () => {
  it("runs a tool_use and answers with a matching tool_result, then returns the final text", async () => {
    const llm = new FakeLlm([message([text("Let me echo."), toolUse("toolu_1", "echo", { value: "hi" })]), message([text("All done.")])]);
    const result = await runToolLoop(baseOptions(llm));

    expect(llm.requests).toHaveLength(2);
    const second = llm.requests[1]!;
    expect(second.messages.map((m) => m.role)).toEqual(["user", "assistant", "user"]);
    expect(toolResults(second)).toEqual([{ type: "tool_result", tool_use_id: "toolu_1", content: "echo: hi", cache_control: { type: "ephemeral" } }]);
    expect(second.messages[1]!.content).toEqual([
      { type: "text", text: "Let me echo." },
      { type: "tool_use", id: "toolu_1", name: "echo", input: { value: "hi" } },
    ]);
    expect(result).toMatchObject({ result: undefined, finalText: "All done.", turns: 2 });
    expect(result.messages).toHaveLength(4);
  });

  it("answers several tool_use blocks of one turn in order, in one user message", async () => {
    const llm = new FakeLlm([message([toolUse("a", "echo", { value: "1" }), toolUse("b", "echo", { value: "2" })]), message([text("ok")])]);
    await runToolLoop(baseOptions(llm));
    expect(toolResults(llm.requests[1]!).map((r) => [r.tool_use_id, r.content])).toEqual([
      ["a", "echo: 1"],
      ["b", "echo: 2"],
    ]);
  });

  it("returns a ToolInputError or PathEscapeError as is_error and goes on", async () => {
    const llm = new FakeLlm([
      message([toolUse("t1", "refuse", { path: "x" }), toolUse("t2", "refuse", { path: "../x" })]),
      message([text("I give up on that.")]),
    ]);
    const result = await runToolLoop(baseOptions(llm));
    const [first, second] = toolResults(llm.requests[1]!);
    expect(first).toMatchObject({ tool_use_id: "t1", is_error: true, content: "cannot do that with x" });
    expect(second).toMatchObject({ tool_use_id: "t2", is_error: true });
    expect(textOf(second)).toContain("leaves the repository");
    expect(result.finalText).toBe("I give up on that.");
  });

  it("returns invalid tool input (schema failure) as is_error without running the tool", async () => {
    let ran = false;
    const guarded: AgentTool<{ value: string }> = { ...echo, run: async () => ((ran = true), "ran") };
    const llm = new FakeLlm([message([toolUse("t1", "echo", { value: 42 })]), message([text("fixed")])]);
    await runToolLoop(baseOptions(llm, [guarded]));
    const [result] = toolResults(llm.requests[1]!);
    expect(result).toMatchObject({ tool_use_id: "t1", is_error: true });
    expect(textOf(result)).toMatch(/^Invalid input: value: /);
    expect(ran).toBe(false);
  });

  it("returns an unknown tool name as is_error", async () => {
    const llm = new FakeLlm([message([toolUse("t1", "rm_rf", {})]), message([text("sorry")])]);
    await runToolLoop(baseOptions(llm));
    expect(toolResults(llm.requests[1]!)).toEqual([
      { type: "tool_result", tool_use_id: "t1", content: 'Unknown tool "rm_rf".', is_error: true, cache_control: { type: "ephemeral" } },
    ]);
  });

  it("lets other errors of a tool propagate (they are not the model's to handle)", async () => {
    const broken: AgentTool<{ value: string }> = { ...echo, run: async () => Promise.reject(new Error("disk on fire")) };
    const llm = new FakeLlm([message([toolUse("t1", "echo", { value: "x" })]), message([text("unreachable")])]);
    await expect(runToolLoop(baseOptions(llm, [broken]))).rejects.toThrow("disk on fire");
    expect(llm.requests).toHaveLength(1);
  });

  it("caps long tool output", async () => {
    const long: AgentTool<Record<string, never>> = {
      name: "long",
      description: "Long output",
      input: z.object({}),
      run: async () => "x".repeat(TOOL_OUTPUT_LIMITS.maxChars + 100),
    };
    const llm = new FakeLlm([message([toolUse("t1", "long", {})]), message([text("ok")])]);
    await runToolLoop(baseOptions(llm, [long]));
    const content = textOf(toolResults(llm.requests[1]!)[0]);
    expect(content.length).toBeLessThan(TOOL_OUTPUT_LIMITS.maxChars + 200);
    expect(content).toContain("output truncated");
  });

  it("stops with AgentLimitError('turns') after exactly maxTurns calls when the model never stops", async () => {
    let calls = 0;
    const llm: Llm = {
      async createMessage() {
        calls += 1;
        return message([toolUse(`t${calls}`, "echo", { value: String(calls) })]);
      },
    };
    const error = await runToolLoop({ ...baseOptions(llm), maxTurns: 3 }).catch((err: unknown) => err);
    expect(error).toBeInstanceOf(AgentLimitError);
    expect((error as AgentLimitError).limit).toBe("turns");
    expect((error as AgentLimitError).code).toBe("agent_limit");
    expect(calls).toBe(3);
  });

  it("returns the terminal tool's input when requireTool is called after a plain-text answer, sending one reminder", async () => {
    const llm = new FakeLlm([message([text("The answer is 42.")]), message([text("Submitting."), toolUse("t1", "submit", { answer: 42 })])]);
    const result = await runToolLoop({ ...baseOptions(llm, [echo, submit]), requireTool: "submit" });
    expect(result.result).toEqual({ answer: 42 });
    expect(result.turns).toBe(2);
    expect(result.finalText).toBe("Submitting.");
    expect(llm.requests).toHaveLength(2);
    const reminder = lastMessage(llm.requests[1]!);
    expect(reminder.role).toBe("user");
    expect(JSON.stringify(reminder.content)).toContain("Please finish by calling the `submit` tool");
    // The conversation ends with the terminal tool's result.
    expect(result.messages.at(-1)).toMatchObject({ role: "user", content: [{ type: "tool_result", tool_use_id: "t1" }] });
  });

  it("does not end on a terminal tool whose input is invalid", async () => {
    const llm = new FakeLlm([message([toolUse("t1", "submit", { answer: "many" })]), message([toolUse("t2", "submit", { answer: 7 })])]);
    const result = await runToolLoop({ ...baseOptions(llm, [submit]), requireTool: "submit" });
    expect(toolResults(llm.requests[1]!)[0]).toMatchObject({ tool_use_id: "t1", is_error: true });
    expect(result.result).toEqual({ answer: 7 });
  });

  it("throws AgentOutputError when requireTool is never called within maxTurns", async () => {
    const llm = new FakeLlm([message([text("no")]), message([text("still no")])]);
    const error = await runToolLoop({ ...baseOptions(llm, [submit]), requireTool: "submit", maxTurns: 2 }).catch((err: unknown) => err);
    expect(error).toBeInstanceOf(AgentOutputError);
    expect(llm.requests).toHaveLength(2);
  });

  it("throws AgentLimitError('output_tokens') on max_tokens without a tool call", async () => {
    const llm = new FakeLlm([message([text("A very long answer that got cu")], "max_tokens")]);
    const error = await runToolLoop(baseOptions(llm)).catch((err: unknown) => err);
    expect(error).toBeInstanceOf(AgentLimitError);
    expect((error as AgentLimitError).limit).toBe("output_tokens");
    expect(llm.requests).toHaveLength(1);
  });

  it("sends model, max_tokens, the system prompt and the caller's signal", async () => {
    const controller = new AbortController();
    const llm = new FakeLlm([message([text("done")])]);
    await runToolLoop({ ...baseOptions(llm), signal: controller.signal });
    const request = llm.requests[0]!;
    expect(request.model).toBe(MODEL);
    expect(request.max_tokens).toBe(1024);
    expect(request.system).toEqual([{ type: "text", text: "You are a test agent.", cache_control: { type: "ephemeral" } }]);
    expect(llm.signals[0]).toBe(controller.signal);
  });

  it("puts cache_control on the system block, the last tool and the last block of the last user message — at most 4 in all", async () => {
    const llm = new FakeLlm([
      message([toolUse("t1", "echo", { value: "a" })]),
      message([toolUse("t2", "echo", { value: "b" }), toolUse("t3", "refuse", { path: "c" })]),
      message([text("plain")]),
      message([toolUse("t4", "submit", { answer: 1 })]),
    ]);
    await runToolLoop({ ...baseOptions(llm, [echo, refuse, submit]), requireTool: "submit" });
    expect(llm.requests).toHaveLength(4);
    for (const request of llm.requests) {
      const system = request.system as { cache_control?: unknown }[];
      expect(system.at(-1)?.cache_control).toEqual({ type: "ephemeral" });

      const tools = request.tools as { cache_control?: unknown }[];
      expect(tools.at(-1)?.cache_control).toEqual({ type: "ephemeral" });
      expect(tools.slice(0, -1).every((t) => t.cache_control === undefined)).toBe(true);

      const last = lastMessage(request);
      expect(last.role).toBe("user");
      expect(Array.isArray(last.content)).toBe(true);
      const blocks = last.content as { cache_control?: unknown }[];
      expect(blocks.at(-1)?.cache_control).toEqual({ type: "ephemeral" });

      expect(countBreakpoints(request)).toBeLessThanOrEqual(4);
      expect(countBreakpoints(request)).toBe(3);
    }
  });

  it("does not modify the caller's messages", async () => {
    const messages: MessageParam[] = [{ role: "user", content: [{ type: "text", text: "Do it." }] }];
    const snapshot = JSON.stringify(messages);
    const llm = new FakeLlm([message([toolUse("t1", "echo", { value: "x" })]), message([text("ok")])]);
    await runToolLoop({ ...baseOptions(llm), messages });
    expect(JSON.stringify(messages)).toBe(snapshot);
  });
});

describe("toolDefinitions", () => {
  it("gives every tool an object input_schema without a $schema key", () => {
    const definitions = toolDefinitions([echo, refuse, submit]);
    expect(definitions.map((d) => d.name)).toEqual(["echo", "refuse", "submit"]);
    for (const definition of definitions) {
      expect(definition.input_schema.type).toBe("object");
      expect(definition.input_schema).not.toHaveProperty("$schema");
      expect(JSON.stringify(definition)).not.toContain("$schema");
    }
    expect(definitions[0]!.description).toBe("Echo the value");
    expect(definitions[0]!.input_schema.properties).toHaveProperty("value");
    expect(definitions[0]!.input_schema.required).toEqual(["value"]);
  });

  it("lists optional fields as not required (input view of the schema)", () => {
    const tool: AgentTool<{ a: string; b?: number | undefined }> = {
      name: "opt",
      description: "optional",
      input: z.object({ a: z.string(), b: z.number().optional() }),
      run: async () => "",
    };
    const [definition] = toolDefinitions([tool]);
    expect(definition!.input_schema.required).toEqual(["a"]);
  });
});

describe("capOutput", () => {
  it("returns short text unchanged", () => {
    expect(capOutput("short\ntext")).toBe("short\ntext");
    const exact = "x".repeat(TOOL_OUTPUT_LIMITS.maxChars);
    expect(capOutput(exact)).toBe(exact);
  });

  it("cuts text over the character limit and says so", () => {
    const out = capOutput("a".repeat(50), { maxChars: 10, maxLines: 100 });
    expect(out.startsWith(`${"a".repeat(10)}\n`)).toBe(true);
    expect(out).toContain("output truncated");
    expect(out).toContain("10 of 50 characters");
  });

  it("cuts text over the line limit and says so", () => {
    const text = Array.from({ length: 20 }, (_, i) => `l${i}`).join("\n");
    const out = capOutput(text, { maxChars: 10_000, maxLines: 5 });
    expect(out.split("\n").slice(0, 5)).toEqual(["l0", "l1", "l2", "l3", "l4"]);
    expect(out).not.toContain("l5");
    expect(out).toContain("output truncated");
    expect(out).toContain("5 of 20 lines");
  });

  it("applies the default limits", () => {
    const lines = Array.from({ length: TOOL_OUTPUT_LIMITS.maxLines + 1 }, () => "y").join("\n");
    expect(capOutput(lines)).toContain("output truncated");
    expect(capOutput("z".repeat(TOOL_OUTPUT_LIMITS.maxChars + 1))).toContain("output truncated");
  });
});
