import { mkdir, readFile, writeFile } from "node:fs/promises"
import { createServer } from "node:http"
import type { AddressInfo } from "node:net"
import { dirname, join } from "node:path"
import { fileURLToPath } from "node:url"
import type { Browser } from "playwright-core"
import { PNG } from "pngjs"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { type LogStack, startLogStack } from "../infra/local/log-stack.ts"
import { type LocalPowerBi, LOCAL_WORKSPACE, startLocalPowerBi } from "../infra/local/powerbi.ts"
import {
  DEMO_PAGES,
  demoFilterSheet,
  demoPowerBiReport,
  type ReportStack,
  startReportStack,
  startWorkersInProcess
} from "../infra/local/reports.ts"
import { setLogLevel } from "../platform/logger.ts"
import { colourOf } from "../powerbi/emulator/report-view.ts"
import { chromiumEngine, launchChromium } from "./engines/chromium.ts"

/** Where the pages' screenshots go: CI keeps the folder with the run's output. */
const OUTPUT = join(dirname(fileURLToPath(import.meta.url)), "..", ".build", "test-output", "reports")
const CHROMIUM = process.env.CHROMIUM_BIN ?? "/usr/bin/chromium"

let stack: LogStack
let reports: ReportStack
let powerbi: LocalPowerBi
let browser: Browser
let embedUrl: string
const closers: Array<() => Promise<unknown>> = []

beforeAll(async () => {
  setLogLevel("warn")
  await mkdir(OUTPUT, { recursive: true })
  stack = await startLogStack()
  reports = await startReportStack(stack)
  powerbi = await startLocalPowerBi({})
  embedUrl = (await demoPowerBiReport({ emulator: powerbi.emulator, client: powerbi.client() }, LOCAL_WORKSPACE)).embedUrl
  const engine = chromiumEngine({ executablePath: CHROMIUM, viewport: { width: 800, height: 600 }, renderTimeoutMs: 30_000 })
  const running = await startWorkersInProcess(stack, reports, () => engine)
  closers.push(running.close, () => engine.close())
  browser = await launchChromium(CHROMIUM)
}, 120_000)

afterAll(async () => {
  await browser?.close()
  for (const close of closers.reverse()) await close().catch(() => undefined)
  await powerbi?.close()
  await reports?.close()
  await stack?.dispose()
})

describe("the report pages in Chromium", () => {
  it("registers a report on the admin page, shows a bad sheet's problems by row, imports a good one", async () => {
    const page = await (await browser.newContext({ viewport: { width: 1200, height: 1600 } })).newPage()
    await page.goto(`${reports.api.url}/reports/admin?api_key=${reports.keys.admin}`)
    // The key left the address bar for the tab's session storage.
    expect(new URL(page.url()).searchParams.has("api_key")).toBe(false)
    await expect.poll(() => page.locator("#reports-status").textContent()).toBe("No reports registered yet.")

    await page.getByLabel("Report id", { exact: true }).fill("retail")
    await page.getByLabel("Title", { exact: true }).fill("Retail overview")
    await page.getByLabel("Headless browser on the embed URL", { exact: true }).check()
    await page.getByLabel("Embed URL", { exact: true }).fill(embedUrl)
    await page.getByRole("button", { name: "Register" }).click()
    await expect.poll(() => page.locator("#register-status").textContent(), { timeout: 20_000 }).toBe("Registered retail.")

    await page.getByLabel("Report", { exact: true }).first().selectOption("retail")
    await page.getByLabel("Pages, in order", { exact: true }).fill(DEMO_PAGES.map((one) => `${one.name} | ${one.display_name}`).join("\n"))
    await page.getByRole("button", { name: "Set pages" }).click()
    await expect.poll(() => page.locator("#pages-status").textContent(), { timeout: 20_000 }).toBe("Set 3 pages of retail.")

    const bad = join(OUTPUT, "bad-filters.csv")
    await writeFile(
      bad,
      [
        "report_id,filter_label,column_name,allowed_values,default",
        "retail,Region,Store Region,North;South,",
        "retail,Year,Store/Year,2023;2024,1999"
      ].join("\n")
    )
    await page.locator("#import-report").selectOption("retail")
    await page.getByLabel("File (XLSX or CSV)", { exact: true }).setInputFiles(bad)
    await page.getByRole("button", { name: "Import" }).click()
    await expect.poll(() => page.locator("#import-status").textContent()).toBe("The sheet has 2 problems; nothing was imported.")
    const rows = await page.locator("#import-problems tbody tr").allTextContents()
    expect(rows).toHaveLength(2)
    expect(rows[0]).toContain("bad-filters.csv2C (column_name)Store Region")
    expect(rows[1]).toContain("bad-filters.csv3E (default)1999")

    const good = join(OUTPUT, "filters.csv")
    await writeFile(good, demoFilterSheet("retail"))
    await page.getByLabel("File (XLSX or CSV)", { exact: true }).setInputFiles(good)
    await page.getByRole("button", { name: "Import" }).click()
    await expect.poll(() => page.locator("#import-status").textContent(), { timeout: 20_000 }).toBe("Imported 2 filters for retail.")
    expect(await page.locator("#import-problems").isHidden()).toBe(true)
    await expect
      .poll(() => page.locator('#reports-table tr[data-report="retail"] td').allTextContents())
      .toEqual(["retail", "Retail overview", "embed", DEMO_PAGES.map((one) => one.name).join(", "), "2"])
    await page.screenshot({ path: join(OUTPUT, "admin.png"), fullPage: true })
  }, 90_000)

  it("previews a filtered PNG in the picker and downloads it, driven from the keyboard", async () => {
    const context = await browser.newContext({ viewport: { width: 1200, height: 1400 }, acceptDownloads: true })
    const page = await context.newPage()
    await page.goto(`${reports.api.url}/reports/picker?report=retail&api_key=${reports.keys.reader}`)
    await expect
      .poll(() => page.getByLabel("Page", { exact: true }).locator("option").allTextContents())
      .toEqual(DEMO_PAGES.map((one) => one.display_name))
    await page.getByLabel("Page", { exact: true }).selectOption("ReportSection2")
    await page.getByLabel("Region", { exact: true }).selectOption("North")
    await page.getByRole("button", { name: "Preview" }).focus()
    await page.keyboard.press("Enter")
    const preview = page.locator("#preview-image")
    await preview.waitFor({ timeout: 60_000 })
    expect(await preview.getAttribute("alt")).toBe("Preview of Retail overview, By region")

    const downloading = page.waitForEvent("download", { timeout: 60_000 })
    await page.getByRole("button", { name: "Download PNG" }).focus()
    await page.keyboard.press("Enter")
    const download = await downloading
    expect(download.suggestedFilename()).toMatch(/^retail-.+\.png$/)
    const image = PNG.sync.read(await readFile((await download.path()) as string))
    const colours = new Set<string>()
    for (let i = 0; i < image.data.length; i += 4) colours.add(`${image.data[i]},${image.data[i + 1]},${image.data[i + 2]}`)
    expect(colours.has(colourOf("North").join(","))).toBe(true)
    expect(colours.has(colourOf("South").join(","))).toBe(false)
    // The same choice again came from the cache.
    expect(await page.locator("#status").textContent()).toBe("Exported PNG (from the cache).")

    expect(await page.locator("#snippet-iframe").textContent()).toContain(`${reports.api.url}/reports/picker?report=retail`)
    expect(await page.locator("#snippet-script").textContent()).toContain(`${reports.api.url}/reports/assets/embed.js`)
    await page.screenshot({ path: join(OUTPUT, "picker.png"), fullPage: true })
    await context.close()
  }, 120_000)

  it("puts the picker in a CMS page with the script tag", async () => {
    // A CMS page on an origin of its own, as a Drupal or WordPress block would hold the tag.
    const cms = createServer((_, response) => {
      response.setHeader("Content-Type", "text/html; charset=utf-8")
      response.end(
        `<!doctype html><title>CMS</title><h1>Our reports</h1><script src="${reports.api.url}/reports/assets/embed.js" data-report="retail" data-api-key="${reports.keys.reader}" async></script>`
      )
    })
    await new Promise<void>((resolveListen) => cms.listen(0, "127.0.0.1", resolveListen))
    try {
      const page = await (await browser.newContext()).newPage()
      await page.goto(`http://127.0.0.1:${(cms.address() as AddressInfo).port}/reports`)
      const frame = page.frameLocator('iframe[title="Report export"]')
      await expect
        .poll(() => frame.getByLabel("Region", { exact: true }).locator("option").allTextContents(), { timeout: 20_000 })
        .toEqual(["All", "North", "South", "East", "West"])
      await page.screenshot({ path: join(OUTPUT, "cms-embed.png"), fullPage: true })
    } finally {
      cms.close()
    }
  }, 60_000)
})
