import type postgres from "postgres"
import { type Projection, publishedSchema } from "../projections/projection.ts"
import { qualified, tableDdl } from "../projections/table.ts"

type Sql = postgres.Sql | postgres.TransactionSql

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

/** The runtime's own tables: which generation of each projection serves readers, and dead letters. */
export const ensureRegistry = async (sql: postgres.Sql): Promise<void> => {
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
    await tx.unsafe(`CREATE INDEX IF NOT EXISTS outbox_published ON ingest.outbox (projection, published_at) WHERE published_at IS NOT NULL`)
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
  })
}

export interface Generation {
  readonly name: string
  readonly generation: number
  readonly version: number
  readonly schema: string
  readonly status: "building" | "active" | "retired"
  readonly checkpoint: number
}

const toGeneration = (row: Record<string, unknown>): Generation => ({
  name: row.name as string,
  generation: Number(row.generation),
  version: Number(row.version),
  schema: row.schema_name as string,
  status: row.status as Generation["status"],
  checkpoint: Number(row.checkpoint)
})

export const activeGeneration = async (sql: Sql, name: string): Promise<Generation | undefined> => {
  const [row] = await sql`SELECT * FROM ingest.projections WHERE name = ${name} AND status = 'active'`
  return row === undefined ? undefined : toGeneration(row)
}

/** The status of one generation now, or undefined once it was dropped. */
export const generationStatus = async (sql: Sql, generation: Pick<Generation, "name" | "generation">): Promise<Generation["status"] | undefined> => {
  const [row] = await sql`SELECT status FROM ingest.projections WHERE name = ${generation.name} AND generation = ${generation.generation}`
  return row?.status as Generation["status"] | undefined
}

export const generations = async (sql: Sql, name: string): Promise<ReadonlyArray<Generation>> =>
  (await sql`SELECT * FROM ingest.projections WHERE name = ${name} ORDER BY generation`).map(toGeneration)

/** Serialises everything that makes or drops one projection's generations, across processes. */
const lockProjection = (tx: postgres.TransactionSql, projection: Pick<Projection, "name">) => tx`SELECT pg_advisory_xact_lock(hashtext(${`ingest.projection.${projection.name}`}))`

/** The session lock a rebuild of `projection` holds for its whole run. */
export const rebuildLockKey = (projection: Pick<Projection, "name">): string => `ingest.rebuild.${projection.name}`

/** The next generation's schema, made inside `tx` (which holds the projection's lock): tables, views, seed rows and the dedupe ledger. */
const makeGeneration = async (tx: postgres.TransactionSql, projection: Projection): Promise<Generation> => {
  const [{ next }] = (await tx`SELECT coalesce(max(generation), 0) + 1 AS next FROM ingest.projections WHERE name = ${projection.name}`) as unknown as [{ next: number }]
  const schema = `proj_${projection.name}_g${next}`
  await tx.unsafe(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`)
  await tx.unsafe(`CREATE SCHEMA "${schema}"`)
  await tx.unsafe(`CREATE TABLE ${qualified(schema, "dedupe_keys")} (key text PRIMARY KEY, seq bigint NOT NULL)`)
  for (const table of projection.tables) for (const statement of tableDdl(schema, table)) await tx.unsafe(statement)
  for (const statement of projection.extraSql?.(schema) ?? []) await tx.unsafe(statement)
  const [row] = await tx`INSERT INTO ingest.projections (name, generation, version, schema_name, status) VALUES (${projection.name}, ${next}, ${projection.version}, ${schema}, 'building') RETURNING *`
  return toGeneration(row as Record<string, unknown>)
}

/** Creates the next generation's schema, 'building': the projection's tables, views and seed rows, and its dedupe ledger. */
export const createGeneration = async (sql: postgres.Sql, projection: Projection): Promise<Generation> =>
  sql.begin(async (tx) => {
    await lockProjection(tx, projection)
    return makeGeneration(tx, projection)
  })

/** Drops one generation: its schema and its registry row. */
export const dropGeneration = async (sql: Sql, generation: Pick<Generation, "name" | "generation" | "schema">): Promise<void> => {
  await sql.unsafe(`DROP SCHEMA IF EXISTS "${generation.schema}" CASCADE`)
  await sql`DELETE FROM ingest.projections WHERE name = ${generation.name} AND generation = ${generation.generation}`
}

/**
 * The active generation of `projection`, made and activated in ONE transaction when there is none
 * yet, serialised with every other process starting it (a projection's advisory lock): however many
 * processes and projections start together on a fresh database, each projection gets exactly one
 * active generation and none is left 'building'. Generations left 'building' by a first start or a
 * rebuild that died are dropped, unless a rebuild is running (it holds its lock): then undefined,
 * and the caller waits for the rebuild to activate its generation.
 */
export const ensureActiveGeneration = (sql: postgres.Sql, projection: Projection): Promise<{ readonly generation: Generation; readonly created: boolean } | undefined> =>
  sql.begin(async (tx) => {
    await lockProjection(tx, projection)
    const active = await activeGeneration(tx, projection.name)
    if (active !== undefined) return { generation: active, created: false }
    const [{ free }] = (await tx`SELECT pg_try_advisory_xact_lock(hashtext(${rebuildLockKey(projection)})) AS free`) as unknown as [{ free: boolean }]
    if (!free) return undefined
    for (const stale of (await generations(tx, projection.name)).filter((generation) => generation.status === "building")) await dropGeneration(tx, stale)
    const generation = await makeGeneration(tx, projection)
    await activate(tx, projection, generation)
    return { generation: { ...generation, status: "active" as const }, created: true }
  })

/** How long a switch waits for readers of the old marts (an export streaming from a view) before trying again. */
export const READER_LOCK_TIMEOUT_MS = 2000

/**
 * Takes the `mart` views of the projection for the switch, waiting at most
 * {@link READER_LOCK_TIMEOUT_MS} for readers still streaming from them: a long export then delays
 * the switch (which retries) instead of queueing every other reader and the live consumer behind it.
 * Fails with Postgres' `lock_not_available` (55P03) when the wait runs out.
 */
export const lockReaders = async (tx: postgres.TransactionSql, projection: Projection, lockTimeoutMs = READER_LOCK_TIMEOUT_MS): Promise<void> => {
  await tx.unsafe(`SET LOCAL lock_timeout = ${Math.max(1, Math.round(lockTimeoutMs))}`)
  const schema = publishedSchema(projection)
  const existing = (await tx`SELECT name FROM unnest(${tx.array([...projection.published])}::text[]) AS name WHERE to_regclass(quote_ident(${schema}) || '.' || quote_ident(name)) IS NOT NULL`).map(
    (row) => row.name as string
  )
  if (existing.length > 0) await tx.unsafe(`LOCK TABLE ${existing.map((name) => qualified(schema, name)).join(", ")} IN ACCESS EXCLUSIVE MODE`)
}

/** Whether `error` is a lock wait that ran out ({@link lockReaders}). */
export const isLockTimeout = (error: unknown): boolean => (error as { code?: string }).code === "55P03"

/** The read-only role readers of the marts are members of: granted SELECT on every published view when it exists. */
export const READER_ROLE = "ingest_reader"

/**
 * Points every view of the projection's published schema (`mart_<name>.<table>`) at `generation`
 * and makes it the active one, in one transaction: readers see the old marts or the new ones, never
 * a mix or an empty table. Views an older version published into the shared `mart` schema for this
 * projection are dropped.
 */
export const activate = async (tx: postgres.TransactionSql, projection: Projection, generation: Generation): Promise<void> => {
  const schema = publishedSchema(projection)
  await tx`UPDATE ingest.projections SET status = 'retired', updated_at = now() WHERE name = ${projection.name} AND status = 'active'`
  await tx`UPDATE ingest.projections SET status = 'active', activated_at = now(), updated_at = now() WHERE name = ${projection.name} AND generation = ${generation.generation}`
  await tx.unsafe(`CREATE SCHEMA IF NOT EXISTS "${schema}"`)
  const grant = (statement: string) => tx.unsafe(`DO $$ BEGIN IF EXISTS (SELECT FROM pg_roles WHERE rolname = '${READER_ROLE}') THEN ${statement}; END IF; END $$`)
  await grant(`GRANT USAGE ON SCHEMA "${schema}" TO ${READER_ROLE}`)
  for (const name of projection.published) {
    await tx.unsafe(`DROP VIEW IF EXISTS ${qualified(schema, name)}`)
    await tx.unsafe(`CREATE VIEW ${qualified(schema, name)} AS SELECT * FROM ${qualified(generation.schema, name)}`)
    await grant(`GRANT SELECT ON ${qualified(schema, name)} TO ${READER_ROLE}`)
  }
  const legacy = await tx`SELECT viewname FROM pg_views WHERE schemaname = 'mart' AND definition LIKE ${`%proj_${projection.name}_g%`}`
  for (const { viewname } of legacy) await tx.unsafe(`DROP VIEW IF EXISTS ${qualified("mart", viewname as string)}`)
}

/** Drops the schemas of retired generations. */
export const dropRetired = async (sql: postgres.Sql, name: string): Promise<ReadonlyArray<string>> => {
  const retired = (await generations(sql, name)).filter((generation) => generation.status === "retired")
  for (const generation of retired) await dropGeneration(sql, generation)
  return retired.map((generation) => generation.schema)
}
