import { mkdir } from "node:fs/promises"
import { dirname, join } from "node:path"
import { fileURLToPath } from "node:url"
import type postgres from "postgres"
import type { Browser, Page } from "playwright-core"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { rebuildProjection } from "../consumers/rebuild.ts"
import { runLive } from "../consumers/runtime.ts"
import { appendAsEdge } from "../infra/local/append.ts"
import { type Edge, startEdge } from "../infra/local/edge.ts"
import { type LogStack, startLogStack } from "../infra/local/log-stack.ts"
import { type ReadApiHarness, startReadApi } from "../infra/local/read-api.ts"
import { erasureEvents, hubspotBatch, postSigned, warehouseWorkload } from "../infra/local/samples.ts"
import { generateSecrets } from "../infra/local/stack.ts"
import { readQuarantine, redriveQuarantined } from "../infra/quarantine.ts"
import { setLogLevel } from "../platform/logger.ts"
import { crmProjection } from "../projections/crm/projection.ts"
import { type Projection, poison } from "../projections/projection.ts"
import { warehouseProjection } from "../projections/warehouse/projection.ts"
import { createApiKey, marts } from "../read/index.ts"
import { launchChromium } from "../reports/engines/chromium.ts"
import { CONSOLE_ADMIN_SCOPE, consoleApi } from "./api.ts"

/** Where the console's screenshots go: CI keeps the folder with the run's output. */
const OUTPUT = join(dirname(fileURLToPath(import.meta.url)), "..", ".build", "test-output", "console")
const CHROMIUM = process.env.CHROMIUM_BIN ?? "/usr/bin/chromium"
const LAPTOP = { width: 1280, height: 900 }
const PHONE = { width: 390, height: 844 }

/** The event the live code cannot map yet (a deploy behind the contract); the console runs the fixed code. */
const POISON_KEY = "erasure:era_900001"
const behindWarehouse: Projection = {
  ...warehouseProjection,
  project: (event) =>
    event.dedupeKey === POISON_KEY ? poison("engineer initials ZZ are not known to this deploy") : warehouseProjection.project(event)
}

let stack: LogStack
let edge: Edge
let sql: postgres.Sql
let api: ReadApiHarness
let browser: Browser
let close: () => void
const secrets = generateSecrets()
const keys = { admin: "", reader: "" }
const stop = new AbortController()
const live: Array<Promise<void>> = []

beforeAll(async () => {
  setLogLevel("warn")
  await mkdir(OUTPUT, { recursive: true })
  stack = await startLogStack()
  const database = await stack.database()
  sql = database.sql
  edge = await startEdge({
    natsWsUrl: stack.nats.wsUrl,
    natsPassword: stack.nats.edge.password,
    secrets: Object.fromEntries(Object.entries(secrets).map(([name, secret]) => [name, [secret]]))
  })
  keys.admin = (await createApiKey(sql, "console admin", [CONSOLE_ADMIN_SCOPE], [...marts, CONSOLE_ADMIN_SCOPE])).key
  keys.reader = (await createApiKey(sql, "warehouse reader", ["warehouse"], marts)).key
  const extension = consoleApi({
    sql,
    // As `up` runs it: a user that may also hear the edge's outcomes (the projector's may not).
    nc: stack.admin,
    projections: [warehouseProjection, crmProjection],
    quarantine: { list: () => readQuarantine(stack.js, stack.jsm), redrive: (ids) => redriveQuarantined(stack.js, stack.jsm, ids) },
    edgeUrls: [edge.url],
    sampleEveryMs: 500
  })
  close = extension.close
  api = await startReadApi(sql, database.url, { maxStreams: 2, accessLog: false, extensions: [extension] })
  browser = await launchChromium(CHROMIUM)
}, 180_000)

afterAll(async () => {
  stop.abort()
  await Promise.all(live)
  close?.()
  await browser?.close()
  await api?.close()
  await edge?.dispose()
  await stack?.dispose()
})

const runProjection = (projection: Projection) =>
  live.push(runLive({ sql, nc: stack.projector, projection, batchSize: 100, signal: stop.signal }))

/** The console at laptop and phone width, side by side, with `key`. */
const openConsole = async (key: string): Promise<{ laptop: Page; phone: Page }> => {
  const open = async (viewport: { width: number; height: number }) => {
    const page = await (await browser.newContext({ viewport })).newPage()
    await page.goto(`${api.url}/console?api_key=${key}`)
    return page
  }
  return { laptop: await open(LAPTOP), phone: await open(PHONE) }
}

const shoot = async (pages: { laptop: Page; phone: Page }, name: string) => {
  await pages.laptop.screenshot({ path: join(OUTPUT, `${name}-laptop.png`), fullPage: true })
  await pages.phone.screenshot({ path: join(OUTPUT, `${name}-phone.png`), fullPage: true })
}

const rowText = (page: Page, selector: string) => page.locator(selector).first().innerText()

/** The sum of a source's per-minute bars (`column` 0: accepted, 1: duplicates, 2: quarantined), from their accessible label ("12:03 4, 12:04 0, ..."). */
const minutesTotal = async (page: Page, source: string, column: number) => {
  const label = await page.locator(`#sources tr[data-source="${source}"] .minutes`).nth(column).getAttribute("aria-label")
  return (label ?? "").split(", ").reduce((sum, entry) => sum + Number(entry.split(" ")[1] ?? 0), 0)
}

describe("the operator's console", () => {
  it("gives no data without a key (401) or with a key lacking console:admin (403), and says which", async () => {
    const bare = await fetch(`${api.url}/api/console/status`)
    expect(bare.status).toBe(401)
    const bareBody = await bare.text()
    expect(bareBody).not.toContain("projections")
    const reader = await fetch(`${api.url}/api/console/status`, { headers: { "X-API-Key": keys.reader } })
    expect(reader.status).toBe(403)
    expect(await reader.text()).not.toContain("projections")
    const redrive = await fetch(`${api.url}/api/console/dead-letters/redrive`, {
      method: "POST",
      headers: { "X-API-Key": keys.reader, "Content-Type": "application/json" },
      body: JSON.stringify({ projection: "warehouse", ids: [1] })
    })
    expect(redrive.status).toBe(403)
    // The page itself holds nothing but the frame.
    const html = await (await fetch(`${api.url}/console`)).text()
    expect(html).not.toMatch(/warehouse|erasure|hubspot/)

    const pages = await openConsole(keys.reader)
    for (const page of [pages.laptop, pages.phone]) {
      expect(new URL(page.url()).searchParams.has("api_key")).toBe(false)
      await expect
        .poll(() => page.locator("#access").textContent())
        .toBe("This key may not see the console: it needs the console:admin scope.")
      expect(await page.locator("#sources tbody tr").count()).toBe(0)
      expect(await page.locator("#sources").isVisible()).toBe(false)
    }
    await shoot(pages, "refused")

    const keyless = await (await browser.newContext({ viewport: LAPTOP })).newPage()
    await keyless.goto(`${api.url}/console`)
    await expect
      .poll(() => keyless.locator("#access").textContent())
      .toBe("The API key is missing or unknown: enter a key with the console:admin scope.")
    expect(await keyless.locator("#projections").isVisible()).toBe(false)
    await keyless.context().close()
  }, 60_000)

  it("shows each source's counts, the projections' lag and a dead letter, and re-drives it from the page after a confirmation", async () => {
    const pages = await openConsole(keys.admin)
    const { laptop } = pages
    await expect.poll(() => laptop.locator("#updated").textContent(), { timeout: 20_000 }).toMatch(/^Live · updated/)

    // Traffic through the edge while no projection runs yet: the log holds it, the marts lag.
    const erasures = [...erasureEvents(20, { firstId: 100 }), ...erasureEvents(1, { firstId: 900_001 })]
    expect((await postSigned(edge.url, "erasure", erasures, secrets.erasure as string)).status).toBe(202)
    const batch = hubspotBatch(5, { firstEventId: 5000 }).map((event, i) => (i === 2 ? { ...event, propertyValue: 42 } : event))
    const hubspot = (await (await postSigned(edge.url, "hubspot", batch, secrets.hubspot as string)).json()) as {
      accepted: number
      quarantined: ReadonlyArray<{ id: number }>
    }
    expect([hubspot.accepted, hubspot.quarantined.length]).toEqual([4, 1])
    // The same erasures again (the log keeps the first of each: 21 duplicates), and once with a wrong signature.
    expect((await postSigned(edge.url, "erasure", erasures, secrets.erasure as string)).status).toBe(202)
    expect((await postSigned(edge.url, "erasure", erasures, "not-the-erasure-secret")).status).toBe(401)

    await expect.poll(() => rowText(laptop, '#sources tr[data-source="erasure"]'), { timeout: 20_000 }).toMatch(/^erasure\s+21\s/)
    await expect.poll(() => rowText(laptop, '#sources tr[data-source="hubspot"]')).toMatch(/^hubspot\s+4\s/)
    // Sent after the console started, so the per-minute counts hold every one of them, whichever minute they fell in.
    await expect.poll(() => minutesTotal(laptop, "erasure", 0)).toBe(21)
    expect(await minutesTotal(laptop, "hubspot", 0)).toBe(4)
    expect(await minutesTotal(laptop, "hubspot", 2)).toBe(1)
    await expect.poll(() => minutesTotal(laptop, "erasure", 1)).toBe(21)
    expect(await minutesTotal(laptop, "hubspot", 1)).toBe(0)
    await expect.poll(() => rowText(laptop, '#sources tr[data-source="erasure"]')).toMatch(/\b401: 1\b/)
    expect(await rowText(laptop, '#sources tr[data-source="erasure"]')).toContain("answered 401")
    expect(await rowText(laptop, '#sources tr[data-source="hubspot"]')).toContain(
      "quarantined: $[2].propertyValue: Expected string, got 42"
    )
    await expect.poll(() => rowText(laptop, '#projections tr[data-projection="warehouse"]')).toMatch(/\s21\s+[\d.]+\s/)
    await expect.poll(() => laptop.locator("#quarantine tr[data-id] th").allTextContents()).toEqual([`#${hubspot.quarantined[0]?.id}`])
    await shoot(pages, "lagging")

    runProjection(behindWarehouse)
    runProjection(crmProjection)
    const warehouse = laptop.locator('#projections tr[data-projection="warehouse"]')
    await expect.poll(() => warehouse.innerText(), { timeout: 30_000 }).toMatch(/^warehouse\s+1\s+1\s+21 \/ 21\s+0\s+0\.0\s+\d+\s+1\s/)
    await expect.poll(() => laptop.locator("#dead-letters tbody tr").count()).toBe(1)
    const letter = laptop.locator("#dead-letters tbody tr").first()
    expect(await letter.innerText()).toContain("engineer initials ZZ are not known to this deploy")
    expect(await letter.innerText()).toContain(`key ${POISON_KEY}`)
    expect(await rowText(laptop, '#sources tr[data-source="erasure"]')).toContain("dead letter in warehouse")
    await expect.poll(() => rowText(pages.phone, "#dead-letters tbody tr")).toContain("engineer initials ZZ")
    await expect.poll(() => rowText(laptop, "#edges tbody tr")).toContain(edge.url)
    await shoot(pages, "dead-letter")

    // Asked first; cancelling re-drives nothing.
    await letter.getByRole("button", { name: "Re-drive" }).click()
    await expect.poll(() => laptop.locator("#confirm").isVisible()).toBe(true)
    expect(await laptop.locator("#confirm-text").textContent()).toMatch(/^Re-drive dead letter #\d+ of warehouse/)
    await shoot(pages, "confirm")
    await laptop.locator("#confirm-cancel").click()
    await expect.poll(() => laptop.locator("#action-status").textContent()).toBe("Nothing was re-driven.")
    expect(await laptop.locator("#dead-letters tbody tr").count()).toBe(1)

    await laptop.locator("#dead-letters tbody tr").first().getByRole("button", { name: "Re-drive" }).click()
    await laptop.locator("#confirm-yes").click()
    await expect.poll(() => laptop.locator("#action-status").textContent(), { timeout: 20_000 }).toMatch(/^Re-drove dead letter #\d+\.$/)
    await expect.poll(() => laptop.locator("#dead-letters-empty").isVisible()).toBe(true)
    await expect.poll(() => warehouse.innerText()).toMatch(/^warehouse\s+1\s+1\s+21 \/ 21\s+0\s+0\.0\s+\d+\s+0\s/)
    const [row] = await sql`SELECT count(*)::int AS n FROM mart_warehouse.erasures WHERE job_id = 'JOB-900001'`
    expect(row?.n).toBe(1)

    // A quarantined event the current contract still refuses stays, with what the re-drive found.
    await laptop.locator("#quarantine tbody tr").first().getByRole("button", { name: "Re-drive" }).click()
    await laptop.locator("#confirm-yes").click()
    await expect
      .poll(() => laptop.locator("#action-status").textContent(), { timeout: 20_000 })
      .toMatch(new RegExp(`^#${hubspot.quarantined[0]?.id} invalid: \\$(\\[2\\])?\\.propertyValue: Expected string, got 42$`))
    expect(await laptop.locator("#quarantine tbody tr").count()).toBe(1)
    await shoot(pages, "overview")
    await pages.laptop.context().close()
    await pages.phone.context().close()
  }, 120_000)

  it("shows a rebuild's position, rate and ETA moving, then the new generation", async () => {
    const pages = await openConsole(keys.admin)
    const { laptop } = pages
    const head = await appendAsEdge(stack.js, "erasure", warehouseWorkload(8000))
    const warehouse = laptop.locator('#projections tr[data-projection="warehouse"]')
    await expect
      .poll(() => warehouse.innerText(), { timeout: 60_000 })
      .toMatch(new RegExp(`^warehouse\\s+1\\s+1\\s+${head.toLocaleString("en")} / ${head.toLocaleString("en")}\\s+0\\s`))

    // Every event sent since the console started is counted once in the per-minute counts, however the readings overlapped.
    await expect.poll(() => minutesTotal(laptop, "erasure", 0)).toBe(head)

    // Batch by batch in small batches: slow enough to watch, and each batch moves the committed position.
    const rebuilding = rebuildProjection({ sql, nc: stack.projector, projection: warehouseProjection, bulk: false, batchSize: 8 })
    const progress = warehouse.locator(".rebuild-text")
    const positionOf = (text: string | null) => Number(/^g2: ([\d,]+) of/.exec(text ?? "")?.[1]?.replaceAll(",", "") ?? "0")
    await expect.poll(async () => positionOf(await progress.textContent()), { timeout: 30_000 }).toBeGreaterThan(0)
    const first = positionOf(await progress.textContent())
    await expect.poll(async () => positionOf(await progress.textContent()), { timeout: 30_000 }).toBeGreaterThan(first)
    await expect
      .poll(() => progress.textContent(), { timeout: 30_000 })
      .toMatch(new RegExp(`^g2: [\\d,]+ of ${head.toLocaleString("en")} \\(\\d+%\\), [1-9][\\d,]* events/s, ETA \\d`))
    await expect.poll(() => pages.phone.locator('#projections tr[data-projection="warehouse"] .rebuild-text').count()).toBe(1)
    await shoot(pages, "rebuild")

    const result = await rebuilding
    expect(result.generation).toBe(2)
    await expect.poll(() => warehouse.innerText(), { timeout: 30_000 }).toMatch(/^warehouse\s+2\s+1\s/)
    expect(await progress.count()).toBe(0)
    await shoot(pages, "rebuilt")
  }, 180_000)
})
