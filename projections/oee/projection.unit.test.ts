import { describe, expect, it } from "vitest"
import { oeeEvents } from "../../infra/local/samples.ts"
import type { LogEvent, Outcome } from "../projection.ts"
import type { Row } from "../table.ts"
import { oeeProjection } from "./projection.ts"

type Envelope = { readonly id: string; readonly type: string; readonly timestamp: string; readonly data: unknown }

/** An OEE gateway's event as the runtime reads it from the log (see consumers/events.ts). */
const logEvent = (payload: Envelope): LogEvent => ({
  seq: 1,
  subject: `ingest.oee.oee.${payload.type.replace(".", "_")}`,
  source: "oee",
  type: payload.type,
  dedupeKey: `oee:${payload.id}`,
  occurredAt: new Date(payload.timestamp).toISOString(),
  receivedAt: "2025-01-15T12:00:00.000Z",
  schema: "oee/v1",
  payload
})

const project = (id: string, type: string, data: unknown): Outcome =>
  oeeProjection.project(logEvent({ id, type, timestamp: "2025-01-15T06:15:00Z", data }))

const rowOf = (outcome: Outcome, table: string): Row => {
  if (outcome._tag !== "Rows") throw new Error(`expected Rows, got ${JSON.stringify(outcome)}`)
  const [row, ...more] = outcome.rows[table] ?? []
  if (row === undefined || more.length > 0 || Object.keys(outcome.rows).length !== 1)
    throw new Error(`expected one ${table} row, got ${JSON.stringify(outcome)}`)
  return row
}
const poisonReason = (outcome: Outcome): string => {
  if (outcome._tag !== "Poison") throw new Error(`expected Poison, got ${JSON.stringify(outcome)}`)
  return outcome.reason
}

const snapshot = {
  machine_id: "M-01",
  snapshot_time: "2025-01-15T06:15:00Z",
  oee_pct: 71.5,
  availability_pct: 90,
  performance_pct: 85,
  quality_pct: 93.5,
  total_pieces: 200,
  good_pieces: 187,
  rejected_pieces: 13,
  planned_production_time: 15,
  actual_production_time: 13.5
}

describe("oee projection: snapshots", () => {
  it("writes a snapshot with every id it carries, under its own snapshot id", () => {
    const data = { ...snapshot, snapshot_id: "SNAP-1", org_id: "ORG-1", line_id: "L-1", shift_id: "S-1", work_order_id: "WO-1" }
    expect(project("evt_1", "snapshot.recorded", data)).toEqual({
      _tag: "Rows",
      rows: {
        oee_snapshots: [
          {
            id: "SNAP-1",
            snapshot_time: "2025-01-15T06:15:00.000Z",
            org_id: "ORG-1",
            machine_id: "M-01",
            line_id: "L-1",
            shift_id: "S-1",
            work_order_id: "WO-1",
            oee_pct: 71.5,
            availability_pct: 90,
            performance_pct: 85,
            quality_pct: 93.5,
            total_pieces: 200,
            good_pieces: 187,
            rejected_pieces: 13,
            planned_production_time: 15,
            actual_production_time: 13.5
          }
        ]
      }
    })
  })

  it("keys a snapshot without a snapshot id by its envelope id, and writes the ids it lacks as null", () => {
    expect(rowOf(project("evt_2", "snapshot.recorded", snapshot), "oee_snapshots")).toMatchObject({
      id: "evt_2",
      org_id: null,
      line_id: null,
      shift_id: null,
      work_order_id: null
    })
  })

  it("writes snapshot_time as an ISO instant in UTC, whatever zone the gateway sent", () => {
    const row = rowOf(project("evt_3", "snapshot.recorded", { ...snapshot, snapshot_time: "2025-01-15T08:15:00+02:00" }), "oee_snapshots")
    expect(row.snapshot_time).toBe("2025-01-15T06:15:00.000Z")
    expect(
      rowOf(project("evt_4", "snapshot.recorded", { ...snapshot, snapshot_time: "2025-01-15T06:15Z" }), "oee_snapshots").snapshot_time
    ).toBe("2025-01-15T06:15:00.000Z")
  })

  it("reads snapshot_time from the data, not the envelope's timestamp", () => {
    const outcome = oeeProjection.project(
      logEvent({ id: "evt_5", type: "snapshot.recorded", timestamp: "2025-01-15T09:00:00Z", data: snapshot })
    )
    expect(rowOf(outcome, "oee_snapshots").snapshot_time).toBe("2025-01-15T06:15:00.000Z")
  })

  it("projects the sample gateway's machine, snapshot and stop", () => {
    const [machine, snap, stop] = oeeEvents("M-07").map((payload) => oeeProjection.project(logEvent(payload)))
    expect(rowOf(machine as Outcome, "machines")).toEqual({ id: "M-07", name: "Press M-07", code: "M-07", line_id: "L-1" })
    expect(rowOf(snap as Outcome, "oee_snapshots")).toMatchObject({
      id: `snap_M-07_${Date.parse("2025-01-15T06:15:00Z")}`,
      machine_id: "M-07",
      good_pieces: 187
    })
    expect(rowOf(stop as Outcome, "oee_downtime_events")).toMatchObject({
      start_time: "2025-01-15T06:11:00.000Z",
      end_time: "2025-01-15T06:14:00.000Z"
    })
  })
})

describe("oee projection: downtime", () => {
  it("writes a resolved stop with its times in UTC", () => {
    const data = {
      downtime_id: "D1",
      machine_id: "M-01",
      line_id: "L-1",
      start_time: "2025-01-15T11:05:00+01:00",
      end_time: "2025-01-15T10:40:00Z",
      duration_minutes: 35,
      is_planned: false,
      reason: "jam",
      category: "mechanical",
      resolved: true
    }
    expect(project("evt_d1", "downtime.recorded", data)).toEqual({
      _tag: "Rows",
      rows: {
        oee_downtime_events: [
          {
            id: "D1",
            machine_id: "M-01",
            line_id: "L-1",
            start_time: "2025-01-15T10:05:00.000Z",
            end_time: "2025-01-15T10:40:00.000Z",
            duration_minutes: 35,
            is_planned: false,
            reason: "jam",
            category: "mechanical",
            resolved: true
          }
        ]
      }
    })
  })

  it("writes a stop still open, with end_time null or absent, as ending nowhere, and what it lacks as null", () => {
    const open = { downtime_id: "D3", machine_id: "M-01", start_time: "2025-01-15T15:50:00Z", duration_minutes: 20, is_planned: true }
    const expected = {
      id: "D3",
      machine_id: "M-01",
      line_id: null,
      start_time: "2025-01-15T15:50:00.000Z",
      end_time: null,
      duration_minutes: 20,
      is_planned: true,
      reason: null,
      category: null,
      resolved: null
    }
    expect(rowOf(project("evt_d3", "downtime.recorded", open), "oee_downtime_events")).toEqual(expected)
    expect(rowOf(project("evt_d3", "downtime.recorded", { ...open, end_time: null }), "oee_downtime_events")).toEqual(expected)
  })

  it("keeps an explicit resolved: false", () => {
    const data = {
      downtime_id: "D4",
      machine_id: "M-01",
      start_time: "2025-01-15T15:50:00Z",
      duration_minutes: 0,
      is_planned: false,
      resolved: false
    }
    expect(rowOf(project("evt_d4", "downtime.recorded", data), "oee_downtime_events")).toMatchObject({
      resolved: false,
      duration_minutes: 0
    })
  })
})

describe("oee projection: shift reports", () => {
  it("writes a full report as sent, its report date unchanged", () => {
    const data = {
      report_id: "R-1",
      shift_id: "S-1",
      line_id: "L-1",
      machine_id: "M-01",
      report_date: "2025-01-15",
      status: "submitted",
      oee_pct: 78.2,
      total_pieces: 1000,
      good_pieces: 960,
      rejected_pieces: 40,
      downtime_minutes: 42.5,
      notes: "die change at 10:00"
    }
    expect(project("evt_r1", "shift_report.submitted", data)).toEqual({
      _tag: "Rows",
      rows: {
        shift_reports: [
          {
            id: "R-1",
            shift_id: "S-1",
            line_id: "L-1",
            machine_id: "M-01",
            report_date: "2025-01-15",
            status: "submitted",
            oee_pct: 78.2,
            total_pieces: 1000,
            good_pieces: 960,
            rejected_pieces: 40,
            downtime_minutes: 42.5,
            notes: "die change at 10:00"
          }
        ]
      }
    })
  })

  it("writes a minimal report with null for everything it leaves out", () => {
    expect(
      rowOf(
        project("evt_r2", "shift_report.submitted", { report_id: "R-2", shift_id: "S-2", report_date: "2025-01-16", status: "draft" }),
        "shift_reports"
      )
    ).toEqual({
      id: "R-2",
      shift_id: "S-2",
      line_id: null,
      machine_id: null,
      report_date: "2025-01-16",
      status: "draft",
      oee_pct: null,
      total_pieces: null,
      good_pieces: null,
      rejected_pieces: null,
      downtime_minutes: null,
      notes: null
    })
  })
})

describe("oee projection: master data", () => {
  it("upserts a machine by id", () => {
    expect(project("evt_m", "machine.upserted", { id: "M-01", name: "Press 1", code: "P1", line_id: "L-1" })).toEqual({
      _tag: "Rows",
      rows: { machines: [{ id: "M-01", name: "Press 1", code: "P1", line_id: "L-1" }] }
    })
    expect(rowOf(project("evt_m", "machine.upserted", { id: "M-02", name: "Press 2" }), "machines")).toEqual({
      id: "M-02",
      name: "Press 2",
      code: null,
      line_id: null
    })
  })

  it("upserts a production line by id", () => {
    expect(project("evt_l", "line.upserted", { id: "L-1", name: "Pressing" })).toEqual({
      _tag: "Rows",
      rows: { production_lines: [{ id: "L-1", name: "Pressing" }] }
    })
  })

  it("upserts a shift by id, its times of day as sent", () => {
    expect(project("evt_s", "shift.upserted", { id: "S-1", name: "Day", start_time: "06:00", end_time: "14:00" })).toEqual({
      _tag: "Rows",
      rows: { shifts: [{ id: "S-1", name: "Day", start_time: "06:00", end_time: "14:00" }] }
    })
    expect(rowOf(project("evt_s", "shift.upserted", { id: "S-2", name: "Night" }), "shifts")).toEqual({
      id: "S-2",
      name: "Night",
      start_time: null,
      end_time: null
    })
  })

  it("upserts a work order by id", () => {
    expect(
      project("evt_w", "work_order.upserted", { id: "WO-1", wo_number: "WO-2025-0001", product_id: "PR-9", status: "released" })
    ).toEqual({
      _tag: "Rows",
      rows: { work_orders: [{ id: "WO-1", wo_number: "WO-2025-0001", product_id: "PR-9", status: "released" }] }
    })
    expect(rowOf(project("evt_w", "work_order.upserted", { id: "WO-2", wo_number: "WO-2025-0002" }), "work_orders")).toEqual({
      id: "WO-2",
      wo_number: "WO-2025-0002",
      product_id: null,
      status: null
    })
  })

  it("upserts a product by id", () => {
    expect(project("evt_p", "product.upserted", { id: "PR-9", name: "Bracket", sku: "BRK-9" })).toEqual({
      _tag: "Rows",
      rows: { products: [{ id: "PR-9", name: "Bracket", sku: "BRK-9" }] }
    })
    expect(rowOf(project("evt_p", "product.upserted", { id: "PR-10", name: "Hinge" }), "products")).toEqual({
      id: "PR-10",
      name: "Hinge",
      sku: null
    })
  })
})

describe("oee projection: events that break the contract", () => {
  it.each([
    ["a percentage above 100", "snapshot.recorded", { ...snapshot, oee_pct: 100.5 }, "$.data.oee_pct"],
    ["a fractional piece count", "snapshot.recorded", { ...snapshot, good_pieces: 1.5 }, "$.data.good_pieces"],
    ["a snapshot time without a zone", "snapshot.recorded", { ...snapshot, snapshot_time: "2025-01-15T06:15:00" }, "$.data.snapshot_time"],
    [
      "a stop whose is_planned is not a boolean",
      "downtime.recorded",
      { downtime_id: "D", machine_id: "M", start_time: "2025-01-15T06:00:00Z", duration_minutes: 1, is_planned: "yes" },
      "$.data.is_planned"
    ],
    [
      "a report on a day that does not exist",
      "shift_report.submitted",
      { report_id: "R", shift_id: "S", report_date: "2025-02-30", status: "draft" },
      "$.data.report_date"
    ],
    ["a shift time that is not HH:MM", "shift.upserted", { id: "S", name: "Day", start_time: "6am" }, "$.data.start_time"],
    ["a machine without a name", "machine.upserted", { id: "M-01" }, "$.data.name"]
  ])("poisons %s, naming the field", (_, type, data, path) => {
    expect(poisonReason(project("evt_bad", type, data))).toContain(path)
  })

  it("poisons an event type it does not know, naming the type (the envelope's types are the contract's)", () => {
    const reason = poisonReason(project("evt_x", "machine.deleted", { id: "M-01" }))
    expect(reason).toContain("$.type")
    expect(reason).toContain('"machine.deleted"')
  })

  it("poisons an envelope without an id", () => {
    expect(
      poisonReason(
        oeeProjection.project({
          ...logEvent({ id: "x", type: "line.upserted", timestamp: "2025-01-15T06:15:00Z", data: {} }),
          payload: { type: "line.upserted" }
        })
      )
    ).toContain("$.id: Missing key")
  })
})
