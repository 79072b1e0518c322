import { DeliverPolicy, type JetStreamClient, type JsMsg } from "@nats-io/jetstream"
import type postgres from "postgres"
import { domainSubjects, streamFor } from "../contracts/log.ts"
import { qualified, quoteIdent } from "../platform/sql.ts"
import type { Projection } from "../projections/projection.ts"
import {
  copyIntoStaging,
  copyIntoTable,
  copyLine,
  copyRow,
  dropIndexDdl,
  foldStaged,
  indexDdl,
  keyOf,
  stagingDdl,
  stagingTable
} from "../projections/statements.ts"
import type { Column, Row, TableSpec, Value } from "../projections/table.ts"
import { poisonInRebuild } from "./apply.ts"
import { projectSafely } from "./batch.ts"
import { toReadEvent } from "./reader.ts"
import type { Generation } from "./registry.ts"

/**
 * A rebuild's replay as a bulk load. The whole log passes through in order, so the dedupe decision
 * is made in memory (first occurrence of a key wins; a poison event stops the rebuild, named), and
 * the log is read by an ordered consumer (no acknowledgements). `insert` tables (first row wins) are
 * decided in memory too and their rows COPYed straight into the table; rows of the other merges go
 * with COPY, in log order, into an unlogged staging table and are folded into the table in one
 * statement per table ({@link foldStaged}: the same merge batch after batch would give). Keys of
 * `insert` tables, secondary indexes and the ledger's key are built once, after the load. All of it
 * is one transaction into the shadow schema nobody reads: it commits with the checkpoint at the
 * last event read, or leaves nothing.
 */

export interface BulkLoadResult {
  /** The stream sequence the generation now stands at. */
  readonly checkpoint: number
  readonly events: number
  /** Seconds spent reading and projecting the log, waiting for COPY (which overlaps the reading), folding the staged rows, and building indexes. */
  readonly seconds: { readonly project: number; readonly copy: number; readonly fold: number; readonly index: number }
}

/** Between the parts of a key held in memory (as text, as Postgres compares them once cast: a mismatch fails the key's build, and the rebuild replays batch by batch). */
const KEY_SEPARATOR = "\u0000"

/** Events projected between two rounds of COPY. */
const CHUNK_EVENTS = 10_000

/**
 * Adds a counter row into the chunk's sum for its key (`counters`: the table's columns outside its key); false (leaving it to SQL's exact numeric
 * sum) when a value or the sum is not a safe integer.
 */
const addUp = (table: TableSpec, counters: ReadonlyArray<Column>, sums: Map<string, Record<string, Value>>, row: Row): boolean => {
  if (!counters.every((column) => Number.isSafeInteger(row[column.name]))) return false
  const key = keyOf(table, row)
  const sum = sums.get(key)
  if (sum === undefined) {
    sums.set(key, { ...row })
    return true
  }
  const added = counters.map((column) => (sum[column.name] as number) + (row[column.name] as number))
  if (!added.every(Number.isSafeInteger)) return false
  counters.forEach((column, i) => (sum[column.name] = added[i] as number))
  return true
}

/** Writes `text` through one `COPY … FROM STDIN` of `tx`. */
const copy = async (tx: postgres.TransactionSql, statement: string, text: string): Promise<void> => {
  if (text === "") return
  const stream = await tx.unsafe(statement).writable()
  await new Promise<void>((resolve, reject) => {
    stream.on("error", reject)
    stream.on("finish", resolve)
    stream.end(text)
  })
}

/** The messages of the domain's stream from `from` through `through`, in order. */
async function* readLog(js: JetStreamClient, projection: Projection, from: number, through: number): AsyncGenerator<JsMsg> {
  if (through < from) return
  const consumer = await js.consumers.get(streamFor(projection.domain), {
    filter_subjects: domainSubjects(projection.domain),
    deliver_policy: DeliverPolicy.StartSequence,
    opt_start_seq: from
  })
  const messages = await consumer.consume({ max_messages: 5000 })
  try {
    for await (const message of messages) {
      if (message.seq > through) return
      yield message
      if (message.seq >= through || message.info.pending === 0) return
    }
  } finally {
    await messages.close()
  }
}

/** Replays the log through `target` into `generation` (empty, 'building', at checkpoint 0). */
export const bulkLoad = async (options: {
  readonly sql: postgres.Sql
  readonly js: JetStreamClient
  readonly projection: Projection
  readonly generation: Generation
  readonly target: number
  readonly onProgress?: (position: number) => void
}): Promise<BulkLoadResult> => {
  const { sql, projection, generation } = options
  const { schema } = generation
  const tables = new Map<string, TableSpec>(projection.tables.map((table) => [table.name, table]))
  return sql.begin(async (tx) => {
    await tx`SET LOCAL work_mem = '256MB'`
    await tx`SET LOCAL maintenance_work_mem = '256MB'`
    /**
     * `insert` tables keep each key's first row: decided here with the keys seen (seed rows
     * included), their rows go straight into the table with its key built after the load. Any
     * other merge needs every row's order: those go through staging.
     */
    const firstWins = new Map<string, Set<string>>()
    for (const table of projection.tables) {
      for (const statement of dropIndexDdl(schema, table)) await tx.unsafe(statement)
      // What triggers maintain row by row is computed whole after the load (afterBulkLoad).
      if (projection.afterBulkLoad !== undefined) await tx.unsafe(`ALTER TABLE ${qualified(schema, table.name)} DISABLE TRIGGER USER`)
      if (table.merge === "insert") {
        const seen = await tx
          .unsafe(`SELECT ${table.key.map((column) => `${quoteIdent(column)}::text`).join(", ")} FROM ${qualified(schema, table.name)}`)
          .values()
        firstWins.set(table.name, new Set(seen.map((values) => values.join(KEY_SEPARATOR))))
        await tx.unsafe(`ALTER TABLE ${qualified(schema, table.name)} DROP CONSTRAINT ${quoteIdent(`${table.name}_pkey`)}`)
      } else await tx.unsafe(stagingDdl(schema, table))
    }
    const ledger = qualified(schema, "dedupe_keys")
    await tx.unsafe(`ALTER TABLE ${ledger} DROP CONSTRAINT dedupe_keys_pkey`)

    const seconds = { project: 0, copy: 0, fold: 0, index: 0 }
    let mark = performance.now()
    const lap = (phase: keyof typeof seconds) => {
      const now = performance.now()
      seconds[phase] += (now - mark) / 1000
      mark = now
    }
    const claimed = new Set<string>()
    const staged = new Map<string, Array<string>>()
    /** Counter rows of the chunk summed by key where the sums are exact (integers): far fewer rows to COPY and fold. */
    const counted = new Map<string, Map<string, Record<string, Value>>>()
    const counterColumns = new Map<string, ReadonlyArray<Column>>()
    const countersOf = (table: TableSpec): ReadonlyArray<Column> => {
      let columns = counterColumns.get(table.name)
      if (columns === undefined)
        counterColumns.set(table.name, (columns = table.columns.filter((column) => !table.key.includes(column.name))))
      return columns
    }
    const stage = (table: TableSpec, row: Row) => {
      const seen = firstWins.get(table.name)
      if (seen !== undefined) {
        const key = table.key.map((column) => String(row[column] ?? "")).join(KEY_SEPARATOR)
        if (seen.has(key)) return
        seen.add(key)
      }
      let lines = staged.get(table.name)
      if (lines === undefined) staged.set(table.name, (lines = []))
      lines.push(seen === undefined ? copyRow(table, row, order++) : copyLine(table.columns.map((column) => row[column.name])))
    }
    let keys: Array<string> = []
    let order = 0
    let events = 0
    let checkpoint = 0
    // One chunk's COPY runs while the next chunk is read and projected: Postgres and this process each use a core.
    let writing: Promise<void> = Promise.resolve()
    const flush = async () => {
      for (const [name, sums] of counted) for (const row of sums.values()) stage(tables.get(name) as TableSpec, row)
      counted.clear()
      lap("project")
      await writing
      lap("copy")
      const lines = [...staged]
      const ledgerLines = keys.join("")
      staged.clear()
      keys = []
      const at = checkpoint
      writing = (async () => {
        for (const [name, rows] of lines) {
          const table = tables.get(name) as TableSpec
          await copy(tx, firstWins.has(name) ? copyIntoTable(schema, table) : copyIntoStaging(schema, table), rows.join(""))
        }
        await copy(tx, `COPY ${ledger} (key, seq) FROM STDIN`, ledgerLines)
        options.onProgress?.(at)
      })()
      // Awaited at the next flush; until then a failure must not count as unhandled.
      writing.catch(() => undefined)
    }
    try {
      for await (const message of readLog(options.js, projection, 1, options.target)) {
        const event = toReadEvent(message)
        checkpoint = event.seq
        events++
        if (!claimed.has(event.dedupeKey)) {
          const outcome = projectSafely(projection, event)
          if (outcome._tag === "Poison") throw poisonInRebuild(event, outcome.reason)
          claimed.add(event.dedupeKey)
          keys.push(copyLine([event.dedupeKey, event.seq]))
          if (outcome._tag === "Rows")
            for (const [name, rows] of Object.entries(outcome.rows)) {
              const table = tables.get(name)
              if (table === undefined) throw new Error(`${projection.name} made rows for ${name}, which it does not declare`)
              if (table.merge === "increment") {
                let sums = counted.get(name)
                if (sums === undefined) counted.set(name, (sums = new Map()))
                const counters = countersOf(table)
                for (const row of rows) if (!addUp(table, counters, sums, row)) stage(table, row)
              } else for (const row of rows) stage(table, row)
            }
        }
        if (events % CHUNK_EVENTS === 0) await flush()
        // Messages already received come through microtasks only: let the socket work (the COPY in flight) between a few of them.
        else if (events % 100 === 0) await new Promise((resolve) => setImmediate(resolve))
      }
    } catch (error) {
      // The transaction ends with the error: no COPY may still be writing into it.
      await writing.catch(() => undefined)
      throw error
    }
    await flush()
    await writing
    lap("copy")

    for (const table of projection.tables) {
      if (firstWins.has(table.name)) continue
      await tx.unsafe(foldStaged(schema, table))
      await tx.unsafe(`DROP TABLE ${stagingTable(schema, table)}`)
    }
    lap("fold")
    for (const table of projection.tables) {
      if (firstWins.has(table.name))
        await tx.unsafe(`ALTER TABLE ${qualified(schema, table.name)} ADD PRIMARY KEY (${table.key.map(quoteIdent).join(", ")})`)
      for (const statement of indexDdl(schema, table)) await tx.unsafe(statement)
    }
    await tx.unsafe(`ALTER TABLE ${ledger} ADD PRIMARY KEY (key)`)
    for (const table of projection.tables) await tx.unsafe(`ANALYZE ${qualified(schema, table.name)}`)
    if (projection.afterBulkLoad !== undefined) {
      for (const table of projection.tables) await tx.unsafe(`ALTER TABLE ${qualified(schema, table.name)} ENABLE TRIGGER USER`)
      for (const statement of projection.afterBulkLoad(schema)) await tx.unsafe(statement)
    }
    lap("index")
    const moved = await tx`UPDATE ingest.projections SET checkpoint = ${checkpoint}, updated_at = now()
                           WHERE name = ${projection.name} AND generation = ${generation.generation} AND status = 'building' AND checkpoint = 0`
    if (moved.count !== 1)
      throw new Error(`generation ${generation.generation} of ${projection.name} was changed by another process during the rebuild`)
    return { checkpoint, events, seconds }
  })
}
