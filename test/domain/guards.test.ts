import { describe, expect, it } from "vitest";

import { canWrite, isBot } from "../../src/domain/guards.js";

describe("guards", () => {
  it("isBot: type Bot or a login ending in [bot]", () => {
    expect(isBot({ login: "mission-control", type: "Bot" })).toBe(true);
    expect(isBot({ login: "dependabot[bot]", type: "User" })).toBe(true);
    expect(isBot({ login: "octocat", type: "User" })).toBe(false);
    expect(isBot({ login: "robot-fan", type: "Organization" })).toBe(false);
    expect(isBot({ login: "[bot]octocat", type: "User" })).toBe(false);
  });

  it("canWrite: admin, write, maintain", () => {
    expect(canWrite({ permission: "admin" })).toBe(true);
    expect(canWrite({ permission: "write" })).toBe(true);
    expect(canWrite({ permission: "write", role_name: "maintain" })).toBe(true);
    expect(canWrite({ permission: "read", role_name: "maintain" })).toBe(true);
    expect(canWrite({ role_name: "maintain" })).toBe(true);
  });

  it("canWrite: false for read, none, triage and missing fields", () => {
    expect(canWrite({ permission: "read" })).toBe(false);
    expect(canWrite({ permission: "none" })).toBe(false);
    expect(canWrite({ permission: "read", role_name: "triage" })).toBe(false);
    expect(canWrite({ permission: "read", role_name: "read" })).toBe(false);
    expect(canWrite({ permission: null, role_name: null })).toBe(false);
    expect(canWrite({})).toBe(false);
  });
});
