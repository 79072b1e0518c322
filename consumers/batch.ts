import type { Outcome, Projection, SideEffects } from "../projections/projection.ts"
import { stateKey } from "../projections/projection.ts"
import { mergeRows } from "../projections/statements.ts"
import type { Row, TableSpec } from "../projections/table.ts"
import type { ReadEvent } from "./events.ts"

/**
 * What one batch does, decided without I/O from its events (in log order) and the dedupe keys the
 * generation had already recorded: the events that claim their key, the poison ones, and the
 * rows each table receives, folded by key.
 */
export interface BatchDecision {
  readonly _tag: "Decided"
  /** Events that claim their dedupe key (projected or skipped), in log order. */
  readonly recorded: ReadonlyArray<ReadEvent>
  /** Events the projection cannot project: dead-lettered live; they claim nothing. */
  readonly dead: ReadonlyArray<{ readonly event: ReadEvent; readonly reason: string }>
  /** Each table with rows to write, in the projection's declaration order, its rows folded as the table merges them. */
  readonly writes: ReadonlyArray<{ readonly table: TableSpec; readonly rows: ReadonlyArray<Row> }>
  readonly applied: number
  readonly skipped: number
  readonly duplicates: number
}

/** A rebuild met a poison event: it stops, naming it, and writes nothing. */
export interface PoisonFound {
  readonly _tag: "PoisonFound"
  readonly event: ReadEvent
  readonly reason: string
}

/** Each event's outcome, made ahead of its batch's decision. */
export const projectAhead = (projection: Projection, events: ReadonlyArray<ReadEvent>): ReadonlyMap<ReadEvent, Outcome> =>
  new Map(events.map((event) => [event, projectSafely(projection, event)]))

/** A projection that throws on an event (a bug its tests missed) has met a poison event, not a reason to stop the domain. */
export const projectSafely = (projection: Projection, event: ReadEvent): Outcome => {
  try {
    return projection.project(event)
  } catch (error) {
    return { _tag: "Poison", reason: `the projection failed on this event: ${error instanceof Error ? error.message : String(error)}` }
  }
}

/**
 * Decides a batch: in log order, the first event of a key that projects claims it; a duplicate of a
 * claimed key (already recorded, or earlier in the batch) is dropped; a poison event claims
 * nothing, so a later valid copy still counts — the same decision whatever the batch boundaries.
 * `onPoison: "stop"` (a rebuild) ends the decision at the first poison event.
 */
export const decideBatch = (
  projection: Projection,
  events: ReadonlyArray<ReadEvent>,
  alreadyClaimed: ReadonlySet<string>,
  onPoison: "collect" | "stop",
  /** Outcomes already made (the projection is pure: the runtime projects the next batch while this one commits). */
  projected?: ReadonlyMap<ReadEvent, Outcome>
): BatchDecision | PoisonFound => {
  const claimed = new Set(alreadyClaimed)
  const byTable = new Map<string, Array<Row>>()
  const recorded: Array<ReadEvent> = []
  const dead: Array<{ event: ReadEvent; reason: string }> = []
  let skipped = 0
  let applied = 0
  let duplicates = 0
  for (const event of events) {
    if (claimed.has(event.dedupeKey)) {
      duplicates++
      continue
    }
    const outcome = projected?.get(event) ?? projectSafely(projection, event)
    if (outcome._tag === "Poison") {
      if (onPoison === "stop") return { _tag: "PoisonFound", event, reason: outcome.reason }
      dead.push({ event, reason: outcome.reason })
      continue
    }
    claimed.add(event.dedupeKey)
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
  const writes = projection.tables.flatMap((table) => {
    const rows = byTable.get(table.name)
    return rows === undefined || rows.length === 0 ? [] : [{ table, rows: mergeRows(table, rows) }]
  })
  return { _tag: "Decided", recorded, dead, writes, applied, skipped, duplicates }
}

/** The keys of the state rows side effects need for `events` (the projection's table {@link SideEffects.state}), each once. */
export const effectStateKeys = (spec: SideEffects, events: ReadonlyArray<ReadEvent>): ReadonlyArray<ReadonlyArray<string>> => [
  ...new Map(
    events.flatMap((event) => {
      const key = spec.state.keyOf(event)
      return key === undefined ? [] : [[stateKey(key), key] as const]
    })
  ).values()
]
