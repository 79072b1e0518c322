import { describe, expect, it } from "vitest"
import { RESTOCK_SUBJECT } from "../../contracts/log.ts"
import { retailEvents } from "../../infra/local/samples.ts"
import { type LogEvent, type Outcome, stateKey } from "../projection.ts"
import type { Row } from "../table.ts"
import { restockAlerts, retailProjection, STORE_KEY_ONLY_AT } from "./projection.ts"

type Envelope = { readonly id: string; readonly type: string; readonly timestamp: string; readonly data: unknown }

const LATENESS_MS = 10 * 60_000
const projection = retailProjection({ latenessMs: LATENESS_MS })

/** A POS event as the runtime reads it from the log; `receivedAt` is when the edge got it. */
const logEvent = (payload: Envelope, receivedAt = new Date(Date.parse(payload.timestamp) + 60_000).toISOString(), seq = 1): LogEvent => ({
  seq,
  subject: `ingest.retail.pos.${payload.type.replace(".", "_")}`,
  source: "pos",
  type: payload.type,
  dedupeKey: `pos:${payload.id}`,
  occurredAt: new Date(payload.timestamp).toISOString(),
  receivedAt,
  schema: "retail/v1",
  payload
})

const rowsOf = (outcome: Outcome): Readonly<Record<string, ReadonlyArray<Row>>> => {
  if (outcome._tag !== "Rows") throw new Error(`expected Rows, got ${JSON.stringify(outcome)}`)
  return outcome.rows
}
const one = (outcome: Outcome, table: string): Row => {
  const [row, ...more] = rowsOf(outcome)[table] ?? []
  if (row === undefined || more.length > 0) throw new Error(`expected one ${table} row, got ${JSON.stringify(outcome)}`)
  return row
}
const poisonReason = (outcome: Outcome): string => {
  if (outcome._tag !== "Poison") throw new Error(`expected Poison, got ${JSON.stringify(outcome)}`)
  return outcome.reason
}

const WEDNESDAY_15_JAN = {
  date_key: 20250115,
  full_date: "2025-01-15",
  day_of_week: 3,
  day_name: "Wednesday",
  month: 1,
  quarter: 1,
  year: 2025,
  is_weekend: false,
  is_holiday: false
}
/** A store as its facts know it: its id, and none of the master data only store.updated brings. */
const STORE_47 = {
  store_key: "47",
  store_id: "47",
  store_name: null,
  city: null,
  region: null,
  country: null,
  square_footage: null,
  store_type: null,
  updated_at: STORE_KEY_ONLY_AT
}
const DIMS = {
  dim_store: [STORE_47],
  dim_date: [WEDNESDAY_15_JAN],
  dim_product: [{ product_key: "SKU123", sku: "SKU123" }]
}

const saleAt = (timestamp: string, data: Record<string, unknown> = {}): Envelope => ({
  id: "sale_1",
  type: "sale.completed",
  timestamp,
  data: { sale_id: "S1", store_id: "47", product_id: "SKU123", quantity: 2, unit_price: 4.5, ...data }
})

describe("retail projection: sales", () => {
  it("windows a sale before 1970 in the window and hour that hold it, not the ones after", () => {
    const outcome = projection.project(logEvent(saleAt("1969-12-31T23:58:00Z"), "1969-12-31T23:58:30.000Z"))
    expect(one(outcome, "sales_velocity_5m").window_start).toBe("1969-12-31T23:55:00.000Z")
    expect(one(outcome, "revenue_per_hour").hour_start).toBe("1969-12-31T23:00:00.000Z")
  })

  it("writes an on-time sale to the star, its 5-minute window and its hour, with its store, product and day", () => {
    const outcome = projection.project(logEvent(saleAt("2025-01-15T12:02:30Z", { currency: "EUR" }), "2025-01-15T12:03:00.000Z"))
    expect(outcome).toEqual({
      _tag: "Rows",
      rows: {
        ...DIMS,
        fact_sales: [
          {
            sale_id: "S1",
            date_key: 20250115,
            product_key: "SKU123",
            store_key: "47",
            quantity: 2,
            revenue: 9,
            cost: null,
            profit: null,
            sold_at: "2025-01-15T12:02:30.000Z"
          }
        ],
        sales_velocity_5m: [
          {
            window_start: "2025-01-15T12:00:00.000Z",
            store_id: "47",
            product_id: "SKU123",
            sales: 1,
            quantity: 2,
            revenue: 9,
            late_sales: 0,
            late_quantity: 0,
            late_revenue: 0
          }
        ],
        revenue_per_hour: [{ hour_start: "2025-01-15T12:00:00.000Z", store_id: "47", sales: 1, revenue: 9, late_sales: 0, late_revenue: 0 }]
      }
    })
  })

  it("rounds revenue and profit to the micro-unit, so 3 × 0.1 is 0.3", () => {
    const outcome = projection.project(logEvent(saleAt("2025-01-15T12:02:30Z", { quantity: 3, unit_price: 0.1, cost: 0.1 })))
    expect(one(outcome, "fact_sales")).toMatchObject({ quantity: 3, revenue: 0.3, cost: 0.1, profit: 0.2 })
    expect(one(outcome, "sales_velocity_5m").revenue).toBe(0.3)
    expect(one(outcome, "revenue_per_hour").revenue).toBe(0.3)
    expect(
      one(projection.project(logEvent(saleAt("2025-01-15T12:02:30Z", { quantity: 3, unit_price: 0.3333333 }))), "fact_sales").revenue
    ).toBe(1)
  })

  it("takes the revenue the POS sent over quantity × unit price, and the profit from it", () => {
    const outcome = projection.project(logEvent(saleAt("2025-01-15T12:02:30Z", { revenue: 8, cost: 5.5 })))
    expect(one(outcome, "fact_sales")).toMatchObject({ revenue: 8, cost: 5.5, profit: 2.5 })
    expect(one(outcome, "sales_velocity_5m").revenue).toBe(8)
  })

  it("writes a loss as a negative profit", () => {
    expect(one(projection.project(logEvent(saleAt("2025-01-15T12:02:30Z", { cost: 10 }))), "fact_sales").profit).toBe(-1)
  })

  it("floors a sale into its 5-minute window and its hour by event time, in UTC", () => {
    const edge = projection.project(logEvent(saleAt("2025-01-15T12:59:59.999Z")))
    expect(one(edge, "sales_velocity_5m").window_start).toBe("2025-01-15T12:55:00.000Z")
    expect(one(edge, "revenue_per_hour").hour_start).toBe("2025-01-15T12:00:00.000Z")
    const zoned = projection.project(logEvent(saleAt("2025-01-15T14:05:00+02:00")))
    expect(one(zoned, "fact_sales").sold_at).toBe("2025-01-15T12:05:00.000Z")
    expect(one(zoned, "sales_velocity_5m").window_start).toBe("2025-01-15T12:05:00.000Z")
  })

  it("dates a sale by its UTC day", () => {
    const outcome = projection.project(logEvent(saleAt("2025-01-16T00:30:00+01:00")))
    expect(one(outcome, "fact_sales")).toMatchObject({ date_key: 20250115, sold_at: "2025-01-15T23:30:00.000Z" })
    expect(rowsOf(outcome).dim_date).toEqual([WEDNESDAY_15_JAN])
    expect(one(outcome, "revenue_per_hour").hour_start).toBe("2025-01-15T23:00:00.000Z")
  })
})

describe("retail projection: late sales", () => {
  // A sale at 12:02:30 is in the window 12:00–12:05 and the hour 12:00–13:00; the bound is 10 minutes after each closes.
  const sale = saleAt("2025-01-15T12:02:30Z")
  const windows = (receivedAt: string) => {
    const outcome = projection.project(logEvent(sale, receivedAt))
    return { velocity: one(outcome, "sales_velocity_5m"), hourly: one(outcome, "revenue_per_hour"), fact: one(outcome, "fact_sales") }
  }

  it("counts a sale received up to the bound after its window closed as on time", () => {
    const { velocity, hourly } = windows("2025-01-15T12:15:00.000Z")
    expect(velocity).toMatchObject({ sales: 1, quantity: 2, revenue: 9, late_sales: 0, late_quantity: 0, late_revenue: 0 })
    expect(hourly).toMatchObject({ sales: 1, revenue: 9, late_sales: 0, late_revenue: 0 })
  })

  it("counts a sale received a millisecond past the window's bound in the window's late columns, still on time for its hour", () => {
    const { velocity, hourly, fact } = windows("2025-01-15T12:15:00.001Z")
    expect(velocity).toEqual({
      window_start: "2025-01-15T12:00:00.000Z",
      store_id: "47",
      product_id: "SKU123",
      sales: 0,
      quantity: 0,
      revenue: 0,
      late_sales: 1,
      late_quantity: 2,
      late_revenue: 9
    })
    expect(hourly).toMatchObject({ sales: 1, revenue: 9, late_sales: 0, late_revenue: 0 })
    expect(fact).toMatchObject({ quantity: 2, revenue: 9 })
  })

  it("counts a sale received past the hour's bound late for the hour too", () => {
    expect(windows("2025-01-15T13:10:00.000Z").hourly).toMatchObject({ sales: 1, late_sales: 0 })
    const { velocity, hourly } = windows("2025-01-15T13:10:00.001Z")
    expect(velocity).toMatchObject({ sales: 0, late_sales: 1, late_quantity: 2, late_revenue: 9 })
    expect(hourly).toEqual({ hour_start: "2025-01-15T12:00:00.000Z", store_id: "47", sales: 0, revenue: 0, late_sales: 1, late_revenue: 9 })
  })

  it("decides lateness by when the edge received the event, not by the log's occurredAt", () => {
    const event = logEvent(sale, "2025-01-15T12:03:00.000Z")
    expect(one(projection.project({ ...event, occurredAt: "2025-01-15T14:00:00.000Z" }), "sales_velocity_5m").late_sales).toBe(0)
    expect(one(projection.project({ ...event, receivedAt: "2025-01-15T14:00:00.000Z" }), "sales_velocity_5m").late_sales).toBe(1)
  })

  it("takes the bound from its options", () => {
    const strict = retailProjection({ latenessMs: 0 })
    expect(one(strict.project(logEvent(sale, "2025-01-15T12:05:00.000Z")), "sales_velocity_5m").late_sales).toBe(0)
    expect(one(strict.project(logEvent(sale, "2025-01-15T12:05:00.001Z")), "sales_velocity_5m").late_sales).toBe(1)
    expect(one(strict.project(logEvent(sale, "2025-01-15T13:00:00.001Z")), "revenue_per_hour").late_sales).toBe(1)
  })
})

describe("retail projection: returns, stock, prices, traffic and shipments", () => {
  it("writes a return as a negative sale in the star only, not in the windows", () => {
    const payload = {
      id: "ret_1",
      type: "return.processed",
      timestamp: "2025-01-15T12:30:00Z",
      data: { return_id: "R-1", sale_id: "S1", store_id: "47", product_id: "SKU123", quantity: 2, amount: 9, reason: "damaged" }
    }
    expect(projection.project(logEvent(payload))).toEqual({
      _tag: "Rows",
      rows: {
        ...DIMS,
        fact_sales: [
          {
            sale_id: "return:R-1",
            date_key: 20250115,
            product_key: "SKU123",
            store_key: "47",
            quantity: -2,
            revenue: -9,
            cost: null,
            profit: null,
            sold_at: "2025-01-15T12:30:00.000Z"
          }
        ]
      }
    })
  })

  it("writes a stock count to the inventory facts and as the current stock level, under its envelope id", () => {
    const payload = {
      id: "inv_1",
      type: "inventory.updated",
      timestamp: "2025-01-15T12:00:00+01:00",
      data: { store_id: "47", product_id: "SKU123", quantity_on_hand: 13, reorder_point: 20, safety_stock: 5 }
    }
    expect(projection.project(logEvent(payload))).toEqual({
      _tag: "Rows",
      rows: {
        ...DIMS,
        fact_inventory: [
          {
            inventory_id: "inv_1",
            date_key: 20250115,
            product_key: "SKU123",
            store_key: "47",
            quantity_on_hand: 13,
            reorder_point: 20,
            safety_stock: 5,
            counted_at: "2025-01-15T11:00:00.000Z"
          }
        ],
        stock_level: [{ store_id: "47", product_id: "SKU123", quantity_on_hand: 13, reorder_point: 20, as_of: "2025-01-15T11:00:00.000Z" }]
      }
    })
  })

  it("writes a stock count without reorder point or safety stock with nulls", () => {
    const outcome = projection.project(
      logEvent({
        id: "inv_2",
        type: "inventory.updated",
        timestamp: "2025-01-15T12:00:00Z",
        data: { store_id: "47", product_id: "SKU123", quantity_on_hand: 0 }
      })
    )
    expect(one(outcome, "fact_inventory")).toMatchObject({ quantity_on_hand: 0, reorder_point: null, safety_stock: null })
    expect(one(outcome, "stock_level")).toEqual({
      store_id: "47",
      product_id: "SKU123",
      quantity_on_hand: 0,
      reorder_point: null,
      as_of: "2025-01-15T12:00:00.000Z"
    })
  })

  it("writes a price change to the price history under its envelope id", () => {
    const payload = {
      id: "price_1",
      type: "price.changed",
      timestamp: "2025-01-15T09:00:00Z",
      data: { store_id: "47", product_id: "SKU123", old_price: 4.5, new_price: 4.99 }
    }
    expect(projection.project(logEvent(payload))).toEqual({
      _tag: "Rows",
      rows: {
        ...DIMS,
        price_history: [
          {
            price_id: "price_1",
            product_key: "SKU123",
            store_key: "47",
            old_price: 4.5,
            new_price: 4.99,
            changed_at: "2025-01-15T09:00:00.000Z"
          }
        ]
      }
    })
    const first = projection.project(logEvent({ ...payload, data: { store_id: "47", product_id: "SKU123", new_price: 3 } }))
    expect(one(first, "price_history")).toMatchObject({ old_price: null, new_price: 3 })
  })

  it("writes a store's master data to dim_store, dated at its event time so it outranks the rows facts make", () => {
    const payload = {
      id: "store_47",
      type: "store.updated",
      timestamp: "2025-01-15T12:00:00Z",
      data: { store_id: "47", store_name: "Downtown", city: "Boston", region: "Northeast", square_footage: 12000 }
    }
    expect(projection.project(logEvent(payload))).toEqual({
      _tag: "Rows",
      rows: {
        dim_store: [
          {
            ...STORE_47,
            store_name: "Downtown",
            city: "Boston",
            region: "Northeast",
            square_footage: 12000,
            updated_at: "2025-01-15T12:00:00.000Z"
          }
        ]
      }
    })
    expect(STORE_KEY_ONLY_AT < "2025-01-15T12:00:00.000Z").toBe(true)
  })

  it("writes footfall with its store and day but no product", () => {
    const payload = {
      id: "traffic_1",
      type: "traffic.counted",
      timestamp: "2025-01-15T12:00:00Z",
      data: { store_id: "47", visitors: 31, basket_size: 2.4 }
    }
    expect(projection.project(logEvent(payload))).toEqual({
      _tag: "Rows",
      rows: {
        dim_store: [STORE_47],
        dim_date: [WEDNESDAY_15_JAN],
        fact_traffic: [
          {
            traffic_id: "traffic_1",
            date_key: 20250115,
            store_key: "47",
            visitors: 31,
            basket_size: 2.4,
            counted_at: "2025-01-15T12:00:00.000Z"
          }
        ]
      }
    })
    expect(one(projection.project(logEvent({ ...payload, data: { store_id: "47", visitors: 0 } })), "fact_traffic").basket_size).toBeNull()
  })

  it("writes a shipment under its own id, received at its event time", () => {
    const payload = {
      id: "ship_1",
      type: "shipment.received",
      timestamp: "2025-01-15T07:45:00Z",
      data: { shipment_id: "SH-1", supplier: "Acme", store_id: "47", product_id: "SKU123", quantity: 120 }
    }
    expect(projection.project(logEvent(payload, "2025-01-15T09:00:00.000Z"))).toEqual({
      _tag: "Rows",
      rows: {
        ...DIMS,
        fact_shipments: [
          {
            shipment_id: "SH-1",
            date_key: 20250115,
            supplier: "Acme",
            product_key: "SKU123",
            store_key: "47",
            quantity: 120,
            received_at: "2025-01-15T07:45:00.000Z"
          }
        ]
      }
    })
  })

  it("projects the sample POS events", () => {
    const [sale, count, traffic] = retailEvents("48").map((payload) => projection.project(logEvent(payload)))
    expect(one(sale as Outcome, "fact_sales")).toMatchObject({ store_key: "48", quantity: 2, revenue: 9 })
    expect(one(count as Outcome, "stock_level")).toMatchObject({ store_id: "48", quantity_on_hand: 13, reorder_point: 20 })
    expect(one(traffic as Outcome, "fact_traffic")).toMatchObject({ store_key: "48", visitors: 31 })
  })
})

describe("retail projection: events that break the contract", () => {
  it.each([
    ["a sale of no items", saleAt("2025-01-15T12:00:00Z", { quantity: 0 }), "$.data.quantity"],
    ["a negative unit price", saleAt("2025-01-15T12:00:00Z", { unit_price: -1 }), "$.data.unit_price"],
    ["a currency that is not ISO 4217", saleAt("2025-01-15T12:00:00Z", { currency: "eur" }), "$.data.currency"],
    [
      "a sale without a store",
      { ...saleAt("2025-01-15T12:00:00Z"), data: { sale_id: "S1", product_id: "SKU", quantity: 1, unit_price: 1 } },
      "$.data.store_id"
    ],
    [
      "a stock count below zero",
      {
        id: "i",
        type: "inventory.updated",
        timestamp: "2025-01-15T12:00:00Z",
        data: { store_id: "47", product_id: "P", quantity_on_hand: -1 }
      },
      "$.data.quantity_on_hand"
    ],
    ["a timestamp on no calendar day", saleAt("2025-02-30T12:00:00Z"), "$.timestamp"]
  ])("poisons %s, naming the field", (_, payload, path) => {
    expect(poisonReason(projection.project(logEvent(payload, "2025-01-15T12:00:00.000Z")))).toContain(path)
  })

  it("poisons an event type it does not know, naming the type (the envelope's types are the contract's)", () => {
    const reason = poisonReason(
      projection.project(logEvent({ id: "x", type: "basket.abandoned", timestamp: "2025-01-15T12:00:00Z", data: {} }))
    )
    expect(reason).toContain("$.type")
    expect(reason).toContain('"basket.abandoned"')
  })
})

/** A stock count of SKU123 at store 47, `minute` minutes after 08:00 UTC. */
const count = (
  n: number,
  minute: number,
  quantity: number,
  data: Record<string, unknown> = { reorder_point: 20 },
  product = "SKU123"
): LogEvent =>
  logEvent(
    {
      id: `count_${n}`,
      type: "inventory.updated",
      timestamp: new Date(Date.parse("2025-01-15T08:00:00Z") + minute * 60_000).toISOString(),
      data: { store_id: "47", product_id: product, quantity_on_hand: quantity, ...data }
    },
    undefined,
    n
  )
const asOf = (minute: number) => new Date(Date.parse("2025-01-15T08:00:00Z") + minute * 60_000).toISOString()
/** The state the runtime loads for a product: its stock_level row, JSON-normalised, under its stateKey. */
const state = (rows: ReadonlyArray<Row>): ReadonlyMap<string, Row> =>
  new Map(rows.map((row) => [stateKey([row.store_id, row.product_id]), row]))
const level = (quantity: number, reorderPoint: number | null, minute: number, product = "SKU123"): Row => ({
  store_id: "47",
  product_id: product,
  quantity_on_hand: quantity,
  reorder_point: reorderPoint,
  as_of: asOf(minute)
})
const quantities = (alerts: ReturnType<typeof restockAlerts.decide>) =>
  alerts.map((alert) => (alert.data as { quantity_on_hand: number }).quantity_on_hand)

describe("restock alerts", () => {
  it("are the retail projection's side effects, reading stock_level by store and product for stock counts only", () => {
    expect(projection.effects).toBe(restockAlerts)
    expect(restockAlerts.state.table).toBe("stock_level")
    expect(restockAlerts.state.keyOf(count(1, 0, 5))).toEqual(["47", "SKU123"])
    expect(restockAlerts.state.keyOf(logEvent(saleAt("2025-01-15T12:00:00Z")))).toBeUndefined()
    expect(restockAlerts.state.keyOf({ ...count(1, 0, 5), payload: { broken: true } })).toBeUndefined()
  })

  it("raise one alert when a first count is below its reorder point, naming the count that caused it", () => {
    expect(restockAlerts.decide(new Map(), [count(1, 10, 18)])).toEqual([
      {
        id: "restock:pos:count_1",
        seq: 1,
        subject: RESTOCK_SUBJECT,
        data: {
          store_id: "47",
          product_id: "SKU123",
          quantity_on_hand: 18,
          reorder_point: 20,
          as_of: asOf(10),
          source_event: "pos:count_1"
        }
      }
    ])
  })

  it("raise an alert when stock falls from at or above its reorder point to below it", () => {
    expect(quantities(restockAlerts.decide(state([level(30, 20, 0)]), [count(2, 10, 19)]))).toEqual([19])
    expect(quantities(restockAlerts.decide(state([level(20, 20, 0)]), [count(2, 10, 19)]))).toEqual([19])
  })

  it("raise nothing for a count at its reorder point", () => {
    expect(restockAlerts.decide(state([level(30, 20, 0)]), [count(2, 10, 20)])).toEqual([])
  })

  it("raise nothing when stock was already below its reorder point", () => {
    expect(restockAlerts.decide(state([level(12, 20, 0)]), [count(2, 10, 10)])).toEqual([])
  })

  it("raise nothing for a count older than the current one, however low", () => {
    expect(restockAlerts.decide(state([level(30, 20, 20)]), [count(2, 10, 1)])).toEqual([])
  })

  it("raise nothing for a count without a reorder point", () => {
    expect(restockAlerts.decide(state([level(30, 20, 0)]), [count(2, 10, 0, {})])).toEqual([])
    expect(restockAlerts.decide(new Map(), [count(2, 10, 0, {})])).toEqual([])
  })

  it("treat a current level without a reorder point as not below", () => {
    expect(quantities(restockAlerts.decide(state([level(5, null, 0)]), [count(2, 10, 4)]))).toEqual([4])
  })

  it("judge the current level against its own reorder point, the new count against the one it carries", () => {
    // 15 was above its old point of 10; the count lowers nothing but raises the point to 20.
    expect(quantities(restockAlerts.decide(state([level(15, 10, 0)]), [count(2, 10, 15)]))).toEqual([15])
    // 15 was below its own point of 20 (not below the new point of 10): a count of 8 against 10 crosses nothing.
    expect(restockAlerts.decide(state([level(15, 20, 0)]), [count(2, 10, 8, { reorder_point: 10 })])).toEqual([])
  })

  it("raise one alert per crossing within a batch, by event time, whatever the arrival order", () => {
    // 30 → 18 (crosses) → 12 (still below) → an older 5 arriving late → 25 (back above) → 10 (crosses again).
    const batch = [count(1, 0, 30), count(2, 10, 18), count(3, 20, 12), count(4, 15, 5), count(5, 30, 25), count(6, 40, 10)]
    const alerts = restockAlerts.decide(new Map(), batch)
    expect(alerts.map((alert) => [alert.id, alert.seq])).toEqual([
      ["restock:pos:count_2", 2],
      ["restock:pos:count_6", 6]
    ])
    expect(quantities(alerts)).toEqual([18, 10])
  })

  it("carry the batch's state from one count to the next, starting from the current level", () => {
    expect(
      restockAlerts.decide(state([level(5, 20, 0)]), [count(1, 10, 4), count(2, 20, 30), count(3, 30, 3)]).map((alert) => alert.id)
    ).toEqual(["restock:pos:count_3"])
  })

  it("keep each store's product apart", () => {
    const alerts = restockAlerts.decide(state([level(5, 20, 0, "SKU1")]), [
      count(1, 10, 4, { reorder_point: 20 }, "SKU1"),
      count(2, 10, 4, { reorder_point: 20 }, "SKU2")
    ])
    expect(alerts.map((alert) => (alert.data as { product_id: string }).product_id)).toEqual(["SKU2"])
  })

  it("ignore events that are not stock counts, and counts that break the contract", () => {
    const sale = logEvent(saleAt("2025-01-15T08:05:00Z"))
    const broken = {
      ...count(3, 10, 1),
      payload: { id: "count_3", type: "inventory.updated", timestamp: "2025-01-15T08:10:00Z", data: { store_id: "47" } }
    }
    expect(restockAlerts.decide(new Map(), [sale, broken])).toEqual([])
  })

  it("are decided the same, with the same ids, every time, and leave the current state as it was", () => {
    const current = state([level(30, 20, 0)])
    const batch = [count(1, 10, 18), count(2, 20, 25), count(3, 30, 2)]
    const first = restockAlerts.decide(current, batch)
    expect(first.map((alert) => alert.id)).toEqual(["restock:pos:count_1", "restock:pos:count_3"])
    expect(restockAlerts.decide(current, batch)).toEqual(first)
    expect([...current.values()]).toEqual([level(30, 20, 0)])
  })
})
