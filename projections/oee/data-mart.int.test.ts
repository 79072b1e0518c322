import fc from "fast-check"
import postgres from "postgres"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { applyBatch } from "../../consumers/apply.ts"
import { type ReadEvent, readEventOf } from "../../consumers/events.ts"
import { createGeneration, dropRetired, type Generation } from "../../consumers/registry.ts"
import { ensureRuntimeTables } from "../../consumers/runtime-tables.ts"
import { activate } from "../../consumers/switch.ts"
import { LogHeaders, subjectFor } from "../../contracts/log.ts"
import { createDatabase, type PostgresServer, startPostgres } from "../../infra/postgres/database.ts"
import { qualified } from "../../platform/sql.ts"
import { dataMartFill, dataMartLoad, dataMartQuery, dataMartSources } from "./marts.ts"
import { oeeProjection } from "./projection.ts"

/**
 * The data mart table, kept by triggers as the projection writes, against the query the
 * `oee_data_mart` view ran, over the same base tables: random OEE logs (snapshots re-recorded and
 * moved, stops that span snapshots and are moved by later events, open stops, masters renamed,
 * work orders given another product) projected in random batches through the runtime's batch
 * transaction, compared row for row and column for column after every batch; then base rows
 * deleted and re-keyed in plain SQL, and the whole table filled again in one statement.
 * FUZZ_SEED replays a run, OEE_MART_RUNS sizes it.
 */

const SEED = Number(process.env.FUZZ_SEED ?? 20261202)
const RUNS = Number(process.env.OEE_MART_RUNS ?? 40)

let pg: PostgresServer
let database: { url: string; drop: () => Promise<void> }
let sql: postgres.Sql

beforeAll(async () => {
  pg = await startPostgres()
  database = await createDatabase(pg.url)
  sql = postgres(database.url, { max: 2, onnotice: () => {} })
  await ensureRuntimeTables(sql)
})

afterAll(async () => {
  await sql?.end()
  await database?.drop()
  await pg?.dispose()
})

interface Envelope {
  readonly id: string
  readonly type: string
  readonly timestamp: string
  readonly data: Readonly<Record<string, unknown>>
}

/** Two hours of a shop floor: snapshots and stops at any second in it, so stops overlap windows, span several, or none. */
const T0 = Date.parse("2025-01-15T06:00:00Z")
const at = (seconds: number) => new Date(T0 + seconds * 1000).toISOString()
const second = fc.integer({ min: -30 * 60, max: 2 * 3600 })

const pick = (prefix: string, count: number) => fc.integer({ min: 0, max: count - 1 }).map((i) => `${prefix}${i}`)
// Small pools: ids recur, so snapshots and stops are recorded again, masters renamed, and some referenced before their master arrives.
const machine = pick("M-", 3)
const line = pick("L-", 3)
const shift = pick("S-", 3)
const workOrder = pick("WO-", 4)
const product = pick("P-", 4)
const name = fc.constantFrom("Alpha", "Beta", "Gamma")
const percent = fc.integer({ min: 0, max: 1000 }).map((tenths) => tenths / 10)
const optional = <T>(value: fc.Arbitrary<T>) => fc.option(value, { nil: undefined })

const withoutUndefined = (data: Record<string, unknown>) =>
  Object.fromEntries(Object.entries(data).filter(([, value]) => value !== undefined))

const snapshot = fc
  .record({
    snapshot_id: pick("snap-", 10),
    machine_id: machine,
    line_id: optional(line),
    shift_id: optional(shift),
    work_order_id: optional(workOrder),
    at: second,
    oee_pct: percent,
    total_pieces: fc.integer({ min: 0, max: 500 })
  })
  .map(({ at: time, ...s }) => ({
    type: "snapshot.recorded",
    data: withoutUndefined({
      ...s,
      snapshot_time: at(time),
      availability_pct: 90,
      performance_pct: s.oee_pct,
      quality_pct: 97.5,
      good_pieces: s.total_pieces,
      rejected_pieces: 0,
      planned_production_time: 15,
      actual_production_time: 13.5
    })
  }))

/** A stop, recorded again under the same id to move it, end it, or change its machine; sometimes open (no end), sometimes ending before it starts. */
const downtime = fc
  .record({
    downtime_id: pick("D-", 6),
    machine_id: machine,
    start: second,
    length: fc.oneof(fc.constant(null), fc.integer({ min: -120, max: 75 * 60 })),
    duration_minutes: fc.integer({ min: 0, max: 180 }).map((halves) => halves / 2),
    is_planned: fc.boolean(),
    resolved: optional(fc.boolean())
  })
  .map(({ start, length, ...d }) => ({
    type: "downtime.recorded",
    data: withoutUndefined({ ...d, start_time: at(start), end_time: length === null ? null : at(start + length) })
  }))

const master = fc.oneof(
  fc.record({ id: machine, name, code: optional(name) }).map((data) => ({ type: "machine.upserted", data: withoutUndefined(data) })),
  fc.record({ id: line, name }).map((data) => ({ type: "line.upserted", data })),
  fc.record({ id: shift, name }).map((data) => ({ type: "shift.upserted", data })),
  fc
    .record({ id: workOrder, wo_number: name, product_id: optional(product), status: optional(fc.constantFrom("released", "done")) })
    .map((data) => ({ type: "work_order.upserted", data: withoutUndefined(data) })),
  fc.record({ id: product, name, sku: optional(name) }).map((data) => ({ type: "product.upserted", data: withoutUndefined(data) }))
)

const report = fc
  .record({ report_id: pick("R-", 3), shift_id: shift, status: fc.constantFrom("open", "closed") })
  .map((data) => ({ type: "shift_report.submitted", data: { ...data, report_date: "2025-01-15" } }))

/** A log in the order it arrived, and how the runtime cut it into batches. */
const logs = fc.record({
  events: fc
    .array(fc.oneof({ arbitrary: snapshot, weight: 4 }, { arbitrary: downtime, weight: 3 }, { arbitrary: master, weight: 3 }, report), {
      minLength: 1,
      maxLength: 60,
      size: "medium"
    })
    .map((events): ReadonlyArray<Envelope> => events.map((event, i) => ({ id: `e${i}`, timestamp: at(0), ...event }))),
  batches: fc.array(fc.integer({ min: 1, max: 12 }), { minLength: 1, maxLength: 10 }),
  /** Plain SQL on the base tables afterwards: deletes the projection never makes, and a snapshot given a new key. */
  afterwards: fc.array(
    fc.oneof(
      ...(
        [
          ["oee_snapshots", pick("snap-", 10)],
          ["oee_downtime_events", pick("D-", 6)],
          ["machines", machine],
          ["production_lines", line],
          ["shifts", shift],
          ["work_orders", workOrder],
          ["products", product]
        ] as const
      ).map(([table, id]) => id.map((key) => ({ table, id: key }))),
      fc.record({ rekey: pick("snap-", 10) })
    ),
    { maxLength: 4 }
  )
})

const logEventOf = (event: Envelope, seq: number): ReadEvent =>
  readEventOf({
    seq,
    subject: subjectFor("oee", "oee", event.type),
    headers: {
      [LogHeaders.source]: "oee",
      [LogHeaders.type]: event.type,
      [LogHeaders.schema]: "oee/v1",
      [LogHeaders.key]: event.id,
      [LogHeaders.occurredAt]: event.timestamp,
      [LogHeaders.receivedAt]: event.timestamp
    },
    data: JSON.stringify(event)
  })

/** A fresh active generation of the oee marts, the previous one dropped. */
const freshGeneration = async (): Promise<Generation> => {
  const generation = await createGeneration(sql, oeeProjection)
  await sql.begin((tx) => activate(tx, oeeProjection, generation))
  await dropRetired(sql, oeeProjection.name)
  return { ...generation, status: "active" }
}

/**
 * One generation for every run of the property, emptied between runs: its base tables and the
 * data mart truncated (no trigger fires), the log going on where the last run stopped, under event
 * ids of its own.
 */
const reusedGeneration = () => {
  let generation: Promise<Generation> | undefined
  let checkpoint = 0
  let run = 0
  return async () => {
    generation ??= freshGeneration()
    const { schema } = await generation
    await sql.unsafe(
      `TRUNCATE ${[...oeeProjection.tables.map((table) => table.name), "oee_data_mart"].map((name) => qualified(schema, name)).join(", ")}`
    )
    run++
    return {
      generation: await generation,
      logOf: (events: ReadonlyArray<Envelope>) =>
        events.map((event, i) => logEventOf({ ...event, id: `r${run}-${event.id}` }, checkpoint + i + 1)),
      apply: async (batch: ReadonlyArray<ReadEvent>) => {
        checkpoint = (await applyBatch(sql, oeeProjection, await (generation as Promise<Generation>), checkpoint, batch, "live")).checkpoint
        return checkpoint
      }
    }
  }
}

/** The data mart table and the view's query over the same base tables, each row with every column, by snapshot. */
const tableAndQuery = async (schema: string) => ({
  table: await sql.unsafe(`SELECT * FROM ${qualified(schema, "oee_data_mart")} ORDER BY snapshot_id`),
  query: await sql.unsafe(`SELECT * FROM (${dataMartQuery(schema)}) q ORDER BY snapshot_id`)
})

/** What the compared rows held, over a whole property run: the generator must reach the cases that matter. */
const seen = { rows: 0, partialDowntime: 0, fullWindow: 0, plannedAndUnplanned: 0, products: 0, movedStops: 0 }

const expectEqual = async (schema: string, when: string) => {
  const { table, query } = await tableAndQuery(schema)
  expect(table.columns.map((column) => column.name)).toEqual(query.columns.map((column) => column.name))
  expect([...table], when).toEqual([...query])
  for (const row of query) {
    const minutes = Number(row.downtime_minutes)
    seen.rows++
    if (minutes > 0 && minutes < 15) seen.partialDowntime++
    if (minutes === 15) seen.fullWindow++
    if (Number(row.planned_downtime_minutes) > 0 && Number(row.unplanned_downtime_minutes) > 0) seen.plannedAndUnplanned++
    if (row.product_name !== null) seen.products++
  }
}

describe("the oee data mart table", () => {
  it(`equals the old view's query after every batch of random logs, every delete and a refill (FUZZ_SEED=${SEED}, ${RUNS} runs)`, async () => {
    console.log(`oee data mart property: FUZZ_SEED=${SEED} OEE_MART_RUNS=${RUNS} (FUZZ_SEED reproduces this run)`)
    let compared = 0
    const nextRun = reusedGeneration()
    await fc.assert(
      fc.asyncProperty(logs, async ({ events, batches, afterwards }) => {
        const { generation, logOf, apply } = await nextRun()
        const { schema } = generation
        const log = logOf(events)
        const stops = events.filter((event) => event.type === "downtime.recorded").map((event) => event.data.downtime_id)
        if (new Set(stops).size < stops.length) seen.movedStops++
        for (let start = 0, b = 0; start < log.length; b++) {
          const size = batches[b % batches.length] as number
          const batch = log.slice(start, start + size)
          const checkpoint = await apply(batch)
          start += size
          await expectEqual(schema, `after events ${batch[0]?.seq}..${checkpoint}`)
          compared++
        }
        for (const statement of afterwards) {
          if ("rekey" in statement)
            await sql.unsafe(`UPDATE ${qualified(schema, "oee_snapshots")} SET id = id || '-moved' WHERE id = $1`, [statement.rekey])
          else await sql.unsafe(`DELETE FROM ${qualified(schema, statement.table)} WHERE id = $1`, [statement.id])
          await expectEqual(schema, `after ${JSON.stringify(statement)}`)
        }
        await sql.unsafe(`TRUNCATE ${qualified(schema, "oee_data_mart")}`)
        await sql.unsafe(dataMartFill(schema))
        await expectEqual(schema, "after the fill")
      }),
      { seed: SEED, numRuns: RUNS }
    )
    console.log(`oee data mart property: ${compared} batches compared`, seen)
    expect(compared).toBeGreaterThan(RUNS)
    if (RUNS >= 20) for (const [what, count] of Object.entries(seen)) expect(count, what).toBeGreaterThan(0)
  }, 300_000)

  it("is computed whole after a load written with its triggers off, and kept by them once they are on again", async () => {
    const { schema } = await freshGeneration()
    const t = (name: string) => qualified(schema, name)
    for (const table of dataMartSources) await sql.unsafe(`ALTER TABLE ${t(table)} DISABLE TRIGGER USER`)
    await sql.unsafe(`INSERT INTO ${t("machines")} (id, name) VALUES ('M-1', 'Press')`)
    await sql.unsafe(
      `INSERT INTO ${t("oee_snapshots")} (id, snapshot_time, machine_id, oee_pct, availability_pct, performance_pct, quality_pct, total_pieces, good_pieces, rejected_pieces, planned_production_time, actual_production_time)
       SELECT 'snap-' || g, timestamptz '2025-01-15T06:00:00Z' + g * interval '15 minutes', 'M-1', 80, 90, 95, 93.6, 100, 94, 6, 15, 13.5 FROM generate_series(1, 8) g`
    )
    await sql.unsafe(
      `INSERT INTO ${t("oee_downtime_events")} (id, machine_id, start_time, end_time, duration_minutes, is_planned) VALUES ('D-1', 'M-1', '2025-01-15T06:20:00Z', '2025-01-15T07:05:00Z', 45, false)`
    )
    expect(await sql.unsafe(`SELECT * FROM ${t("oee_data_mart")}`)).toHaveLength(0)
    for (const table of dataMartSources) await sql.unsafe(`ALTER TABLE ${t(table)} ENABLE TRIGGER USER`)
    for (const statement of dataMartLoad(schema)) await sql.unsafe(statement)
    await expectEqual(schema, "after the load")
    const [stopped] = await sql.unsafe(
      `SELECT sum(downtime_minutes)::float8 AS minutes FROM ${t("oee_data_mart")} WHERE snapshot_id IN ('snap-2', 'snap-3', 'snap-4', 'snap-5')`
    )
    expect(stopped?.minutes).toBe(45)
    await sql.unsafe(`UPDATE ${t("machines")} SET name = 'Press 2'`)
    await sql.unsafe(`UPDATE ${t("oee_downtime_events")} SET start_time = '2025-01-15T07:20:00Z', end_time = '2025-01-15T07:25:00Z'`)
    await expectEqual(schema, "after a rename and a moved stop")
    expect(await sql.unsafe(`SELECT DISTINCT machine_name FROM ${t("oee_data_mart")}`)).toEqual([{ machine_name: "Press 2" }])
  })
})
