import postgres from "postgres"
import { readSheet } from "read-excel-file/node"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { rebuildProjection } from "../consumers/rebuild.ts"
import { ensureActiveGeneration } from "../consumers/registry.ts"
import type { Projection } from "../projections/projection.ts"
import { appendAsEdge } from "../infra/local/append.ts"
import { type LogStack, startLogStack } from "../infra/local/log-stack.ts"
import { type ReadApiHarness, startReadApi } from "../infra/local/read-api.ts"
import { dropReaderLogin, ensureReaderLogin } from "./roles.ts"
import { retailProjection } from "../projections/retail/projection.ts"
import { readerConnection } from "./cli.ts"
import { martFeeds, marts } from "./feeds.ts"
import { createApiKey } from "./keys.ts"
import { ALL_ROWS, type RowScope } from "./row-scope.ts"

/**
 * Row-level security by store and region, end to end: retail events through the log into the
 * marts, read back through every retail feed and export with keys scoped to a store, a region and
 * all rows, and straight from Postgres as scoped BI logins — and the ways a reader might try to
 * leave its scope, each failing.
 */

const projection = retailProjection({ latenessMs: 10 * 60_000 })
const REGIONS: Readonly<Record<string, string>> = { "47": "Northeast", "48": "Northeast", "49": "West" }
const at = (minute: number) => new Date(Date.parse("2025-03-03T10:00:00Z") + minute * 60_000).toISOString()

/** For each store: its master data, two sales, a count, footfall, a shipment and a price change. */
const events = Object.entries(REGIONS).flatMap(([store, region], s) => [
  { id: `store_${store}`, type: "store.updated", timestamp: at(0), data: { store_id: store, store_name: `Store ${store}`, region } },
  ...[1, 2].map((n) => ({
    id: `sale_${store}_${n}`,
    type: "sale.completed",
    timestamp: at(s * 7 + n),
    data: { sale_id: `S${store}-${n}`, store_id: store, product_id: `SKU${n}`, quantity: n + s, unit_price: 2.5 }
  })),
  {
    id: `inv_${store}`,
    type: "inventory.updated",
    timestamp: at(s),
    data: { store_id: store, product_id: "SKU1", quantity_on_hand: 10 + s, reorder_point: 5 }
  },
  { id: `traffic_${store}`, type: "traffic.counted", timestamp: at(s), data: { store_id: store, visitors: 30 + s } },
  {
    id: `ship_${store}`,
    type: "shipment.received",
    timestamp: at(s),
    data: { shipment_id: `SH${store}`, supplier: "ACME", store_id: store, product_id: "SKU2", quantity: 12 }
  },
  { id: `price_${store}`, type: "price.changed", timestamp: at(s), data: { store_id: store, product_id: "SKU1", new_price: 3 } }
])

/** The retail feeds whose rows belong to a store, and the column that says which. */
const scopedFeeds = (martFeeds.retail ?? []).flatMap((feed) => {
  const column = ["store_key", "store_id"].find((name) => feed.columns.some((c) => c.name === name))
  return column === undefined ? [] : [{ name: feed.name, column }]
})

let stack: LogStack
let owner: postgres.Sql
let databaseUrl: string
let api: ReadApiHarness
const keys: Record<string, string> = {}
const logins: Array<string> = []

beforeAll(async () => {
  stack = await startLogStack()
  const database = await stack.database()
  owner = database.sql
  databaseUrl = database.url
  // The reader group exists before the marts are activated: the activation grants what the policies guard.
  api = await startReadApi(owner, database.url, { maxStreams: 4, accessLog: false })
  await appendAsEdge(stack.js, "pos", events)
  await stack.projectToHead(owner, projection)
  const key = async (name: string, rows: RowScope) => (await createApiKey(owner, name, ["retail"], marts, rows)).key
  keys.store47 = await key("store 47", { allRows: false, stores: ["47"], regions: [] })
  keys.northeast = await key("northeast", { allRows: false, stores: [], regions: ["Northeast"] })
  keys.all = await key("executive", ALL_ROWS)
}, 120_000)

afterAll(async () => {
  await api?.close()
  for (const login of logins) await dropReaderLogin(owner, login)
  await stack?.dispose()
})

/**
 * The owner's rows of `feed` whose store is in `stores`: what a scope of those stores must get,
 * exactly. The anomaly view runs up to the latest window of any store it reads, so for a scope it
 * ends at the scope's latest window: other stores' later sales are not revealed by it either.
 */
const expectedCount = async (feed: string, column: string, stores: ReadonlyArray<string>) => {
  const latest =
    feed === "sales_velocity_anomalies"
      ? " AND window_start <= (SELECT max(window_start) FROM mart_retail.sales_velocity_5m WHERE store_id = ANY ($1::text[]))"
      : ""
  const [row] = await owner.unsafe(`SELECT count(*)::int AS n FROM mart_retail.${feed} WHERE ${column} = ANY ($1::text[])${latest}`, [
    [...stores]
  ])
  return Number(row?.n)
}

const get = (path: string, key: string, base = api.url) => fetch(`${base}${path}`, { headers: { "X-API-Key": key } })
const json = async (path: string, key: string) => {
  const response = await get(path, key)
  expect(response.status, `${path}: ${await response.clone().text()}`).toBe(200)
  return response.json() as Promise<Record<string, unknown>>
}

const SCOPES: ReadonlyArray<{ readonly key: string; readonly label: string; readonly stores: ReadonlyArray<string> }> = [
  { key: "store47", label: "a store 47 key", stores: ["47"] },
  { key: "northeast", label: "a Northeast key", stores: ["47", "48"] },
  { key: "all", label: "an --all-rows key", stores: ["47", "48", "49"] }
]

describe("row-level security by store and region", () => {
  it("covers every retail feed with a store column, and the test data reaches all of them", async () => {
    expect(scopedFeeds.map((feed) => feed.name).sort()).toEqual(
      [
        "dim_store",
        "fact_inventory",
        "fact_sales",
        "fact_shipments",
        "fact_traffic",
        "price_history",
        "revenue_per_hour",
        "sales_velocity_5m",
        "sales_velocity_anomalies",
        "stock_level"
      ].sort()
    )
    for (const feed of scopedFeeds) expect(await expectedCount(feed.name, feed.column, ["47", "48", "49"]), feed.name).toBeGreaterThan(0)
    const [store] = await owner`SELECT region FROM mart_retail.dim_store WHERE store_id = '49'`
    expect(store?.region).toBe("West")
  })

  for (const scope of SCOPES)
    it(`${scope.label} gets only stores ${scope.stores.join(",")} from every feed: OData (with $count), JSON, CSV and XLSX`, async () => {
      const key = keys[scope.key] as string
      for (const feed of scopedFeeds) {
        const expected = await expectedCount(feed.name, feed.column, scope.stores)
        const page = await json(`/odata/retail/${feed.name}?$count=true`, key)
        const rows = page.value as Array<Record<string, unknown>>
        expect(
          rows.every((row) => scope.stores.includes(row[feed.column] as string)),
          `${feed.name} OData rows`
        ).toBe(true)
        expect(rows.length, `${feed.name} OData rows`).toBe(expected)
        expect(page["@odata.count"], `${feed.name} @odata.count`).toBe(expected)
        const count = await get(`/odata/retail/${feed.name}/$count`, key)
        expect(await count.text(), `${feed.name} $count`).toBe(String(expected))

        const path = `/api/retail/export/${feed.name.replaceAll("_", "-")}`
        const exported = (await json(`${path}?format=json`, key)) as unknown as Array<Record<string, unknown>>
        expect(exported.map((row) => row[feed.column]).sort(), `${feed.name} JSON`).toEqual(rows.map((row) => row[feed.column]).sort())

        const csv = await get(`${path}?format=csv`, key)
        expect(csv.status).toBe(200)
        const [header, ...lines] = (await csv.text()).trimEnd().split(/\r?\n/)
        const at = (header ?? "").split(",").indexOf(feed.column)
        expect(at, `${feed.name} CSV header`).toBeGreaterThanOrEqual(0)
        expect(lines.length, `${feed.name} CSV rows`).toBe(expected)
        expect(
          lines.every((line) => scope.stores.includes(line.split(",")[at] as string)),
          `${feed.name} CSV stores`
        ).toBe(true)

        const xlsx = await get(`${path}?format=xlsx`, key)
        expect(xlsx.status).toBe(200)
        const [titles, ...cells] = await readSheet(Buffer.from(await xlsx.arrayBuffer()))
        const column = (titles ?? []).indexOf(feed.column)
        expect(cells.length, `${feed.name} XLSX rows`).toBe(expected)
        expect(
          cells.every((row) => scope.stores.includes(String(row[column]))),
          `${feed.name} XLSX stores`
        ).toBe(true)
      }
    })

  it("a filter, an order or a negation stays inside the scope: the database decides, not the query", async () => {
    const key = keys.store47 as string
    const values = async (query: string) =>
      ((await json(`/odata/retail/fact_sales?${query}`, key)).value as Array<Record<string, unknown>>).map((row) => row.store_key)
    expect(await values("$filter=store_key eq '48'")).toEqual([])
    expect(await values("$filter=store_key ne '47'")).toEqual([])
    expect(await values("$filter=store_key eq '47' or store_key ne '47'")).toEqual(["47", "47"])
    expect(await values("$orderby=store_key desc")).toEqual(["47", "47"])
    const counted = await get(`/odata/retail/fact_sales/$count?$filter=${encodeURIComponent("store_key ne '47'")}`, key)
    expect(await counted.text()).toBe("0")
    const exported = await json(`/api/retail/export/fact-sales?format=json&limit=100`, key)
    expect((exported as unknown as Array<Record<string, unknown>>).map((row) => row.store_key)).toEqual(["47", "47"])
  })

  it("a rebuild's new generation is behind the same policies the moment readers are switched to it", async () => {
    await rebuildProjection({ sql: owner, nc: stack.projector, projection })
    const [active] = await owner`SELECT generation FROM ingest.projections WHERE name = 'retail' AND status = 'active'`
    expect(Number(active?.generation)).toBe(2)
    for (const scope of SCOPES) {
      const page = await json("/odata/retail/fact_sales?$count=true", keys[scope.key] as string)
      expect(page["@odata.count"], scope.key).toBe(await expectedCount("fact_sales", "store_key", scope.stores))
      expect(
        (page.value as Array<Record<string, unknown>>).every((row) => scope.stores.includes(row.store_key as string)),
        scope.key
      ).toBe(true)
    }
  })

  it("a key that reads the retail mart must say which rows it sees: an unscoped key is refused at creation", async () => {
    for (const granted of [["retail"], ["*"], ["warehouse", "retail"]])
      await expect(createApiKey(owner, "unscoped", granted, marts)).rejects.toThrow(/--stores 47,48, --regions Northeast, or --all-rows/)
    // A key for other marts has no rows to scope.
    await expect(createApiKey(owner, "warehouse", ["warehouse"], marts)).resolves.toBeDefined()
  })

  it("keeps marts built before row scopes closed to every reader until the rebuild opens them, scoped", async () => {
    const database = await stack.database()
    // Version 3 of retail, as a deployment made it: the same tables without a scope or policies.
    const { rowScope: _scope, ...unscoped } = projection
    const before: Projection = { ...unscoped, version: 3, tables: projection.tables.map(({ rowScope: _, ...table }) => table) }
    // The log already holds the three stores' events.
    await stack.projectToHead(database.sql, before)
    const older = await startReadApi(database.sql, database.url, { maxStreams: 2, accessLog: false })
    try {
      const key = (await createApiKey(database.sql, "store 47", ["retail"], marts, { allRows: false, stores: ["47"], regions: [] })).key
      // The new code starts: it finds the old generation active and closes its views.
      const ensured = await ensureActiveGeneration(database.sql, projection)
      expect(ensured?.closed).toBe(true)
      const refused = await get("/odata/retail/fact_sales", key, older.url)
      expect(refused.status).toBe(503)
      expect(((await refused.json()) as { error: { message: string } }).error.message).toMatch(
        /the retail mart is closed to readers: it was built before its rows were scoped by store, and opens once an operator has run npm run mesh -- rebuild retail/
      )
      // Neither does a new reader login open it (the reader group's grants skip a generation without policies).
      const login = `bi_${Math.random().toString(36).slice(2, 10)}`
      logins.push(login)
      const bi = postgres(await ensureReaderLogin(database.sql, database.url, login, "bi-secret", { apiKeys: false, rows: ALL_ROWS }), {
        ...readerConnection,
        max: 1
      })
      try {
        await expect(bi.unsafe("SELECT count(*) FROM mart_retail.fact_sales")).rejects.toThrow(/permission denied/)
        await rebuildProjection({ sql: database.sql, nc: stack.projector, projection })
        expect(Number((await bi.unsafe("SELECT count(*)::int AS n FROM mart_retail.fact_sales"))[0]?.n)).toBe(6)
      } finally {
        await bi.end({ timeout: 5 })
      }
      const opened = await get("/odata/retail/fact_sales", key, older.url)
      expect(opened.status).toBe(200)
      expect(((await opened.json()) as { value: Array<{ store_key: string }> }).value.map((row) => row.store_key)).toEqual(["47", "47"])
    } finally {
      await older.close()
    }
  })

  it("never turns a BI user's scoped login into the read API's by making it again without its scope", async () => {
    const login = `bi_${Math.random().toString(36).slice(2, 10)}`
    logins.push(login)
    await ensureReaderLogin(owner, databaseUrl, login, "bi-secret", {
      apiKeys: false,
      rows: { allRows: false, stores: ["47"], regions: [] }
    })
    await expect(ensureReaderLogin(owner, databaseUrl, login, "bi-secret")).rejects.toThrow(
      /is a BI user's login with its own row scope: give it --stores, --regions or --all-rows again/
    )
    const [scope] = await owner`SELECT delegated, stores FROM ingest.reader_scopes WHERE login = ${login}`
    expect(scope).toEqual({ delegated: false, stores: ["47"] })
  })

  describe("as a Postgres login (Power BI's native connector, DirectQuery)", () => {
    const loginFor = async (rows: RowScope) => {
      const login = `bi_${Math.random().toString(36).slice(2, 10)}`
      logins.push(login)
      const url = await ensureReaderLogin(owner, databaseUrl, login, "bi-secret", { apiKeys: false, rows })
      return postgres(url, { ...readerConnection, max: 1 })
    }
    const storesIn = async (sql: postgres.Sql, statement: string) =>
      [...new Set((await sql.unsafe(statement)).map((row) => String(row.store)))].sort()

    it("sees the same rows of the mart views as the key of the same scope", async () => {
      const sql = await loginFor({ allRows: false, stores: [], regions: ["Northeast"] })
      try {
        for (const feed of scopedFeeds) {
          const rows = await sql.unsafe(`SELECT ${feed.column} AS store FROM mart_retail.${feed.name}`)
          expect(rows.length, feed.name).toBe(await expectedCount(feed.name, feed.column, ["47", "48"]))
          expect(
            rows.every((row) => ["47", "48"].includes(row.store as string)),
            feed.name
          ).toBe(true)
        }
        // Stores and the views that are not scoped by store read as they are.
        expect((await sql`SELECT count(*)::int AS n FROM mart_retail.dim_product`)[0]?.n).toBeGreaterThan(0)
      } finally {
        await sql.end({ timeout: 5 })
      }
    })

    it("cannot leave its scope through joins, the generation's tables, SET or its role", async () => {
      const sql = await loginFor({ allRows: false, stores: ["47"], regions: [] })
      const generation = (await owner`SELECT schema_name FROM ingest.projections WHERE name = 'retail' AND status = 'active'`)[0]
        ?.schema_name as string
      try {
        const joins = [
          "SELECT d.store_id AS store FROM mart_retail.fact_sales f JOIN mart_retail.dim_store d USING (store_key)",
          "SELECT d.store_id AS store FROM mart_retail.fact_sales f RIGHT JOIN mart_retail.dim_store d USING (store_key)",
          "SELECT s.store_id AS store FROM mart_retail.stock_level s CROSS JOIN mart_retail.dim_product p",
          "SELECT store_id AS store FROM mart_retail.revenue_per_hour UNION SELECT store_key FROM mart_retail.fact_traffic",
          `SELECT store_key AS store FROM "${generation}".fact_sales`,
          `SELECT store_id AS store FROM "${generation}".dim_store`
        ]
        for (const statement of joins) expect(await storesIn(sql, statement), statement).toEqual(["47"])
        // The scope a BI user sets on its own session is not read: only the read API's login's is.
        await sql.unsafe(`SET ingest.row_scope = '{"all_rows": true}'`)
        expect(await storesIn(sql, "SELECT store_key AS store FROM mart_retail.fact_sales")).toEqual(["47"])
        await sql.unsafe("SET ROLE ingest_reader")
        expect(await storesIn(sql, "SELECT store_key AS store FROM mart_retail.fact_sales")).toEqual(["47"])
        await sql.unsafe("RESET ROLE")
        await sql.unsafe("SET row_security = off")
        await expect(sql.unsafe("SELECT store_key FROM mart_retail.fact_sales")).rejects.toThrow(/row-level security/)
        await sql.unsafe("RESET row_security")
        await expect(sql.unsafe(`SET SESSION AUTHORIZATION ${owner.options.user}`)).rejects.toThrow(/permission denied/)
        await expect(sql.unsafe("SELECT * FROM ingest.reader_scopes")).rejects.toThrow(/permission denied/)
        await expect(sql.unsafe(`ALTER TABLE "${generation}".fact_sales DISABLE ROW LEVEL SECURITY`)).rejects.toThrow()
        // Its own scope is all it can learn of scopes.
        expect(await sql.unsafe(`SELECT "${generation}".row_scope_stores() AS stores`)).toEqual([{ stores: ["47"] }])
      } finally {
        await sql.end({ timeout: 5 })
      }
    })

    it("sees no scoped row without a scope, and every row with --all-rows", async () => {
      const none = await loginFor({ allRows: false, stores: ["no-such-store"], regions: [] })
      const all = await loginFor(ALL_ROWS)
      try {
        expect(await storesIn(none, "SELECT store_key AS store FROM mart_retail.fact_sales")).toEqual([])
        expect(await storesIn(all, "SELECT store_key AS store FROM mart_retail.fact_sales")).toEqual(["47", "48", "49"])
      } finally {
        await none.end({ timeout: 5 })
        await all.end({ timeout: 5 })
      }
    })
  })
})
