import type postgres from "postgres"
import { qualified, quoteIdent } from "../platform/sql.ts"
import type { Projection } from "../projections/projection.ts"
import { rowScopeDdl } from "../projections/row-scope.ts"
import { tableDdl } from "../projections/statements.ts"
import { activate, closeUnscoped } from "./switch.ts"

/** The projection registry (`ingest.projections`): each projection's generations, made, activated and dropped. */

type Sql = postgres.Sql | postgres.TransactionSql

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
export const generationStatus = async (
  sql: Sql,
  generation: Pick<Generation, "name" | "generation">
): Promise<Generation["status"] | undefined> => {
  const [row] = await sql`SELECT status FROM ingest.projections WHERE name = ${generation.name} AND generation = ${generation.generation}`
  return row?.status as Generation["status"] | undefined
}

export const generations = async (sql: Sql, name: string): Promise<ReadonlyArray<Generation>> =>
  (await sql`SELECT * FROM ingest.projections WHERE name = ${name} ORDER BY generation`).map(toGeneration)

/** Serialises everything that makes or drops one projection's generations, across processes. */
const lockProjection = (tx: postgres.TransactionSql, projection: Pick<Projection, "name">) =>
  tx`SELECT pg_advisory_xact_lock(hashtext(${`ingest.projection.${projection.name}`}))`

/** The session lock a rebuild of `projection` holds for its whole run. */
export const rebuildLockKey = (projection: Pick<Projection, "name">): string => `ingest.rebuild.${projection.name}`

/** The next generation's schema, made inside `tx` (which holds the projection's lock): tables, views, seed rows and the dedupe ledger. */
const makeGeneration = async (tx: postgres.TransactionSql, projection: Projection): Promise<Generation> => {
  const [{ next }] =
    (await tx`SELECT coalesce(max(generation), 0) + 1 AS next FROM ingest.projections WHERE name = ${projection.name}`) as unknown as [
      { next: number }
    ]
  const schema = `proj_${projection.name}_g${next}`
  await dropSchema(tx, schema)
  await tx.unsafe(`CREATE SCHEMA ${quoteIdent(schema)}`)
  await tx.unsafe(`CREATE TABLE ${qualified(schema, "dedupe_keys")} (key text PRIMARY KEY, seq bigint NOT NULL)`)
  for (const table of projection.tables) for (const statement of tableDdl(schema, table)) await tx.unsafe(statement)
  for (const statement of projection.extraSql?.(schema) ?? []) await tx.unsafe(statement)
  for (const statement of rowScopeDdl(schema, projection)) await tx.unsafe(statement)
  const [row] =
    await tx`INSERT INTO ingest.projections (name, generation, version, schema_name, status) VALUES (${projection.name}, ${next}, ${projection.version}, ${schema}, 'building') RETURNING *`
  return toGeneration(row as Record<string, unknown>)
}

/** Creates the next generation's schema, 'building': the projection's tables, views and seed rows, and its dedupe ledger. */
export const createGeneration = async (sql: postgres.Sql, projection: Projection): Promise<Generation> =>
  sql.begin(async (tx) => {
    await lockProjection(tx, projection)
    return makeGeneration(tx, projection)
  })

/** Drops a generation's schema, with everything in it; nothing when there is none. */
export const dropSchema = (sql: Sql, schema: string) => sql.unsafe(`DROP SCHEMA IF EXISTS ${quoteIdent(schema)} CASCADE`)

/** Drops one generation: its schema and its registry row. */
export const dropGeneration = async (sql: Sql, generation: Pick<Generation, "name" | "generation" | "schema">): Promise<void> => {
  await dropSchema(sql, generation.schema)
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
export const ensureActiveGeneration = (
  sql: postgres.Sql,
  projection: Projection
): Promise<{ readonly generation: Generation; readonly created: boolean; readonly closed?: boolean } | undefined> =>
  sql.begin(async (tx) => {
    await lockProjection(tx, projection)
    const active = await activeGeneration(tx, projection.name)
    // Marts built before their rows were scoped are closed to readers until rebuilt.
    if (active !== undefined) return { generation: active, created: false, closed: await closeUnscoped(tx, projection, active) }
    const [{ free }] = (await tx`SELECT pg_try_advisory_xact_lock(hashtext(${rebuildLockKey(projection)})) AS free`) as unknown as [
      { free: boolean }
    ]
    if (!free) return undefined
    for (const stale of (await generations(tx, projection.name)).filter((generation) => generation.status === "building"))
      await dropGeneration(tx, stale)
    const generation = await makeGeneration(tx, projection)
    await activate(tx, projection, generation)
    return { generation: { ...generation, status: "active" as const }, created: true }
  })

/** Drops the schemas of retired generations. */
export const dropRetired = async (sql: postgres.Sql, name: string): Promise<ReadonlyArray<string>> => {
  const retired = (await generations(sql, name)).filter((generation) => generation.status === "retired")
  for (const generation of retired) await dropGeneration(sql, generation)
  return retired.map((generation) => generation.schema)
}
