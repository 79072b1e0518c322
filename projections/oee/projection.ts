import { describeIssues } from "../../contracts/issues.ts"
import { oeeEventTypes } from "../../contracts/oee.ts"
import { decodeEnvelope } from "../../contracts/sender-envelope.ts"
import { poison, type Projection, rows, skip } from "../projection.ts"
import { oeeMarts } from "./marts.ts"

/** Machine events become the seed's OEE tables; master data is upserted by id. */
export const oeeProjection: Projection = {
  ...oeeMarts,
  version: 3,
  domain: "oee",
  project: (event) => {
    const decoded = decodeEnvelope(oeeEventTypes, event.payload)
    if (!decoded.ok) return poison(describeIssues(decoded.issues))
    const machineEvent = decoded.value
    const iso = (value: string) => new Date(value).toISOString()
    switch (machineEvent.type) {
      case "snapshot.recorded": {
        const s = machineEvent.data
        return rows({
          oee_snapshots: [
            {
              id: s.snapshot_id ?? machineEvent.id,
              snapshot_time: iso(s.snapshot_time),
              org_id: s.org_id ?? null,
              machine_id: s.machine_id,
              line_id: s.line_id ?? null,
              shift_id: s.shift_id ?? null,
              work_order_id: s.work_order_id ?? null,
              oee_pct: s.oee_pct,
              availability_pct: s.availability_pct,
              performance_pct: s.performance_pct,
              quality_pct: s.quality_pct,
              total_pieces: s.total_pieces,
              good_pieces: s.good_pieces,
              rejected_pieces: s.rejected_pieces,
              planned_production_time: s.planned_production_time,
              actual_production_time: s.actual_production_time
            }
          ]
        })
      }
      case "downtime.recorded": {
        const d = machineEvent.data
        return rows({
          oee_downtime_events: [
            {
              id: d.downtime_id,
              machine_id: d.machine_id,
              line_id: d.line_id ?? null,
              start_time: iso(d.start_time),
              end_time: d.end_time === undefined || d.end_time === null ? null : iso(d.end_time),
              duration_minutes: d.duration_minutes,
              is_planned: d.is_planned,
              reason: d.reason ?? null,
              category: d.category ?? null,
              resolved: d.resolved ?? null
            }
          ]
        })
      }
      case "shift_report.submitted": {
        const r = machineEvent.data
        return rows({
          shift_reports: [
            {
              id: r.report_id,
              shift_id: r.shift_id,
              line_id: r.line_id ?? null,
              machine_id: r.machine_id ?? null,
              report_date: r.report_date,
              status: r.status,
              oee_pct: r.oee_pct ?? null,
              total_pieces: r.total_pieces ?? null,
              good_pieces: r.good_pieces ?? null,
              rejected_pieces: r.rejected_pieces ?? null,
              downtime_minutes: r.downtime_minutes ?? null,
              notes: r.notes ?? null
            }
          ]
        })
      }
      case "machine.upserted": {
        const m = machineEvent.data
        return rows({ machines: [{ id: m.id, name: m.name, code: m.code ?? null, line_id: m.line_id ?? null }] })
      }
      case "line.upserted": {
        const l = machineEvent.data
        return rows({ production_lines: [{ id: l.id, name: l.name }] })
      }
      case "shift.upserted": {
        const s = machineEvent.data
        return rows({ shifts: [{ id: s.id, name: s.name, start_time: s.start_time ?? null, end_time: s.end_time ?? null }] })
      }
      case "work_order.upserted": {
        const w = machineEvent.data
        return rows({ work_orders: [{ id: w.id, wo_number: w.wo_number, product_id: w.product_id ?? null, status: w.status ?? null }] })
      }
      case "product.upserted": {
        const p = machineEvent.data
        return rows({ products: [{ id: p.id, name: p.name, sku: p.sku ?? null }] })
      }
      default:
        return skip
    }
  }
}
