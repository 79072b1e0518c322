import { qualified } from "../../platform/sql.ts"
import { selectList } from "../statements.ts"
import { boolean, date, type DerivedColumn, integer, type MartSet, numeric, type TableSpec, text, timestamp } from "../table.ts"

/** Minutes each snapshot covers: the seed's 96 snapshots a day. */
export const SNAPSHOT_MINUTES = 15

/** Seed 001's OEE tables and masters, keyed by their ids. */
export const oeeTables: ReadonlyArray<TableSpec> = [
  {
    name: "oee_snapshots",
    columns: [
      text("id"),
      timestamp("snapshot_time"),
      text("org_id", true),
      text("machine_id"),
      text("line_id", true),
      text("shift_id", true),
      text("work_order_id", true),
      numeric("oee_pct"),
      numeric("availability_pct"),
      numeric("performance_pct"),
      numeric("quality_pct"),
      integer("total_pieces"),
      integer("good_pieces"),
      integer("rejected_pieces"),
      numeric("planned_production_time"),
      numeric("actual_production_time")
    ],
    key: ["id"],
    merge: "upsert",
    indexes: [["snapshot_time"], ["machine_id", "snapshot_time"]]
  },
  {
    name: "oee_downtime_events",
    columns: [
      text("id"),
      text("machine_id"),
      text("line_id", true),
      timestamp("start_time"),
      timestamp("end_time", true),
      numeric("duration_minutes"),
      boolean("is_planned"),
      text("reason", true),
      text("category", true),
      boolean("resolved", true)
    ],
    key: ["id"],
    merge: "upsert",
    indexes: [["machine_id", "start_time"], ["start_time"]]
  },
  {
    name: "shift_reports",
    columns: [
      text("id"),
      text("shift_id"),
      text("line_id", true),
      text("machine_id", true),
      date("report_date"),
      text("status"),
      numeric("oee_pct", true),
      integer("total_pieces", true),
      integer("good_pieces", true),
      integer("rejected_pieces", true),
      numeric("downtime_minutes", true),
      text("notes", true)
    ],
    key: ["id"],
    merge: "upsert",
    indexes: [["report_date"]]
  },
  { name: "machines", columns: [text("id"), text("name"), text("code", true), text("line_id", true)], key: ["id"], merge: "upsert" },
  { name: "production_lines", columns: [text("id"), text("name")], key: ["id"], merge: "upsert" },
  { name: "shifts", columns: [text("id"), text("name"), text("start_time", true), text("end_time", true)], key: ["id"], merge: "upsert" },
  {
    name: "work_orders",
    columns: [text("id"), text("wo_number"), text("product_id", true), text("status", true)],
    key: ["id"],
    merge: "upsert"
  },
  { name: "products", columns: [text("id"), text("name"), text("sku", true)], key: ["id"], merge: "upsert" }
]

const end = `coalesce(de.end_time, de.start_time + de.duration_minutes * interval '1 minute')`
const overlap = `greatest(0, extract(epoch FROM least(${end}, s.snapshot_time) - greatest(de.start_time, s.snapshot_time - interval '${SNAPSHOT_MINUTES} minutes')) / 60)`
const downtime = (total: string) => `round(least(${SNAPSHOT_MINUTES}, coalesce(dt.${total}, 0)), 3)`

/** The data mart's columns, each declared once with the expression that computes it: the view's shape and its SELECT list both derive from this. */
export const dataMartColumns: ReadonlyArray<DerivedColumn> = [
  [text("snapshot_id"), "s.id"],
  [timestamp("snapshot_time"), "s.snapshot_time"],
  [text("org_id", true), "s.org_id"],
  [text("machine_id"), "s.machine_id"],
  [text("machine_name", true), "m.name"],
  [text("machine_code", true), "m.code"],
  [text("line_id", true), "s.line_id"],
  [text("line_name", true), "l.name"],
  [text("shift_id", true), "s.shift_id"],
  [text("shift_name", true), "sh.name"],
  [text("work_order_id", true), "s.work_order_id"],
  [text("wo_number", true), "wo.wo_number"],
  [text("product_name", true), "p.name"],
  [numeric("oee_pct"), "s.oee_pct"],
  [numeric("availability_pct"), "s.availability_pct"],
  [numeric("performance_pct"), "s.performance_pct"],
  [numeric("quality_pct"), "s.quality_pct"],
  [integer("total_pieces"), "s.total_pieces"],
  [integer("good_pieces"), "s.good_pieces"],
  [integer("rejected_pieces"), "s.rejected_pieces"],
  [numeric("planned_production_time"), "s.planned_production_time"],
  [numeric("actual_production_time"), "s.actual_production_time"],
  [numeric("downtime_minutes"), downtime("total_downtime")],
  [numeric("planned_downtime_minutes"), downtime("planned_downtime")],
  [numeric("unplanned_downtime_minutes"), downtime("unplanned_downtime")]
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
export const dataMartView = (schema: string): string => {
  const t = (name: string) => qualified(schema, name)
  return `CREATE VIEW ${t("oee_data_mart")} AS
    SELECT ${selectList(dataMartColumns)}
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

/** Seed 001's OEE marts: the tables, and the data mart joining them, all published. */
export const oeeMarts: MartSet = {
  name: "oee",
  tables: oeeTables,
  views: [{ name: "oee_data_mart", columns: dataMartColumns.map(([column]) => column), key: ["snapshot_id"] }],
  extraSql: (schema) => [dataMartView(schema)],
  published: [...oeeTables.map((table) => table.name), "oee_data_mart"]
}
