import { describe, expect, it } from "vitest";

import { commitMessage } from "../../src/agents/coder.js";
import { trimToolResults } from "../../src/agents/loop.js";
import type { MessageParam } from "../../src/ports/llm.js";

function toolTurn(id: string, content: string): MessageParam {
  return { role: "user", content: [{ type: "tool_result", tool_use_id: id, content }] };
}

describe("trimToolResults", () => {
  it("replaces the oldest tool results with a note until the conversation fits, never the latest turn", () => {
    const messages: MessageParam[] = [
      { role: "user", content: "task" },
      toolTurn("a", "x".repeat(1000)),
      toolTurn("b", "y".repeat(1000)),
      toolTurn("c", "z".repeat(1000)),
    ];
    const removed = trimToolResults(messages, 2200);
    const contents = messages.slice(1).map((m) => (m.content as Array<{ content: string }>)[0]?.content ?? "");
    expect(contents[0]).toBe("[earlier tool output trimmed to save context: 1000 characters]");
    expect(contents[1]).toBe("y".repeat(1000));
    expect(contents[2]).toBe("z".repeat(1000));
    expect(removed).toBeGreaterThan(900);
  });

  it("leaves a conversation within budget alone", () => {
    const messages: MessageParam[] = [toolTurn("a", "short"), toolTurn("b", "short")];
    expect(trimToolResults(messages, 1000)).toBe(0);
    expect((messages[0]?.content as Array<{ content: string }>)[0]?.content).toBe("short");
  });
});

describe("commitMessage", () => {
  const base = { issueNumber: 12, title: "Friendlier greeting", summary: "- changed greet()", revision: false, coAuthor: null };

  it("follows Conventional Commits when most recent subjects do", () => {
    const message = commitMessage({ ...base, recentSubjects: ["feat: add x", "fix(api): y", "chore: z", "Merge branch"] });
    expect(message.split("\n")[0]).toBe("feat: Friendlier greeting (#12)");
  });

  it("uses `Resolve #n: title` otherwise, and `Address review of` for a revision", () => {
    expect(commitMessage({ ...base, recentSubjects: ["Add x", "Fix y"] }).split("\n")[0]).toBe("Resolve #12: Friendlier greeting");
    expect(commitMessage({ ...base, revision: true, recentSubjects: [] }).split("\n")[0]).toBe("Address review of #12: Friendlier greeting");
  });

  it("adds a Co-authored-by trailer with the person's noreply address", () => {
    const message = commitMessage({ ...base, recentSubjects: [], coAuthor: { login: "ada", id: 42 } });
    expect(message.endsWith("\n\nCo-authored-by: ada <42+ada@users.noreply.github.com>")).toBe(true);
  });
});
