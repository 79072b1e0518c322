import type postgres from "postgres"

/** The shared `ingest` schema, where each component keeps its own tables (the projection registry, dead letters, the outbox, API keys). */

/**
 * Runs `ddl` in a transaction with the shared `ingest` schema made, serialised across processes
 * starting together (a concurrent `IF NOT EXISTS` can still collide in the catalog).
 */
export const inSharedSchema = (sql: postgres.Sql, ddl: (tx: postgres.TransactionSql) => Promise<void>): Promise<void> =>
  sql.begin(async (tx) => {
    await tx`SELECT pg_advisory_xact_lock(hashtext('ingest.registry'))`
    await tx.unsafe(`CREATE SCHEMA IF NOT EXISTS ingest`)
    await ddl(tx)
  })
