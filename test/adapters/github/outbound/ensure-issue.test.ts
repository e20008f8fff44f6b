import { describe, expect, it } from "vitest";

import { ensureIssue } from "../../../../src/adapters/github/outbound/ensure.js";
import type { GitHubPort, IssueData } from "../../../../src/ports/github.js";

const BOT = "mission-control[bot]";
const TAG = "<!-- mission-control:standup -->";

/** A port holding `issues`, recording creations and edits (only the methods ensureIssue uses). */
function port(issues: IssueData[]) {
  const calls: string[] = [];
  const github = {
    getBotIdentity: () => Promise.resolve({ login: BOT, name: BOT, email: "bot@example.test" }),
    getIssue: (n: number) => {
      const issue = issues.find((i) => i.number === n);
      return issue ? Promise.resolve(issue) : Promise.reject(Object.assign(new Error("Not Found"), { status: 404 }));
    },
    listRecentIssuesBy: (creator: string) => Promise.resolve(issues.filter((i) => i.author === creator)),
    createIssue: (input: { title: string; body: string; labels?: string[] }) => {
      calls.push(`create ${input.title}`);
      const issue: IssueData = {
        number: 100 + issues.length,
        title: input.title,
        body: input.body,
        author: BOT,
        state: "open",
        labels: input.labels ?? [],
        htmlUrl: "",
      };
      issues.push(issue);
      return Promise.resolve(issue);
    },
    updateIssue: (n: number, input: { title?: string; body?: string }) => {
      calls.push(`update #${n}`);
      const issue = issues.find((i) => i.number === n)!;
      Object.assign(issue, input);
      return Promise.resolve(issue);
    },
  } as unknown as GitHubPort;
  return { github, calls };
}

const issue = (number: number, author: string, body: string): IssueData => ({ number, title: "t", body, author, state: "open", labels: [], htmlUrl: "" });

describe("ensureIssue", () => {
  it("creates the issue once, then edits it in place; an identical text is not written again", async () => {
    const { github, calls } = port([]);
    const first = await ensureIssue(github, { topic: "standup", title: "Day 1", body: "one" });
    expect(first).toMatchObject({ created: true, issue: { body: `${TAG}\none` } });
    const second = await ensureIssue(github, { topic: "standup", title: "Day 2", body: "two", issueNumber: first.issue.number });
    expect(second).toMatchObject({ created: false, issue: { number: first.issue.number, title: "Day 2" } });
    await ensureIssue(github, { topic: "standup", title: "Day 2", body: "two", issueNumber: first.issue.number });
    expect(calls).toEqual(["create Day 1", `update #${first.issue.number}`]);
  });

  it("finds its issue by marker when the stored number is lost, deleted, or someone else's", async () => {
    const { github, calls } = port([issue(5, "mallory", `${TAG}\nfake`), issue(9, BOT, `${TAG}\nold`)]);
    expect(await ensureIssue(github, { topic: "standup", title: "t", body: "new", issueNumber: 5 })).toMatchObject({ created: false, issue: { number: 9 } });
    expect(await ensureIssue(github, { topic: "standup", title: "t", body: "newer", issueNumber: 404 })).toMatchObject({
      created: false,
      issue: { number: 9 },
    });
    expect(calls).toEqual(["update #9", "update #9"]);
  });
});
