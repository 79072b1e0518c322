import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { contracts } from "../contracts/sources.ts"
import { natsHeadersFor, toLogMessages } from "../edge/log-message.ts"
import { appendAsEdge } from "../infra/local/append.ts"
import { type LogStack, startLogStack } from "../infra/local/log-stack.ts"
import { martSnapshot } from "../infra/local/marts.ts"
import { oeeEvents, warehouseWorkload } from "../infra/local/samples.ts"
import { oeeProjection } from "../projections/oee/projection.ts"
import { rows } from "../projections/projection.ts"
import { warehouseProjection } from "../projections/warehouse/projection.ts"
import { redriveDeadLetters } from "./apply.ts"
import { rebuildProjection } from "./rebuild.ts"
import { activeGeneration, generations } from "./registry.ts"

let stack: LogStack
let warehouseHead = 0

/** Two intake counts of 2,000,000,000 on one day: each fits the contract, their sum no integer column. */
const overflowing = [1, 2].map((n) => ({
  id: `intake_big_${n}`,
  type: "intake.booked_in",
  timestamp: "2025-02-03T09:00:00Z",
  data: { count: 2_000_000_000 }
}))

beforeAll(async () => {
  stack = await startLogStack()
  const workload = warehouseWorkload(1200)
  await appendAsEdge(stack.js, "erasure", [
    ...workload.slice(0, 500),
    overflowing[0],
    ...workload.slice(500, 900),
    overflowing[1],
    ...workload.slice(900)
  ])
  warehouseHead = (await stack.jsm.streams.info("INGEST_WAREHOUSE")).state.last_seq
  // A downtime reason with a NUL in it, as an edge older than the contract's NUL check appended it: Postgres text cannot hold it.
  const [, , downtime] = oeeEvents("M-07")
  const poisoned = { ...downtime, id: "down_nul", data: { ...(downtime?.data as object), downtime_id: "D-NUL", reason: "jam\u0000" } }
  await appendAsEdge(stack.js, "oee", oeeEvents("M-08"))
  const [message] = toLogMessages(
    "oee",
    contracts.oee,
    [{ index: 0, event: { key: "down_nul", type: "downtime.recorded", occurredAt: "2025-01-15T06:15:00.000Z", payload: poisoned } }],
    {
      receivedAt: new Date().toISOString(),
      traceId: "0".repeat(32)
    }
  )
  if (message === undefined) throw new Error("no message")
  await stack.js.publish(message.subject, message.data, { headers: natsHeadersFor(message) })
  await appendAsEdge(stack.js, "oee", oeeEvents("M-09"))
}, 120_000)

afterAll(async () => {
  await stack?.dispose()
})

const letters = (sql: import("postgres").Sql, projection: string) =>
  sql`SELECT id, seq, dedupe_key, sqlstate, reason, redriven_at FROM ingest.dead_letters WHERE projection = ${projection} ORDER BY seq`

describe("events Postgres refuses, live", () => {
  it("are found by bisecting the batch and dead-lettered with their SQLSTATE; the rest is projected and the marts do not stop", async () => {
    const big = await stack.database()
    const single = await stack.database()
    await stack.projectToHead(big.sql, warehouseProjection, { batchSize: 500 })
    await stack.projectToHead(single.sql, warehouseProjection, { batchSize: 1 })
    for (const { sql } of [big, single]) {
      const dead = await letters(sql, "warehouse")
      expect(dead.map((letter) => [letter.dedupe_key, letter.sqlstate])).toEqual([["erasure:intake_big_2", "22003"]])
      expect(dead[0]?.reason).toMatch(/^Postgres refused the event's rows: 22003 integer out of range/)
      expect((await activeGeneration(sql, "warehouse"))?.checkpoint).toBe(warehouseHead)
      const [day] = await sql`SELECT booked_in FROM mart_warehouse.daily_stats WHERE date = '2025-02-03'`
      expect(Number(day?.booked_in)).toBeGreaterThanOrEqual(2_000_000_000)
    }
    // The same event is refused whatever the batch boundaries, so the marts are the same.
    expect(await martSnapshot(single.sql, warehouseProjection)).toEqual(await martSnapshot(big.sql, warehouseProjection))
  })

  it("dead-letters a text with a NUL from an older edge (22021) and projects the events around it", async () => {
    const { sql } = await stack.database()
    await stack.projectToHead(sql, oeeProjection, { batchSize: 100 })
    expect((await letters(sql, "oee")).map((letter) => [letter.dedupe_key, letter.sqlstate])).toEqual([["oee:down_nul", "22021"]])
    expect((await sql`SELECT machine_id FROM mart_oee.oee_snapshots ORDER BY machine_id`).map((row) => row.machine_id)).toEqual([
      "M-08",
      "M-09"
    ])
  })

  it("stay dead letters when re-driven while Postgres still refuses them, with the reason, and the re-drive fails nothing else", async () => {
    const { sql } = await stack.database()
    await stack.projectToHead(sql, warehouseProjection, { batchSize: 500 })
    const [letter] = await letters(sql, "warehouse")
    const result = await redriveDeadLetters(
      sql,
      warehouseProjection,
      (await activeGeneration(sql, "warehouse")) as NonNullable<Awaited<ReturnType<typeof activeGeneration>>>,
      [Number(letter?.id)]
    )
    expect(result.redriven).toEqual([])
    expect(result.stillPoison).toEqual([
      { id: Number(letter?.id), reason: expect.stringMatching(/^Postgres refused the event's rows: 22003/) }
    ])
    expect((await letters(sql, "warehouse"))[0]?.redriven_at).toBeNull()
  })
})

describe("a projection whose every row Postgres refuses (a bug, not bad events)", () => {
  it("stops, fatal, after 50 dead letters in a row instead of dead-lettering the whole log", async () => {
    const { sql } = await stack.database()
    // A broken deploy: the day of every count left empty, which the NOT NULL key refuses (23502).
    const broken = { ...warehouseProjection, project: () => rows({ daily_stats: [{ date: null, booked_in: 1, erased: 0, qa: 0 }] }) }
    await expect(stack.projectToHead(sql, broken, { batchSize: 500 })).rejects.toThrow(
      /50 events in a row were dead-lettered \(the last: Postgres refused the rows of event seq \d+: 23502 .*\); that is a bug in the projection/
    )
    expect((await letters(sql, "warehouse")).length).toBe(50)
  })
})

describe("an event Postgres refuses, in a rebuild", () => {
  it("stops the rebuild naming the event and its SQLSTATE; the live marts stay as they were and nothing is left building", async () => {
    const { sql } = await stack.database()
    await stack.projectToHead(sql, warehouseProjection, { batchSize: 500 })
    const before = await martSnapshot(sql, warehouseProjection)
    const live = await activeGeneration(sql, "warehouse")
    await expect(rebuildProjection({ sql, nc: stack.projector, projection: warehouseProjection, batchSize: 300 })).rejects.toThrow(
      /event seq \d+ \(ingest\.warehouse\.erasure\.intake_booked_in, key erasure:intake_big_2\) cannot be projected: Postgres refused its rows: 22003 integer out of range/
    )
    expect(await activeGeneration(sql, "warehouse")).toEqual(live)
    expect((await generations(sql, "warehouse")).map((generation) => generation.status)).toEqual(["active"])
    expect(await martSnapshot(sql, warehouseProjection)).toEqual(before)
  })
})
