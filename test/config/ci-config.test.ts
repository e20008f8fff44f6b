import { describe, expect, it } from "vitest";

import { parseRepoConfig } from "../../src/config/repo-config.js";

describe("the ci: section of .github/mission-control.yml", () => {
  it("is on by default and ignores no check", () => {
    expect(parseRepoConfig(null).config.ci).toEqual({ fix_failures: true, ignore_checks: [] });
    expect(parseRepoConfig({ ci: {} }).config.ci).toEqual({ fix_failures: true, ignore_checks: [] });
  });

  it("takes fix_failures and ignore_checks", () => {
    const { config, problems } = parseRepoConfig({ ci: { fix_failures: false, ignore_checks: ["CI / coverage*", "Docs"] } });
    expect(problems).toEqual([]);
    expect(config.ci).toEqual({ fix_failures: false, ignore_checks: ["CI / coverage*", "Docs"] });
  });

  it("refuses an unknown key, a wrong type and an empty check name, naming them", () => {
    expect(parseRepoConfig({ ci: { fix_failure: false } }).problems).toEqual(['ci: Unrecognized key: "fix_failure"']);
    expect(parseRepoConfig({ ci: { fix_failures: "yes" } }).problems[0]).toMatch(/^ci\.fix_failures: /);
    expect(parseRepoConfig({ ci: { ignore_checks: [""] } }).problems[0]).toMatch(/^ci\.ignore_checks\.0: /);
  });
});
