import type postgres from "postgres"
import { admission } from "./admission.ts"
import { runQuery } from "./errors.ts"
import { openCopy } from "./copy.ts"
import type { RowScope } from "./row-scope.ts"
import { openRows, type RowQuery } from "./rows.ts"

/** Statement timeout of a key check or a health probe: an indexed lookup, never long. */
const KEY_CHECK_TIMEOUT_MS = 5000

/** A query's time limit and the setting that sets it (named in the 503 when it runs out). */
export interface Timeout {
  readonly limitMs: number
  readonly setting: string
}

/**
 * The read API's queries, each on an admission slot of its kind ({@link admission}): streamed
 * responses and counts on the long slots, key checks and small lookups on the short ones, with
 * their failures answered as reader-facing errors. Each runs with the row scope of the key it
 * serves, which the marts' row-level security reads.
 */
export const readerQueries = (
  sql: postgres.Sql,
  options: { readonly maxStreams: number; readonly keyCheckSlots: number; readonly pageTimeout: Timeout }
) => {
  const slots = admission(sql, { long: options.maxStreams, short: options.keyCheckSlots })
  const { pageTimeout } = options
  /** A cursor for `query` on a long slot of its own, each fetch under `timeout`, held until the stream closes. */
  const stream = async (rows: RowScope, mart: string, query: RowQuery, timeout: Timeout, parameter?: string) => {
    // No statement_timeout: Postgres would count the time a slow client takes to read ({@link openRows}).
    const slot = await slots.reserve("long", 0, rows)
    try {
      const rows = await runQuery(mart, () => openRows(slot.sql, query, timeout), parameter, timeout)
      return { batches: rows.batches, close: () => rows.close().finally(slot.release) }
    } catch (error) {
      await slot.release()
      throw error
    }
  }
  /** A `COPY … TO STDOUT` on a long slot of its own, each chunk under `timeout`, held until the stream closes. */
  const copy = async (rows: RowScope, mart: string, statement: string, timeout: Timeout) => {
    // No statement_timeout: Postgres would count the time a slow client takes to read ({@link openCopy}).
    const slot = await slots.reserve("long", 0, rows)
    try {
      const bytes = await runQuery(mart, () => openCopy(slot.sql, statement, timeout), "query", timeout)
      return { chunks: bytes.chunks, close: () => bytes.close().finally(slot.release) }
    } catch (error) {
      await slot.release()
      throw error
    }
  }
  /** A long query that is not streamed (a count), on a slot under the page timeout. */
  const longQuery = <A>(rows: RowScope, mart: string, query: (sql: postgres.Sql) => Promise<A>, parameter?: string) =>
    runQuery(mart, () => slots.run("long", pageTimeout.limitMs, (slot) => query(slot.sql), rows), parameter, pageTimeout)
  /** A key check, health probe or stats summary (indexed lookups), on a slot of their own; it sees no store-scoped row unless given `rows`. */
  const shortQuery = <A>(mart: string, query: (sql: postgres.Sql) => Promise<A>, rows?: RowScope) =>
    runQuery(mart, () => slots.run("short", KEY_CHECK_TIMEOUT_MS, (slot) => query(slot.sql), rows), "query", {
      limitMs: KEY_CHECK_TIMEOUT_MS,
      setting: "the key check timeout"
    })
  /** The row count of an OData query (its `$filter` the only input that can fail it). */
  const countOf = (rows: RowScope, mart: string, count: RowQuery) =>
    longQuery(rows, mart, async (sql) => String((await sql.unsafe(count.text, [...count.params]))[0]?.count ?? 0), "$filter")
  return { stream, copy, longQuery, shortQuery, countOf }
}
