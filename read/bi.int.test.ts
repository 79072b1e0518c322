import { mkdir } from "node:fs/promises"
import { dirname, join } from "node:path"
import { fileURLToPath } from "node:url"
import type postgres from "postgres"
import type { Browser } from "playwright-core"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { appendAsEdge } from "../infra/local/append.ts"
import { type ReadApiHarness, startReadApi } from "../infra/local/read-api.ts"
import { type LogStack, startLogStack } from "../infra/local/log-stack.ts"
import { erasureEvents, hubspotBatch, retailEvents } from "../infra/local/samples.ts"
import { setLogLevel } from "../platform/logger.ts"
import { projections } from "../projections/index.ts"
import { launchChromium } from "../reports/engines/chromium.ts"
import { type PbidsFile, pbidsFileName } from "./bi.ts"
import { exportEndpoints } from "./exports.ts"
import { martFeeds, marts } from "./feeds.ts"
import { createApiKey } from "./keys.ts"
import { ALL_ROWS } from "./row-scope.ts"

/** Where the docs page's screenshot goes: CI keeps the folder with the run's output. */
const OUTPUT = join(dirname(fileURLToPath(import.meta.url)), "..", ".build", "test-output", "read")
const CHROMIUM = process.env.CHROMIUM_BIN ?? "/usr/bin/chromium"

let stack: LogStack
let owner: postgres.Sql
let api: ReadApiHarness
let key: string
let browser: Browser

beforeAll(async () => {
  setLogLevel("warn")
  await mkdir(OUTPUT, { recursive: true })
  stack = await startLogStack()
  const database = await stack.database()
  owner = database.sql
  await appendAsEdge(stack.js, "erasure", erasureEvents(8, { firstId: 1, day: "2025-01-15" }))
  await appendAsEdge(stack.js, "hubspot", hubspotBatch(3, { firstEventId: 700, occurredAt: Date.parse("2025-01-15T09:00:00Z") }))
  await appendAsEdge(stack.js, "pos", retailEvents("47", Date.parse("2025-01-15T12:00:00Z")))
  for (const projection of Object.values(projections)) await stack.projectToHead(owner, projection)
  key = (await createApiKey(owner, "bi", ["*"], marts, ALL_ROWS)).key
  api = await startReadApi(owner, database.url, { maxStreams: 2, accessLog: false })
  browser = await launchChromium(CHROMIUM)
}, 180_000)

afterAll(async () => {
  await browser?.close()
  await api?.close()
  await stack?.dispose()
})

const bearer = (path: string, token = key) => fetch(`${api.url}${path}`, { headers: { Authorization: `Bearer ${token}` } })

describe("Power BI data source files", () => {
  it("serves a .pbids per mart without a key, naming the mart's OData service root, which answers 200 with a key", async () => {
    for (const mart of marts) {
      const response = await fetch(`${api.url}/bi/${pbidsFileName(mart)}`)
      expect(response.status, mart).toBe(200)
      expect(response.headers.get("content-disposition")).toBe(`attachment; filename="${mart}.pbids"`)
      const pbids = JSON.parse(await response.text()) as PbidsFile
      expect(pbids).toEqual({
        version: "0.1",
        connections: [{ details: { protocol: "odata", address: { url: `${api.url}/odata/${mart}/` } }, options: {}, mode: null }]
      })
      const root = await fetch(pbids.connections[0]?.details.address.url as string, { headers: { "X-API-Key": key } })
      expect(root.status, mart).toBe(200)
      expect(((await root.json()) as { value: ReadonlyArray<unknown> }).value).toHaveLength(martFeeds[mart]?.length ?? -1)
      expect((await fetch(pbids.connections[0]?.details.address.url as string)).status).toBe(401)
    }
  })

  it("lists the BI files and serves the M files with the API's address in them", async () => {
    const listing = (await (await fetch(`${api.url}/bi`)).json()) as { files: Record<string, string> }
    expect(Object.keys(listing.files)).toEqual(expect.arrayContaining([...marts.map(pbidsFileName), "retail.pq", "oee.dax"]))
    const m = await (await fetch(listing.files["retail.pq"] as string)).text()
    expect(m).toContain(`OData.Feed("${api.url}/odata/retail/"`)
    expect(m).not.toContain("reports.example.com/odata")
    expect((await fetch(`${api.url}/bi/nothing.pbids`)).status).toBe(404)
  })
})

describe("Authorization: Bearer", () => {
  it("opens every REST export with the key as a bearer token and no other key", async () => {
    for (const endpoint of exportEndpoints) {
      const response = await bearer(`${endpoint.path}?limit=1`)
      expect(response.status, `${endpoint.path}: ${await response.clone().text()}`).toBe(200)
      await response.arrayBuffer()
    }
  }, 120_000)

  it("opens every OData service root, $metadata, entity set and $count, and /metrics/today", async () => {
    for (const mart of marts) {
      for (const path of [`/odata/${mart}/`, `/odata/${mart}/$metadata`]) {
        const response = await bearer(path)
        expect(response.status, `${path}: ${await response.clone().text()}`).toBe(200)
        await response.arrayBuffer()
      }
      for (const feed of martFeeds[mart] ?? []) {
        for (const path of [`/odata/${mart}/${feed.name}?$top=1`, `/odata/${mart}/${feed.name}/$count`]) {
          const response = await bearer(path)
          expect(response.status, `${path}: ${await response.clone().text()}`).toBe(200)
          await response.arrayBuffer()
        }
      }
    }
    const today = await bearer("/metrics/today")
    expect(today.status).toBe(200)
    expect(await today.json()).toMatchObject({ date: new Date().toISOString().slice(0, 10) })
  }, 120_000)

  it("refuses a wrong bearer token, and no key at all", async () => {
    expect((await bearer("/odata/oee/", "imk_0000000000000000.AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA")).status).toBe(401)
    expect((await bearer("/api/powerbi/daily-stats", "not-a-key")).status).toBe(401)
    expect((await fetch(`${api.url}/metrics/today`)).status).toBe(401)
  })
})

describe("the /docs page in Chromium", () => {
  it("renders the endpoints from the API's own assets, and try-it with the key returns the feed's rows", async () => {
    const document = (await (await fetch(`${api.url}/openapi.json`)).json()) as {
      components: { securitySchemes: Record<string, unknown> }
      paths: Record<string, Record<string, { security?: ReadonlyArray<Record<string, unknown>> }>>
    }
    expect(Object.keys(document.components.securitySchemes)).toEqual(["ApiKeyHeader", "BearerAuth", "ApiKeyQuery"])
    expect(document.paths["/odata/oee/{entitySet}"]?.get?.security?.map((scheme) => Object.keys(scheme)[0])).toEqual([
      "ApiKeyHeader",
      "BearerAuth",
      "ApiKeyQuery"
    ])

    const page = await (await browser.newContext({ viewport: { width: 1400, height: 1000 } })).newPage()
    const elsewhere: Array<string> = []
    page.on("request", (request) => {
      if (!request.url().startsWith(`${api.url}/`) && !/^(data|blob):/.test(request.url())) elsewhere.push(request.url())
    })
    await page.goto(`${api.url}/docs`)
    await expect
      .poll(() => page.getByText("Daily counts: devices booked in, erased and QA-checked per UTC day.").count(), { timeout: 30_000 })
      .toBeGreaterThan(0)
    expect(await page.getByText("Today's (UTC) warehouse counts").count()).toBeGreaterThan(0)
    // Each mart is a group of the sidebar; opening one lists its endpoints.
    for (const tag of [...marts, "odata", "bi"])
      expect(await page.getByRole("button", { name: new RegExp(`^${tag}\\b`) }).count(), tag).toBeGreaterThan(0)
    await page
      .getByRole("button", { name: /^oee\b/ })
      .first()
      .click()
    await expect.poll(() => page.getByText("The oee mart's OData v4 service document").count(), { timeout: 10_000 }).toBeGreaterThan(0)

    // The key goes in the reference's authentication field (X-API-Key, the preferred scheme).
    await page.locator("input.scalar-password-input:visible").first().fill(key)
    await page.getByRole("button", { name: "Test Request (get /api/powerbi/daily-stats)" }).click()
    const answered = page.waitForResponse((response) => new URL(response.url()).pathname === "/api/powerbi/daily-stats")
    await page.getByRole("button", { name: /^Send/ }).first().click()
    const response = await answered
    expect(response.status()).toBe(200)
    expect(response.request().headers()["x-api-key"]).toBe(key)
    const rows = (await response.json()) as ReadonlyArray<{ date: string; erased: number }>
    expect(rows).toEqual([{ date: "2025-01-15", booked_in: 0, erased: 4, qa: 0 }])
    await expect.poll(() => page.getByText("200 OK").count(), { timeout: 10_000 }).toBeGreaterThan(0)
    await expect.poll(() => page.locator(".cm-content").filter({ hasText: '"erased": 4' }).count(), { timeout: 10_000 }).toBeGreaterThan(0)
    await page.screenshot({ path: join(OUTPUT, "docs.png") })
    expect(elsewhere).toEqual([])
  }, 120_000)
})
