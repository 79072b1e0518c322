import { crmMarts } from "../projections/crm/marts.ts"
import { retailMarts } from "../projections/retail/marts.ts"
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

/** Rows of `table` whose `column` falls in the last `minutes` minutes: a streaming dashboard's moving window. */
const lastMinutes = (table: string, column: string, minutes: number, of: string) =>
  `CALCULATE(${of}, '${table}'[${column}] >= NOW() - ${minutes} / 1440)`

/**
 * Seed 002's store dashboard, opt-in (`POWERBI_PUSH=crm,retail`): the sales and stock counts with
 * their store, product and date, for tiles that move as sales arrive. Only tables whose rows are
 * written once are pushed (a 5-minute window's row changes with every sale, and Power BI cannot
 * update a pushed row: it would reload the table each time), so the 5-minute velocity and the
 * restock watch are measures over the facts.
 */
export const retailPushDataset: PushDatasetSpec = {
  marts: retailMarts,
  name: "Mesh Retail",
  // 2: DimStore carries the stores' master data (name, city, region ...).
  version: 2,
  optIn: true,
  tables: [
    { from: "dim_date", as: "DimDate" },
    { from: "dim_store", as: "DimStore" },
    { from: "dim_product", as: "DimProduct" },
    {
      from: "fact_sales",
      as: "FactSales",
      measures: [
        { name: "Units Sold", expression: "SUM('FactSales'[quantity])", formatString: "#,0" },
        { name: "Revenue", expression: "SUM('FactSales'[revenue])", formatString: "#,0.00" },
        { name: "Profit", expression: "SUM('FactSales'[profit])", formatString: "#,0.00" },
        {
          name: "Units (last 5 min)",
          expression: lastMinutes("FactSales", "sold_at", 5, "SUM('FactSales'[quantity])"),
          formatString: "#,0"
        },
        {
          name: "Revenue (last 5 min)",
          expression: lastMinutes("FactSales", "sold_at", 5, "SUM('FactSales'[revenue])"),
          formatString: "#,0.00"
        },
        {
          name: "Sales per Minute (last 5 min)",
          expression: `DIVIDE(${lastMinutes("FactSales", "sold_at", 5, "COUNTROWS('FactSales')")}, 5)`
        }
      ]
    },
    {
      from: "fact_inventory",
      as: "FactInventory",
      measures: [
        {
          name: "Counts Below Reorder Point",
          expression: "COUNTROWS(FILTER('FactInventory', 'FactInventory'[quantity_on_hand] < 'FactInventory'[reorder_point]))",
          formatString: "#,0"
        }
      ]
    }
  ],
  relationships: [
    { fromTable: "fact_sales", fromColumn: "date_key", toTable: "dim_date", toColumn: "date_key" },
    { fromTable: "fact_sales", fromColumn: "store_key", toTable: "dim_store", toColumn: "store_key" },
    { fromTable: "fact_sales", fromColumn: "product_key", toTable: "dim_product", toColumn: "product_key" },
    { fromTable: "fact_inventory", fromColumn: "date_key", toTable: "dim_date", toColumn: "date_key" },
    { fromTable: "fact_inventory", fromColumn: "store_key", toTable: "dim_store", toColumn: "store_key" },
    { fromTable: "fact_inventory", fromColumn: "product_key", toTable: "dim_product", toColumn: "product_key" }
  ]
}

/** Every push dataset, by the projection whose marts it mirrors; those marked `optIn` are pushed only when POWERBI_PUSH names them. */
export const pushDatasets: ReadonlyArray<PushDatasetSpec> = [crmPushDataset, retailPushDataset]
