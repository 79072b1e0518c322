import { crmProjection } from "./crm.ts"
import { oeeProjection } from "./oee.ts"
import { retailProjection } from "./retail.ts"
import type { Projection } from "./projection.ts"
import { warehouseProjection } from "./warehouse.ts"

export * from "./projection.ts"
export * from "./table.ts"

/** Every projection the runtime can run, by name. */
export const projections: Readonly<Record<string, Projection>> = {
  warehouse: warehouseProjection,
  crm: crmProjection,
  oee: oeeProjection,
  retail: retailProjection({ latenessMs: Number(process.env.RETAIL_LATENESS_MINUTES ?? "10") * 60_000 })
}
