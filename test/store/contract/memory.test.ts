import { sql } from "kysely";
import { beforeEach, expect, it } from "vitest";

import {
  acceptLearningProposal,
  addLearning,
  addLearningProposal,
  forgetLearning,
  LearningTooLongError,
  listLearnings,
  MAX_LEARNING_CHARS,
  MAX_QUERY_TERMS,
  type NewLearning,
  pendingLearningProposals,
  PROPOSAL_TTL_MS,
  searchLearnings,
  searchTerms,
} from "../../../src/store/memory.js";
import { describeStoreContract } from "../../helpers/store-backends.js";

const REPO = "Octo-Org/Widgets";
const INST = 98_765_432_101;
let next = 1;

function learning(text: string, extra: Partial<NewLearning> = {}): NewLearning {
  const n = next++;
  return {
    installationId: 98_765_432_101,
    repository: REPO,
    text,
    sourceUrl: `https://github.com/octo-org/widgets/issues/1#issuecomment-${n}`,
    sourceKey: `comment:${n}`,
    author: "maintainer",
    createdAt: 1_800_000_000_000 + n,
    ...extra,
  };
}

const HOSTILE_QUERIES = [
  '"foo" OR bar* NEAR(',
  "'; drop table learnings; --",
  "NEAR(a b, 3) AND NOT c:d ^e {f g} - + ( ) * \" '",
  "!& | <-> :* \\ \0 \u200b",
  "",
  "    ",
  "a".repeat(10_000),
  Array.from({ length: 500 }, (_, i) => `word${i}`).join(" "),
];

describeStoreContract("memory", (getDb, backend) => {
  beforeEach(async () => {
    // The shared PostgreSQL database is emptied between tests by the helper's list of tables, which predates this one.
    if (backend.name === "postgres") await sql`truncate learnings, learning_proposals restart identity`.execute(getDb());
  });

  it("adds once per source, lists newest first with pagination and a total, per repository (case-insensitive)", async () => {
    const db = getDb();
    const first = learning("Run npm test before pushing.");
    const added = await addLearning(db, first);
    expect(added.added).toBe(true);
    expect(added.learning).toMatchObject({
      repository: "octo-org/widgets",
      text: "Run npm test before pushing.",
      author: "maintainer",
      source_url: first.sourceUrl,
    });
    // A retried job adds nothing and gets the same row.
    const again = await addLearning(db, { ...first, text: "something else" });
    expect(again).toEqual({ learning: added.learning, added: false });

    for (let i = 0; i < 4; i++) await addLearning(db, learning(`Learning number ${i}.`));
    await addLearning(db, learning("Another repository's rule.", { repository: "octo-org/other" }));

    const page1 = await listLearnings(db, INST, "octo-org/WIDGETS", { limit: 2, offset: 0 });
    expect(page1.total).toBe(5);
    expect(page1.learnings.map((l) => l.text)).toEqual(["Learning number 3.", "Learning number 2."]);
    const page3 = await listLearnings(db, INST, REPO, { limit: 2, offset: 4 });
    expect(page3.learnings.map((l) => l.text)).toEqual(["Run npm test before pushing."]);
    expect(typeof page3.learnings[0]?.id).toBe("number");
    expect(typeof page3.learnings[0]?.created_at).toBe("number");
    expect((await listLearnings(db, INST, "octo-org/other")).total).toBe(1);
    expect(await listLearnings(db, INST, "nobody/nothing")).toEqual({ learnings: [], total: 0 });
  });

  it("keeps learnings and proposals to their installation: the same repository name in another installation reads or removes none", async () => {
    const db = getDb();
    const OTHER = 98_765_432_102;
    const mine = (await addLearning(db, learning("Widgets use tabs for indentation."))).learning;
    const theirs = (await addLearning(db, learning("Widgets use spaces for indentation.", { installationId: OTHER }))).learning;
    expect((await listLearnings(db, OTHER, REPO)).learnings.map((l) => l.id)).toEqual([theirs.id]);
    expect((await listLearnings(db, INST, REPO)).learnings.map((l) => l.id)).toEqual([mine.id]);
    // A viewer's installations (the dashboard): only theirs; none at all: nothing; every installation: both.
    expect((await listLearnings(db, [OTHER, 1], REPO)).total).toBe(1);
    expect(await listLearnings(db, [], REPO)).toEqual({ learnings: [], total: 0 });
    expect((await listLearnings(db, null, REPO)).total).toBe(2);
    // Search, both the ranked path and the most-recent fallback.
    expect((await searchLearnings(db, OTHER, REPO, "indentation", 5)).map((l) => l.id)).toEqual([theirs.id]);
    expect((await searchLearnings(db, OTHER, REPO, "kubernetes", 5)).map((l) => l.id)).toEqual([theirs.id]);
    expect(await searchLearnings(db, 3, REPO, "indentation", 5)).toEqual([]);
    // Forget: another installation cannot remove it.
    expect(await forgetLearning(db, OTHER, REPO, mine.id)).toBeUndefined();
    expect((await listLearnings(db, INST, REPO)).total).toBe(1);
    // Proposals.
    const proposal = { repository: REPO, pullNumber: 1, text: "Use tabs.", sourceUrl: "https://github.com/octo-org/widgets/pull/1", createdAt: 1_000 };
    await addLearningProposal(db, { ...proposal, installationId: INST, commentId: 6_000_000_001 });
    await addLearningProposal(db, { ...proposal, installationId: OTHER, commentId: 6_000_000_002 });
    expect((await pendingLearningProposals(db, OTHER, REPO, 10, 2_000)).map((p) => p.comment_id)).toEqual([6_000_000_002]);
    expect((await pendingLearningProposals(db, INST, REPO, 10, 2_000)).map((p) => p.comment_id)).toEqual([6_000_000_001]);
  });

  it("refuses text over the limit and empty text", async () => {
    const db = getDb();
    await expect(addLearning(db, learning("x".repeat(MAX_LEARNING_CHARS + 1)))).rejects.toBeInstanceOf(LearningTooLongError);
    await expect(addLearning(db, learning("   "))).rejects.toThrow(RangeError);
    expect((await addLearning(db, learning("x".repeat(MAX_LEARNING_CHARS)))).added).toBe(true);
  });

  it("forgets a learning only within its repository; it leaves the search index too", async () => {
    const db = getDb();
    const mine = (await addLearning(db, learning("Widgets use tabs for indentation."))).learning;
    const theirs = (await addLearning(db, learning("Widgets use spaces for indentation.", { repository: "octo-org/other" }))).learning;
    expect(await forgetLearning(db, INST, REPO, theirs.id)).toBeUndefined();
    expect((await listLearnings(db, INST, "octo-org/other")).total).toBe(1);
    expect(await forgetLearning(db, INST, REPO, -1)).toBeUndefined();
    expect((await forgetLearning(db, INST, REPO, mine.id))?.text).toBe("Widgets use tabs for indentation.");
    expect(await forgetLearning(db, INST, REPO, mine.id)).toBeUndefined();
    expect(await searchLearnings(db, INST, REPO, "indentation tabs", 5)).toEqual([]);
    expect((await searchLearnings(db, INST, "octo-org/other", "indentation", 5)).map((l) => l.id)).toEqual([theirs.id]);
  });

  it("ranks by relevance (stemmed), caps the count, keeps to the repository, and falls back to the most recent", async () => {
    const db = getDb();
    const db1 = await addLearning(db, learning("Database migrations are frozen in time: add a new migration, never edit one."));
    const tests = await addLearning(db, learning("Tests must not sleep; await the event instead."));
    const greet = await addLearning(db, learning("The greet() function in src/greet.js must keep its signature."));
    await addLearning(db, learning("Greeting strings live in src/greet.js only.", { repository: "octo-org/other" }));
    const recent = await addLearning(db, learning("Prefer small pull requests."));

    const ranked = await searchLearnings(db, INST, REPO, "Change the greeting format in src/greet.js; write a test for greet()", 5);
    expect(ranked[0]?.id).toBe(greet.learning.id);
    expect(ranked.map((l) => l.id)).toContain(tests.learning.id); // "test" matches "Tests" (stemming)
    expect(ranked.map((l) => l.id)).not.toContain(db1.learning.id);
    expect(ranked.every((l) => l.repository === "octo-org/widgets")).toBe(true);

    expect(await searchLearnings(db, INST, REPO, "migration", 1)).toEqual([db1.learning]);
    // Nothing matches: the most recent, newest first.
    expect((await searchLearnings(db, INST, REPO, "kubernetes helm chart", 2)).map((l) => l.id)).toEqual([recent.learning.id, greet.learning.id]);
    expect(await searchLearnings(db, INST, REPO, "greet", 0)).toEqual([]);
  });

  it("hostile query strings are never search syntax: they do not throw and find what their words find", async () => {
    const db = getDb();
    const foo = await addLearning(db, learning("The foo module is generated; do not edit it by hand."));
    await addLearning(db, learning("Prefer small pull requests."));
    for (const query of HOSTILE_QUERIES) {
      const found = await searchLearnings(db, INST, REPO, query, 3);
      expect(found.length, JSON.stringify(query.slice(0, 40))).toBeGreaterThan(0);
    }
    expect((await searchLearnings(db, INST, REPO, '"foo" OR bar* NEAR(', 3))[0]?.id).toBe(foo.learning.id);
    // The table is still there after the injection attempt.
    expect((await listLearnings(db, INST, REPO)).total).toBe(2);
  });

  it("proposals: recorded once per reply, pending until accepted (then a learning, once) or expired", async () => {
    const db = getDb();
    const now = 1_900_000_000_000;
    const proposal = (commentId: number, createdAt: number) => ({
      installationId: 98_765_432_101,
      repository: REPO,
      pullNumber: 12,
      commentId,
      text: `Use tabs in src/ (${commentId}).`,
      sourceUrl: `https://github.com/octo-org/widgets/pull/12#discussion_r${commentId}`,
      createdAt,
    });
    await addLearningProposal(db, proposal(5_000_000_001, now - 1000));
    await addLearningProposal(db, proposal(5_000_000_001, now - 500)); // a retry: nothing new
    await addLearningProposal(db, proposal(5_000_000_002, now - PROPOSAL_TTL_MS - 1));
    const pending = await pendingLearningProposals(db, INST, "octo-org/widgets", 10, now);
    expect(pending.map((p) => p.comment_id)).toEqual([5_000_000_001]);
    expect(typeof pending[0]?.comment_id).toBe("number");

    const learning = await acceptLearningProposal(db, pending[0]!, "maintainer", now);
    expect(learning).toMatchObject({ text: "Use tabs in src/ (5000000001).", author: "maintainer", source_key: "review-reply:5000000001" });
    // Accepting again (a retried job) adds nothing.
    expect((await acceptLearningProposal(db, pending[0]!, "someone-else", now)).id).toBe(learning.id);
    expect((await listLearnings(db, INST, REPO)).total).toBe(1);
    expect(await pendingLearningProposals(db, INST, REPO, 10, now)).toEqual([]);
    const states = await db.selectFrom("learning_proposals").select(["comment_id", "state", "learning_id"]).orderBy("id").execute();
    expect(states.map((r) => [Number(r.comment_id), r.state, r.learning_id])).toEqual([
      [5_000_000_001, "accepted", learning.id],
      [5_000_000_002, "expired", null],
    ]);
  });
});

it("search terms are words only, lower case, deduplicated and capped", () => {
  expect(searchTerms('"foo" OR bar* NEAR( The the FOO x')).toEqual(["foo", "bar", "near"]);
  expect(searchTerms("src/greet.js")).toEqual(["src", "greet", "js"]);
  expect(searchTerms(Array.from({ length: 100 }, (_, i) => `w${i}`).join(" "))).toHaveLength(MAX_QUERY_TERMS);
  for (const term of searchTerms("a:b c&d e|f !g <-> h'i j\"k")) expect(term).toMatch(/^[\p{L}\p{N}]+$/u);
});
