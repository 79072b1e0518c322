import { qualified } from "../../platform/sql.ts"
import { dimDateColumns } from "../calendar.ts"
import { selectList } from "../statements.ts"
import { type DerivedColumn, integer, type MartSet, numeric, type TableSpec, text, timestamp } from "../table.ts"

/** Length of the tumbling windows of the real-time metrics. */
export const WINDOW_MINUTES = 5

/** Seed 002's star schema, the supporting facts, and the windowed real-time metrics. */
export const retailTables: ReadonlyArray<TableSpec> = [
  {
    name: "fact_sales",
    columns: [
      text("sale_id"),
      integer("date_key"),
      text("product_key"),
      text("store_key"),
      integer("quantity"),
      numeric("revenue"),
      numeric("cost", true),
      numeric("profit", true),
      timestamp("sold_at")
    ],
    key: ["sale_id"],
    rowScope: "store_key",
    merge: "insert",
    indexes: [["date_key"], ["sold_at"]]
  },
  {
    name: "fact_inventory",
    columns: [
      text("inventory_id"),
      integer("date_key"),
      text("product_key"),
      text("store_key"),
      integer("quantity_on_hand"),
      integer("reorder_point", true),
      integer("safety_stock", true),
      timestamp("counted_at")
    ],
    key: ["inventory_id"],
    rowScope: "store_key",
    merge: "insert",
    indexes: [["date_key"]]
  },
  {
    name: "fact_traffic",
    columns: [
      text("traffic_id"),
      integer("date_key"),
      text("store_key"),
      integer("visitors"),
      numeric("basket_size", true),
      timestamp("counted_at")
    ],
    key: ["traffic_id"],
    rowScope: "store_key",
    merge: "insert"
  },
  {
    name: "fact_shipments",
    columns: [
      text("shipment_id"),
      integer("date_key"),
      text("supplier"),
      text("product_key"),
      text("store_key"),
      integer("quantity"),
      timestamp("received_at")
    ],
    key: ["shipment_id"],
    rowScope: "store_key",
    merge: "insert"
  },
  {
    name: "price_history",
    columns: [
      text("price_id"),
      text("product_key"),
      text("store_key"),
      numeric("old_price", true),
      numeric("new_price"),
      timestamp("changed_at")
    ],
    key: ["price_id"],
    rowScope: "store_key",
    merge: "insert"
  },
  { name: "dim_product", columns: [text("product_key"), text("sku")], key: ["product_key"], merge: "insert" },
  {
    name: "dim_store",
    columns: [
      text("store_key"),
      text("store_id"),
      text("store_name", true),
      text("city", true),
      text("region", true),
      text("country", true),
      integer("square_footage", true),
      text("store_type", true),
      timestamp("updated_at")
    ],
    key: ["store_key"],
    merge: "latest",
    orderBy: "updated_at",
    rowScope: "store_id"
  },
  { name: "dim_date", columns: dimDateColumns, key: ["date_key"], merge: "insert" },
  {
    name: "sales_velocity_5m",
    columns: [
      timestamp("window_start"),
      text("store_id"),
      text("product_id"),
      integer("sales"),
      integer("quantity"),
      numeric("revenue"),
      integer("late_sales"),
      integer("late_quantity"),
      numeric("late_revenue")
    ],
    key: ["window_start", "store_id", "product_id"],
    rowScope: "store_id",
    merge: "increment",
    indexes: [["window_start"]]
  },
  {
    name: "revenue_per_hour",
    columns: [
      timestamp("hour_start"),
      text("store_id"),
      integer("sales"),
      numeric("revenue"),
      integer("late_sales"),
      numeric("late_revenue")
    ],
    key: ["hour_start", "store_id"],
    rowScope: "store_id",
    merge: "increment",
    indexes: [["hour_start"]]
  },
  {
    name: "stock_level",
    columns: [text("store_id"), text("product_id"), integer("quantity_on_hand"), integer("reorder_point", true), timestamp("as_of")],
    key: ["store_id", "product_id"],
    rowScope: "store_id",
    merge: "latest",
    orderBy: "as_of"
  }
]

/** Windows of history a window is compared with, and how many must exist before flagging. */
export const ANOMALY_HISTORY_WINDOWS = 12
export const ANOMALY_MIN_HISTORY = 6
export const ANOMALY_SIGMAS = 3

/**
 * Each 5-minute window's sales quantity (on time and late) against the same store and product's
 * previous hour of windows (gaps count as zero sales): `spike` above mean + 3σ, `drop` below
 * mean − 3σ. Its rows are the windows that had sales and the hour of windows after each (where a
 * product that stops selling shows as a drop), up to the latest window of any product; a window
 * further from any sale has nothing but zeros behind it and is not shown. So the view grows with the
 * sales, not with the time since a product's first one.
 */
const anomalyFlag = `CASE WHEN history < ${ANOMALY_MIN_HISTORY} THEN NULL
           WHEN quantity > mean + ${ANOMALY_SIGMAS} * greatest(sigma, 1) THEN 'spike'
           WHEN quantity < mean - ${ANOMALY_SIGMAS} * greatest(sigma, 1) THEN 'drop'
           ELSE 'normal' END`

/** The anomaly view's columns, each with the expression that computes it: its shape and its SELECT list both derive from this. */
export const anomalyColumns: ReadonlyArray<DerivedColumn> = [
  [text("store_id"), "store_id"],
  [text("product_id"), "product_id"],
  [timestamp("window_start"), "window_start"],
  [integer("quantity"), "quantity"],
  [numeric("mean_quantity", true), "round(mean, 3)"],
  [numeric("sigma", true), "round(sigma, 3)"],
  [text("flag", true), anomalyFlag]
]

const anomalyView = (schema: string) => {
  const velocity = qualified(schema, "sales_velocity_5m")
  const step = `interval '${WINDOW_MINUTES} minutes'`
  // security_invoker: the reader's row scope applies to the windows the view reads.
  return `CREATE VIEW ${qualified(schema, "sales_velocity_anomalies")} WITH (security_invoker = true) AS
    WITH sold AS (
      SELECT store_id, product_id, window_start, quantity + late_quantity AS quantity FROM ${velocity}
    ), candidates AS (
      SELECT DISTINCT s.store_id, s.product_id, s.window_start + k * ${step} AS window_start
      FROM sold s CROSS JOIN generate_series(0, ${ANOMALY_HISTORY_WINDOWS}) AS k
      WHERE s.window_start + k * ${step} <= (SELECT max(window_start) FROM sold)
    ), series AS (
      SELECT c.store_id, c.product_id, c.window_start, coalesce(s.quantity, 0) AS quantity,
        min(c.window_start) OVER (PARTITION BY c.store_id, c.product_id) AS first_window
      FROM candidates c LEFT JOIN sold s USING (store_id, product_id, window_start)
    ), sums AS (
      SELECT *,
        coalesce(sum(quantity) OVER history, 0)::numeric AS total,
        coalesce(sum(quantity::numeric * quantity) OVER history, 0) AS squares,
        least(${ANOMALY_HISTORY_WINDOWS}, (extract(epoch FROM window_start - first_window) / ${WINDOW_MINUTES * 60})::integer) AS history
      FROM series
      WINDOW history AS (PARTITION BY store_id, product_id ORDER BY window_start RANGE BETWEEN interval '${ANOMALY_HISTORY_WINDOWS * WINDOW_MINUTES} minutes' PRECEDING AND ${step} PRECEDING)
    ), stats AS (
      SELECT store_id, product_id, window_start, quantity, history,
        CASE WHEN history > 0 THEN total / history END AS mean,
        CASE WHEN history > 0 THEN sqrt(greatest(0, squares / history - (total / history) ^ 2)) END AS sigma
      FROM sums
    )
    SELECT ${selectList(anomalyColumns)}
    FROM stats`
}

/** Seed 002's retail marts: the star, the windowed metrics and stock, and the anomaly view, all published. */
export const retailMarts: MartSet = {
  name: "retail",
  tables: retailTables,
  views: [
    { name: "sales_velocity_anomalies", columns: anomalyColumns.map(([column]) => column), key: ["store_id", "product_id", "window_start"] }
  ],
  extraSql: (schema) => [anomalyView(schema)],
  rowScope: { stores: "dim_store", store: "store_id", region: "region" },
  published: [...retailTables.map((table) => table.name), "sales_velocity_anomalies"]
}
