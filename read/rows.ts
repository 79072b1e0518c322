import type postgres from "postgres"
import { type Parameter, quoteIdent } from "../platform/sql.ts"
import type { Column, Value } from "../projections/table.ts"
import { QueryTimedOut } from "./errors.ts"

/** A parameterised statement and the typed columns of the rows it returns, in order. */
export interface RowQuery {
  readonly text: string
  readonly params: ReadonlyArray<Parameter>
  readonly columns: ReadonlyArray<Column>
}

export type Cells = ReadonlyArray<Value>

/** Rows fetched per cursor round trip: what one response holds in memory at a time. */
export const CURSOR_BATCH = 2000

/**
 * The select-list expression of a column as every format wants it: instants as ISO 8601 UTC with
 * milliseconds, dates as `YYYY-MM-DD`, decimals as exact text; formatted in SQL so CSV, JSON, XLSX
 * and OData agree to the character whatever the session's settings.
 */
export const cellSql = (column: Column, expression = quoteIdent(column.name)): string => {
  switch (column.type) {
    case "timestamptz":
      return `to_char(${expression} AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"')`
    case "date":
      return `to_char(${expression}, 'YYYY-MM-DD')`
    case "numeric":
    case "bigint":
      return `(${expression})::text`
    default:
      return expression
  }
}

/**
 * The select-list expression of a column for `COPY … WITH (FORMAT csv)`, so that Postgres writes
 * every field exactly as the CSV export does: {@link cellSql}'s text, booleans as true/false, an
 * empty text as an empty field rather than COPY's `""`, and text a spreadsheet would run as a
 * formula (starting with = + - @ tab or carriage return) with a leading `'` unless `raw`
 * (`neutraliseFormula` in formats.ts, the same rule).
 */
export const csvCellSql = (column: Column, expression: string, raw: boolean): string => {
  switch (column.type) {
    case "boolean":
      return `(${expression})::text`
    case "text": {
      const value = `(${expression})::text`
      if (raw) return `NULLIF(${value}, '')`
      // Every formula start, and the empty text, sorts before 'A' bytewise: most values cost one memcmp and pass as they are.
      return `CASE WHEN ${value} >= 'A' COLLATE "C" THEN ${value} WHEN ascii(${value}) IN (61, 43, 45, 64, 9, 13) THEN '''' || ${value} ELSE NULLIF(${value}, '') END`
    }
    default:
      return cellSql(column, expression)
  }
}

/** Rows of a query, fetched from a server-side cursor; `close` releases it early (a client that went away). */
export interface RowStream {
  readonly batches: AsyncIterable<ReadonlyArray<Cells>>
  readonly close: () => Promise<void>
}

/**
 * Opens a cursor over `query` and fetches its first batch before returning, so that a failing
 * query (a mart not built yet, a bad cast) is an error the caller can still answer with a status,
 * and not a response cut off after its headers. Each fetch must finish within `timeout` or the
 * query is cancelled ({@link QueryTimedOut}). The timeout is kept here rather than in Postgres'
 * `statement_timeout`, which runs on while the cursor waits for a slow client between fetches and
 * would cut off any response that takes longer than it to read.
 */
export const openRows = async (
  sql: postgres.Sql,
  query: RowQuery,
  timeout?: { readonly limitMs: number; readonly setting: string },
  batchSize = CURSOR_BATCH
): Promise<RowStream> => {
  const pending = sql.unsafe(query.text, [...query.params]).values()
  const cursor = pending.cursor(batchSize)[Symbol.asyncIterator]() as AsyncIterator<ReadonlyArray<Cells>>
  const fetch = async (): Promise<IteratorResult<ReadonlyArray<Cells>>> => {
    if (timeout === undefined) return cursor.next()
    let cancelled = false
    const timer = setTimeout(() => {
      cancelled = true
      void pending.cancel()
    }, timeout.limitMs)
    try {
      return await cursor.next()
    } catch (error) {
      throw cancelled ? new QueryTimedOut(timeout) : error
    } finally {
      clearTimeout(timer)
    }
  }
  const first = await fetch()
  let done = first.done === true
  /** The fetch under way, if any: closing must wait for it, or postgres.js never sends the portal's Close and the connection hangs. */
  let fetching: Promise<IteratorResult<ReadonlyArray<Cells>>> | undefined
  const close = async () => {
    if (done) return
    done = true
    await fetching?.catch(() => undefined)
    await cursor.return?.()
  }
  const batches = async function* () {
    try {
      if (first.done === true) return
      yield first.value
      while (!done) {
        fetching = fetch()
        const next = await fetching
        fetching = undefined
        if (next.done === true) {
          done = true
          return
        }
        yield next.value
      }
    } finally {
      await close()
    }
  }
  return { batches: batches(), close }
}
