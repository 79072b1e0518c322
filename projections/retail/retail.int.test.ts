import postgres from "postgres"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { rebuildProjection } from "../../consumers/rebuild.ts"
import { appendAsEdge } from "../../infra/local/append.ts"
import { type LogStack, startLogStack } from "../../infra/local/log-stack.ts"
import { martSnapshot } from "../../infra/local/marts.ts"
import { type PostgresServer, startPostgres } from "../../infra/postgres/database.ts"
import { retailProjection } from "./projection.ts"

const projection = retailProjection({ latenessMs: 10 * 60_000 })
const T0 = Date.parse("2025-01-15T12:00:00Z")
const at = (minutes: number) => new Date(T0 + minutes * 60_000).toISOString()

type Sent = { readonly payload: { id: string; type: string; timestamp: string; data: object }; readonly receivedAt: string }

const sale = (n: number, minute: number, store: string, product: string, quantity: number, receivedAfter = 2): Sent => ({
  payload: {
    id: `sale_${n}`,
    type: "sale.completed",
    timestamp: at(minute),
    data: { sale_id: `S${n}`, store_id: store, product_id: product, quantity, unit_price: 2.5 }
  },
  receivedAt: at(minute + receivedAfter)
})
const stock = (n: number, minute: number, quantity: number): Sent => ({
  payload: {
    id: `inv_${n}`,
    type: "inventory.updated",
    timestamp: at(minute),
    data: { store_id: "47", product_id: "SKU123", quantity_on_hand: quantity, reorder_point: 15 }
  },
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

const seeded = (seed: number) => () => (seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31

let pg: PostgresServer
const stacks: Array<LogStack> = []

/** One log of `sent` on its own nats-server, projected live into its own database. */
const project = async (sent: ReadonlyArray<Sent>, resendAfterWindow: ReadonlyArray<Sent> = []) => {
  const stack = await startLogStack({ pg })
  stacks.push(stack)
  const { sql } = await stack.database()
  await appendAsEdge(
    stack.js,
    "pos",
    sent.map((s) => s.payload),
    { receivedAt: (_, i) => (sent[i] as Sent).receivedAt }
  )
  if (resendAfterWindow.length > 0)
    await appendAsEdge(
      stack.js,
      "pos",
      resendAfterWindow.map((s) => s.payload),
      { receivedAt: (_, i) => (resendAfterWindow[i] as Sent).receivedAt, messageId: (m) => `${m.msgId}:resent` }
    )
  await stack.projectToHead(sql, projection, { batchSize: 4 })
  return { sql, stack }
}

const windows = async (sql: postgres.Sql) => ({
  velocity: JSON.parse(
    JSON.stringify(await sql`SELECT * FROM mart_retail.sales_velocity_5m ORDER BY window_start, store_id, product_id`)
  ) as Array<Record<string, unknown>>,
  hourly: JSON.parse(JSON.stringify(await sql`SELECT * FROM mart_retail.revenue_per_hour ORDER BY hour_start, store_id`)) as Array<
    Record<string, unknown>
  >,
  stock: JSON.parse(JSON.stringify(await sql`SELECT * FROM mart_retail.stock_level`)) as Array<Record<string, unknown>>
})

let inOrder: Awaited<ReturnType<typeof windows>>
let shuffled: Awaited<ReturnType<typeof windows>>
let shuffledRun: Awaited<ReturnType<typeof project>>

beforeAll(async () => {
  pg = await startPostgres()
  inOrder = await windows((await project(EVENTS)).sql)
  const random = seeded(42)
  const order = [...EVENTS]
    .map((event) => ({ event, key: random() }))
    .sort((a, b) => a.key - b.key)
    .map(({ event }) => event)
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
      inOrder.velocity.find(
        (r) => r.store_id === store && r.product_id === product && Date.parse(r.window_start as string) === T0 + minute * 60_000
      )
    expect(row("47", "SKU123", 0)).toMatchObject({
      sales: 2,
      quantity: 3,
      revenue: "7.5",
      late_sales: 1,
      late_quantity: 4,
      late_revenue: "10"
    })
    expect(row("48", "SKU456", 0)).toMatchObject({ sales: 1, quantity: 3, late_sales: 0 })
    expect(row("47", "SKU123", 5)).toMatchObject({ sales: 1, quantity: 1, late_sales: 0 })
    expect(row("47", "SKU456", 5)).toMatchObject({ sales: 1, quantity: 5, late_sales: 0 })
    expect(row("48", "SKU456", 10)).toMatchObject({ sales: 1, quantity: 2 })
    expect(row("47", "SKU123", 60)).toMatchObject({ sales: 1, quantity: 6 })
    expect(inOrder.velocity).toHaveLength(6)
  })

  it("add up revenue per hour per store, where the sale late for its 5 minutes is on time for its hour", () => {
    expect(
      inOrder.hourly.map((r) => [
        new Date(r.hour_start as string).toISOString(),
        r.store_id,
        r.sales,
        r.revenue,
        r.late_sales,
        r.late_revenue
      ])
    ).toEqual([
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
    await appendAsEdge(
      shuffledRun.stack.js,
      "pos",
      [...steady, spike].map((s) => s.payload),
      { receivedAt: (_, i) => ([...steady, spike][i] as Sent).receivedAt }
    )
    await shuffledRun.stack.projectToHead(shuffledRun.sql, projection)
    const flags =
      await shuffledRun.sql`SELECT window_start, quantity, flag FROM mart_retail.sales_velocity_anomalies WHERE store_id = '49' ORDER BY window_start`
    expect(flags.map((row) => row.flag)).toEqual([null, null, null, null, null, null, "normal", "normal", "normal", "normal", "spike"])
    expect(Number(flags.at(-1)?.quantity)).toBe(40)
  })

  it("are rebuilt from the log equal to the live marts", async () => {
    const before = await martSnapshot(shuffledRun.sql, projection)
    await rebuildProjection({ sql: shuffledRun.sql, nc: shuffledRun.stack.projector, projection })
    expect(await martSnapshot(shuffledRun.sql, projection)).toEqual(before)
  })
})

/**
 * The anomaly view as it was before it grew with the data: every window from each product's first
 * sale to the latest one, gaps as zero sales. The view now shows only windows near sales.
 */
const everyWindowSinceFirstSale = `
  WITH series AS (
    SELECT k.store_id, k.product_id, w.window_start, coalesce(v.quantity + v.late_quantity, 0) AS quantity
    FROM (SELECT store_id, product_id, min(window_start) AS first_window FROM mart_retail.sales_velocity_5m GROUP BY store_id, product_id) k
    CROSS JOIN (SELECT max(window_start) AS last_window FROM mart_retail.sales_velocity_5m) latest
    CROSS JOIN LATERAL generate_series(k.first_window, latest.last_window, interval '5 minutes') AS w(window_start)
    LEFT JOIN mart_retail.sales_velocity_5m v ON v.store_id = k.store_id AND v.product_id = k.product_id AND v.window_start = w.window_start
  ), stats AS (
    SELECT *, avg(quantity) OVER history AS mean, stddev_pop(quantity) OVER history AS sigma, count(*) OVER history AS history
    FROM series WINDOW history AS (PARTITION BY store_id, product_id ORDER BY window_start ROWS BETWEEN 12 PRECEDING AND 1 PRECEDING)
  )
  SELECT store_id, product_id, to_char(window_start AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI') AS window_start, quantity, round(mean, 3)::text AS mean_quantity, round(sigma, 3)::text AS sigma,
    CASE WHEN history < 6 THEN NULL WHEN quantity > mean + 3 * greatest(sigma, 1) THEN 'spike' WHEN quantity < mean - 3 * greatest(sigma, 1) THEN 'drop' ELSE 'normal' END AS flag
  FROM stats ORDER BY 1, 2, 3`

describe("the sales velocity anomaly view", () => {
  it("flags what every window since the first sale would, leaving out only windows with nothing but zeros behind them", async () => {
    // Bursts with gaps longer than an hour, a spike, and a product that stops selling.
    const sent = [
      ...Array.from({ length: 14 }, (_, k) => sale(300 + k, 5 * k, "50", "SKU1", 2 + (k % 3))),
      sale(320, 72, "50", "SKU1", 30),
      ...Array.from({ length: 8 }, (_, k) => sale(330 + k, 200 + 5 * k, "50", "SKU1", 1 + (k % 2))),
      ...Array.from({ length: 9 }, (_, k) => sale(350 + k, 5 * k, "51", "SKU2", 4)),
      sale(360, 400, "51", "SKU3", 1)
    ]
    const { sql } = await project(sent)
    const now =
      await sql.unsafe(`SELECT store_id, product_id, to_char(window_start AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI') AS window_start, quantity, mean_quantity::text, sigma::text, flag
                                  FROM mart_retail.sales_velocity_anomalies ORDER BY 1, 2, 3`)
    const before = await sql.unsafe(everyWindowSinceFirstSale)
    const nearSales = before.filter((row) => Number(row.quantity) > 0 || Number(row.mean_quantity) > 0)
    expect(before.length).toBeGreaterThan(nearSales.length)
    expect(JSON.parse(JSON.stringify(now))).toEqual(JSON.parse(JSON.stringify(nearSales)))
    expect(now.map((row) => row.flag)).toContain("spike")
    expect(now.filter((row) => row.store_id === "51" && row.product_id === "SKU2").map((row) => row.flag)).toContain("drop")
  })

  it("grows with the sales, not with the time since a product's first one: a sale a year back adds an hour of windows, not a year", async () => {
    const yearAgo = (n: number) => ({ ...sale(n, -365 * 24 * 60, "52", "SKU9", 3), receivedAt: at(1) })
    const { sql } = await project([yearAgo(400), ...Array.from({ length: 24 }, (_, k) => sale(401 + k, 5 * k, "52", "SKU9", 2))])
    const [{ velocity }] = (await sql`SELECT count(*)::int AS velocity FROM mart_retail.sales_velocity_5m`) as unknown as [
      { velocity: number }
    ]
    const [{ rows }] = (await sql`SELECT count(*)::int AS rows FROM mart_retail.sales_velocity_anomalies`) as unknown as [{ rows: number }]
    expect(velocity).toBe(25)
    expect(rows).toBe(13 + 24)
    const [{ spanned }] = (await sql.unsafe(`SELECT count(*)::int AS spanned FROM (${everyWindowSinceFirstSale}) old`)) as unknown as [
      { spanned: number }
    ]
    expect(spanned).toBeGreaterThan(100_000)
  })
})
