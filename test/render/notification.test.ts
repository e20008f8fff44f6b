import { describe, expect, it } from "vitest";

import { escapeNotificationText, renderNotification } from "../../src/render/notification.js";

describe("escapeNotificationText", () => {
  it("breaks every mention syntax, strips invisible characters, redacts secrets, folds lines and caps the length", () => {
    const out = escapeNotificationText("hi @everyone\n<!here> <@U123|bob> <@&42> <#C1> @alice\u202E\u0000 sk-ant-api03-abcdefghijklmnopqrstuvwxyz0123");
    expect(out).toBe("hi @\u200Beveryone <\u200B!here> <\u200B@\u200BU123|bob> <\u200B@\u200B&42> <\u200B#C1> @\u200Balice [REDACTED]");
    expect([...escapeNotificationText("x".repeat(1000), 50)]).toHaveLength(50);
  });

  it("strips invisible characters before redacting, so none can hide a secret", () => {
    const github = "ghp_" + "A".repeat(36);
    const anthropic = "sk-ant-api03-" + "b".repeat(40);
    // Zero-width space, soft hyphen, word joiner, BOM, a tag character, a variation selector, a control character.
    for (const hide of ["\u200B", "\u00AD", "\u2060", "\uFEFF", "\u{E0041}", "\uFE0F", "\u0007"]) {
      const out = escapeNotificationText(`leak ${github.slice(0, 4)}${hide}${github.slice(4)} and ${anthropic.slice(0, 7)}${hide}${anthropic.slice(7)}`);
      expect(out, JSON.stringify(hide)).toBe("leak [REDACTED] and [REDACTED]");
    }
    expect(escapeNotificationText("push to https://x-access-token:\u200Babc123def456ghi@github.com/o/r failed")).not.toContain("abc123");
    // Rules that read lines still see them; the folded text is redacted as well.
    expect(escapeNotificationText("config:\nAPI_TOKEN=\u00ADs3cr3tvalue42\nnext line")).not.toContain("s3cr3t");
    expect(escapeNotificationText("key -----BEGIN RSA PRIVATE KEY-----\nMIIEow\u200BIBAAKCAQEA\n-----END RSA PRIVATE KEY----- end")).not.toContain("MIIE");
  });
});

describe("renderNotification", () => {
  it("renders a budget threshold with USD amounts, the reset time and the link", () => {
    const message = renderNotification(
      {
        type: "budget_threshold",
        subject: { repository: "octo/widgets", issueNumber: 3, issueUrl: "https://github.com/octo/widgets/issues/3" },
        scope: "repository",
        scopeLabel: "repository octo/widgets",
        period: "monthly",
        spentNanoUsd: 4_000_000_000,
        limitNanoUsd: 5_000_000_000,
        percent: 80,
        resetsAt: Date.UTC(2026, 11, 1),
      },
      0,
    );
    expect(message.text).toBe(
      "⚠️ Budget threshold reached: repository octo/widgets (monthly)\nSpent $4.00 of $5.00 (80 %). Resets 2026-12-01 00:00 UTC.\nhttps://github.com/octo/widgets/issues/3",
    );
  });

  it("renders the daily digest", () => {
    const message = renderNotification(
      {
        type: "daily_digest",
        installationId: 9,
        day: "2026-11-26",
        tasksStarted: 3,
        readyForMerge: 2,
        failed: 1,
        spendNanoUsd: 1_500_000_000,
        topRepositories: [{ repository: "o/r", spendNanoUsd: 1_500_000_000 }],
      },
      0,
    );
    expect(message.text).toBe(
      "📊 Mission Control digest for 2026-11-26 (installation 9)\n3 task(s) started, 2 ready for merge, 1 failed; spend $1.50.\nTop spend: o/r $1.50.",
    );
    expect(message.url).toBeNull();
  });
});
