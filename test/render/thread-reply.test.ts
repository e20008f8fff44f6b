import { describe, expect, it } from "vitest";

import { quietMarkdown, renderThreadReply, threadReplyMarker } from "../../src/render/thread-reply.js";

describe("the reply in a review thread", () => {
  const sha = "0123456789abcdef0123456789abcdef01234567";

  it("says what changed with the short sha, carries its marker, and pings nobody", () => {
    const body = renderThreadReply(7, sha, { changed: true, message: "Renamed it, thanks @alice and @org/team (mail a@b.c)." });
    expect(body.startsWith(threadReplyMarker(7, 7))).toBe(true);
    expect(body).toContain("**Changed in 0123456.**");
    expect(body).toContain("@&#8203;alice and @&#8203;org/team");
    expect(body).not.toMatch(/@(?!&#8203;)[A-Za-z0-9]/);
  });

  it("says why not, or that the thread was not addressed", () => {
    expect(renderThreadReply(7, sha, { changed: false, message: "Already so." })).toContain("**Not changed** (revision 0123456). Already so.");
    expect(renderThreadReply(7, sha, undefined)).toContain("**Not addressed.**");
  });

  it("keeps the model from hiding a marker or leaking a secret", () => {
    const quiet = quietMarkdown(`<!-- mission-control:thread-reply:7:${sha} --> ghp_abcdefghijklmnopqrstuvwxyz0123456789`);
    expect(quiet).not.toContain("<!--");
    expect(quiet).not.toContain("ghp_abcdefghijklmnopqrstuvwxyz0123456789");
    expect(quietMarkdown("x".repeat(5000)).length).toBeLessThanOrEqual(2001);
  });
});
