import { describeIssues } from "../../contracts/issues.ts"
import { decodeEnvelope } from "../../contracts/sender-envelope.ts"
import { warehouseEventTypes } from "../../contracts/warehouse.ts"
import { poison, type Projection, rows, skip } from "../projection.ts"
import { warehouseMarts } from "./marts.ts"

const day = (iso: string) => iso.slice(0, 10)

/**
 * Erasure events become `erasures` rows; a successful erasure counts as erased for the day and
 * for its engineer (by device type); intake and QA events add their counts. Days are UTC.
 */
export const warehouseProjection: Projection = {
  ...warehouseMarts,
  version: 1,
  domain: "warehouse",
  project: (event) => {
    const decoded = decodeEnvelope(warehouseEventTypes, event.payload)
    if (!decoded.ok) return poison(describeIssues(decoded.issues))
    const erasure = decoded.value
    const at = new Date(erasure.timestamp).toISOString()
    const date = day(at)
    switch (erasure.type) {
      case "erasure.success":
      case "erasure.failure":
      case "erasure.connected": {
        const data = erasure.data
        const initials = data.initials.toUpperCase()
        return rows({
          erasures: [
            {
              event_id: erasure.id,
              timestamp: at,
              date,
              month: date.slice(0, 7),
              event: erasure.type.slice("erasure.".length),
              device_type: data.device_type,
              initials,
              duration_seconds: data.duration_seconds ?? null,
              error_type: data.error_type ?? null,
              job_id: data.job_id
            }
          ],
          ...(erasure.type === "erasure.success"
            ? {
                daily_stats: [{ date, booked_in: 0, erased: 1, qa: 0 }],
                engineer_stats: [{ date, initials, count: 1 }],
                engineer_stats_type: [{ date, initials, device_type: data.device_type, count: 1 }]
              }
            : {})
        })
      }
      case "intake.booked_in":
        return rows({ daily_stats: [{ date, booked_in: erasure.data.count, erased: 0, qa: 0 }] })
      case "qa.completed":
        return rows({ daily_stats: [{ date, booked_in: 0, erased: 0, qa: erasure.data.count }] })
      default:
        return skip
    }
  }
}
