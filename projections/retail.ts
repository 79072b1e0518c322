import type { InventoryUpdated, PriceChanged, ReturnProcessed, SaleCompleted, ShipmentReceived, TrafficCounted } from "../contracts/retail.ts"
import { retailEventTypes } from "../contracts/retail.ts"
import { dateKey, dateRow, dimDateColumns } from "./calendar.ts"
import { decodeEnvelope } from "./decode.ts"
import { RESTOCK_SUBJECT } from "../contracts/log.ts"
import { type LogEvent, poison, type Projection, rows, type SideEffect, type SideEffects, skip, stateKey } from "./projection.ts"
import { integer, numeric, qualified, type Row, type TableSpec, text, timestamp } from "./table.ts"

/** Length of the tumbling windows of the real-time metrics. */
export const WINDOW_MINUTES = 5


/** Seed 002's star schema, the supporting facts, and the windowed real-time metrics. */
export const retailTables: ReadonlyArray<TableSpec> = [
  {
    name: "fact_sales",
    columns: [text("sale_id"), integer("date_key"), text("product_key"), text("store_key"), integer("quantity"), numeric("revenue"), numeric("cost", true), numeric("profit", true), timestamp("sold_at")],
    key: ["sale_id"],
    merge: "insert",
    indexes: [["date_key"], ["sold_at"]]
  },
  {
    name: "fact_inventory",
    columns: [text("inventory_id"), integer("date_key"), text("product_key"), text("store_key"), integer("quantity_on_hand"), integer("reorder_point", true), integer("safety_stock", true), timestamp("counted_at")],
    key: ["inventory_id"],
    merge: "insert",
    indexes: [["date_key"]]
  },
  { name: "fact_traffic", columns: [text("traffic_id"), integer("date_key"), text("store_key"), integer("visitors"), numeric("basket_size", true), timestamp("counted_at")], key: ["traffic_id"], merge: "insert" },
  { name: "fact_shipments", columns: [text("shipment_id"), integer("date_key"), text("supplier"), text("product_key"), text("store_key"), integer("quantity"), timestamp("received_at")], key: ["shipment_id"], merge: "insert" },
  { name: "price_history", columns: [text("price_id"), text("product_key"), text("store_key"), numeric("old_price", true), numeric("new_price"), timestamp("changed_at")], key: ["price_id"], merge: "insert" },
  { name: "dim_product", columns: [text("product_key"), text("sku")], key: ["product_key"], merge: "insert" },
  { name: "dim_store", columns: [text("store_key"), text("store_id")], key: ["store_key"], merge: "insert" },
  { name: "dim_date", columns: dimDateColumns, key: ["date_key"], merge: "insert" },
  {
    name: "sales_velocity_5m",
    columns: [timestamp("window_start"), text("store_id"), text("product_id"), integer("sales"), integer("quantity"), numeric("revenue"), integer("late_sales"), integer("late_quantity"), numeric("late_revenue")],
    key: ["window_start", "store_id", "product_id"],
    merge: "increment",
    indexes: [["window_start"]]
  },
  {
    name: "revenue_per_hour",
    columns: [timestamp("hour_start"), text("store_id"), integer("sales"), numeric("revenue"), integer("late_sales"), numeric("late_revenue")],
    key: ["hour_start", "store_id"],
    merge: "increment",
    indexes: [["hour_start"]]
  },
  {
    name: "stock_level",
    columns: [text("store_id"), text("product_id"), integer("quantity_on_hand"), integer("reorder_point", true), timestamp("as_of")],
    key: ["store_id", "product_id"],
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
const anomalyView = (schema: string) => {
  const velocity = qualified(schema, "sales_velocity_5m")
  const step = `interval '${WINDOW_MINUTES} minutes'`
  return `CREATE VIEW ${qualified(schema, "sales_velocity_anomalies")} AS
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
    SELECT store_id, product_id, window_start, quantity, round(mean, 3) AS mean_quantity, round(sigma, 3) AS sigma,
      CASE WHEN history < ${ANOMALY_MIN_HISTORY} THEN NULL
           WHEN quantity > mean + ${ANOMALY_SIGMAS} * greatest(sigma, 1) THEN 'spike'
           WHEN quantity < mean - ${ANOMALY_SIGMAS} * greatest(sigma, 1) THEN 'drop'
           ELSE 'normal' END AS flag
    FROM stats`
}

const floorTo = (iso: string, minutes: number): number => {
  const millis = Date.parse(iso)
  return millis - (millis % (minutes * 60_000))
}

export interface RetailOptions {
  /** How long after a window closes an event may still arrive and count in the window's main columns. */
  readonly latenessMs: number
}

/**
 * POS events become the star schema and, by event time, 5-minute sales velocity, hourly revenue
 * and current stock. Arrival order does not matter: windows add up and stock keeps the newest
 * count. An event received (at the edge) more than `latenessMs` after its window (5 minutes, or the
 * hour) closed is counted in that window's `late_*` columns, so nothing is lost and on-time figures
 * stay stable once the bound has passed.
 */
export const retailProjection = (options: RetailOptions): Projection => ({
  name: "retail",
  // 2: the anomaly view's rows are the windows near sales, not every window since a product's first sale.
  version: 2,
  domain: "retail",
  tables: retailTables,
  published: [...retailTables.map((table) => table.name), "sales_velocity_anomalies"],
  views: [
    {
      name: "sales_velocity_anomalies",
      columns: [text("store_id"), text("product_id"), timestamp("window_start"), integer("quantity"), numeric("mean_quantity", true), numeric("sigma", true), text("flag", true)],
      key: ["store_id", "product_id", "window_start"]
    }
  ],
  extraSql: (schema) => [anomalyView(schema)],
  project: (event) => {
    const decoded = decodeEnvelope(retailEventTypes, event.payload)
    if (!decoded.ok) return poison(decoded.reason)
    const { type, id } = decoded.value
    const at = new Date(decoded.value.timestamp).toISOString()
    const dims = (store: string, product?: string): Record<string, ReadonlyArray<Row>> => ({
      dim_store: [{ store_key: store, store_id: store }],
      dim_date: [dateRow(at)],
      ...(product === undefined ? {} : { dim_product: [{ product_key: product, sku: product }] })
    })
    switch (type) {
      case "sale.completed": {
        const sale = decoded.value.data as typeof SaleCompleted.Type
        // Money to the micro-unit, so 3 × 0.1 is 0.3 and not 0.30000000000000004.
        const revenue = sale.revenue ?? Math.round(sale.quantity * sale.unit_price * 1e6) / 1e6
        const received = Date.parse(event.receivedAt)
        const windowStart = floorTo(at, WINDOW_MINUTES)
        const late = received > windowStart + WINDOW_MINUTES * 60_000 + options.latenessMs
        const hourStart = floorTo(at, 60)
        const lateForHour = received > hourStart + 3_600_000 + options.latenessMs
        return rows({
          ...dims(sale.store_id, sale.product_id),
          fact_sales: [
            {
              sale_id: sale.sale_id, date_key: dateKey(at), product_key: sale.product_id, store_key: sale.store_id, quantity: sale.quantity, revenue,
              cost: sale.cost ?? null, profit: sale.cost === undefined ? null : Math.round((revenue - sale.cost) * 1e6) / 1e6, sold_at: at
            }
          ],
          sales_velocity_5m: [
            {
              window_start: new Date(windowStart).toISOString(), store_id: sale.store_id, product_id: sale.product_id,
              sales: late ? 0 : 1, quantity: late ? 0 : sale.quantity, revenue: late ? 0 : revenue,
              late_sales: late ? 1 : 0, late_quantity: late ? sale.quantity : 0, late_revenue: late ? revenue : 0
            }
          ],
          revenue_per_hour: [
            {
              hour_start: new Date(hourStart).toISOString(), store_id: sale.store_id,
              sales: lateForHour ? 0 : 1, revenue: lateForHour ? 0 : revenue, late_sales: lateForHour ? 1 : 0, late_revenue: lateForHour ? revenue : 0
            }
          ]
        })
      }
      case "return.processed": {
        const back = decoded.value.data as typeof ReturnProcessed.Type
        return rows({
          ...dims(back.store_id, back.product_id),
          fact_sales: [
            { sale_id: `return:${back.return_id}`, date_key: dateKey(at), product_key: back.product_id, store_key: back.store_id, quantity: -back.quantity, revenue: -back.amount, cost: null, profit: null, sold_at: at }
          ]
        })
      }
      case "inventory.updated": {
        const stock = decoded.value.data as typeof InventoryUpdated.Type
        return rows({
          ...dims(stock.store_id, stock.product_id),
          fact_inventory: [
            {
              inventory_id: id, date_key: dateKey(at), product_key: stock.product_id, store_key: stock.store_id, quantity_on_hand: stock.quantity_on_hand,
              reorder_point: stock.reorder_point ?? null, safety_stock: stock.safety_stock ?? null, counted_at: at
            }
          ],
          stock_level: [{ store_id: stock.store_id, product_id: stock.product_id, quantity_on_hand: stock.quantity_on_hand, reorder_point: stock.reorder_point ?? null, as_of: at }]
        })
      }
      case "price.changed": {
        const price = decoded.value.data as typeof PriceChanged.Type
        return rows({ ...dims(price.store_id, price.product_id), price_history: [{ price_id: id, product_key: price.product_id, store_key: price.store_id, old_price: price.old_price ?? null, new_price: price.new_price, changed_at: at }] })
      }
      case "traffic.counted": {
        const traffic = decoded.value.data as typeof TrafficCounted.Type
        return rows({ ...dims(traffic.store_id), fact_traffic: [{ traffic_id: id, date_key: dateKey(at), store_key: traffic.store_id, visitors: traffic.visitors, basket_size: traffic.basket_size ?? null, counted_at: at }] })
      }
      case "shipment.received": {
        const shipment = decoded.value.data as typeof ShipmentReceived.Type
        return rows({
          ...dims(shipment.store_id, shipment.product_id),
          fact_shipments: [{ shipment_id: shipment.shipment_id, date_key: dateKey(at), supplier: shipment.supplier, product_key: shipment.product_id, store_key: shipment.store_id, quantity: shipment.quantity, received_at: at }]
        })
      }
      default:
        return skip
    }
  },
  effects: restockAlerts
})

const stockOf = (event: LogEvent) => {
  if (event.type !== "inventory.updated") return undefined
  const decoded = decodeEnvelope(retailEventTypes, event.payload)
  if (!decoded.ok) return undefined
  const data = decoded.value.data as typeof InventoryUpdated.Type
  return { ...data, as_of: new Date(decoded.value.timestamp).toISOString() }
}

/**
 * A restock alert each time a product's stock falls below its reorder point: the newest count
 * (by event time) is below the reorder point it carries and the count it replaces was not below
 * its own (counts without a reorder point raise nothing). Counts older than the current one
 * change nothing. Published to `derived.retail.restock`, once per crossing.
 */
export const restockAlerts: SideEffects = {
  state: {
    table: "stock_level",
    keyOf: (event) => {
      const stock = stockOf(event)
      return stock === undefined ? undefined : [stock.store_id, stock.product_id]
    }
  },
  decide: (current, events) => {
    const levels = new Map(current)
    const alerts: Array<SideEffect> = []
    for (const event of events) {
      const stock = stockOf(event)
      if (stock === undefined) continue
      const key = stateKey([stock.store_id, stock.product_id])
      const before = levels.get(key)
      if (before !== undefined && String(before.as_of) > stock.as_of) continue
      const reorderPoint = stock.reorder_point ?? null
      const wasAbove = before === undefined || before.reorder_point === null || Number(before.quantity_on_hand) >= Number(before.reorder_point)
      if (reorderPoint !== null && stock.quantity_on_hand < reorderPoint && wasAbove)
        alerts.push({
          id: `restock:${event.dedupeKey}`,
          seq: event.seq,
          subject: RESTOCK_SUBJECT,
          data: { store_id: stock.store_id, product_id: stock.product_id, quantity_on_hand: stock.quantity_on_hand, reorder_point: reorderPoint, as_of: stock.as_of, source_event: event.dedupeKey }
        })
      levels.set(key, { quantity_on_hand: stock.quantity_on_hand, reorder_point: reorderPoint, as_of: stock.as_of })
    }
    return alerts
  }
}
