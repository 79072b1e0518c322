import type postgres from "postgres"
import type { LogEvent, Projection } from "../projections/projection.ts"
import { bulkWrite, mergeRows, qualified, type Row } from "../projections/table.ts"
import type { Generation } from "./registry.ts"

/** A message as read from the log, with what the runtime needs to dead-letter it. */
export interface ReadEvent extends LogEvent {
  readonly headers: Readonly<Record<string, string>>
  readonly data: string
}

export interface BatchResult {
  readonly applied: number
  readonly duplicates: number
  readonly skipped: number
  readonly deadLetters: number
  readonly checkpoint: number
}

/** Another writer moved the generation's checkpoint, or the generation stopped being the one to write. */
export class CheckpointMoved extends Error {
  constructor(readonly generation: number, readonly found: number | undefined, readonly status: string | undefined) {
    super(`generation ${generation} is at checkpoint ${found} (${status}); expected to continue from ours`)
  }
}

/** A rebuild met an event the projection cannot project: it stops and names it. */
export class PoisonInRebuild extends Error {
  constructor(readonly event: ReadEvent, readonly reason: string) {
    super(`event seq ${event.seq} (${event.subject}, key ${event.dedupeKey}) cannot be projected: ${reason}`)
  }
}

/**
 * Applies one batch exactly once, in ONE transaction: the durable dedupe keys (first occurrence
 * in log order wins, so a replay decides as live did), the mart rows in bulk, dead letters, and
 * the checkpoint, compared and set. A crash anywhere rolls all of it back; redelivery then
 * repeats the same decisions.
 */
export const applyBatch = (
  sql: postgres.Sql,
  projection: Projection,
  generation: Generation,
  expectedCheckpoint: number,
  events: ReadonlyArray<ReadEvent>,
  mode: "live" | "rebuild"
): Promise<BatchResult> =>
  sql.begin(async (tx) => {
    const [row] = await tx`SELECT checkpoint, status FROM ingest.projections WHERE name = ${projection.name} AND generation = ${generation.generation} FOR UPDATE`
    const status = row?.status as string | undefined
    const found = row === undefined ? undefined : Number(row.checkpoint)
    const writable = mode === "live" ? status === "active" : status === "building"
    if (found !== expectedCheckpoint || !writable) throw new CheckpointMoved(generation.generation, found, status)

    const fresh = events.filter((event) => event.seq > expectedCheckpoint).sort((a, b) => a.seq - b.seq)
    const firstInBatch = new Map<string, ReadEvent>()
    for (const event of fresh) if (!firstInBatch.has(event.dedupeKey)) firstInBatch.set(event.dedupeKey, event)
    const candidates = [...firstInBatch.values()]
    const seen = new Set(
      (
        await tx.unsafe(`SELECT key FROM ${qualified(generation.schema, "dedupe_keys")} WHERE key = ANY($1::text[])`, [
          tx.array(candidates.map((event) => event.dedupeKey))
        ])
      ).map((r) => r.key as string)
    )

    const byTable = new Map<string, Array<Row>>()
    const recorded: Array<ReadEvent> = []
    const dead: Array<{ event: ReadEvent; reason: string }> = []
    let skipped = 0
    let applied = 0
    for (const event of candidates) {
      if (seen.has(event.dedupeKey)) continue
      const outcome = projection.project(event)
      if (outcome._tag === "Poison") {
        if (mode === "rebuild") throw new PoisonInRebuild(event, outcome.reason)
        dead.push({ event, reason: outcome.reason })
        continue
      }
      recorded.push(event)
      if (outcome._tag === "Skip") {
        skipped++
        continue
      }
      applied++
      for (const [table, rows] of Object.entries(outcome.rows)) {
        const list = byTable.get(table) ?? []
        list.push(...rows)
        byTable.set(table, list)
      }
    }

    if (recorded.length > 0)
      await tx.unsafe(`INSERT INTO ${qualified(generation.schema, "dedupe_keys")} (key, seq) SELECT * FROM unnest($1::text[], $2::bigint[])`, [
        tx.array(recorded.map((event) => event.dedupeKey)),
        tx.array(recorded.map((event) => String(event.seq)))
      ])
    for (const table of projection.tables) {
      const rows = byTable.get(table.name)
      if (rows === undefined || rows.length === 0) continue
      const statement = bulkWrite(generation.schema, table, mergeRows(table, rows))
      await tx.unsafe(statement.text, statement.columns.map((column) => tx.array(column as Array<string>)))
    }
    for (const { event, reason } of dead) {
      await tx`INSERT INTO ingest.dead_letters (projection, seq, subject, dedupe_key, reason, payload, headers)
               VALUES (${projection.name}, ${event.seq}, ${event.subject}, ${event.dedupeKey}, ${reason}, ${event.data}, ${tx.json(event.headers)})`
    }
    const checkpoint = fresh.length > 0 ? (fresh[fresh.length - 1] as ReadEvent).seq : expectedCheckpoint
    await tx`UPDATE ingest.projections SET checkpoint = ${checkpoint}, updated_at = now() WHERE name = ${projection.name} AND generation = ${generation.generation}`
    return { applied, duplicates: fresh.length - candidates.length + seen.size, skipped, deadLetters: dead.length, checkpoint }
  })
