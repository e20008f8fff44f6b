import type { DbOrTrx } from "./db.js";

/** `true` when the delivery `X-GitHub-Delivery` was already recorded. */
export async function isDeliveryRecorded(db: DbOrTrx, deliveryId: string): Promise<boolean> {
  return Boolean(await db.selectFrom("deliveries").select("delivery_id").where("delivery_id", "=", deliveryId).executeTakeFirst());
}

/**
 * Records a delivery unless it is already there (`ON CONFLICT DO NOTHING`).
 *
 * @param event - `<event>.<action>`
 * @returns `false` for a redelivery (the id was already recorded)
 */
export async function recordDelivery(db: DbOrTrx, deliveryId: string, event: string, now = Date.now()): Promise<boolean> {
  const inserted = await db
    .insertInto("deliveries")
    .values({ delivery_id: deliveryId, event, received_at: now })
    .onConflict((oc) => oc.column("delivery_id").doNothing())
    .executeTakeFirst();
  return inserted.numInsertedOrUpdatedRows !== 0n;
}
