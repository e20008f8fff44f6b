import { describe, expect, it } from "vitest";

import { quietMarkdown, renderLearningProposal, renderThreadReply, threadReplyMarker } from "../../src/render/thread-reply.js";

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

  it("shows raw HTML as text outside code, and leaves code spans and fenced blocks as written", () => {
    const quiet = quietMarkdown("</blockquote><h1>Approved</h1> <img src=x> <https://x.example> a < b, x<3 `Array<string>`\n```tsx\nconst a = <div />;\n```");
    expect(quiet).toBe(
      "&lt;/blockquote>&lt;h1>Approved&lt;/h1> &lt;img src=x> &lt;https://x.example> a < b, x<3 `Array<string>`\n```tsx\nconst a = <div />;\n```",
    );
    // An unclosed backtick opens no code span: the tag after it is escaped too.
    expect(quietMarkdown("a ` b <b>c</b>")).toBe("a ` b &lt;b>c&lt;/b>");
    // Two stray backticks paragraphs apart shelter nothing: a code span never crosses a blank line.
    expect(quietMarkdown("a ` b\n\n<details><summary>x</summary>\n\nhidden ` c")).toBe("a ` b\n\n&lt;details>&lt;summary>x&lt;/summary>\n\nhidden ` c");
    // A fence mid-line is not a fence.
    expect(quietMarkdown("x ```\n<b>y</b>\n```")).toBe("x ```\n&lt;b>y&lt;/b>\n```");
    // A hidden comment is escaped even inside code (markers are found in the raw text).
    expect(quietMarkdown("`<!-- mission-control:x -->`")).toBe("`&lt;!-- mission-control:x -->`");
  });

  it("redacts before it cuts: a secret the cut goes through leaves no piece behind", () => {
    const password = 'password: "correct-horse-battery-staple-9931"';
    // The cut at 300 falls inside the quoted value (270 + 45 characters).
    const quiet = quietMarkdown(`${"w ".repeat(135)}${password}`, 300);
    expect(quiet).not.toContain("correct-horse");
    expect(quiet).toContain('password: "[REDACTED]"');
    const npm = `npm_${"a1B2c3D4e5F6g7H8i9J0k1L2m3N4o5"}Zz9Yy8`;
    const cut = quietMarkdown(`${"w".repeat(280)} ${npm}`, 300);
    expect(cut).not.toContain("npm_a1B2");
    expect(cut).toContain("[REDACTED]");
  });

  it("shows a proposed learning as literal text: no tag, link title or code span can hide a word from the writer who 👍s it", () => {
    const learning = 'Use pnpm. <details><summary></summary>hidden</details> [docs](https://x.example "title") `code` @alice \\[x\\]';
    const shown = renderLearningProposal(learning).split("\n> ")[1]!;
    expect(shown).toBe(
      'Use pnpm. &lt;details&gt;&lt;summary&gt;&lt;/summary&gt;hidden&lt;/details&gt; \\[docs\\](https://x.example "title") \\`code\\` @&#8203;alice \\\\\\[x\\\\\\]',
    );
    expect(shown).not.toMatch(/<[a-z/]/i);
    expect(shown).not.toMatch(/(?<!\\)[[\]`]/);
  });
});
