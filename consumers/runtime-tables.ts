import type postgres from "postgres"
import { inSharedSchema } from "../platform/ingest-schema.ts"

/** The runtime's own tables: which generation of each projection serves readers, dead letters, side effects and change feeds. */
export const ensureRuntimeTables = async (sql: postgres.Sql): Promise<void> => {
  await inSharedSchema(sql, async (tx) => {
    await tx.unsafe(`CREATE TABLE IF NOT EXISTS ingest.projections (
      name text NOT NULL,
      generation integer NOT NULL,
      version integer NOT NULL,
      schema_name text NOT NULL,
      status text NOT NULL CHECK (status IN ('building', 'active', 'retired')),
      checkpoint bigint NOT NULL DEFAULT 0,
      created_at timestamptz NOT NULL DEFAULT now(),
      activated_at timestamptz,
      updated_at timestamptz NOT NULL DEFAULT now(),
      PRIMARY KEY (name, generation))`)
    // A rebuild whose switch waits for readers of the old marts says so here (added after the table was first made).
    await tx.unsafe(`ALTER TABLE ingest.projections ADD COLUMN IF NOT EXISTS switch_waiting_since timestamptz`)
    await tx.unsafe(`ALTER TABLE ingest.projections ADD COLUMN IF NOT EXISTS switch_attempts integer NOT NULL DEFAULT 0`)
    await tx.unsafe(`CREATE UNIQUE INDEX IF NOT EXISTS projections_one_active ON ingest.projections (name) WHERE status = 'active'`)
    await tx.unsafe(`CREATE TABLE IF NOT EXISTS ingest.outbox (
      id text PRIMARY KEY,
      projection text NOT NULL,
      seq bigint NOT NULL,
      subject text NOT NULL,
      data text NOT NULL,
      created_at timestamptz NOT NULL DEFAULT now(),
      published_at timestamptz)`)
    await tx.unsafe(`CREATE INDEX IF NOT EXISTS outbox_pending ON ingest.outbox (projection, seq) WHERE published_at IS NULL`)
    await tx.unsafe(
      `CREATE INDEX IF NOT EXISTS outbox_published ON ingest.outbox (projection, published_at) WHERE published_at IS NOT NULL`
    )
    await tx.unsafe(`CREATE TABLE IF NOT EXISTS ingest.dead_letters (
      id bigserial PRIMARY KEY,
      projection text NOT NULL,
      seq bigint NOT NULL,
      subject text NOT NULL,
      dedupe_key text NOT NULL,
      reason text NOT NULL,
      payload text NOT NULL,
      headers jsonb NOT NULL,
      created_at timestamptz NOT NULL DEFAULT now(),
      redriven_at timestamptz)`)
    // The SQLSTATE of a dead letter whose rows Postgres refused (added after the table was first made).
    await tx.unsafe(`ALTER TABLE ingest.dead_letters ADD COLUMN IF NOT EXISTS sqlstate text`)
    // Change feeds: sinks beyond Postgres (Power BI) subscribe to tables of a projection; live batches
    // then record each inserted or changed row of those tables here, in their own transaction.
    await tx.unsafe(`CREATE TABLE IF NOT EXISTS ingest.change_feeds (
      name text PRIMARY KEY,
      projection text NOT NULL,
      tables text[] NOT NULL,
      consumed_through bigint NOT NULL DEFAULT 0,
      created_at timestamptz NOT NULL DEFAULT now())`)
    await tx.unsafe(`CREATE TABLE IF NOT EXISTS ingest.changes (
      seq bigserial PRIMARY KEY,
      projection text NOT NULL,
      generation integer NOT NULL,
      table_name text NOT NULL,
      op text NOT NULL CHECK (op IN ('insert', 'update')),
      row jsonb NOT NULL,
      recorded_at timestamptz NOT NULL DEFAULT now())`)
    await tx.unsafe(`CREATE INDEX IF NOT EXISTS changes_by_table ON ingest.changes (projection, table_name, seq)`)
  })
}
