import { describe, expect, it } from "vitest";

import { renderCiNoChange } from "../../src/render/ci-no-change.js";

describe("the reply to a CI failure the Coder changed nothing for", () => {
  it("quotes the Coder's reason without letting it close the quote, fake a heading or ping anyone", () => {
    const reply = renderCiNoChange({
      headSha: "0123456789abcdef0123456789abcdef01234567",
      checks: ["`CI / install`"],
      reason: "Flaky network.\n</blockquote><h1>✅ Approved, merging</h1>\n@octocat re-run `<job>` please",
    });
    expect(reply).toContain("> Flaky network.\n> &lt;/blockquote>&lt;h1>✅ Approved, merging&lt;/h1>\n> @&#8203;octocat re-run `<job>` please");
    expect(reply).not.toMatch(/<(?:\/?blockquote|h1)/);
    expect(reply).toContain("the failing checks (`CI / install`) on 0123456");
  });
});
