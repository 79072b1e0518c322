import { PNG } from "pngjs"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { DEMO_PAGES, demoPowerBiReport } from "../infra/local/reports.ts"
import { type LocalPowerBi, startLocalPowerBi } from "../infra/local/powerbi.ts"
import { powerBiTokens } from "./auth.ts"
import type { PowerBiClient } from "./client.ts"
import { colourOf } from "./emulator/report-view.ts"

const PREMIUM = "44444444-4444-4444-8444-444444444444"
const SHARED = "55555555-5555-4555-8555-555555555555"

let powerbi: LocalPowerBi
let client: PowerBiClient
let premium: { reportId: string; embedUrl: string }
let shared: { reportId: string }

beforeAll(async () => {
  powerbi = await startLocalPowerBi({
    workspaces: [
      { id: PREMIUM, capacity: "premium" },
      { id: SHARED, capacity: "shared" }
    ],
    exportMs: 200
  })
  client = powerbi.client()
  premium = await demoPowerBiReport({ emulator: powerbi.emulator, client }, PREMIUM)
  shared = await demoPowerBiReport({ emulator: powerbi.emulator, client }, SHARED)
})

afterAll(async () => {
  await powerbi?.close()
})

/** A request as it goes over the wire, the answer whatever its status (the client throws on refusals). */
const raw = async (method: string, path: string, body?: unknown) =>
  fetch(`${powerbi.settings.apiBase}${path}`, {
    method,
    headers: {
      Authorization: `Bearer ${await powerBiTokens(powerbi.settings).token()}`,
      ...(body === undefined ? {} : { "Content-Type": "application/json" })
    },
    ...(body === undefined ? {} : { body: JSON.stringify(body) })
  })

const exportTo = async (groupId: string, reportId: string, body: unknown) => {
  const response = await raw("POST", `/groups/${groupId}/reports/${reportId}/ExportTo`, body)
  return { status: response.status, body: (await response.json()) as { id?: string; error?: { code: string; message: string } } }
}

describe("the emulator's reports, as Power BI answers", () => {
  it("lists a report's pages as the REST API does", async () => {
    const pages = await client.request<{ value: Array<{ name: string; displayName: string; order: number }> }>(
      "GET",
      `/groups/${PREMIUM}/reports/${premium.reportId}/pages`
    )
    expect(pages.value.map((page) => [page.name, page.displayName])).toEqual(DEMO_PAGES.map((page) => [page.name, page.display_name]))
  })

  it("refuses what the service refuses, naming it", async () => {
    const onShared = await exportTo(SHARED, shared.reportId, { format: "PNG" })
    expect(onShared).toMatchObject({ status: 403, body: { error: { code: "FeatureNotAvailableError" } } })
    const cases: ReadonlyArray<[unknown, RegExp]> = [
      [{ format: "GIF" }, /not one a Power BI report exports to/],
      [
        {
          format: "PNG",
          powerBIReportConfiguration: { reportLevelFilters: [{ filter: "Store/Region eq 'North'" }, { filter: "Store/Year eq 2024" }] }
        },
        /only one filter/
      ],
      [
        { format: "PDF", powerBIReportConfiguration: { pages: Array.from({ length: 51 }, () => ({ pageName: "ReportSection1" })) } },
        /at most 50 pages/
      ],
      [{ format: "PDF", powerBIReportConfiguration: { pages: [{ pageName: "ReportSection9" }] } }, /no page "ReportSection9"/],
      [{ format: "PNG", powerBIReportConfiguration: { reportLevelFilters: [{ filter: "Store/Region like 'N'" }] } }, /unknown operator/],
      [
        { format: "PNG", powerBIReportConfiguration: { reportLevelFilters: [{ filter: "Store/Colour eq 'red'" }] } },
        /no column|does not have/
      ]
    ]
    for (const [body, message] of cases) {
      const answer = await exportTo(PREMIUM, premium.reportId, body)
      expect(answer.status, JSON.stringify(body).slice(0, 80)).toBe(400)
      expect(answer.body.error?.message).toMatch(message)
    }
    expect((await exportTo(PREMIUM, "no-such-report", { format: "PNG" })).status).toBe(404)
  })

  it("runs an export NotStarted → Running → Succeeded with Retry-After, then serves the filtered file", async () => {
    const started = await exportTo(PREMIUM, premium.reportId, {
      format: "PNG",
      powerBIReportConfiguration: {
        pages: [{ pageName: "ReportSection2" }],
        reportLevelFilters: [{ filter: "Store/Region in ('East','West')" }]
      }
    })
    expect(started.status).toBe(202)
    const path = `/groups/${PREMIUM}/reports/${premium.reportId}/exports/${started.body.id}`
    const early = await raw("GET", `${path}/file`)
    expect(early.status).toBe(400)
    const seen = new Set<string>()
    for (;;) {
      const poll = await raw("GET", path)
      const body = (await poll.json()) as { status: string }
      seen.add(body.status)
      if (poll.status === 202) expect(poll.headers.get("retry-after")).toBe("1")
      if (body.status === "Succeeded") break
      await new Promise((resolveWait) => setTimeout(resolveWait, 50))
    }
    expect([...seen]).toContain("Succeeded")
    const file = await raw("GET", `${path}/file`)
    expect(file.headers.get("content-type")).toBe("image/png")
    const image = PNG.sync.read(Buffer.from(await file.arrayBuffer()))
    const colours = new Set<string>()
    for (let i = 0; i < image.data.length; i += 4) colours.add(`${image.data[i]},${image.data[i + 1]},${image.data[i + 2]}`)
    expect(colours.has(colourOf("East").join(","))).toBe(true)
    expect(colours.has(colourOf("West").join(","))).toBe(true)
    expect(colours.has(colourOf("North").join(","))).toBe(false)
    expect(powerbi.emulator.reportStats().exports[premium.reportId]).toBe(1)
  })

  it("draws the embedded page with the URL filter, or says why it cannot", async () => {
    const url = new URL(premium.embedUrl)
    url.searchParams.set("pageName", "ReportSection1")
    url.searchParams.set("filter", "Store/Region eq 'North'")
    const html = await (await fetch(url)).text()
    expect(html.match(/class="block"/g)).toHaveLength(2)
    expect(html).toContain('data-value="North"')
    expect(html).not.toContain('data-value="South"')
    url.searchParams.set("filter", "Store/Region eq")
    const broken = await (await fetch(url)).text()
    expect(broken).toContain('role="alert"')
    expect(broken).toContain('"event":"error"')
  })
})
