import type postgres from "postgres"
import { Busy } from "./errors.ts"
import { NO_ROWS, READER_SCOPE_SETTING, type RowScope, sessionScope } from "./row-scope.ts"

/** The two kinds of query the read API runs: long ones (exports, pages, counts, summaries) and key checks. */
export type QueryKind = "long" | "short"

/** A connection of the pool reserved for one request's queries, with its statement timeout set (0: none); `release` gives it back. */
export interface Slot {
  readonly sql: postgres.ReservedSql
  readonly timeoutMs: number
  readonly release: () => Promise<void>
}

/**
 * Every query of the read API runs on a reserved connection, counted against its kind's slots and
 * with its own `statement_timeout`. Long queries (exports, pages, counts) past their slots are
 * answered 503 busy (with Retry-After) at once instead of waiting in the pool. Short ones (key
 * checks, health, the stats summaries: indexed lookups) keep slots of their own, so long ones never
 * make them queue; they wait for each other in turn, for at most their timeout.
 */
export const admission = (sql: postgres.Sql, slots: Readonly<Record<QueryKind, number>>) => {
  const used: Record<QueryKind, number> = { long: 0, short: 0 }
  const waiting: Array<() => void> = []
  const take = async (kind: QueryKind, timeoutMs: number): Promise<void> => {
    if (used[kind] < slots[kind]) {
      used[kind]++
      return
    }
    if (kind === "long") throw new Busy({ kind, running: used[kind] })
    await new Promise<void>((resolveTaken, reject) => {
      const turn = () => {
        clearTimeout(timer)
        used.short++
        resolveTaken()
      }
      const timer = setTimeout(() => {
        waiting.splice(waiting.indexOf(turn), 1)
        reject(new Busy({ kind, running: used[kind] }))
      }, timeoutMs)
      waiting.push(turn)
    })
  }
  const give = (kind: QueryKind) => {
    used[kind]--
    if (kind === "short") waiting.shift()?.()
  }
  const reserve = async (kind: QueryKind, timeoutMs: number, rows: RowScope = NO_ROWS): Promise<Slot> => {
    await take(kind, timeoutMs)
    let connection: postgres.ReservedSql | undefined
    try {
      connection = await sql.reserve()
      // Every reservation sets the request's row scope, so none is ever left from another request's key.
      await connection`SELECT set_config('statement_timeout', ${String(Math.max(0, Math.round(timeoutMs)))}, false), set_config(${READER_SCOPE_SETTING}, ${sessionScope(rows)}, false)`
    } catch (error) {
      connection?.release()
      give(kind)
      throw error
    }
    const reserved = connection
    let released = false
    return {
      sql: reserved,
      timeoutMs,
      release: async () => {
        if (released) return
        released = true
        try {
          await reserved.unsafe("RESET statement_timeout")
          await reserved`SELECT set_config(${READER_SCOPE_SETTING}, '', false)`
        } catch {
          // a broken connection is replaced by the pool; nothing is left set on it
        } finally {
          reserved.release()
          give(kind)
        }
      }
    }
  }
  return {
    reserve,
    /** Runs `query` on a slot of `kind` and gives the slot back, whatever happens. */
    run: async <A>(kind: QueryKind, timeoutMs: number, query: (slot: Slot) => Promise<A>, rows: RowScope = NO_ROWS): Promise<A> => {
      const slot = await reserve(kind, timeoutMs, rows)
      try {
        return await query(slot)
      } finally {
        await slot.release()
      }
    }
  }
}

export type Admission = ReturnType<typeof admission>
