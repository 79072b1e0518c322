import type { DowntimeRecorded, LineUpserted, MachineUpserted, ProductUpserted, ShiftReportSubmitted, ShiftUpserted, SnapshotRecorded, WorkOrderUpserted } from "../contracts/oee.ts"
import { oeeEventTypes } from "../contracts/oee.ts"
import { decodeEnvelope } from "./decode.ts"
import { poison, type Projection, rows, skip } from "./projection.ts"
import { boolean, date, integer, numeric, qualified, type TableSpec, text, timestamp } from "./table.ts"

/** Minutes each snapshot covers: the seed's 96 snapshots a day. */
export const SNAPSHOT_MINUTES = 15


/** Seed 001's OEE tables and masters, keyed by their ids. */
export const oeeTables: ReadonlyArray<TableSpec> = [
  {
    name: "oee_snapshots",
    columns: [
      text("id"), timestamp("snapshot_time"), text("org_id", true), text("machine_id"), text("line_id", true), text("shift_id", true),
      text("work_order_id", true), numeric("oee_pct"), numeric("availability_pct"), numeric("performance_pct"), numeric("quality_pct"),
      integer("total_pieces"), integer("good_pieces"), integer("rejected_pieces"), numeric("planned_production_time"), numeric("actual_production_time")
    ],
    key: ["id"],
    merge: "upsert",
    indexes: [["snapshot_time"], ["machine_id", "snapshot_time"]]
  },
  {
    name: "oee_downtime_events",
    columns: [
      text("id"), text("machine_id"), text("line_id", true), timestamp("start_time"), timestamp("end_time", true),
      numeric("duration_minutes"), boolean("is_planned"), text("reason", true), text("category", true), boolean("resolved", true)
    ],
    key: ["id"],
    merge: "upsert",
    indexes: [["machine_id", "start_time"], ["start_time"]]
  },
  {
    name: "shift_reports",
    columns: [
      text("id"), text("shift_id"), text("line_id", true), text("machine_id", true), date("report_date"), text("status"),
      numeric("oee_pct", true), integer("total_pieces", true), integer("good_pieces", true), integer("rejected_pieces", true), numeric("downtime_minutes", true), text("notes", true)
    ],
    key: ["id"],
    merge: "upsert",
    indexes: [["report_date"]]
  },
  { name: "machines", columns: [text("id"), text("name"), text("code", true), text("line_id", true)], key: ["id"], merge: "upsert" },
  { name: "production_lines", columns: [text("id"), text("name")], key: ["id"], merge: "upsert" },
  { name: "shifts", columns: [text("id"), text("name"), text("start_time", true), text("end_time", true)], key: ["id"], merge: "upsert" },
  { name: "work_orders", columns: [text("id"), text("wo_number"), text("product_id", true), text("status", true)], key: ["id"], merge: "upsert" },
  { name: "products", columns: [text("id"), text("name"), text("sku", true)], key: ["id"], merge: "upsert" }
]

/**
 * The seed's `oee_data_mart`: each snapshot with its machine, line, shift, work order and
 * product, and the planned, unplanned and total downtime minutes that overlap the snapshot's
 * window `[snapshot_time - 15 min, snapshot_time)` — a stop spanning snapshots is split between them;
 * overlapping stops never add up to more than the window. Each snapshot looks back only as far as
 * the longest stop recorded (computed once per query), so the index on (machine_id, start_time)
 * reads a stop or two per snapshot, however long the history, and no stop is missed. Minutes are
 * rounded to three decimals (a twentieth of a second).
 */
const dataMartView = (schema: string) => {
  const t = (name: string) => qualified(schema, name)
  const end = `coalesce(de.end_time, de.start_time + de.duration_minutes * interval '1 minute')`
  const overlap = `greatest(0, extract(epoch FROM least(${end}, s.snapshot_time) - greatest(de.start_time, s.snapshot_time - interval '${SNAPSHOT_MINUTES} minutes')) / 60)`
  return `CREATE VIEW ${t("oee_data_mart")} AS
    SELECT s.id AS snapshot_id, s.snapshot_time, s.org_id,
           s.machine_id, m.name AS machine_name, m.code AS machine_code,
           s.line_id, l.name AS line_name, s.shift_id, sh.name AS shift_name,
           s.work_order_id, wo.wo_number, p.name AS product_name,
           s.oee_pct, s.availability_pct, s.performance_pct, s.quality_pct,
           s.total_pieces, s.good_pieces, s.rejected_pieces, s.planned_production_time, s.actual_production_time,
           round(least(${SNAPSHOT_MINUTES}, coalesce(dt.total_downtime, 0)), 3) AS downtime_minutes,
           round(least(${SNAPSHOT_MINUTES}, coalesce(dt.planned_downtime, 0)), 3) AS planned_downtime_minutes,
           round(least(${SNAPSHOT_MINUTES}, coalesce(dt.unplanned_downtime, 0)), 3) AS unplanned_downtime_minutes
    FROM ${t("oee_snapshots")} s
    LEFT JOIN ${t("machines")} m ON m.id = s.machine_id
    LEFT JOIN ${t("production_lines")} l ON l.id = s.line_id
    LEFT JOIN ${t("shifts")} sh ON sh.id = s.shift_id
    LEFT JOIN ${t("work_orders")} wo ON wo.id = s.work_order_id
    LEFT JOIN ${t("products")} p ON p.id = wo.product_id
    LEFT JOIN LATERAL (
      SELECT sum(${overlap}) AS total_downtime,
             sum(CASE WHEN de.is_planned THEN ${overlap} ELSE 0 END) AS planned_downtime,
             sum(CASE WHEN NOT de.is_planned THEN ${overlap} ELSE 0 END) AS unplanned_downtime
      FROM ${t("oee_downtime_events")} de
      WHERE de.machine_id = s.machine_id
        AND de.start_time < s.snapshot_time
        AND de.start_time >= s.snapshot_time - interval '${SNAPSHOT_MINUTES} minutes' - (SELECT coalesce(max(${end.replaceAll("de.", "")} - start_time), interval '0') FROM ${t("oee_downtime_events")})
        AND ${end} > s.snapshot_time - interval '${SNAPSHOT_MINUTES} minutes'
    ) dt ON true`
}

/** Machine events become the seed's OEE tables; master data is upserted by id. */
export const oeeProjection: Projection = {
  name: "oee",
  version: 2,
  domain: "oee",
  tables: oeeTables,
  published: [...oeeTables.map((table) => table.name), "oee_data_mart"],
  extraSql: (schema) => [dataMartView(schema)],
  views: [
    {
      name: "oee_data_mart",
      columns: [
        text("snapshot_id"), timestamp("snapshot_time"), text("org_id", true), text("machine_id"), text("machine_name", true), text("machine_code", true),
        text("line_id", true), text("line_name", true), text("shift_id", true), text("shift_name", true), text("work_order_id", true), text("wo_number", true),
        text("product_name", true), numeric("oee_pct"), numeric("availability_pct"), numeric("performance_pct"), numeric("quality_pct"), integer("total_pieces"),
        integer("good_pieces"), integer("rejected_pieces"), numeric("planned_production_time"), numeric("actual_production_time"), numeric("downtime_minutes"),
        numeric("planned_downtime_minutes"), numeric("unplanned_downtime_minutes")
      ],
      key: ["snapshot_id"]
    }
  ],
  project: (event) => {
    const decoded = decodeEnvelope(oeeEventTypes, event.payload)
    if (!decoded.ok) return poison(decoded.reason)
    const { type, id } = decoded.value
    const iso = (value: string) => new Date(value).toISOString()
    switch (type) {
      case "snapshot.recorded": {
        const s = decoded.value.data as typeof SnapshotRecorded.Type
        return rows({
          oee_snapshots: [
            {
              id: s.snapshot_id ?? id, snapshot_time: iso(s.snapshot_time), org_id: s.org_id ?? null, machine_id: s.machine_id, line_id: s.line_id ?? null,
              shift_id: s.shift_id ?? null, work_order_id: s.work_order_id ?? null, oee_pct: s.oee_pct, availability_pct: s.availability_pct,
              performance_pct: s.performance_pct, quality_pct: s.quality_pct, total_pieces: s.total_pieces, good_pieces: s.good_pieces,
              rejected_pieces: s.rejected_pieces, planned_production_time: s.planned_production_time, actual_production_time: s.actual_production_time
            }
          ]
        })
      }
      case "downtime.recorded": {
        const d = decoded.value.data as typeof DowntimeRecorded.Type
        return rows({
          oee_downtime_events: [
            {
              id: d.downtime_id, machine_id: d.machine_id, line_id: d.line_id ?? null, start_time: iso(d.start_time),
              end_time: d.end_time === undefined || d.end_time === null ? null : iso(d.end_time), duration_minutes: d.duration_minutes,
              is_planned: d.is_planned, reason: d.reason ?? null, category: d.category ?? null, resolved: d.resolved ?? null
            }
          ]
        })
      }
      case "shift_report.submitted": {
        const r = decoded.value.data as typeof ShiftReportSubmitted.Type
        return rows({
          shift_reports: [
            {
              id: r.report_id, shift_id: r.shift_id, line_id: r.line_id ?? null, machine_id: r.machine_id ?? null, report_date: r.report_date, status: r.status,
              oee_pct: r.oee_pct ?? null, total_pieces: r.total_pieces ?? null, good_pieces: r.good_pieces ?? null, rejected_pieces: r.rejected_pieces ?? null,
              downtime_minutes: r.downtime_minutes ?? null, notes: r.notes ?? null
            }
          ]
        })
      }
      case "machine.upserted": {
        const m = decoded.value.data as typeof MachineUpserted.Type
        return rows({ machines: [{ id: m.id, name: m.name, code: m.code ?? null, line_id: m.line_id ?? null }] })
      }
      case "line.upserted": {
        const l = decoded.value.data as typeof LineUpserted.Type
        return rows({ production_lines: [{ id: l.id, name: l.name }] })
      }
      case "shift.upserted": {
        const s = decoded.value.data as typeof ShiftUpserted.Type
        return rows({ shifts: [{ id: s.id, name: s.name, start_time: s.start_time ?? null, end_time: s.end_time ?? null }] })
      }
      case "work_order.upserted": {
        const w = decoded.value.data as typeof WorkOrderUpserted.Type
        return rows({ work_orders: [{ id: w.id, wo_number: w.wo_number, product_id: w.product_id ?? null, status: w.status ?? null }] })
      }
      case "product.upserted": {
        const p = decoded.value.data as typeof ProductUpserted.Type
        return rows({ products: [{ id: p.id, name: p.name, sku: p.sku ?? null }] })
      }
      default:
        return skip
    }
  }
}
