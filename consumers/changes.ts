import { Data } from "effect"
import type postgres from "postgres"
import { activeGeneration, type Generation } from "./registry.ts"

/**
 * Change feeds: how a sink beyond Postgres (the Power BI push sink) follows a projection's tables
 * exactly once. A feed subscribes to tables of one projection; from then on every live batch records
 * each row it inserts or changes in those tables in `ingest.changes`, in the batch's own transaction
 * (so a change is recorded if and only if the marts show it). Rebuilds record nothing: a sink reloads
 * from the new generation after its switch.
 *
 * Ordering: batches of one projection hold its registry row's lock (`FOR UPDATE`) from before they
 * record a change until they commit, and so does {@link withProjectionLocked}; so for one projection
 * the sequence numbers of changes are allocated in commit order, and a reader that has seen every
 * change up to `seq` can never later see a smaller one appear.
 */

export interface Change {
  readonly seq: number
  readonly op: "insert" | "update"
  /** The row as the mart holds it, as Postgres's `to_jsonb` renders it. */
  readonly row: Readonly<Record<string, unknown>>
}

/** The tables of `projection` that some feed subscribes to (read inside the batch's transaction). */
export const capturedTables = async (tx: postgres.TransactionSql, projection: string): Promise<ReadonlySet<string>> =>
  new Set(
    (await tx`SELECT DISTINCT unnest(tables) AS t FROM ingest.change_feeds WHERE projection = ${projection}`).map((row) => row.t as string)
  )

/**
 * A bulk write (`INSERT … ON CONFLICT …` with `parameters` bound parameters) that also records the rows
 * it inserted or changed: three more parameters, the projection, generation and table.
 */
export const capturing = (text: string, parameters: number): string =>
  `WITH written AS (${text} RETURNING *, (xmax = 0) AS mesh_inserted)
   INSERT INTO ingest.changes (projection, generation, table_name, op, row)
   SELECT $${parameters + 1}, $${parameters + 2}::integer, $${parameters + 3},
          CASE WHEN mesh_inserted THEN 'insert' ELSE 'update' END, to_jsonb(written) - 'mesh_inserted'
   FROM written`

/**
 * Runs `fn` holding the lock live batches of `projection` take, on its active generation: nothing is
 * projected meanwhile, so what `fn` reads of the marts and of the changes is one consistent point.
 */
export const withProjectionLocked = <A>(
  sql: postgres.Sql,
  projection: string,
  fn: (tx: postgres.TransactionSql, active: Generation) => Promise<A>
): Promise<A> =>
  sql.begin(async (tx) => {
    await tx`SELECT 1 FROM ingest.projections WHERE name = ${projection} AND status = 'active' FOR UPDATE`
    const active = await activeGeneration(tx, projection)
    if (active === undefined) throw new NoActiveGeneration({ projection })
    return fn(tx, active)
  }) as Promise<A>

/** Subscribes feed `name` to `tables` of `projection` (idempotent; replaces its table list). Call with the projection locked. */
export const subscribeFeed = async (tx: postgres.TransactionSql, name: string, projection: string, tables: ReadonlyArray<string>) => {
  await tx`INSERT INTO ingest.change_feeds (name, projection, tables) VALUES (${name}, ${projection}, ${tx.array([...tables])})
           ON CONFLICT (name) DO UPDATE SET projection = EXCLUDED.projection, tables = EXCLUDED.tables`
}

/** The last change recorded for `projection` (0 when none): with the projection locked, nothing recorded later can be smaller. */
export const lastChange = async (tx: postgres.TransactionSql | postgres.Sql, projection: string): Promise<number> => {
  const [row] = await tx`SELECT coalesce(max(seq), 0)::bigint AS seq FROM ingest.changes WHERE projection = ${projection}`
  return Number(row?.seq ?? 0)
}

/** Changes of `table` in `generation` after `after`, in order, at most `limit`. */
export const readChanges = async (
  sql: postgres.Sql,
  at: { readonly projection: string; readonly generation: number; readonly table: string },
  after: number,
  limit: number
): Promise<ReadonlyArray<Change>> =>
  (
    await sql`SELECT seq, op, row FROM ingest.changes
              WHERE projection = ${at.projection} AND table_name = ${at.table} AND generation = ${at.generation} AND seq > ${after}
              ORDER BY seq LIMIT ${limit}`
  ).map((row) => ({ seq: Number(row.seq), op: row.op as Change["op"], row: row.row as Record<string, unknown> }))

/** How many inserts of `table` lie in `(after, through]`. */
export const countInserts = async (
  sql: postgres.Sql,
  at: { readonly projection: string; readonly generation: number; readonly table: string },
  after: number,
  through: number
): Promise<number> => {
  const [row] = await sql`SELECT count(*)::bigint AS n FROM ingest.changes
                          WHERE projection = ${at.projection} AND table_name = ${at.table} AND generation = ${at.generation}
                            AND op = 'insert' AND seq > ${after} AND seq <= ${through}`
  return Number(row?.n ?? 0)
}

/** Feed `name` has consumed every change up to `through`; changes every feed of the projection has consumed are deleted. */
export const advanceFeed = async (sql: postgres.Sql, name: string, projection: string, through: number): Promise<void> => {
  await sql`UPDATE ingest.change_feeds SET consumed_through = greatest(consumed_through, ${through}) WHERE name = ${name}`
  await sql`DELETE FROM ingest.changes WHERE projection = ${projection}
            AND seq <= (SELECT min(consumed_through) FROM ingest.change_feeds WHERE projection = ${projection})`
}

/** A sink asked for a projection that has never run: there are no marts to follow yet. */
export class NoActiveGeneration extends Data.TaggedError("NoActiveGeneration")<{ readonly projection: string }> {
  override get message(): string {
    return `projection ${this.projection} has no active generation yet: run the projector once (npm run mesh -- project)`
  }
}
