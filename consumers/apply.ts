import type postgres from "postgres"
import { qualified, quoteIdent } from "../platform/sql.ts"
import type { Outcome, Projection, SideEffect, SideEffects } from "../projections/projection.ts"
import { stateKey } from "../projections/projection.ts"
import { bulkWrite } from "../projections/statements.ts"
import type { Row } from "../projections/table.ts"
import { decideBatch, effectStateKeys } from "./batch.ts"
import { capturedTables, capturing } from "./changes.ts"
import { type ReadEvent, readEventOf } from "./events.ts"
import { CheckpointMoved, classifyFailure, describeFailure, type FatalFailure, fatal, PoisonInRebuild, sqlState } from "./failures.ts"
import type { Generation } from "./registry.ts"

export interface BatchResult {
  readonly applied: number
  readonly duplicates: number
  readonly skipped: number
  readonly deadLetters: number
  /** Side effects recorded in the outbox by this batch. */
  readonly effects: number
  readonly checkpoint: number
}

/** A rebuild stops at `event`, named: batch by batch (here) and in a bulk load alike. */
export const poisonInRebuild = (event: ReadEvent, reason: string) =>
  new PoisonInRebuild({ seq: event.seq, subject: event.subject, dedupeKey: event.dedupeKey, reason })

/** The generation was built by a newer version of the projection than this process runs: its rows must not be written by older code. */
export const newerVersion = (projection: Projection, built: number): FatalFailure =>
  fatal(
    `the ${projection.name} marts (generation built by version ${built} of the projection) are newer than this process's code (version ${projection.version})`,
    "stop this process and deploy the new code; it will not write into them"
  )

interface Projected {
  readonly recorded: ReadonlyArray<ReadEvent>
  readonly dead: ReadonlyArray<{ readonly event: ReadEvent; readonly reason: string }>
  readonly applied: number
  readonly skipped: number
  readonly duplicates: number
  readonly effects: number
}

/**
 * Projects `events` (in log order) inside `tx`: drops those whose dedupe key the generation has
 * already recorded (first occurrence wins), records the keys of the rest, and writes their rows
 * in one bulk statement per table. Poison events are returned, not recorded.
 */
const projectInto = async (
  tx: postgres.TransactionSql,
  projection: Projection,
  generation: Generation,
  events: ReadonlyArray<ReadEvent>,
  onPoison: "collect" | "stop",
  withEffects: boolean,
  projected?: ReadonlyMap<ReadEvent, Outcome>
): Promise<Projected> => {
  // Each key's first event of the batch claims it in the ledger in one statement; the keys it did not
  // insert were recorded by an earlier batch, which is all the decision needs to know.
  const firsts = new Map<string, ReadEvent>()
  for (const event of events) if (!firsts.has(event.dedupeKey)) firsts.set(event.dedupeKey, event)
  const ledger = qualified(generation.schema, "dedupe_keys")
  const inserted = new Set(
    (
      await tx.unsafe(
        `INSERT INTO ${ledger} (key, seq) SELECT * FROM unnest($1::text[], $2::bigint[]) ON CONFLICT (key) DO NOTHING RETURNING key`,
        [tx.array([...firsts.keys()]), tx.array([...firsts.values()].map((event) => String(event.seq)))]
      )
    ).map((row) => row.key as string)
  )
  const claimed = new Set([...firsts.keys()].filter((key) => !inserted.has(key)))
  const decision = decideBatch(projection, events, claimed, onPoison, projected)
  if (decision._tag === "PoisonFound") throw poisonInRebuild(decision.event, decision.reason)
  const { recorded } = decision
  // A poison event claims nothing: its key goes again, or goes to the later copy that did claim it.
  const claimedAt = new Map(recorded.map((event) => [event.dedupeKey, event.seq]))
  const unclaimed = [...inserted].filter((key) => !claimedAt.has(key))
  if (unclaimed.length > 0) await tx.unsafe(`DELETE FROM ${ledger} WHERE key = ANY($1::text[])`, [tx.array(unclaimed)])
  const moved = [...claimedAt].filter(([key, seq]) => firsts.get(key)?.seq !== seq)
  if (moved.length > 0)
    await tx.unsafe(`UPDATE ${ledger} l SET seq = u.seq FROM unnest($1::text[], $2::bigint[]) AS u(key, seq) WHERE l.key = u.key`, [
      tx.array(moved.map(([key]) => key)),
      tx.array(moved.map(([, seq]) => String(seq)))
    ])
  const effects =
    withEffects && projection.effects !== undefined ? await decideEffects(tx, projection.effects, projection, generation, recorded) : []
  const captured = withEffects ? await capturedTables(tx, projection.name) : new Set<string>()
  for (const { table, rows } of decision.writes) {
    const statement = bulkWrite(generation.schema, table, rows)
    const parameters = statement.columns.map((column) => tx.array(column as Array<string>))
    if (captured.has(table.name))
      await tx.unsafe(capturing(statement.text, parameters.length), [...parameters, projection.name, generation.generation, table.name])
    else await tx.unsafe(statement.text, parameters)
  }
  if (effects.length > 0)
    await tx.unsafe(
      `INSERT INTO ingest.outbox (id, projection, seq, subject, data)
       SELECT u.id, $1, u.seq, u.subject, u.data FROM unnest($2::text[], $3::bigint[], $4::text[], $5::text[]) AS u(id, seq, subject, data)
       ON CONFLICT (id) DO NOTHING`,
      [
        projection.name,
        tx.array(effects.map((effect) => effect.id)),
        tx.array(effects.map((effect) => String(effect.seq))),
        tx.array(effects.map((effect) => effect.subject)),
        tx.array(effects.map((effect) => JSON.stringify(effect.data)))
      ]
    )
  return {
    recorded,
    dead: decision.dead,
    applied: decision.applied,
    skipped: decision.skipped,
    duplicates: decision.duplicates,
    effects: effects.length
  }
}

/** Loads the state rows the batch's events touch, as they are before the batch, and decides the side effects. */
const decideEffects = async (
  tx: postgres.TransactionSql,
  spec: SideEffects,
  projection: Projection,
  generation: Generation,
  events: ReadonlyArray<ReadEvent>
): Promise<ReadonlyArray<SideEffect>> => {
  const table = projection.tables.find((candidate) => candidate.name === spec.state.table)
  if (table === undefined) throw new Error(`${projection.name}: side effects read unknown table ${spec.state.table}`)
  const keys = effectStateKeys(spec, events)
  const current = new Map<string, Row>()
  if (keys.length > 0) {
    const found = await tx.unsafe(
      `SELECT t.* FROM ${qualified(generation.schema, table.name)} t JOIN unnest(${table.key.map((_, i) => `$${i + 1}::text[]`).join(", ")}) AS k(${table.key.map((_, i) => `k${i}`).join(", ")})
       ON ${table.key.map((column, i) => `t.${quoteIdent(column)}::text = k.k${i}`).join(" AND ")}`,
      table.key.map((_, i) => tx.array(keys.map((key) => key[i] as string)))
    )
    for (const row of found) current.set(stateKey(table.key.map((column) => row[column])), JSON.parse(JSON.stringify(row)) as Row)
  }
  return spec.decide(current, events)
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
  mode: "live" | "rebuild",
  projected?: ReadonlyMap<ReadEvent, Outcome>
): Promise<BatchResult> =>
  sql.begin(async (tx) => {
    await claimBatch(tx, projection, generation, expectedCheckpoint, mode)

    const fresh = events.filter((event) => event.seq > expectedCheckpoint).sort((a, b) => a.seq - b.seq)
    const result = await projectInto(tx, projection, generation, fresh, mode === "live" ? "collect" : "stop", mode === "live", projected)
    for (const { event, reason } of result.dead) {
      await tx`INSERT INTO ingest.dead_letters (projection, seq, subject, dedupe_key, reason, payload, headers)
               VALUES (${projection.name}, ${event.seq}, ${event.subject}, ${event.dedupeKey}, ${reason}, ${event.data}, ${tx.json(event.headers)})`
    }
    const checkpoint = fresh.length > 0 ? (fresh[fresh.length - 1] as ReadEvent).seq : expectedCheckpoint
    await tx`UPDATE ingest.projections SET checkpoint = ${checkpoint}, updated_at = now() WHERE name = ${projection.name} AND generation = ${generation.generation}`
    return {
      applied: result.applied,
      duplicates: result.duplicates,
      skipped: result.skipped,
      deadLetters: result.dead.length,
      effects: result.effects,
      checkpoint
    }
  })

/**
 * Locks the generation's registry row for this batch's transaction and checks that it is still ours
 * to write: at the checkpoint we continue from, in the state the mode writes (active live, building
 * in a rebuild), and not built by a newer version of the projection.
 */
const claimBatch = async (
  tx: postgres.TransactionSql,
  projection: Projection,
  generation: Generation,
  expectedCheckpoint: number,
  mode: "live" | "rebuild"
): Promise<void> => {
  const [row] =
    await tx`SELECT checkpoint, status, version FROM ingest.projections WHERE name = ${projection.name} AND generation = ${generation.generation} FOR UPDATE`
  if (row !== undefined && Number(row.version) > projection.version) throw newerVersion(projection, Number(row.version))
  const status = row?.status as string | undefined
  const found = row === undefined ? undefined : Number(row.checkpoint)
  const writable = mode === "live" ? status === "active" : status === "building"
  if (found !== expectedCheckpoint || !writable) throw new CheckpointMoved({ generation: generation.generation, found, status })
}

/**
 * Dead-letters one event whose rows Postgres refused (found by bisecting its batch), with the
 * SQLSTATE and message, and moves the checkpoint past it, in one transaction. Like a poison event
 * of the projection, it claims no dedupe key.
 */
export const deadLetterRefused = (
  sql: postgres.Sql,
  projection: Projection,
  generation: Generation,
  expectedCheckpoint: number,
  event: ReadEvent,
  error: unknown
): Promise<BatchResult> =>
  sql.begin(async (tx) => {
    await claimBatch(tx, projection, generation, expectedCheckpoint, "live")
    const refusal = `Postgres refused the event's rows: ${describeFailure(error)}`
    await tx`INSERT INTO ingest.dead_letters (projection, seq, subject, dedupe_key, reason, sqlstate, payload, headers)
             VALUES (${projection.name}, ${event.seq}, ${event.subject}, ${event.dedupeKey}, ${refusal},
                     ${sqlState(error) ?? null}, ${event.data}, ${tx.json(event.headers)})`
    await tx`UPDATE ingest.projections SET checkpoint = ${event.seq}, updated_at = now() WHERE name = ${projection.name} AND generation = ${generation.generation}`
    return { applied: 0, duplicates: 0, skipped: 0, deadLetters: 1, effects: 0, checkpoint: event.seq }
  })

/**
 * Events dead-lettered one after another with nothing projected between them. A few are bad
 * events; a long run is a bug in the projection or a change in the database (a column that now
 * refuses every row), and dead-lettering the whole log would hide it: the run stops, fatal.
 */
export interface DeadLetterStreak {
  count: number
  readonly limit: number
}

/** Dead letters in a row before a projection stops (`--max-dead-letters-in-a-row`). */
export const DEFAULT_DEAD_LETTER_STREAK = 50

export const newStreak = (limit = DEFAULT_DEAD_LETTER_STREAK): DeadLetterStreak => ({ count: 0, limit })

const countStreak = (streak: DeadLetterStreak, result: BatchResult, last?: string): void => {
  streak.count = result.applied + result.skipped + result.duplicates > 0 ? result.deadLetters : streak.count + result.deadLetters
  if (streak.count >= streak.limit)
    throw fatal(
      `${streak.count} events in a row were dead-lettered${last === undefined ? "" : ` (the last: ${last})`}; that is a bug in the projection or a change in the database, not bad events`,
      "fix it, re-drive them (npm run mesh -- dead-letters redrive <name> --all) and start again"
    )
}

const sumResults = (a: BatchResult, b: BatchResult): BatchResult => ({
  applied: a.applied + b.applied,
  duplicates: a.duplicates + b.duplicates,
  skipped: a.skipped + b.skipped,
  deadLetters: a.deadLetters + b.deadLetters,
  effects: a.effects + b.effects,
  checkpoint: b.checkpoint
})

/**
 * {@link applyBatch}, and when Postgres refuses the batch's values (SQLSTATE class 22 or 23),
 * bisects it: each half is applied in log order, so the event found is the first whose rows
 * Postgres refuses given everything before it — whatever the batch boundaries. Live, that event is
 * dead-lettered with the SQLSTATE and the rest projected; in a rebuild it stops the rebuild, named.
 */
export const applyFindingPoison = (
  sql: postgres.Sql,
  projection: Projection,
  generation: Generation,
  expectedCheckpoint: number,
  events: ReadonlyArray<ReadEvent>,
  mode: "live" | "rebuild",
  streak: DeadLetterStreak = newStreak(),
  projected?: ReadonlyMap<ReadEvent, Outcome>
): Promise<BatchResult> => {
  const apply = async (checkpoint: number, slice: ReadonlyArray<ReadEvent>): Promise<BatchResult> => {
    try {
      const result = await applyBatch(sql, projection, generation, checkpoint, slice, mode, projected)
      countStreak(streak, result)
      return result
    } catch (error) {
      if (classifyFailure(error) !== "poison" || slice.length === 0) throw error
      if (slice.length === 1) {
        const event = slice[0] as ReadEvent
        if (mode === "rebuild") throw poisonInRebuild(event, `Postgres refused its rows: ${describeFailure(error)}`)
        const result = await deadLetterRefused(sql, projection, generation, checkpoint, event, error)
        countStreak(streak, result, `Postgres refused the rows of event seq ${event.seq}: ${describeFailure(error)}`)
        return result
      }
      const middle = Math.ceil(slice.length / 2)
      const left = await apply(checkpoint, slice.slice(0, middle))
      return sumResults(left, await apply(left.checkpoint, slice.slice(middle)))
    }
  }
  return apply(
    expectedCheckpoint,
    events.filter((event) => event.seq > expectedCheckpoint).sort((a, b) => a.seq - b.seq)
  )
}

/** What a re-drive did with each dead letter. */
export interface RedriveResult {
  readonly redriven: ReadonlyArray<number>
  readonly stillPoison: ReadonlyArray<{ readonly id: number; readonly reason: string }>
}

/**
 * Projects dead letters again with the current code (after a fix), into the active generation,
 * serialised with the live consumer by the generation's row lock. Letters that now project are
 * marked re-driven; the others keep their place with the new reason. A re-driven event lands
 * after the events that followed it in the log: for tables where the latest row wins, rebuild
 * instead, which projects it in log order.
 */
export const redriveDeadLetters = (
  sql: postgres.Sql,
  projection: Projection,
  generation: Generation,
  ids: ReadonlyArray<number>
): Promise<RedriveResult> =>
  sql.begin(async (tx) => {
    const [row] =
      await tx`SELECT status, version FROM ingest.projections WHERE name = ${projection.name} AND generation = ${generation.generation} FOR UPDATE`
    if (row !== undefined && Number(row.version) > projection.version) throw newerVersion(projection, Number(row.version))
    if (row?.status !== "active")
      throw new CheckpointMoved({ generation: generation.generation, found: undefined, status: row?.status as string | undefined })
    const letters = await tx`SELECT id, seq, subject, headers, payload FROM ingest.dead_letters
                             WHERE projection = ${projection.name} AND redriven_at IS NULL AND id = ANY(${tx.array(ids.map(String))}::bigint[]) ORDER BY seq`
    const letterOf = new Map<ReadEvent, number>()
    const events = letters.map((letter) => {
      const event = readEventOf({
        seq: Number(letter.seq),
        subject: letter.subject as string,
        headers: letter.headers as Record<string, string>,
        data: letter.payload as string
      })
      letterOf.set(event, Number(letter.id))
      return event
    })
    // Each letter in its own savepoint: one whose rows Postgres still refuses stays, the others go on.
    const stillPoison: Array<{ id: number; reason: string }> = []
    for (const event of events) {
      const id = letterOf.get(event) as number
      try {
        const projected = await tx.savepoint((point) => projectInto(point, projection, generation, [event], "collect", true))
        for (const { reason } of projected.dead) stillPoison.push({ id, reason })
      } catch (error) {
        if (classifyFailure(error) !== "poison") throw error
        stillPoison.push({ id, reason: `Postgres refused the event's rows: ${describeFailure(error)}` })
      }
    }
    for (const { id, reason } of stillPoison) await tx`UPDATE ingest.dead_letters SET reason = ${reason} WHERE id = ${id}`
    const poisoned = new Set(stillPoison.map((letter) => letter.id))
    const redriven = letters.map((letter) => Number(letter.id)).filter((id) => !poisoned.has(id))
    if (redriven.length > 0)
      await tx`UPDATE ingest.dead_letters SET redriven_at = now() WHERE id = ANY(${tx.array(redriven.map(String))}::bigint[])`
    return { redriven, stillPoison }
  })
