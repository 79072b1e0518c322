import { type ErasureFailure, type ErasureSuccess, warehouseEventTypes } from "../contracts/warehouse.ts"
import { decodeEnvelope } from "./decode.ts"
import { poison, type Projection, rows, skip } from "./projection.ts"
import { date, integer, numeric, type TableSpec, text, timestamp } from "./table.ts"

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
    columns: [
      date("date"),
      integer("booked_in"),
      integer("erased"),
      integer("qa")
    ],
    key: ["date"],
    merge: "increment"
  },
  {
    name: "engineer_stats",
    columns: [
      date("date"),
      text("initials"),
      integer("count")
    ],
    key: ["date", "initials"],
    merge: "increment"
  },
  {
    name: "engineer_stats_type",
    columns: [
      date("date"),
      text("initials"),
      text("device_type"),
      integer("count")
    ],
    key: ["date", "initials", "device_type"],
    merge: "increment"
  }
]

const day = (iso: string) => iso.slice(0, 10)

/**
 * Erasure events become `erasures` rows; a successful erasure counts as erased for the day and
 * for its engineer (by device type); intake and QA events add their counts. Days are UTC.
 */
export const warehouseProjection: Projection = {
  name: "warehouse",
  version: 1,
  domain: "warehouse",
  tables: warehouseTables,
  published: warehouseTables.map((table) => table.name),
  project: (event) => {
    const decoded = decodeEnvelope(warehouseEventTypes, event.payload)
    if (!decoded.ok) return poison(decoded.reason)
    const { type, timestamp, id } = decoded.value
    const at = new Date(timestamp).toISOString()
    const date = day(at)
    switch (type) {
      case "erasure.success":
      case "erasure.failure":
      case "erasure.connected": {
        const data = decoded.value.data as typeof ErasureSuccess.Type | typeof ErasureFailure.Type
        const succeeded = type === "erasure.success"
        return rows({
          erasures: [
            {
              event_id: id,
              timestamp: at,
              date,
              month: date.slice(0, 7),
              event: type.slice("erasure.".length),
              device_type: data.device_type,
              initials: data.initials.toUpperCase(),
              duration_seconds: data.duration_seconds ?? null,
              error_type: data.error_type ?? null,
              job_id: data.job_id
            }
          ],
          ...(succeeded
            ? {
                daily_stats: [{ date, booked_in: 0, erased: 1, qa: 0 }],
                engineer_stats: [{ date, initials: data.initials.toUpperCase(), count: 1 }],
                engineer_stats_type: [{ date, initials: data.initials.toUpperCase(), device_type: data.device_type, count: 1 }]
              }
            : {})
        })
      }
      case "intake.booked_in":
        return rows({ daily_stats: [{ date, booked_in: (decoded.value.data as { count: number }).count, erased: 0, qa: 0 }] })
      case "qa.completed":
        return rows({ daily_stats: [{ date, booked_in: 0, erased: 0, qa: (decoded.value.data as { count: number }).count }] })
      default:
        return skip
    }
  }
}
