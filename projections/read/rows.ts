import type postgres from "postgres"
import type { Column, Value } from "../table.ts"

/** A parameterised statement and the typed columns of the rows it returns, in order. */
export interface RowQuery {
  readonly text: string
  readonly params: ReadonlyArray<string | number | boolean | null>
  readonly columns: ReadonlyArray<Column>
}

export type Cells = ReadonlyArray<Value>

/** Rows fetched per cursor round trip: what one response holds in memory at a time. */
export const CURSOR_BATCH = 2000

export const quoteIdent = (identifier: string): string => `"${identifier.replaceAll('"', '""')}"`

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

/** Rows of a query, fetched from a server-side cursor; `close` releases it early (a client that went away). */
export interface RowStream {
  readonly batches: AsyncIterable<ReadonlyArray<Cells>>
  readonly close: () => Promise<void>
}

/**
 * Opens a cursor over `query` and fetches its first batch before returning, so that a failing
 * query (a mart not built yet, a bad cast) is an error the caller can still answer with a status,
 * and not a response cut off after its headers.
 */
export const openRows = async (sql: postgres.Sql, query: RowQuery, batchSize = CURSOR_BATCH): Promise<RowStream> => {
  const cursor = sql.unsafe(query.text, [...query.params]).values().cursor(batchSize)[Symbol.asyncIterator]() as AsyncIterator<ReadonlyArray<Cells>>
  const first = await cursor.next()
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
        fetching = cursor.next()
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
