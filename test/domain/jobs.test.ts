import { describe, expect, it } from "vitest";

import { JobPayloadError } from "../../src/domain/errors.js";
import {
  afterJobNonce,
  commandLockKey,
  commandNonce,
  deliveryDedupeKey,
  deliveryNonce,
  issueLockKey,
  parseJobData,
  stageDedupeKey,
} from "../../src/domain/jobs.js";

describe("parseJobData", () => {
  it("parses each kind's payload by its schema", () => {
    expect(parseJobData("pr_closed", '{"actor":"octocat","merged":true}')).toEqual({ kind: "pr_closed", payload: { actor: "octocat", merged: true } });
    expect(parseJobData("plan", "{}")).toEqual({ kind: "plan", payload: {} });
  });

  it.each([
    ["plan", "{not json", /not valid JSON/],
    ["deploy", "{}", /deploy job's payload is invalid/],
    ["command", '{"name":"dance"}', /payload\.name/],
    ["merge", '{"feedback":{"source":"review"}}', /payload\.feedback\.requestedBy/],
  ])("refuses %s %s with a JobPayloadError (not retryable)", (kind, payload, message) => {
    let error: unknown;
    try {
      parseJobData(kind, payload);
    } catch (err) {
      error = err;
    }
    expect(error).toBeInstanceOf(JobPayloadError);
    expect((error as JobPayloadError).retryable).toBe(false);
    expect((error as Error).message).toMatch(message);
  });
});

describe("keys, built in one place", () => {
  const subject = { owner: "octo-org", repo: "widgets", issueNumber: 7 };
  const task = { id: 3, run: 2 };
  it("lock keys: the issue's lane and its command lane", () => {
    expect(issueLockKey(subject)).toBe("octo-org/widgets#7");
    expect(commandLockKey(subject)).toBe("cmd:octo-org/widgets#7");
  });
  it("dedupe keys", () => {
    expect(stageDedupeKey(task, "plan", deliveryNonce("d-1"))).toBe("task:3:run:2:plan:delivery-d-1");
    expect(stageDedupeKey(task, "test", afterJobNonce("abc", "41"))).toBe("task:3:run:2:test:abc:after-41");
    expect(stageDedupeKey(task, "code", commandNonce(99))).toBe("task:3:run:2:code:cmd-99");
    expect(deliveryDedupeKey("d-1", "command")).toBe("delivery:d-1:command");
  });
});
