import { mkdir } from "node:fs/promises"
import { dirname, join } from "node:path"
import { fileURLToPath } from "node:url"
import type postgres from "postgres"
import type { Browser, Page } from "playwright-core"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { appendAsEdge } from "../infra/local/append.ts"
import { type LogStack, startLogStack } from "../infra/local/log-stack.ts"
import { type ReadApiHarness, startReadApi } from "../infra/local/read-api.ts"
import { erasureEvents } from "../infra/local/samples.ts"
import { setLogLevel } from "../platform/logger.ts"
import { warehouseProjection } from "../projections/warehouse/projection.ts"
import { launchChromium } from "../reports/engines/chromium.ts"
import { marts } from "./feeds.ts"
import { createApiKey } from "./keys.ts"

/** Where the page's screenshots go: CI keeps the folder with the run's output. */
const OUTPUT = join(dirname(fileURLToPath(import.meta.url)), "..", ".build", "test-output", "read")
const CHROMIUM = process.env.CHROMIUM_BIN ?? "/usr/bin/chromium"

const utcDay = (millis: number) => new Date(millis).toISOString().slice(0, 10)
const today = utcDay(Date.now())
const yesterday = utcDay(Date.now() - 86_400_000)
const counted = (id: string, type: "intake.booked_in" | "qa.completed", day: string, count: number) => ({
  id,
  type,
  timestamp: `${day}T07:00:00Z`,
  data: { count }
})

let stack: LogStack
let owner: postgres.Sql
let api: ReadApiHarness
let browser: Browser
const keys = { warehouse: "", crm: "" }

/** Appends `events` to the log as the edge does, then runs the warehouse projection until it has committed them. */
const send = async (events: ReadonlyArray<unknown>) => {
  await appendAsEdge(stack.js, "erasure", events)
  await stack.projectToHead(owner, warehouseProjection)
}

beforeAll(async () => {
  setLogLevel("warn")
  await mkdir(OUTPUT, { recursive: true })
  stack = await startLogStack()
  const database = await stack.database()
  owner = database.sql
  // Yesterday: a success on servers (JD), one on laptops and desktops (AK), a failure and a connect; 9 booked in, 2 through QA.
  await send([
    ...erasureEvents(4, { firstId: 1, day: yesterday }),
    counted("intake_y", "intake.booked_in", yesterday, 9),
    counted("qa_y", "qa.completed", yesterday, 2)
  ])
  keys.warehouse = (await createApiKey(owner, "floor screen", ["warehouse"], marts)).key
  keys.crm = (await createApiKey(owner, "crm only", ["crm"], marts)).key
  api = await startReadApi(owner, database.url, { maxStreams: 2, accessLog: false })
  browser = await launchChromium(CHROMIUM)
}, 120_000)

afterAll(async () => {
  await browser?.close()
  await api?.close()
  await stack?.dispose()
})

const text = (page: Page, selector: string) => page.locator(selector).textContent()
/** Each row of a table's body as its cells' text (an expression Chromium evaluates: the page's DOM is not in our type-checked world). */
const cells = (page: Page, table: string) =>
  page.evaluate<Array<Array<string>>>(
    `[...document.querySelectorAll("#${table} tbody tr")].map((row) => [...row.cells].map((cell) => cell.textContent))`
  )
/** Sizes of the page as Chromium lays it out: the erased figure's and a table row's font size, the document's extent, and how many of the day's figures are wider than their tile. */
const layoutOf = (page: Page) =>
  page.evaluate<{ figure: number; row: number; width: number; height: number; overflowing: number }>(`(() => ({
    figure: parseFloat(getComputedStyle(document.getElementById("erased-today")).fontSize),
    row: parseFloat(getComputedStyle(document.querySelector("#engineers td")).fontSize),
    width: document.documentElement.scrollWidth,
    height: document.documentElement.scrollHeight,
    overflowing: [...document.querySelectorAll(".tile .today")].filter((figure) => figure.scrollWidth > figure.clientWidth).length
  }))()`)
const tiles = async (page: Page) =>
  Promise.all(["booked-in", "erased", "qa"].flatMap((id) => [text(page, `#${id}-today`), text(page, `#${id}-yesterday`)]))

describe("the warehouse floor's stats page", () => {
  it("serves the page without a key and holds no data in it; the data refuses no key with 401 and a key for another mart with 403", async () => {
    const page = await fetch(`${api.url}/stats`)
    expect(page.status).toBe(200)
    expect(page.headers.get("content-type")).toBe("text/html; charset=utf-8")
    const html = await page.text()
    expect(html).toContain('<script type="module" src="/stats/assets/stats.js"></script>')
    expect(html).not.toContain(today)
    for (const [file, type] of [
      ["stats.js", "text/javascript; charset=utf-8"],
      ["stats-view.js", "text/javascript; charset=utf-8"],
      ["stats.css", "text/css; charset=utf-8"]
    ] as const) {
      const asset = await fetch(`${api.url}/stats/assets/${file}`)
      expect(asset.status, file).toBe(200)
      expect(asset.headers.get("content-type"), file).toBe(type)
    }
    for (const file of ["stats.html", "stats-view.d.ts", "..%2Fstats.ts", "..%2F..%2Fpackage.json"])
      expect((await fetch(`${api.url}/stats/assets/${file}`)).status, file).toBe(404)

    for (const path of ["/metrics/today", "/metrics/yesterday"]) {
      const none = await fetch(`${api.url}${path}`)
      expect(none.status, path).toBe(401)
      expect(((await none.json()) as { error: string }).error).toBe("unauthorized")
      const crm = await fetch(`${api.url}${path}`, { headers: { "X-API-Key": keys.crm } })
      expect(crm.status, path).toBe(403)
      expect(((await crm.json()) as { message: string }).message).toContain("not warehouse")
    }
  })

  it("says when the key is missing or refused, and asks for one", async () => {
    const page = await (await browser.newContext({ viewport: { width: 1366, height: 768 } })).newPage()
    await page.goto(`${api.url}/stats`)
    await expect
      .poll(() => text(page, "#message"))
      .toBe("No API key: open this page with ?api_key=<key>, or enter a key scoped to the warehouse mart.")
    expect(await page.getByLabel("API key scoped to the warehouse mart").isVisible()).toBe(true)

    await page.getByLabel("API key scoped to the warehouse mart").fill(keys.crm)
    await page.getByRole("button", { name: "Use key" }).click()
    await expect
      .poll(() => text(page, "#message"))
      .toMatch(/^This key may not read the warehouse mart: this API key may read the crm mart\(s\), not warehouse; /)
    expect(await page.getByRole("alert").isVisible()).toBe(true)
    await page.screenshot({ path: join(OUTPUT, "stats-refused.png") })

    await page.getByLabel("API key scoped to the warehouse mart").fill(`imk_0000000000000000.${"A".repeat(43)}`)
    await page.getByRole("button", { name: "Use key" }).click()
    await expect.poll(() => text(page, "#message")).toBe("The API key was refused: the API key is not recognised.")
    await page.context().close()
  })

  it("shows today's and yesterday's counts, by device type and per engineer, and follows new erasures live", async () => {
    const context = await browser.newContext({ viewport: { width: 1920, height: 1080 } })
    const page = await context.newPage()
    await page.goto(`${api.url}/stats?api_key=${keys.warehouse}&refresh=1`)
    // The key left the address bar for the tab's session storage.
    expect(new URL(page.url()).searchParams.has("api_key")).toBe(false)
    expect(new URL(page.url()).searchParams.get("refresh")).toBe("1")

    await expect.poll(() => tiles(page)).toEqual(["0", "9", "0", "2", "0", "2"])
    expect(await page.locator("#day").getAttribute("datetime")).toBe(today)
    expect(await text(page, "#updated")).toMatch(/^Updated \d\d:\d\d:\d\d$/)
    expect(await page.locator("#message").isHidden()).toBe(true)
    expect(await page.locator("#key-form").isHidden()).toBe(true)
    expect(await cells(page, "device-types")).toEqual([
      ["Laptops & desktops", "0", "1"],
      ["Servers", "0", "1"]
    ])
    expect(await cells(page, "engineers")).toEqual([
      ["AK", "0", "1"],
      ["JD", "0", "1"]
    ])
    expect(await page.locator("#engineers-empty").isVisible()).toBe(true)

    // Today, erasures 100-111: six successes (i % 4 < 2), servers when i % 3 == 0 (i = 0, 9), engineers JD, AK, MR by i % 3.
    await send([
      ...erasureEvents(12, { firstId: 100, day: today }),
      counted("intake_1", "intake.booked_in", today, 30),
      counted("qa_1", "qa.completed", today, 7)
    ])
    await expect.poll(() => tiles(page), { timeout: 20_000 }).toEqual(["30", "9", "6", "2", "7", "2"])
    await expect
      .poll(() => cells(page, "device-types"))
      .toEqual([
        ["Laptops & desktops", "4", "1"],
        ["Servers", "2", "1"]
      ])
    await expect
      .poll(() => cells(page, "engineers"))
      .toEqual([
        ["AK", "2", "1"],
        ["JD", "2", "1"],
        ["MR", "2", "0"]
      ])
    expect(await page.locator("#engineers-empty").isHidden()).toBe(true)

    // Then 200-203: a success on servers (JD), one on laptops and desktops (AK), a failure and a connect; 12,000 more booked in.
    await send([
      ...erasureEvents(4, { firstId: 200, day: today }),
      counted("intake_2", "intake.booked_in", today, 12_000),
      counted("qa_2", "qa.completed", today, 3)
    ])
    await expect.poll(() => tiles(page), { timeout: 20_000 }).toEqual(["12,030", "9", "8", "2", "10", "2"])
    await expect
      .poll(() => cells(page, "device-types"))
      .toEqual([
        ["Laptops & desktops", "5", "1"],
        ["Servers", "3", "1"]
      ])
    await expect
      .poll(() => cells(page, "engineers"))
      .toEqual([
        ["AK", "3", "1"],
        ["JD", "3", "1"],
        ["MR", "2", "0"]
      ])

    // The JSON the page read: the existing fields unchanged, device types added.
    const read = async (path: string) => (await fetch(`${api.url}${path}`, { headers: { "X-API-Key": keys.warehouse } })).json()
    expect(await read("/metrics/today")).toEqual({
      date: today,
      booked_in: 12_030,
      erased: 8,
      qa: 10,
      engineers: [
        { initials: "AK", count: 3 },
        { initials: "JD", count: 3 },
        { initials: "MR", count: 2 }
      ],
      device_types: [
        { device_type: "laptops_desktops", count: 5 },
        { device_type: "servers", count: 3 }
      ]
    })
    expect(await read("/metrics/yesterday")).toEqual({
      date: yesterday,
      booked_in: 9,
      erased: 2,
      qa: 2,
      engineers: [
        { initials: "AK", count: 1 },
        { initials: "JD", count: 1 }
      ],
      device_types: [
        { device_type: "laptops_desktops", count: 1 },
        { device_type: "servers", count: 1 }
      ]
    })

    // Readable across a room: the day's figures are big, and the page fits a 1920x1080 screen with nothing to scroll.
    const layout = await layoutOf(page)
    expect(layout.figure).toBeGreaterThanOrEqual(150)
    expect(layout.row).toBeGreaterThanOrEqual(36)
    expect(layout.width).toBeLessThanOrEqual(1920)
    expect(layout.height).toBeLessThanOrEqual(1080)
    expect(layout.overflowing).toBe(0)
    await page.screenshot({ path: join(OUTPUT, "stats.png") })

    // And on a laptop: nothing wider than the screen, the figures still the biggest thing on it.
    await page.setViewportSize({ width: 1366, height: 768 })
    const laptop = await layoutOf(page)
    expect(laptop.width).toBeLessThanOrEqual(1366)
    expect(laptop.overflowing).toBe(0)
    expect(laptop.figure).toBeGreaterThanOrEqual(100)
    await page.screenshot({ path: join(OUTPUT, "stats-laptop.png") })
    await context.close()
  }, 90_000)
})
