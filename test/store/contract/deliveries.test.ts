import { expect, it } from "vitest";

import { isDeliveryRecorded, recordDelivery } from "../../../src/store/deliveries.js";
import { describeStoreContract } from "../../helpers/store-backends.js";

describeStoreContract("deliveries", (getDb, backend) => {
  it("records a delivery once: a redelivery of the same id is a no-op", async () => {
    const db = getDb();
    expect(await isDeliveryRecorded(db, "d-1")).toBe(false);
    expect(await recordDelivery(db, "d-1", "issues.labeled", 1_800_000_000_000)).toBe(true);
    expect(await recordDelivery(db, "d-1", "issues.labeled", 1_800_000_000_001)).toBe(false);
    expect(await isDeliveryRecorded(db, "d-1")).toBe(true);
    expect(await db.selectFrom("deliveries").selectAll().execute()).toEqual([{ delivery_id: "d-1", event: "issues.labeled", received_at: 1_800_000_000_000 }]);
  });

  it("20 concurrent recordDelivery of one id, over several connections: exactly one true", async () => {
    const connections = [getDb(), backend.openConnection(), backend.openConnection(), backend.openConnection()];
    const results = await Promise.all(
      Array.from({ length: 20 }, (_, i) => recordDelivery(connections[i % connections.length] ?? getDb(), "d-race", "issue_comment.created")),
    );
    expect(results.filter(Boolean)).toHaveLength(1);
    expect(await getDb().selectFrom("deliveries").select("delivery_id").execute()).toHaveLength(1);
  });
});
