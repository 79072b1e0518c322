import { describeIssues } from "../../contracts/issues.ts"
import { RESTOCK_SUBJECT } from "../../contracts/log.ts"
import { retailEventTypes } from "../../contracts/retail.ts"
import { decodeEnvelope } from "../../contracts/sender-envelope.ts"
import { dateKey, dateRow } from "../calendar.ts"
import { type LogEvent, poison, type Projection, rows, type SideEffect, type SideEffects, skip, stateKey } from "../projection.ts"
import type { Row } from "../table.ts"
import { retailMarts, WINDOW_MINUTES } from "./marts.ts"

const floorTo = (iso: string, minutes: number): number => {
  const millis = Date.parse(iso)
  const size = minutes * 60_000
  // Floored, also before 1970, where `%` of a negative number is negative.
  return millis - (((millis % size) + size) % size)
}

/**
 * The row a store's facts make in `dim_store` before (or without) its master data: dated at the
 * epoch, so any `store.updated` (newest by event time) replaces it and no fact ever overwrites one.
 */
export const STORE_KEY_ONLY_AT = "1970-01-01T00:00:00.000Z"

const storeKeyRow = (store: string): Row => ({
  store_key: store,
  store_id: store,
  store_name: null,
  city: null,
  region: null,
  country: null,
  square_footage: null,
  store_type: null,
  updated_at: STORE_KEY_ONLY_AT
})

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
  ...retailMarts,
  // 2: the anomaly view's rows are the windows near sales, not every window since a product's first sale.
  // 3: sales before 1970 are windowed in the window that holds them.
  // 4: dim_store holds the stores' master data (store.updated: name, city, region ...) and every
  //    table with a store is behind row-level security by store and region.
  version: 4,
  domain: "retail",
  project: (event) => {
    const decoded = decodeEnvelope(retailEventTypes, event.payload)
    if (!decoded.ok) return poison(describeIssues(decoded.issues))
    const pos = decoded.value
    const { id } = pos
    const at = new Date(pos.timestamp).toISOString()
    const dims = (store: string, product?: string): Record<string, ReadonlyArray<Row>> => ({
      dim_store: [storeKeyRow(store)],
      dim_date: [dateRow(at)],
      ...(product === undefined ? {} : { dim_product: [{ product_key: product, sku: product }] })
    })
    switch (pos.type) {
      case "sale.completed": {
        const sale = pos.data
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
              sale_id: sale.sale_id,
              date_key: dateKey(at),
              product_key: sale.product_id,
              store_key: sale.store_id,
              quantity: sale.quantity,
              revenue,
              cost: sale.cost ?? null,
              profit: sale.cost === undefined ? null : Math.round((revenue - sale.cost) * 1e6) / 1e6,
              sold_at: at
            }
          ],
          sales_velocity_5m: [
            {
              window_start: new Date(windowStart).toISOString(),
              store_id: sale.store_id,
              product_id: sale.product_id,
              sales: late ? 0 : 1,
              quantity: late ? 0 : sale.quantity,
              revenue: late ? 0 : revenue,
              late_sales: late ? 1 : 0,
              late_quantity: late ? sale.quantity : 0,
              late_revenue: late ? revenue : 0
            }
          ],
          revenue_per_hour: [
            {
              hour_start: new Date(hourStart).toISOString(),
              store_id: sale.store_id,
              sales: lateForHour ? 0 : 1,
              revenue: lateForHour ? 0 : revenue,
              late_sales: lateForHour ? 1 : 0,
              late_revenue: lateForHour ? revenue : 0
            }
          ]
        })
      }
      case "return.processed": {
        const back = pos.data
        return rows({
          ...dims(back.store_id, back.product_id),
          fact_sales: [
            {
              sale_id: `return:${back.return_id}`,
              date_key: dateKey(at),
              product_key: back.product_id,
              store_key: back.store_id,
              quantity: -back.quantity,
              revenue: -back.amount,
              cost: null,
              profit: null,
              sold_at: at
            }
          ]
        })
      }
      case "inventory.updated": {
        const stock = pos.data
        return rows({
          ...dims(stock.store_id, stock.product_id),
          fact_inventory: [
            {
              inventory_id: id,
              date_key: dateKey(at),
              product_key: stock.product_id,
              store_key: stock.store_id,
              quantity_on_hand: stock.quantity_on_hand,
              reorder_point: stock.reorder_point ?? null,
              safety_stock: stock.safety_stock ?? null,
              counted_at: at
            }
          ],
          stock_level: [
            {
              store_id: stock.store_id,
              product_id: stock.product_id,
              quantity_on_hand: stock.quantity_on_hand,
              reorder_point: stock.reorder_point ?? null,
              as_of: at
            }
          ]
        })
      }
      case "price.changed": {
        const price = pos.data
        return rows({
          ...dims(price.store_id, price.product_id),
          price_history: [
            {
              price_id: id,
              product_key: price.product_id,
              store_key: price.store_id,
              old_price: price.old_price ?? null,
              new_price: price.new_price,
              changed_at: at
            }
          ]
        })
      }
      case "traffic.counted": {
        const traffic = pos.data
        return rows({
          ...dims(traffic.store_id),
          fact_traffic: [
            {
              traffic_id: id,
              date_key: dateKey(at),
              store_key: traffic.store_id,
              visitors: traffic.visitors,
              basket_size: traffic.basket_size ?? null,
              counted_at: at
            }
          ]
        })
      }
      case "shipment.received": {
        const shipment = pos.data
        return rows({
          ...dims(shipment.store_id, shipment.product_id),
          fact_shipments: [
            {
              shipment_id: shipment.shipment_id,
              date_key: dateKey(at),
              supplier: shipment.supplier,
              product_key: shipment.product_id,
              store_key: shipment.store_id,
              quantity: shipment.quantity,
              received_at: at
            }
          ]
        })
      }
      case "store.updated": {
        const store = pos.data
        return rows({
          dim_store: [
            {
              store_key: store.store_id,
              store_id: store.store_id,
              store_name: store.store_name ?? null,
              city: store.city ?? null,
              region: store.region ?? null,
              country: store.country ?? null,
              square_footage: store.square_footage ?? null,
              store_type: store.store_type ?? null,
              updated_at: at
            }
          ]
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
  const count = decoded.value
  return count.type === "inventory.updated" ? { ...count.data, as_of: new Date(count.timestamp).toISOString() } : undefined
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
      const wasAbove =
        before === undefined || before.reorder_point === null || Number(before.quantity_on_hand) >= Number(before.reorder_point)
      if (reorderPoint !== null && stock.quantity_on_hand < reorderPoint && wasAbove)
        alerts.push({
          id: `restock:${event.dedupeKey}`,
          seq: event.seq,
          subject: RESTOCK_SUBJECT,
          data: {
            store_id: stock.store_id,
            product_id: stock.product_id,
            quantity_on_hand: stock.quantity_on_hand,
            reorder_point: reorderPoint,
            as_of: stock.as_of,
            source_event: event.dedupeKey
          }
        })
      levels.set(key, { quantity_on_hand: stock.quantity_on_hand, reorder_point: reorderPoint, as_of: stock.as_of })
    }
    return alerts
  }
}
