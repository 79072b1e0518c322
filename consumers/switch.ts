import type postgres from "postgres"
import { qualified, quoteIdent } from "../platform/sql.ts"
import { publishedSchema, READER_ROLE } from "../projections/catalogue.ts"
import type { Projection } from "../projections/projection.ts"
import { scopeFunction } from "../projections/row-scope.ts"

/** The switch: readers' views (`mart_<name>.<object>`) pointed at a generation, atomically, and the locks it takes. */

/** How long a switch waits for readers of the old marts (an export streaming from a view) before trying again. */
export const READER_LOCK_TIMEOUT_MS = 2000

/**
 * Takes the `mart` views of the projection for the switch, waiting at most
 * {@link READER_LOCK_TIMEOUT_MS} for readers still streaming from them: a long export then delays
 * the switch (which retries) instead of queueing every other reader and the live consumer behind it.
 * Fails with Postgres' `lock_not_available` (55P03) when the wait runs out.
 */
export const lockReaders = async (
  tx: postgres.TransactionSql,
  projection: Projection,
  lockTimeoutMs = READER_LOCK_TIMEOUT_MS
): Promise<void> => {
  await tx.unsafe(`SET LOCAL lock_timeout = ${Math.max(1, Math.round(lockTimeoutMs))}`)
  const schema = publishedSchema(projection)
  const existing = (
    await tx`SELECT name FROM unnest(${tx.array([...projection.published])}::text[]) AS name WHERE to_regclass(quote_ident(${schema}) || '.' || quote_ident(name)) IS NOT NULL`
  ).map((row) => row.name as string)
  if (existing.length > 0)
    await tx.unsafe(`LOCK TABLE ${existing.map((name) => qualified(schema, name)).join(", ")} IN ACCESS EXCLUSIVE MODE`)
}

/** Whether `error` is a lock wait that ran out ({@link lockReaders}). */
export const isLockTimeout = (error: unknown): boolean => (error as { code?: string }).code === "55P03"

/**
 * Points every view of the projection's published schema (`mart_<name>.<table>`) at `generation`
 * and makes it the active one, in one transaction: readers see the old marts or the new ones, never
 * a mix or an empty table. Views an older version published into the shared `mart` schema for this
 * projection are dropped.
 */
export const activate = async (
  tx: postgres.TransactionSql,
  projection: Projection,
  generation: { readonly generation: number; readonly schema: string }
): Promise<void> => {
  const schema = publishedSchema(projection)
  await tx`UPDATE ingest.projections SET status = 'retired', updated_at = now() WHERE name = ${projection.name} AND status = 'active'`
  await tx`UPDATE ingest.projections SET status = 'active', activated_at = now(), updated_at = now() WHERE name = ${projection.name} AND generation = ${generation.generation}`
  await tx.unsafe(`CREATE SCHEMA IF NOT EXISTS ${quoteIdent(schema)}`)
  const grant = (statement: string) =>
    tx.unsafe(`DO $$ BEGIN IF EXISTS (SELECT FROM pg_roles WHERE rolname = '${READER_ROLE}') THEN ${statement}; END IF; END $$`)
  await grant(`GRANT USAGE ON SCHEMA ${quoteIdent(schema)} TO ${READER_ROLE}`)
  // A mart behind row-level security is read with the reader's rights (security_invoker), so the
  // generation's policies see the reader and not the views' owner: the reader then needs the
  // generation's published objects themselves, which the same policies guard.
  const invoker = projection.rowScope !== undefined
  if (invoker) await grant(`GRANT USAGE ON SCHEMA ${quoteIdent(generation.schema)} TO ${READER_ROLE}`)
  for (const name of projection.published) {
    await tx.unsafe(`DROP VIEW IF EXISTS ${qualified(schema, name)}`)
    await tx.unsafe(
      `CREATE VIEW ${qualified(schema, name)}${invoker ? " WITH (security_invoker = true)" : ""} AS SELECT * FROM ${qualified(generation.schema, name)}`
    )
    if (invoker) await grant(`GRANT SELECT ON ${qualified(generation.schema, name)} TO ${READER_ROLE}`)
    await grant(`GRANT SELECT ON ${qualified(schema, name)} TO ${READER_ROLE}`)
  }
  const legacy = await tx`SELECT viewname FROM pg_views WHERE schemaname = 'mart' AND definition LIKE ${`%proj_${projection.name}_g%`}`
  for (const { viewname } of legacy) await tx.unsafe(`DROP VIEW IF EXISTS ${qualified("mart", viewname as string)}`)
}

/**
 * Closes the published views of a projection whose rows are scoped by store while its active
 * generation was built before the scope existed (it has no policies): the views become
 * `security_invoker` over tables the reader group was never granted, so every reader is refused
 * (the read API answers that the mart opens once rebuilt) instead of seeing every store. The
 * rebuild's activation opens them again. True when it closed them.
 */
export const closeUnscoped = async (
  tx: postgres.TransactionSql,
  projection: Projection,
  generation: { readonly schema: string }
): Promise<boolean> => {
  if (projection.rowScope === undefined) return false
  const [guarded] = await tx`SELECT to_regprocedure(${`${scopeFunction(generation.schema)}()`}) IS NOT NULL AS yes`
  if (guarded?.yes === true) return false
  const schema = publishedSchema(projection)
  for (const name of projection.published) {
    const [view] = await tx`SELECT to_regclass(${qualified(schema, name)}) IS NOT NULL AS yes`
    if (view?.yes !== true) continue
    await tx.unsafe(`DROP VIEW ${qualified(schema, name)}`)
    await tx.unsafe(
      `CREATE VIEW ${qualified(schema, name)} WITH (security_invoker = true) AS SELECT * FROM ${qualified(generation.schema, name)}`
    )
    await tx.unsafe(
      `DO $$ BEGIN IF EXISTS (SELECT FROM pg_roles WHERE rolname = '${READER_ROLE}') THEN GRANT SELECT ON ${qualified(schema, name)} TO ${READER_ROLE}; REVOKE ALL ON ${qualified(generation.schema, name)} FROM ${READER_ROLE}; END IF; END $$`
    )
  }
  return true
}
