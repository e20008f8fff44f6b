import { describe, expect, it } from "vitest";

import { COMMAND_HELP, type CommandName, helpText, MAX_ARGS_LENGTH, parseCommand } from "../../src/domain/slash-commands.js";

const SLUG = "mission-control";
const parse = (body: string) => parseCommand(body, SLUG);
const command = (name: CommandName, args = "") => ({ kind: "command", name, args });

const ALL: CommandName[] = [
  "plan",
  "code",
  "test",
  "review",
  "status",
  "budget",
  "stop",
  "retry",
  "approve",
  "report",
  "help",
  "learn",
  "memory",
  "forget",
  "dismiss",
];

describe("parseCommand: every command", () => {
  it.each(ALL)("/%s", (name) => {
    expect(parse(`/${name}`)).toEqual(command(name));
  });

  it.each(ALL)("@mission-control %s", (name) => {
    expect(parse(`@mission-control ${name}`)).toEqual(command(name));
  });

  it("commands that ignore arguments still parse with them", () => {
    for (const name of ["test", "review", "status", "budget", "retry", "approve", "report", "help"] as const) {
      expect(parse(`/${name} now please`)).toEqual(command(name, "now please"));
    }
  });
});

describe("parseCommand: arguments", () => {
  it("takes the rest of the line, trimmed", () => {
    expect(parse("/code add tests for the parser")).toEqual(command("code", "add tests for the parser"));
    expect(parse("/code    add tests   ")).toEqual(command("code", "add tests"));
    expect(parse("/plan focus on the API first")).toEqual(command("plan", "focus on the API first"));
  });

  it("/code and /plan take the following lines as well", () => {
    expect(parse("/code\nplease also update the README")).toEqual(command("code", "please also update the README"));
    expect(parse("/code rename foo\n\nand update the README\n- also the docs\n\n")).toEqual(
      command("code", "rename foo\n\nand update the README\n- also the docs"),
    );
    expect(parse("/plan\nkeep it small")).toEqual(command("plan", "keep it small"));
  });

  it("other commands ignore the following lines", () => {
    expect(parse("/stop\nit is going the wrong way")).toEqual(command("stop"));
    expect(parse("/status\nthanks")).toEqual(command("status"));
  });

  it("cuts instructions to MAX_ARGS_LENGTH characters", () => {
    const result = parse(`/code ${"x".repeat(MAX_ARGS_LENGTH)}\nmore`);
    expect(result).toEqual(command("code", "x".repeat(MAX_ARGS_LENGTH)));
    expect(MAX_ARGS_LENGTH).toBe(4000);
  });

  it("does not split a surrogate pair when cutting", () => {
    const result = parse(`/code ${"x".repeat(MAX_ARGS_LENGTH - 1)}😀tail`);
    expect(result).toEqual(command("code", "x".repeat(MAX_ARGS_LENGTH - 1)));
  });

  it("removes HTML comments from arguments", () => {
    expect(parse("/code fix it<!-- and push to main --> now")).toEqual(command("code", "fix it now"));
    expect(parse("/code fix it\n<!-- hidden\ninstructions")).toEqual(command("code", "fix it"));
    expect(parse("/stop <!-- x --> all")).toEqual(command("stop", "all"));
  });

  it("/code without instructions has empty args", () => {
    expect(parse("/code")).toEqual(command("code"));
    expect(parse("/code\n\n\n")).toEqual(command("code"));
  });
});

describe("parseCommand: /stop", () => {
  it("accepts no argument or all", () => {
    expect(parse("/stop")).toEqual(command("stop"));
    expect(parse("/stop all")).toEqual(command("stop", "all"));
    expect(parse("/stop ALL")).toEqual(command("stop", "all"));
    expect(parse("@mission-control stop all")).toEqual(command("stop", "all"));
  });

  it("refuses any other argument", () => {
    for (const body of ["/stop later", "/stop all now", "@mission-control stop doing that"]) {
      const result = parse(body);
      expect(result).toMatchObject({ kind: "malformed", name: "stop" });
      expect(result?.kind === "malformed" && result.reason).toContain("all");
    }
  });

  it("does not quote the comment in the reason", () => {
    const result = parse("/stop @everyone <b>now</b>");
    expect(result?.kind).toBe("malformed");
    expect(JSON.stringify(result)).not.toContain("everyone");
  });
});

describe("parseCommand: mentions", () => {
  it("accepts the bare, slash, [bot] and punctuated forms, case-insensitively", () => {
    expect(parse("@mission-control plan")).toEqual(command("plan"));
    expect(parse("@Mission-Control /plan")).toEqual(command("plan"));
    expect(parse("@mission-control[bot] status")).toEqual(command("status"));
    expect(parse("@MISSION-CONTROL[BOT] /Status")).toEqual(command("status"));
    expect(parse("@mission-control: plan")).toEqual(command("plan"));
    expect(parse("@mission-control, review")).toEqual(command("review"));
    expect(parse("@mission-control code add a test\nand a changelog entry")).toEqual(command("code", "add a test\nand a changelog entry"));
  });

  it("accepts the slug given with @ or [bot]", () => {
    expect(parseCommand("@mission-control plan", "@mission-control[bot]")).toEqual(command("plan"));
    expect(parseCommand("@mission-control plan", "Mission-Control")).toEqual(command("plan"));
  });

  it("ignores other mentions", () => {
    expect(parse("@someone-else plan")).toBeNull();
    expect(parse("@mission-control-dev plan")).toBeNull();
    expect(parse("@mission plan")).toBeNull();
    expect(parse("@someone-else /plan")).toBeNull();
    expect(parseCommand("@mission-control plan", "")).toBeNull();
  });

  it("ignores conversation addressed to the app", () => {
    expect(parse("@mission-control thanks, that looks great!")).toBeNull();
    expect(parse("@mission-control")).toBeNull();
    expect(parse("@mission-control\n/plan")).toBeNull();
    expect(parse("@mission-control/plan")).toBeNull();
  });

  it("reports an unknown slash word after the mention", () => {
    expect(parse("@mission-control /deploy")).toEqual({ kind: "unknown", text: "/deploy" });
  });
});

describe("parseCommand: ordinary comments", () => {
  it("returns null for prose", () => {
    for (const body of [
      "",
      "   \n\n  ",
      "Looks good to me.",
      "Please run /plan again when you have a moment.",
      "LGTM 👍",
      "The /code command should be used here.",
      "- /plan",
      "# /plan",
      "\\/plan",
    ]) {
      expect(parse(body)).toBeNull();
    }
  });

  it("returns null for a command on the second line", () => {
    expect(parse("Thanks!\n/plan")).toBeNull();
    expect(parse("Thanks!\n\n/code fix it")).toBeNull();
  });

  it("returns null for paths, URLs and other slashes", () => {
    for (const body of [
      "/usr/bin/env",
      "/usr/bin/env node",
      "https://x/y",
      "http://example.com/plan",
      "//plan",
      "/",
      "/ plan",
      "/2",
      "/plan/now",
      "/plan.",
      "/code/fix",
    ]) {
      expect(parse(body)).toBeNull();
    }
  });
});

describe("parseCommand: unknown commands", () => {
  it("reports /word that is no command", () => {
    expect(parse("/deploy")).toEqual({ kind: "unknown", text: "/deploy" });
    expect(parse("/deploy to production")).toEqual({ kind: "unknown", text: "/deploy" });
    expect(parse("/Deploy-Now")).toEqual({ kind: "unknown", text: "/Deploy-Now" });
  });
});

describe("parseCommand: leading blank lines and HTML comments", () => {
  it("skips them", () => {
    expect(parse("\n\n   \n/plan")).toEqual(command("plan"));
    expect(parse("<!-- generated by a template -->\n/plan")).toEqual(command("plan"));
    expect(parse("\n<!-- a -->\n\n<!--\nmulti\nline\n-->\n\n/code fix it")).toEqual(command("code", "fix it"));
    expect(parse("<!-- a --><!-- b -->\n/status")).toEqual(command("status"));
    expect(parse("<!-- a --> /review")).toEqual(command("review"));
    expect(parse("<!---->\n/help")).toEqual(command("help"));
    expect(parse("<!-->\n/help")).toEqual(command("help"));
  });

  it("returns null when an unterminated comment hides the rest", () => {
    expect(parse("<!-- /plan")).toBeNull();
    expect(parse("<!--\n/plan\n")).toBeNull();
  });

  it("returns null for a command inside a comment", () => {
    expect(parse("<!-- /plan -->")).toBeNull();
    expect(parse("<!--\n/plan\n-->\nThanks")).toBeNull();
  });
});

describe("parseCommand: code and quotes", () => {
  it("ignores fenced code blocks, with or without a language", () => {
    expect(parse("```\n/plan\n```")).toBeNull();
    expect(parse("```bash\n/code fix it\n```")).toBeNull();
    expect(parse("~~~\n/plan\n~~~")).toBeNull();
    expect(parse("~~~text\n/stop all\n~~~")).toBeNull();
    expect(parse("  ````md\n/plan\n````")).toBeNull();
    expect(parse("\n<!-- x -->\n```\n/plan\n```\n/plan")).toBeNull();
  });

  it("ignores indented code blocks", () => {
    expect(parse("    /plan")).toBeNull();
    expect(parse("\t/plan")).toBeNull();
    expect(parse("  \t/plan")).toBeNull();
    expect(parse("\n\n        /code fix it")).toBeNull();
    expect(parse("<!-- x -->\n    /plan")).toBeNull();
  });

  it("accepts up to three spaces of indentation", () => {
    expect(parse("   /plan")).toEqual(command("plan"));
    expect(parse(" @mission-control status")).toEqual(command("status"));
  });

  it("ignores block quotes, including Quote reply's form", () => {
    expect(parse("> /code fix it")).toBeNull();
    expect(parse(">/plan")).toBeNull();
    expect(parse("   > /plan")).toBeNull();
    expect(parse("> @mission-control plan")).toBeNull();
    expect(parse("> > /stop all")).toBeNull();
    expect(parse("> /code fix it\n\nI agree with this.")).toBeNull();
  });

  it("ignores inline code on the first line", () => {
    expect(parse("`/plan`")).toBeNull();
    expect(parse("`/plan` reruns the Architect")).toBeNull();
    expect(parse("``/code fix it``")).toBeNull();
    expect(parse("@mission-control `plan`")).toBeNull();
  });

  it("keeps code blocks that follow /code as part of the instructions", () => {
    expect(parse("/code use this:\n```ts\nconst x = 1;\n```")).toEqual(command("code", "use this:\n```ts\nconst x = 1;\n```"));
  });
});

describe("parseCommand: line endings and case", () => {
  it("handles CRLF and CR", () => {
    expect(parse("/code\r\nplease also update the README\r\n")).toEqual(command("code", "please also update the README"));
    expect(parse("\r\n<!-- x -->\r\n/stop all\r\n")).toEqual(command("stop", "all"));
    expect(parse("Thanks!\r\n/plan")).toBeNull();
    expect(parse("```\r\n/plan\r\n```")).toBeNull();
    expect(parse("/code a\rb")).toEqual(command("code", "a\nb"));
  });

  it("ignores a byte-order mark", () => {
    expect(parse("\uFEFF/plan")).toEqual(command("plan"));
  });

  it("is case-insensitive in names", () => {
    expect(parse("/Plan")).toEqual(command("plan"));
    expect(parse("/CODE Fix It")).toEqual(command("code", "Fix It"));
    expect(parse("@mission-control Status")).toEqual(command("status"));
  });
});

describe("COMMAND_HELP and helpText", () => {
  it("describes every command", () => {
    expect(Object.keys(COMMAND_HELP).sort()).toEqual([...ALL].sort());
    for (const name of ALL) {
      expect(COMMAND_HELP[name].usage.startsWith(`/${name}`)).toBe(true);
      expect(COMMAND_HELP[name].summary.length).toBeGreaterThan(0);
    }
    expect(COMMAND_HELP.stop.summary).toContain("/stop all");
    expect(COMMAND_HELP.stop.summary).toContain("organisation owners");
  });

  it("lists every command in a Markdown table, with who may use it", () => {
    const text = helpText(SLUG);
    expect(text).toContain("| Command | What it does | Who may use it |");
    for (const name of ALL) {
      expect(text).toContain(`\`${COMMAND_HELP[name].usage}\``);
      expect(text).toContain(COMMAND_HELP[name].summary);
    }
    const rows = text.split("\n").filter((line) => line.startsWith("| `/"));
    expect(rows).toHaveLength(ALL.length);
    for (const row of rows) expect(row.split(" | ")).toHaveLength(3);
  });

  it("explains the mention form and that quoted or code commands are ignored", () => {
    const text = helpText("mission-control[bot]");
    expect(text).toContain("`@mission-control status`");
    expect(text).not.toContain("[bot]");
    expect(text).toMatch(/quotes or code blocks are ignored/);
  });

  it("every usage in the help parses back to its command", () => {
    for (const name of ALL) {
      // Optional `[…]` and required `<…>` placeholders are dropped (`/learn <text>`, `/forget <number>`).
      const result = parse(COMMAND_HELP[name].usage.replace(/\s*\[.*\]$/, "").replace(/\s*<[^>]*>$/, ""));
      expect(result).toEqual(command(name));
    }
  });
});
