import type { NatsConnection } from "@nats-io/nats-core"
import postgres from "postgres"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { rebuildProjection } from "../../consumers/rebuild.ts"
import { appendAsEdge } from "../../infra/local/append.ts"
import { type LogStack, startLogStack } from "../../infra/local/log-stack.ts"
import { martSnapshot } from "../../infra/local/marts.ts"
import { oeeProjection } from "./projection.ts"

let stack: LogStack
let sql: postgres.Sql
let projector: NatsConnection

const DAY_START = Date.parse("2025-01-15T00:00:00Z")
const at = (minutes: number) => new Date(DAY_START + minutes * 60_000).toISOString()
const event = (id: string, type: string, data: object) => ({ id, type, timestamp: at(0), data })

/** A known day: two machines, 96 snapshots each, and stops that span snapshot boundaries. */
const day = () => [
  event("line", "line.upserted", { id: "L-1", name: "Pressing" }),
  event("m1", "machine.upserted", { id: "M-01", name: "Press 1", code: "P1", line_id: "L-1" }),
  event("m2", "machine.upserted", { id: "M-02", name: "Press 2", code: "P2", line_id: "L-1" }),
  event("shift", "shift.upserted", { id: "S-1", name: "Day", start_time: "00:00", end_time: "23:59" }),
  event("product", "product.upserted", { id: "PR-9", name: "Bracket", sku: "BRK-9" }),
  event("wo", "work_order.upserted", { id: "WO-1", wo_number: "WO-2025-0001", product_id: "PR-9", status: "released" }),
  ...["M-01", "M-02"].flatMap((machine) =>
    Array.from({ length: 96 }, (_, k) => ({
      id: `snap-${machine}-${k}`,
      type: "snapshot.recorded",
      timestamp: at(15 * (k + 1)),
      data: {
        machine_id: machine,
        line_id: "L-1",
        shift_id: "S-1",
        work_order_id: "WO-1",
        snapshot_time: at(15 * (k + 1)),
        oee_pct: 80,
        availability_pct: 90,
        performance_pct: 95,
        quality_pct: 93.6,
        total_pieces: 100,
        good_pieces: 94,
        rejected_pieces: 6,
        planned_production_time: 15,
        actual_production_time: 13.5
      }
    }))
  ),
  event("d1", "downtime.recorded", {
    downtime_id: "D1",
    machine_id: "M-01",
    start_time: at(10 * 60 + 5),
    end_time: at(10 * 60 + 40),
    duration_minutes: 35,
    is_planned: false
  }),
  event("d2", "downtime.recorded", {
    downtime_id: "D2",
    machine_id: "M-01",
    start_time: at(12 * 60),
    end_time: at(12 * 60 + 30),
    duration_minutes: 30,
    is_planned: true
  }),
  event("d3", "downtime.recorded", {
    downtime_id: "D3",
    machine_id: "M-01",
    start_time: at(15 * 60 + 50),
    end_time: null,
    duration_minutes: 20,
    is_planned: false
  }),
  event("d4", "downtime.recorded", {
    downtime_id: "D4",
    machine_id: "M-02",
    start_time: at(23 * 60 + 50),
    end_time: at(24 * 60 + 20),
    duration_minutes: 30,
    is_planned: false
  }),
  event("d5", "downtime.recorded", {
    downtime_id: "D5",
    machine_id: "M-02",
    start_time: at(6 * 60),
    end_time: at(6 * 60 + 5),
    duration_minutes: 5,
    is_planned: true
  }),
  event("d6", "downtime.recorded", {
    downtime_id: "D6",
    machine_id: "M-02",
    start_time: at(6 * 60 + 5),
    end_time: at(6 * 60 + 14),
    duration_minutes: 9,
    is_planned: false
  })
]

/** Worked by hand: minutes of each stop inside each snapshot's window [t - 15 min, t). */
const HAND_COMPUTED = [
  {
    machine_id: "M-01",
    snapshot_time: "2025-01-15T10:15:00.000Z",
    downtime_minutes: 10,
    planned_downtime_minutes: 0,
    unplanned_downtime_minutes: 10
  },
  {
    machine_id: "M-01",
    snapshot_time: "2025-01-15T10:30:00.000Z",
    downtime_minutes: 15,
    planned_downtime_minutes: 0,
    unplanned_downtime_minutes: 15
  },
  {
    machine_id: "M-01",
    snapshot_time: "2025-01-15T10:45:00.000Z",
    downtime_minutes: 10,
    planned_downtime_minutes: 0,
    unplanned_downtime_minutes: 10
  },
  {
    machine_id: "M-01",
    snapshot_time: "2025-01-15T12:15:00.000Z",
    downtime_minutes: 15,
    planned_downtime_minutes: 15,
    unplanned_downtime_minutes: 0
  },
  {
    machine_id: "M-01",
    snapshot_time: "2025-01-15T12:30:00.000Z",
    downtime_minutes: 15,
    planned_downtime_minutes: 15,
    unplanned_downtime_minutes: 0
  },
  {
    machine_id: "M-01",
    snapshot_time: "2025-01-15T16:00:00.000Z",
    downtime_minutes: 10,
    planned_downtime_minutes: 0,
    unplanned_downtime_minutes: 10
  },
  {
    machine_id: "M-01",
    snapshot_time: "2025-01-15T16:15:00.000Z",
    downtime_minutes: 10,
    planned_downtime_minutes: 0,
    unplanned_downtime_minutes: 10
  },
  {
    machine_id: "M-02",
    snapshot_time: "2025-01-15T06:15:00.000Z",
    downtime_minutes: 14,
    planned_downtime_minutes: 5,
    unplanned_downtime_minutes: 9
  },
  {
    machine_id: "M-02",
    snapshot_time: "2025-01-16T00:00:00.000Z",
    downtime_minutes: 10,
    planned_downtime_minutes: 0,
    unplanned_downtime_minutes: 10
  }
]

beforeAll(async () => {
  stack = await startLogStack()
  ;({ sql } = await stack.database())
  projector = stack.projector
  await appendAsEdge(stack.js, "oee", day())
  await stack.projectToHead(sql, oeeProjection)
}, 120_000)

afterAll(async () => {
  await stack?.dispose()
})

describe("the oee_data_mart view over a known day", () => {
  it("has one row per snapshot, 96 per machine", async () => {
    expect(
      JSON.parse(
        JSON.stringify(await sql`SELECT machine_id, count(*)::int AS n FROM mart_oee.oee_data_mart GROUP BY machine_id ORDER BY machine_id`)
      )
    ).toEqual([
      { machine_id: "M-01", n: 96 },
      { machine_id: "M-02", n: 96 }
    ])
  })

  it("splits downtime between the snapshots it spans, planned and unplanned, as computed by hand", async () => {
    const rows =
      await sql`SELECT machine_id, snapshot_time, downtime_minutes::float8 AS downtime_minutes, planned_downtime_minutes::float8 AS planned_downtime_minutes,
                                  unplanned_downtime_minutes::float8 AS unplanned_downtime_minutes
                           FROM mart_oee.oee_data_mart WHERE downtime_minutes > 0 ORDER BY machine_id, snapshot_time`
    expect(rows.map((row) => ({ ...row, snapshot_time: (row.snapshot_time as Date).toISOString() }))).toEqual(HAND_COMPUTED)
  })

  it("joins each snapshot to its machine, line, shift, work order and product", async () => {
    const [row] = await sql`SELECT machine_name, machine_code, line_name, shift_name, wo_number, product_name, oee_pct::float8 AS oee_pct
                            FROM mart_oee.oee_data_mart WHERE snapshot_id = 'snap-M-02-0'`
    expect(row).toEqual({
      machine_name: "Press 2",
      machine_code: "P2",
      line_name: "Pressing",
      shift_name: "Day",
      wo_number: "WO-2025-0001",
      product_name: "Bracket",
      oee_pct: 80
    })
  })

  it("is rebuilt from the log equal to the live marts", async () => {
    const before = await martSnapshot(sql, oeeProjection)
    const result = await rebuildProjection({ sql, nc: projector, projection: oeeProjection })
    expect(result.dropped).toEqual(["proj_oee_g1"])
    expect(await martSnapshot(sql, oeeProjection)).toEqual(before)
  })
})
