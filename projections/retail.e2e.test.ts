import postgres from "postgres"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { rebuildProjection } from "../consumers/rebuild.ts"
import { appendAsEdge } from "../infra/local/append.ts"
import { type LogStack, startLogStack } from "../infra/local/log-stack.ts"
import { martSnapshot } from "../infra/local/marts.ts"
import { type PostgresServer, startPostgres } from "../infra/postgres/database.ts"
import { retailProjection } from "./retail.ts"

const projection = retailProjection({ latenessMs: 10 * 60_000 })
const T0 = Date.parse("2025-01-15T12:00:00Z")
const at = (minutes: number) => new Date(T0 + minutes * 60_000).toISOString()

type Sent = { readonly payload: { id: string; type: string; timestamp: string; data: object }; readonly receivedAt: string }

const sale = (n: number, minute: number, store: string, product: string, quantity: number, receivedAfter = 2): Sent => ({
  payload: { id: `sale_${n}`, type: "sale.completed", timestamp: at(minute), data: { sale_id: `S${n}`, store_id: store, product_id: product, quantity, unit_price: 2.5 } },
  receivedAt: at(minute + receivedAfter)
})
const stock = (n: number, minute: number, quantity: number): Sent => ({
  payload: { id: `inv_${n}`, type: "inventory.updated", timestamp: at(minute), data: { store_id: "47", product_id: "SKU123", quantity_on_hand: quantity, reorder_point: 15 } },
  receivedAt: at(minute + 1)
})

/** Sales over three windows and two hours, stock counts, and one sale received 28 minutes after it happened. */
const EVENTS: ReadonlyArray<Sent> = [
  sale(1, 0.5, "47", "SKU123", 2),
  sale(2, 1, "47", "SKU123", 1),
  sale(3, 2, "47", "SKU123", 4, 28),
  sale(4, 4, "48", "SKU456", 3),
  sale(5, 6, "47", "SKU123", 1),
  sale(6, 7, "47", "SKU456", 5, 9),
  sale(7, 11, "48", "SKU456", 2),
  sale(8, 61, "47", "SKU123", 6),
  stock(1, 1, 20),
  stock(2, 7, 13),
  stock(3, 3, 18)
]

const seeded = (seed: number) => () => ((seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31)

let pg: PostgresServer
const stacks: Array<LogStack> = []

/** One log of `sent` on its own nats-server, projected live into its own database. */
const project = async (sent: ReadonlyArray<Sent>, resendAfterWindow: ReadonlyArray<Sent> = []) => {
  const stack = await startLogStack({ pg })
  stacks.push(stack)
  const { sql } = await stack.database()
  await appendAsEdge(stack.js, "pos", sent.map((s) => s.payload), { receivedAt: (_, i) => (sent[i] as Sent).receivedAt })
  if (resendAfterWindow.length > 0)
    await appendAsEdge(stack.js, "pos", resendAfterWindow.map((s) => s.payload), { receivedAt: (_, i) => (resendAfterWindow[i] as Sent).receivedAt, messageId: (m) => `${m.msgId}:resent` })
  await stack.projectToHead(sql, projection, { batchSize: 4 })
  return { sql, stack }
}

const windows = async (sql: postgres.Sql) => ({
  velocity: JSON.parse(JSON.stringify(await sql`SELECT * FROM mart.sales_velocity_5m ORDER BY window_start, store_id, product_id`)) as Array<Record<string, unknown>>,
  hourly: JSON.parse(JSON.stringify(await sql`SELECT * FROM mart.revenue_per_hour ORDER BY hour_start, store_id`)) as Array<Record<string, unknown>>,
  stock: JSON.parse(JSON.stringify(await sql`SELECT * FROM mart.stock_level`)) as Array<Record<string, unknown>>
})

let inOrder: Awaited<ReturnType<typeof windows>>
let shuffled: Awaited<ReturnType<typeof windows>>
let shuffledRun: Awaited<ReturnType<typeof project>>

beforeAll(async () => {
  pg = await startPostgres()
  inOrder = await windows((await project(EVENTS)).sql)
  const random = seeded(42)
  const order = [...EVENTS].map((event) => ({ event, key: random() })).sort((a, b) => a.key - b.key).map(({ event }) => event)
  shuffledRun = await project([...order, ...order.slice(0, 3)], order.slice(3, 6))
  shuffled = await windows(shuffledRun.sql)
}, 120_000)

afterAll(async () => {
  for (const stack of stacks) await stack.dispose()
  await pg?.dispose()
})

describe("retail 5-minute windows by event time", () => {
  it("come out the same whether the events arrive in order or shuffled with duplicates", () => {
    expect(shuffled).toEqual(inOrder)
  })

  it("sum each window's sales, with a sale later than the bound in its own window's late columns", () => {
    const row = (store: string, product: string, minute: number) =>
      inOrder.velocity.find((r) => r.store_id === store && r.product_id === product && Date.parse(r.window_start as string) === T0 + minute * 60_000)
    expect(row("47", "SKU123", 0)).toMatchObject({ sales: 2, quantity: 3, revenue: "7.5", late_sales: 1, late_quantity: 4, late_revenue: "10" })
    expect(row("48", "SKU456", 0)).toMatchObject({ sales: 1, quantity: 3, late_sales: 0 })
    expect(row("47", "SKU123", 5)).toMatchObject({ sales: 1, quantity: 1, late_sales: 0 })
    expect(row("47", "SKU456", 5)).toMatchObject({ sales: 1, quantity: 5, late_sales: 0 })
    expect(row("48", "SKU456", 10)).toMatchObject({ sales: 1, quantity: 2 })
    expect(row("47", "SKU123", 60)).toMatchObject({ sales: 1, quantity: 6 })
    expect(inOrder.velocity).toHaveLength(6)
  })

  it("add up revenue per hour per store, where the sale late for its 5 minutes is on time for its hour", () => {
    expect(inOrder.hourly.map((r) => [new Date(r.hour_start as string).toISOString(), r.store_id, r.sales, r.revenue, r.late_sales, r.late_revenue])).toEqual([
      ["2025-01-15T12:00:00.000Z", "47", 5, "32.5", 0, "0"],
      ["2025-01-15T12:00:00.000Z", "48", 2, "12.5", 0, "0"],
      ["2025-01-15T13:00:00.000Z", "47", 1, "15", 0, "0"]
    ])
  })

  it("keep the newest stock count by event time, not by arrival", () => {
    expect(inOrder.stock).toMatchObject([{ store_id: "47", product_id: "SKU123", quantity_on_hand: 13, reorder_point: 15 }])
  })

  it("flag a sales spike against the same product's recent windows", async () => {
    const steady = Array.from({ length: 10 }, (_, k) => sale(100 + k, 120 + 5 * k, "49", "SKU789", 2 + (k % 2)))
    const spike = sale(200, 170, "49", "SKU789", 40)
    await appendAsEdge(shuffledRun.stack.js, "pos", [...steady, spike].map((s) => s.payload), { receivedAt: (_, i) => ([...steady, spike][i] as Sent).receivedAt })
    await shuffledRun.stack.projectToHead(shuffledRun.sql, projection)
    const flags = await shuffledRun.sql`SELECT window_start, quantity, flag FROM mart.sales_velocity_anomalies WHERE store_id = '49' ORDER BY window_start`
    expect(flags.map((row) => row.flag)).toEqual([null, null, null, null, null, null, "normal", "normal", "normal", "normal", "spike"])
    expect(Number(flags.at(-1)?.quantity)).toBe(40)
  })

  it("are rebuilt from the log equal to the live marts", async () => {
    const before = await martSnapshot(shuffledRun.sql, projection)
    await rebuildProjection({ sql: shuffledRun.sql, nc: shuffledRun.stack.projector, projection })
    expect(await martSnapshot(shuffledRun.sql, projection)).toEqual(before)
  })
})
