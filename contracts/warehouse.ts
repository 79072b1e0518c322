import { Schema } from "effect"
import { envelopeContract } from "./sender-envelope.ts"
import { Identifier, NonNegativeNumber, PositiveCount } from "./primitives.ts"

/**
 * Warehouse erasure stations (seed 000). An erasure event carries the seed's erasure columns;
 * intake and QA events carry counts that feed `daily_stats(booked_in, qa)`.
 */
const Erasure = {
  device_type: Identifier.annotate({ description: "laptops_desktops, servers, ..." }),
  initials: Schema.String.check(Schema.isPattern(/^[A-Za-z]{1,8}$/, { message: "Expected engineer initials, 1 to 8 letters, e.g. JD" })),
  duration_seconds: Schema.optionalKey(NonNegativeNumber),
  job_id: Identifier
}

export const ErasureSuccess = Schema.Struct({ ...Erasure, error_type: Schema.optionalKey(Schema.Null) })
export const ErasureFailure = Schema.Struct({ ...Erasure, error_type: Identifier })
export const ErasureConnected = Schema.Struct({ ...Erasure, error_type: Schema.optionalKey(Schema.Null) })

const Count = {
  count: PositiveCount,
  initials: Schema.optionalKey(Schema.String),
  device_type: Schema.optionalKey(Schema.String)
}
export const BookedIn = Schema.Struct(Count)
export const QaCompleted = Schema.Struct(Count)

export const warehouseEventTypes = {
  "erasure.success": ErasureSuccess,
  "erasure.failure": ErasureFailure,
  "erasure.connected": ErasureConnected,
  "intake.booked_in": BookedIn,
  "qa.completed": QaCompleted
}

export const warehouseContract = envelopeContract({
  name: "warehouse",
  domain: "warehouse",
  schemaVersion: "warehouse/v1",
  types: warehouseEventTypes
})
