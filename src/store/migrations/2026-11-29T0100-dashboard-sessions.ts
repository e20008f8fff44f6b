import type { Kysely } from "kysely";

import { columnTypes } from "./column-types.js";

// Frozen in time: never edit a migration that has shipped; add a new one.

/**
 * The dashboard's sessions. A row holds the SHA-256 of the session id (the cookie's value is
 * never stored), who signed in (a GitHub login and user id, or `operator`), what that person
 * may see as computed at sign-in (installation ids and `owner/repo` names as JSON arrays; `null`
 * for the operator's server-wide view), the session's CSRF token and its times (epoch ms).
 * An operator session also holds the SHA-256 (hex) of the DASHBOARD_TOKEN it was opened with
 * (never the token), so it ends when the token changes or is removed. The user-to-server token
 * is not stored.
 */
export async function up(db: Kysely<any>): Promise<void> {
  const t = columnTypes(db);
  await db.schema
    .createTable("dashboard_sessions")
    .addColumn("id_hash", "text", (c) => c.primaryKey())
    .addColumn("login", "text", (c) => c.notNull())
    .addColumn("user_id", t.bigint)
    .addColumn("installation_ids", "text")
    .addColumn("repositories", "text")
    .addColumn("csrf_token", "text", (c) => c.notNull())
    .addColumn("operator_token_sha256", "text")
    .addColumn("created_at", t.bigint, (c) => c.notNull())
    .addColumn("expires_at", t.bigint, (c) => c.notNull())
    .execute();
  await db.schema.createIndex("dashboard_sessions_expiry").on("dashboard_sessions").columns(["expires_at"]).execute();
}

export async function down(db: Kysely<any>): Promise<void> {
  await db.schema.dropTable("dashboard_sessions").execute();
}
