import type { ColumnDataType, ColumnDefinitionBuilder, Kysely } from "kysely";

import { isPostgres } from "../dialect.js";

// Used by the migrations: what this file produces for a dialect must never change (the
// migrations are frozen in time). SQLite gets exactly the types the migrations always wrote.

/** Column types of one dialect. */
export interface ColumnTypes {
  /** Epoch milliseconds and GitHub ids (which outgrow 32 bits): `bigint` on PostgreSQL. */
  bigint: ColumnDataType;
  /** Counts and small numbers. */
  integer: ColumnDataType;
  /** USD and fractions: `double precision` on PostgreSQL (its `real` is 4 bytes). */
  real: ColumnDataType;
  /** Type of an auto-incremented primary key: `integer` (with {@link ColumnTypes.id}) on SQLite, `serial` on PostgreSQL. */
  serial: ColumnDataType;
  /** The primary key's constraints: `primary key autoincrement` on SQLite, `primary key` on PostgreSQL. */
  id: (c: ColumnDefinitionBuilder) => ColumnDefinitionBuilder;
}

export function columnTypes(db: Kysely<any>): ColumnTypes {
  return isPostgres(db)
    ? { bigint: "bigint", integer: "integer", real: "double precision", serial: "serial", id: (c) => c.primaryKey() }
    : { bigint: "integer", integer: "integer", real: "real", serial: "integer", id: (c) => c.primaryKey().autoIncrement() };
}
