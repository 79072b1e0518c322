import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { appendAsEdge } from "../infra/local/append.ts"
import { type LogStack, startLogStack } from "../infra/local/log-stack.ts"
import { type ReadApiHarness, startReadApi } from "../infra/local/read-api.ts"
import { alowareCall, hubspotBatch, retailEvents } from "../infra/local/samples.ts"
import { crmProjection } from "../projections/crm/projection.ts"
import { retailProjection } from "../projections/retail/projection.ts"
import { marts } from "./feeds.ts"
import { createApiKey } from "./keys.ts"
import { ALL_ROWS } from "./row-scope.ts"

let stack: LogStack
let api: ReadApiHarness
let key = ""

beforeAll(async () => {
  stack = await startLogStack()
  const { sql, url } = await stack.database()
  // CRM activity on the 20th and 21st, sales on the 22nd: the two domains' calendars have no day in common.
  await appendAsEdge(stack.js, "hubspot", [
    ...hubspotBatch(3, { firstEventId: 1, occurredAt: Date.parse("2025-01-20T09:00:00Z") }),
    ...hubspotBatch(3, { firstEventId: 10, occurredAt: Date.parse("2025-01-21T09:00:00Z") })
  ])
  await appendAsEdge(stack.js, "pos", retailEvents("47", Date.parse("2025-01-22T12:00:00Z")))
  // Agent names are whatever Aloware's users typed: one that a spreadsheet would run as a formula.
  await appendAsEdge(stack.js, "aloware", [
    {
      ...alowareCall(7, "2025-01-21 10:00:00"),
      data: {
        ...alowareCall(7).data,
        created_at: "2025-01-21 10:00:00",
        user_id: 66,
        user_name: '=HYPERLINK("http://evil.example","open me")'
      }
    }
  ])
  const retail = retailProjection({ latenessMs: 600_000 })
  // Activated one after the other, crm first: before namespaces, mart.dim_date then showed retail's days only.
  await stack.projectToHead(sql, crmProjection)
  await stack.projectToHead(sql, retail)
  key = (await createApiKey(sql, "all", ["*"], marts, ALL_ROWS)).key
  api = await startReadApi(sql, url, { maxStreams: 2, accessLog: false })
}, 120_000)

afterAll(async () => {
  await api?.close()
  await stack?.dispose()
})

const odata = async (path: string) => {
  const response = await fetch(`${api.url}${path}`, { headers: { "X-API-Key": key } })
  expect(response.status, await response.clone().text()).toBe(200)
  return ((await response.json()) as { value: Array<Record<string, unknown>> }).value
}

describe("each domain's dim_date", () => {
  it("holds that domain's days, so every fact finds its date, at the read API's unchanged URLs", async () => {
    const crmDays = (await odata("/odata/crm/dim_date")).map((row) => row.date_key)
    const retailDays = (await odata("/odata/retail/dim_date")).map((row) => row.date_key)
    expect(crmDays).toEqual([20250120, 20250121])
    expect(crmDays).not.toContain(20250122)
    expect(retailDays).toEqual([20250122])
    for (const fact of await odata("/odata/crm/fact_event")) expect(crmDays).toContain(fact.date_key)
    for (const sale of await odata("/odata/retail/fact_sales")) expect(retailDays).toContain(sale.date_key)
  })
})

describe("CSV exports of text a sender controls", () => {
  const csv = async (path: string) => {
    const response = await fetch(`${api.url}${path}`, { headers: { "X-API-Key": key } })
    expect(response.status).toBe(200)
    return response.text()
  }

  it("neutralise a value a spreadsheet would run as a formula, by default", async () => {
    const text = await csv("/api/crm/export/dim-agent?format=csv")
    expect(text).toContain(`aloware:66,"'=HYPERLINK(""http://evil.example"",""open me"")",aloware`)
    expect(text).not.toMatch(/(^|,)"?=HYPERLINK/m)
  })

  it("leave it as stored with csv_raw=true, for BI tools that must read values unchanged; JSON is never changed", async () => {
    expect(await csv("/api/crm/export/dim-agent?format=csv&csv_raw=true")).toContain(
      `aloware:66,"=HYPERLINK(""http://evil.example"",""open me"")",aloware`
    )
    const rows = (await (
      await fetch(`${api.url}/api/crm/export/dim-agent?format=json`, { headers: { "X-API-Key": key } })
    ).json()) as Array<{ agent_name: string | null }>
    expect(rows.map((row) => row.agent_name)).toContain('=HYPERLINK("http://evil.example","open me")')
  })
})
