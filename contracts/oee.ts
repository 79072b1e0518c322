import { Schema } from "effect"
import { envelopeContract } from "./sender-envelope.ts"
import { Identifier, IsoDate, IsoDateTime, Count, NonNegativeNumber, Percentage } from "./primitives.ts"

/**
 * Shop-floor machine gateways (seed 001): 15-minute machine snapshots, downtime events, shift
 * reports, and master data for machines, lines, shifts, work orders and products.
 */
export const SnapshotRecorded = Schema.Struct({
  snapshot_id: Schema.optionalKey(Identifier),
  org_id: Schema.optionalKey(Identifier),
  machine_id: Identifier,
  line_id: Schema.optionalKey(Identifier),
  shift_id: Schema.optionalKey(Identifier),
  work_order_id: Schema.optionalKey(Identifier),
  snapshot_time: IsoDateTime,
  oee_pct: Percentage,
  availability_pct: Percentage,
  performance_pct: Percentage,
  quality_pct: Percentage,
  total_pieces: Count,
  good_pieces: Count,
  rejected_pieces: Count,
  planned_production_time: NonNegativeNumber.annotate({ description: "minutes" }),
  actual_production_time: NonNegativeNumber.annotate({ description: "minutes" })
})

export const DowntimeRecorded = Schema.Struct({
  downtime_id: Identifier,
  machine_id: Identifier,
  line_id: Schema.optionalKey(Identifier),
  start_time: IsoDateTime,
  end_time: Schema.optionalKey(Schema.NullOr(IsoDateTime)),
  duration_minutes: NonNegativeNumber,
  is_planned: Schema.Boolean,
  reason: Schema.optionalKey(Schema.String),
  category: Schema.optionalKey(Schema.String),
  resolved: Schema.optionalKey(Schema.Boolean)
})

export const ShiftReportSubmitted = Schema.Struct({
  report_id: Identifier,
  shift_id: Identifier,
  line_id: Schema.optionalKey(Identifier),
  machine_id: Schema.optionalKey(Identifier),
  report_date: IsoDate,
  status: Identifier,
  oee_pct: Schema.optionalKey(Percentage),
  total_pieces: Schema.optionalKey(Count),
  good_pieces: Schema.optionalKey(Count),
  rejected_pieces: Schema.optionalKey(Count),
  downtime_minutes: Schema.optionalKey(NonNegativeNumber),
  notes: Schema.optionalKey(Schema.String)
})

export const MachineUpserted = Schema.Struct({
  id: Identifier,
  name: Identifier,
  code: Schema.optionalKey(Schema.String),
  line_id: Schema.optionalKey(Identifier)
})
export const LineUpserted = Schema.Struct({ id: Identifier, name: Identifier })
export const ShiftUpserted = Schema.Struct({
  id: Identifier,
  name: Identifier,
  start_time: Schema.optionalKey(
    Schema.String.check(Schema.isPattern(/^\d{2}:\d{2}$/, { message: "Expected a time of day HH:MM, e.g. 06:00" }))
  ),
  end_time: Schema.optionalKey(
    Schema.String.check(Schema.isPattern(/^\d{2}:\d{2}$/, { message: "Expected a time of day HH:MM, e.g. 14:00" }))
  )
})
export const WorkOrderUpserted = Schema.Struct({
  id: Identifier,
  wo_number: Identifier,
  product_id: Schema.optionalKey(Identifier),
  status: Schema.optionalKey(Schema.String)
})
export const ProductUpserted = Schema.Struct({ id: Identifier, name: Identifier, sku: Schema.optionalKey(Schema.String) })

export const oeeEventTypes = {
  "snapshot.recorded": SnapshotRecorded,
  "downtime.recorded": DowntimeRecorded,
  "shift_report.submitted": ShiftReportSubmitted,
  "machine.upserted": MachineUpserted,
  "line.upserted": LineUpserted,
  "shift.upserted": ShiftUpserted,
  "work_order.upserted": WorkOrderUpserted,
  "product.upserted": ProductUpserted
}

export const oeeContract = envelopeContract({ name: "oee", domain: "oee", schemaVersion: "oee/v1", types: oeeEventTypes })
