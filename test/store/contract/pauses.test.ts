import { expect, it } from "vitest";

import { pauseInstallation, pauseOf, resumeInstallation } from "../../../src/store/pauses.js";
import { describeStoreContract } from "../../helpers/store-backends.js";

describeStoreContract("pauses", (getDb) => {
  it("pauses an installation, records the latest actor, and resumes it", async () => {
    const db = getDb();
    const installation = 98_765_432_101;
    expect(await pauseOf(db, installation)).toBeUndefined();
    await pauseInstallation(db, installation, "alice", 1_800_000_000_000);
    await pauseInstallation(db, installation, "bob", 1_800_000_000_001);
    expect(await pauseOf(db, installation)).toEqual({ pausedBy: "bob" });
    expect(await db.selectFrom("pauses").selectAll().execute()).toEqual([{ installation_id: installation, paused_by: "bob", paused_at: 1_800_000_000_001 }]);
    expect(await pauseOf(db, 1)).toBeUndefined();
    await resumeInstallation(db, installation);
    await resumeInstallation(db, installation);
    expect(await pauseOf(db, installation)).toBeUndefined();
  });
});
