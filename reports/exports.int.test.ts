import { createServer, type Server } from "node:http"
import type { AddressInfo } from "node:net"
import { jetstreamManager } from "@nats-io/jetstream"
import { PDFDocument } from "pdf-lib"
import { PNG } from "pngjs"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { type LogStack, startLogStack } from "../infra/local/log-stack.ts"
import { type LocalPowerBi, startLocalPowerBi } from "../infra/local/powerbi.ts"
import { spawnMesh } from "../infra/local/projector-process.ts"
import {
  DEMO_PAGES,
  DEMO_ROWS,
  demoPowerBiReport,
  registerWithDemoSheet,
  type ReportStack,
  startReportStack,
  startWorkersInProcess
} from "../infra/local/reports.ts"
import { colourOf } from "../powerbi/emulator/report-view.ts"
import type { ExportFailure } from "../powerbi/emulator/reports.ts"
import { REPORT_EXPORTS_STREAM } from "../contracts/log.ts"
import { setLogLevel } from "../platform/logger.ts"
import { chromiumEngine } from "./engines/chromium.ts"
import { powerBiEngine } from "./engines/powerbi.ts"
import { findJob, renderCount } from "./jobs.ts"
import type { RenderEngine } from "./model.ts"

const PREMIUM = "33333333-3333-4333-8333-333333333333"
const CHROMIUM = process.env.CHROMIUM_BIN ?? "/usr/bin/chromium"

let stack: LogStack
let reports: ReportStack
let powerbi: LocalPowerBi
/** Per emulated report id: how its n-th ExportTo call fails, if it does. */
const failPlan = new Map<string, (count: number) => ExportFailure | undefined>()
const emulated: Record<string, string> = {}
/** A page that never says `rendered`: what a stuck report looks like to the headless engine. */
let stuck: Server

const api = async (method: string, path: string, body?: unknown) => {
  const response = await fetch(`${reports.api.url}${path}`, {
    method,
    headers: { "X-API-Key": reports.keys.reader, ...(body === undefined ? {} : { "Content-Type": "application/json" }) },
    ...(body === undefined ? {} : { body: JSON.stringify(body) })
  })
  return response
}

type JobBody = { id: string; status: string; cached: boolean; error: string | null; percent_complete: number; file_url: string | null }

const requestExport = async (body: Record<string, unknown>): Promise<JobBody> => {
  const response = await api("POST", "/api/exports", body)
  expect(response.status, await response.clone().text()).toBe(202)
  return (await response.json()) as JobBody
}

/** Polls the job until it is Succeeded or Failed (the API's contract: clients poll). */
const settled = async (id: string, withinMs = 60_000): Promise<JobBody> => {
  const deadline = Date.now() + withinMs
  for (;;) {
    const job = (await (await api("GET", `/api/exports/${id}`)).json()) as JobBody
    if (job.status === "Succeeded" || job.status === "Failed") return job
    if (Date.now() > deadline) throw new Error(`job ${id} still ${job.status} after ${withinMs} ms`)
    await new Promise((resolveWait) => setTimeout(resolveWait, 100))
  }
}

const fileOf = async (id: string): Promise<{ type: string; bytes: Uint8Array }> => {
  const response = await api("GET", `/api/exports/${id}/file`)
  expect(response.status).toBe(200)
  return { type: response.headers.get("content-type") ?? "", bytes: new Uint8Array(await response.arrayBuffer()) }
}

/** Pixels of each colour the image holds, by `r,g,b`. */
const coloursIn = (png: Uint8Array): Map<string, number> => {
  const image = PNG.sync.read(Buffer.from(png))
  const counts = new Map<string, number>()
  for (let i = 0; i < image.data.length; i += 4) {
    const key = `${image.data[i]},${image.data[i + 1]},${image.data[i + 2]}`
    counts.set(key, (counts.get(key) ?? 0) + 1)
  }
  return counts
}
const pixelsOf = (png: Uint8Array, value: string) => coloursIn(png).get(colourOf(value).join(",")) ?? 0

const exportsOf = (report: string) => powerbi.emulator.reportStats().exports[emulated[report] as string] ?? 0

beforeAll(async () => {
  setLogLevel("warn")
  stack = await startLogStack()
  reports = await startReportStack(stack)
  powerbi = await startLocalPowerBi({
    workspaces: [{ id: PREMIUM, capacity: "premium" }],
    exportMs: 300,
    failExports: (call) => failPlan.get(call.reportId)?.(call.count)
  })
  const demo = await demoPowerBiReport({ emulator: powerbi.emulator, client: powerbi.client() }, PREMIUM)
  stuck = createServer((_, response) => response.end("<!doctype html><title>Loading…</title><p>Loading…</p>"))
  await new Promise<void>((resolveListen) => stuck.listen(0, "127.0.0.1", resolveListen))
  const more = (name: string) =>
    powerbi.emulator.addReport({
      groupId: PREMIUM,
      name,
      datasetId: demo.datasetId,
      pages: DEMO_PAGES.map((page) => ({ name: page.name, displayName: page.display_name })),
      visual: { table: "Store", column: "Region" }
    }).id
  emulated["sales"] = demo.reportId
  emulated["busy"] = more("Busy at first")
  emulated["broken"] = more("Broken")
  failPlan.set(emulated["busy"], (count) => (count === 0 ? { message: "the capacity is busy", retryAfterSeconds: 1 } : undefined))
  failPlan.set(emulated["broken"], () => ({ message: "a visual of the report failed to render" }))
  for (const id of ["sales", "busy", "broken"])
    await registerWithDemoSheet(reports, {
      report_id: id,
      title: `Retail (${id})`,
      engine: "powerbi",
      workspace_id: PREMIUM,
      powerbi_report_id: emulated[id]
    })
  await registerWithDemoSheet(reports, { report_id: "sales-embed", title: "Retail (embedded)", engine: "embed", embed_url: demo.embedUrl })
  await registerWithDemoSheet(reports, {
    report_id: "stuck",
    title: "Never renders",
    engine: "embed",
    embed_url: `http://127.0.0.1:${(stuck.address() as AddressInfo).port}/embed`
  })
}, 120_000)

afterAll(async () => {
  stuck?.close()
  await powerbi?.close()
  await reports?.close()
  await stack?.dispose()
})

describe("export workers in this process, against the emulator and Debian's Chromium", () => {
  let engines: Record<"powerbi" | "embed", RenderEngine>
  let close: () => Promise<void>

  beforeAll(async () => {
    engines = {
      powerbi: powerBiEngine(powerbi.settings, { pollMs: 100 }),
      embed: chromiumEngine({ executablePath: CHROMIUM, viewport: { width: 800, height: 600 }, renderTimeoutMs: 30_000 })
    }
    ;({ close } = await startWorkersInProcess(stack, reports, (report) => engines[report.engine], {
      concurrency: 3,
      timeoutMs: 6_000,
      ackWaitMs: 5_000,
      backoffMs: [200]
    }))
  }, 60_000)

  afterAll(async () => {
    await close?.()
    await engines?.embed.close()
  })

  it("exports a filtered page through Power BI's Export To File: the PNG shows the filtered rows only", async () => {
    const filtered = await settled(
      (await requestExport({ report_id: "sales", page: "ReportSection1", filters: { Region: "North" }, format: "png" })).id
    )
    expect(filtered.status).toBe("Succeeded")
    const unfiltered = await settled((await requestExport({ report_id: "sales", page: "ReportSection1", format: "png" })).id)
    expect(unfiltered.status).toBe("Succeeded")
    const [north, all] = [await fileOf(filtered.id), await fileOf(unfiltered.id)]
    expect(north.type).toBe("image/png")
    expect(Buffer.from(north.bytes).equals(Buffer.from(all.bytes))).toBe(false)
    expect(pixelsOf(north.bytes, "North")).toBeGreaterThan(0)
    expect(pixelsOf(north.bytes, "South")).toBe(0)
    for (const region of new Set(DEMO_ROWS.map((row) => row.Region))) expect(pixelsOf(all.bytes, region), region).toBeGreaterThan(0)
    expect(exportsOf("sales")).toBe(2)
  })

  it("renders the same request once: the second is answered from the cache", async () => {
    const request = { report_id: "sales", page: "ReportSection2", filters: { Region: ["East", "West"], Year: 2024 }, format: "png" }
    const first = await settled((await requestExport(request)).id)
    const before = exportsOf("sales")
    const second = await requestExport(request)
    expect(second).toMatchObject({ status: "Succeeded", cached: true })
    expect(second.id).not.toBe(first.id)
    expect(exportsOf("sales")).toBe(before)
    expect(await renderCount(reports.sql, first.id)).toBe(1)
    expect(await renderCount(reports.sql, second.id)).toBe(0)
    expect((await fileOf(second.id)).bytes).toEqual((await fileOf(first.id)).bytes)
  })

  it("exports three pages as one PDF of three pages through Power BI", async () => {
    const job = await settled((await requestExport({ report_id: "sales", filters: { Year: "2023" }, format: "pdf" })).id)
    expect(job.status).toBe("Succeeded")
    const file = await fileOf(job.id)
    expect(file.type).toBe("application/pdf")
    expect((await PDFDocument.load(file.bytes)).getPageCount()).toBe(3)
  })

  it("tries again after the Retry-After of a busy service, and succeeds", async () => {
    const job = await settled((await requestExport({ report_id: "busy", page: "ReportSection1", format: "png" })).id)
    expect(job).toMatchObject({ status: "Succeeded", error: null })
    expect((await findJob(reports.sql, job.id))?.attempts).toBe(2)
    expect(exportsOf("busy")).toBe(2)
  })

  it("fails a job the service cannot render, once, with the service's reason", async () => {
    const job = await settled((await requestExport({ report_id: "broken", page: "ReportSection1", format: "png" })).id)
    expect(job.status).toBe("Failed")
    expect(job.error).toContain("a visual of the report failed to render")
    expect((await findJob(reports.sql, job.id))?.attempts).toBe(1)
    expect(exportsOf("broken")).toBe(1)
    expect((await api("GET", `/api/exports/${job.id}/file`)).status).toBe(409)
  })

  it("renders an embedded page in Chromium with the URL filter applied: filtered and unfiltered PNGs differ as the data does", async () => {
    const filtered = await settled(
      (await requestExport({ report_id: "sales-embed", page: "ReportSection1", filters: { Region: "South" }, format: "png" })).id
    )
    expect(filtered, filtered.error ?? "").toMatchObject({ status: "Succeeded" })
    const unfiltered = await settled((await requestExport({ report_id: "sales-embed", page: "ReportSection1", format: "png" })).id)
    expect(unfiltered.status).toBe("Succeeded")
    const [south, all] = [await fileOf(filtered.id), await fileOf(unfiltered.id)]
    expect(Buffer.from(south.bytes).equals(Buffer.from(all.bytes))).toBe(false)
    expect(pixelsOf(south.bytes, "South")).toBeGreaterThan(0)
    expect(pixelsOf(south.bytes, "North")).toBe(0)
    for (const region of new Set(DEMO_ROWS.map((row) => row.Region))) expect(pixelsOf(all.bytes, region), region).toBeGreaterThan(0)
    expect(PNG.sync.read(Buffer.from(south.bytes)).width).toBe(800)
  })

  it("prints three embedded pages into one PDF of three pages", async () => {
    const job = await settled(
      (
        await requestExport({
          report_id: "sales-embed",
          pages: DEMO_PAGES.map((page) => page.name),
          filters: { Year: 2024 },
          format: "pdf"
        })
      ).id
    )
    expect(job, job.error ?? "").toMatchObject({ status: "Succeeded" })
    expect((await PDFDocument.load((await fileOf(job.id)).bytes)).getPageCount()).toBe(3)
  })

  it("stops an attempt at the job timeout and fails the job after its attempts, naming the timeout", async () => {
    const job = await settled((await requestExport({ report_id: "stuck", page: "ReportSection1", format: "png" })).id)
    expect(job.status).toBe("Failed")
    expect(job.error).toContain("longer than 6000 ms")
    expect((await findJob(reports.sql, job.id))?.attempts).toBe(2)
  })
})

describe("a worker process SIGKILLed mid-job", () => {
  it("leaves the job to be done after a restart, once", async () => {
    // A slow capacity, so the job is surely mid-render when the worker dies.
    const slow = await startLocalPowerBi({ workspaces: [{ id: PREMIUM, capacity: "premium" }], exportMs: 4_000 })
    try {
      const demo = await demoPowerBiReport({ emulator: slow.emulator, client: slow.client() }, PREMIUM)
      await registerWithDemoSheet(reports, {
        report_id: "slow",
        title: "Retail (slow capacity)",
        engine: "powerbi",
        workspace_id: PREMIUM,
        powerbi_report_id: demo.reportId
      })
      const env = { ...reports.env, ...slow.env, REPORTS_ACK_WAIT_MS: "2000", REPORTS_WORKER_CONCURRENCY: "1", LOG_LEVEL: "info" }
      const first = spawnMesh(["reports", "worker"], env)
      await first.waitFor((line) => line.msg === "report export workers running")
      const job = await requestExport({ report_id: "slow", page: "ReportSection3", filters: { Region: "West" }, format: "png" })
      const deadline = Date.now() + 30_000
      while (slow.emulator.reportStats().exports[demo.reportId] === undefined) {
        if (Date.now() > deadline) throw new Error(`the worker never called ExportTo: ${first.stderr()}`)
        await new Promise((resolveWait) => setTimeout(resolveWait, 50))
      }
      expect((await findJob(reports.sql, job.id))?.status).toBe("Running")
      first.child.kill("SIGKILL")
      await first.exited
      expect((await findJob(reports.sql, job.id))?.status).toBe("Running")

      const second = spawnMesh(["reports", "worker"], env)
      try {
        const done = await settled(job.id, 60_000)
        expect(done, done.error ?? "").toMatchObject({ status: "Succeeded" })
        expect(await renderCount(reports.sql, job.id)).toBe(1)
        expect(pixelsOf((await fileOf(job.id)).bytes, "West")).toBeGreaterThan(0)
        const info = await (await jetstreamManager(reports.nc)).streams.info(REPORT_EXPORTS_STREAM)
        expect(info.state.messages).toBe(0)
      } finally {
        second.child.kill("SIGTERM")
        await second.exited
      }
    } finally {
      await slow.close()
    }
  }, 120_000)
})
