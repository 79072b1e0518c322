import { crmMarts } from "../projections/crm/marts.ts"
import type { PushDatasetSpec } from "./dataset.ts"

/**
 * The push datasets the mesh provisions and feeds, one per mart set that opts in. Seed 004's CRM
 * star keeps the seed's names; its `FactDailyMetric` rollup is the measures on `FactEvent` sliced by
 * `DimDate`, `DimAgent` and `DimMetric` (the same numbers as the `fact_daily_metric` mart view).
 */
export const crmPushDataset: PushDatasetSpec = {
  marts: crmMarts,
  name: "Mesh CRM",
  version: 1,
  tables: [
    { from: "dim_date", as: "DimDate" },
    { from: "dim_agent", as: "DimAgent" },
    { from: "dim_metric", as: "DimMetric" },
    { from: "dim_shift", as: "DimShift" },
    {
      from: "fact_event",
      as: "FactEvent",
      measures: [
        { name: "Event Count", expression: "COUNTROWS('FactEvent')", formatString: "#,0" },
        { name: "Total Value", expression: "SUM('FactEvent'[value])", formatString: "#,0.##" },
        { name: "Total Duration (s)", expression: "SUM('FactEvent'[duration_seconds])", formatString: "#,0" },
        {
          name: "Average Duration (s)",
          expression: "DIVIDE(SUM('FactEvent'[duration_seconds]), COUNT('FactEvent'[duration_seconds]))",
          formatString: "#,0.0"
        },
        { name: "Calls", expression: `CALCULATE(COUNTROWS('FactEvent'), 'FactEvent'[metric_id] = "CALLS")`, formatString: "#,0" },
        { name: "Texts", expression: `CALCULATE(COUNTROWS('FactEvent'), 'FactEvent'[metric_id] = "TEXTS")`, formatString: "#,0" },
        { name: "Emails", expression: `CALCULATE(COUNTROWS('FactEvent'), 'FactEvent'[metric_id] = "EMAILS")`, formatString: "#,0" },
        { name: "Cases", expression: `CALCULATE(COUNTROWS('FactEvent'), 'FactEvent'[metric_id] = "CASES")`, formatString: "#,0" }
      ]
    }
  ],
  relationships: [
    { fromTable: "fact_event", fromColumn: "date_key", toTable: "dim_date", toColumn: "date_key" },
    { fromTable: "fact_event", fromColumn: "agent_id", toTable: "dim_agent", toColumn: "agent_id" },
    { fromTable: "fact_event", fromColumn: "metric_id", toTable: "dim_metric", toColumn: "metric_id" },
    { fromTable: "fact_event", fromColumn: "shift_id", toTable: "dim_shift", toColumn: "shift_id" }
  ]
}

/** Every push dataset, by the projection whose marts it mirrors. */
export const pushDatasets: ReadonlyArray<PushDatasetSpec> = [crmPushDataset]

export const pushDatasetFor = (projection: string): PushDatasetSpec | undefined =>
  pushDatasets.find((spec) => spec.marts.name === projection)
