import { describe, expect, it } from "vitest";

import { asksForReview, parseMention } from "../../src/domain/mentions.js";
import { helpText, MAX_ARGS_LENGTH } from "../../src/domain/slash-commands.js";

const SLUG = "mission-control";
const mention = (body: string) => parseMention(body, SLUG);
const text = (body: string) => mention(body)?.text;

describe("parseMention: what counts as a mention", () => {
  it("finds the app's handle anywhere in the prose, and removes it from the text", () => {
    expect(mention("@mission-control why does greet() add a space?")).toEqual({ text: "why does greet() add a space?" });
    expect(text("Thanks! @mission-control could you also handle empty names?")).toBe("Thanks! could you also handle empty names?");
    expect(text("Could you look at this, @mission-control?")).toBe("Could you look at this,?");
    expect(text("First line.\n\n@mission-control: keep the API small\nand add tests")).toBe("First line.\n\nkeep the API small\nand add tests");
  });

  it("is case-insensitive and accepts the [bot] form and a leading @ or [bot] in the slug given", () => {
    expect(text("@Mission-Control please add tests")).toBe("please add tests");
    expect(text("@mission-control[bot], please add tests")).toBe("please add tests");
    expect(parseMention("@mission-control please add tests", "@Mission-Control[bot]")).toEqual({ text: "please add tests" });
  });

  it("needs the whole login: longer logins, teams and e-mail addresses are someone else", () => {
    expect(mention("@mission-controlX please add tests")).toBeNull();
    expect(mention("@mission-control-bot please add tests")).toBeNull();
    expect(mention("@mission-control_x please add tests")).toBeNull();
    expect(mention("@mission-control/reviewers please add tests")).toBeNull();
    expect(mention("write to ops@mission-control about it")).toBeNull();
    expect(mention("see https://example.test/@mission-control for it")).toBeNull();
    expect(mention("@@mission-control add tests")).toBeNull();
    // Punctuation after the handle ends it.
    expect(text("Is this right @mission-control.")).toBe("Is this right.");
    expect(text("(@mission-control) add tests")).toBe("() add tests");
  });

  it("ignores mentions in block quotes, with their lazy continuation lines", () => {
    expect(mention("> @mission-control add tests\n\nI agree with this.")).toBeNull();
    expect(mention("> Quote reply:\n@mission-control add tests (lazy continuation of the quote)\n\nok")).toBeNull();
    expect(mention("   > @mission-control add tests")).toBeNull();
    // After the quote ends (a blank line), the prose counts.
    expect(text("> Earlier: @mission-control add tests\n\n@mission-control do what they said")).toBe(
      "> Earlier: @mission-control add tests\n\ndo what they said",
    );
  });

  it("ignores mentions in fenced, indented and inline code, and in HTML comments", () => {
    expect(mention("```\n@mission-control add tests\n```")).toBeNull();
    expect(mention("~~~~md\n@mission-control add tests\n~~~\nstill code\n~~~~")).toBeNull();
    expect(mention("```\nnever closed\n@mission-control add tests")).toBeNull();
    expect(mention("Example:\n\n    @mission-control add tests")).toBeNull();
    expect(mention("Write `@mission-control add tests` to ask it.")).toBeNull();
    expect(mention("Write ``@mission-control `x` add tests`` to ask it.")).toBeNull();
    expect(mention("Nothing to see <!-- @mission-control add tests -->")).toBeNull();
    expect(mention("<!--\n```\n-->\nno mention here")).toBeNull();
  });

  it("counts a mention after code, and in a paragraph's indented continuation line", () => {
    expect(text("```js\ngreet()\n```\n@mission-control why does this fail?")).toBe("```js\ngreet()\n```\nwhy does this fail?");
    expect(text("<!--\n```\n-->\n@mission-control add tests")).toBe("add tests");
    expect(text("Please\n     @mission-control add tests")).toBe("Please\n     add tests");
  });

  it("removes every mention in the prose, keeps the handle where it is quoted or code", () => {
    expect(text("@mission-control add tests. `@mission-control` is the app. @mission-control thanks")).toBe("add tests. `@mission-control` is the app. thanks");
  });

  it("removes HTML comments from the text and cuts it to MAX_ARGS_LENGTH", () => {
    expect(text("@mission-control add tests<!-- and push to main -->")).toBe("add tests");
    expect(text(`@mission-control ${"x".repeat(MAX_ARGS_LENGTH + 10)}`)).toBe("x".repeat(MAX_ARGS_LENGTH));
    expect(text("@mission-control add tests\r\nand docs")).toBe("add tests\nand docs");
  });

  it("a mention that asks nothing is not a request", () => {
    expect(mention("@mission-control")).toBeNull();
    expect(mention("@mission-control !!")).toBeNull();
    expect(mention("@mission-control <!-- hidden -->")).toBeNull();
  });

  it("commands win: a slash-command (or @app command) is never a mention", () => {
    expect(mention("/plan keep it small")).toBeNull();
    expect(mention("@mission-control status")).toBeNull();
    expect(mention("@mission-control /code add tests")).toBeNull();
    expect(mention("/deploy now @mission-control")).toBeNull();
    expect(mention("@mission-control plan it with tests first")).toBeNull();
    // Conversation that is no command is a mention.
    expect(text("@mission-control thanks, but please keep the old name")).toBe("thanks, but please keep the old name");
  });

  it("comments that do not mention the app", () => {
    expect(mention("Thanks, looks good to me.")).toBeNull();
    expect(mention("@someone-else please add tests")).toBeNull();
    expect(mention("")).toBeNull();
    expect(parseMention("@mission-control add tests", "")).toBeNull();
  });
});

describe("asksForReview", () => {
  it.each([
    "Could you review this?",
    "please review",
    "Please re-review it",
    "review the PR for security problems",
    "Review the pull request",
    "a formal review please",
  ])("%s: asks for a review", (t) => expect(asksForReview(t)).toBe(true));

  it.each(["Why does this loop never end?", "is the review done?", "what did the reviewer say", "previewing this is hard", "I reviewed this already"])(
    "%s: is a question",
    (t) => expect(asksForReview(t)).toBe(false),
  );
});

describe("/help", () => {
  it("lists the mention in plain words with who may use it", () => {
    const help = helpText("mission-control[bot]");
    expect(help).toContain("| `@mission-control <request in plain words>` |");
    expect(help).toMatch(/\| `@mission-control <request in plain words>` \| On an issue: plan it .*the Reviewer answers .* \| write access \|/);
    expect(help).toContain("mentions inside quotes or code do not count");
  });
});
