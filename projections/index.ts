import { numberSetting, type SettingName, type SettingSource } from "../platform/settings.ts"
import { crmProjection } from "./crm/projection.ts"
import { oeeProjection } from "./oee/projection.ts"
import { retailProjection } from "./retail/projection.ts"
import type { Projection } from "./projection.ts"
import { reportsProjection } from "./reports/projection.ts"
import { warehouseProjection } from "./warehouse/projection.ts"

export * from "./catalogue.ts"
export * from "./projection.ts"
export * from "./table.ts"

/** Minutes after which a retail event counts as late (its own columns): RETAIL_LATENESS_MINUTES, default 10. */
export const RETAIL_LATENESS_MINUTES: SettingName = { env: "RETAIL_LATENESS_MINUTES" }

/** Every projection the runtime can run, by name, as configured by `source`. */
export const projectionsFor = (source: SettingSource): Readonly<Record<string, Projection>> => ({
  warehouse: warehouseProjection,
  crm: crmProjection,
  oee: oeeProjection,
  retail: retailProjection({ latenessMs: numberSetting(source, RETAIL_LATENESS_MINUTES, 10, 0) * 60_000 }),
  reports: reportsProjection
})

/** Every projection with its default settings. */
export const projections: Readonly<Record<string, Projection>> = projectionsFor({ env: {} })
