import { date, integer, type MartSet, numeric, type TableSpec, text, timestamp } from "../table.ts"

/** Seed 000's warehouse marts: per-event erasures and the daily and per-engineer counts. */
export const warehouseTables: ReadonlyArray<TableSpec> = [
  {
    name: "erasures",
    columns: [
      text("event_id"),
      timestamp("timestamp"),
      date("date"),
      text("month"),
      text("event"),
      text("device_type"),
      text("initials"),
      numeric("duration_seconds", true),
      text("error_type", true),
      text("job_id")
    ],
    key: ["event_id"],
    merge: "insert",
    indexes: [["date"], ["timestamp"]]
  },
  {
    name: "daily_stats",
    columns: [date("date"), integer("booked_in"), integer("erased"), integer("qa")],
    key: ["date"],
    merge: "increment"
  },
  {
    name: "engineer_stats",
    columns: [date("date"), text("initials"), integer("count")],
    key: ["date", "initials"],
    merge: "increment"
  },
  {
    name: "engineer_stats_type",
    columns: [date("date"), text("initials"), text("device_type"), integer("count")],
    key: ["date", "initials", "device_type"],
    merge: "increment"
  }
]

/** The warehouse marts, all published. */
export const warehouseMarts: MartSet = { name: "warehouse", tables: warehouseTables, published: warehouseTables.map((table) => table.name) }
