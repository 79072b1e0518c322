import { type JetStreamClient, jetstream, jetstreamManager } from "@nats-io/jetstream"
import type { NatsConnection } from "@nats-io/nats-core"
import type postgres from "postgres"
import { serveProjections } from "../../consumers/serve.ts"
import { REPORTS_ADMIN_SCOPE } from "../../contracts/reports.ts"
import type { PowerBiClient } from "../../powerbi/client.ts"
import type { PowerBiEmulator } from "../../powerbi/emulator/server.ts"
import type { Projection } from "../../projections/projection.ts"
import { reportsProjection } from "../../projections/reports/projection.ts"
import { createApiKey, ensureApiKeys, marts } from "../../read/index.ts"
import { reportsApi } from "../../reports/api.ts"
import { ensureJobTables } from "../../reports/jobs.ts"
import { connectReports } from "../../reports/service.ts"
import { type EngineFor, type ExportWorkers, startExportWorkers, type WorkerSettings } from "../../reports/worker.ts"
import type { LogStack } from "./log-stack.ts"
import { type ReadApiHarness, startReadApi } from "./read-api.ts"

export interface ReportStack {
  /** The marts' database as its owner. */
  readonly sql: postgres.Sql
  readonly databaseUrl: string
  /** The read API with the report export API beside it. */
  readonly api: ReadApiHarness
  /** As the report export service's NATS user. */
  readonly nc: NatsConnection
  readonly js: JetStreamClient
  /** Keys: `reader` (scope reports), `admin` (reports:admin), `other` (a mart that is not reports). */
  readonly keys: { readonly reader: string; readonly admin: string; readonly other: string }
  /** The environment a worker or CLI process needs to reach this stack as the reports user. */
  readonly env: Readonly<Record<string, string>>
  readonly close: () => Promise<void>
}

/**
 * The report export service over a log stack: a database of its own, the registry's projection (and
 * `more` projections) running live, the read API with the reports API as a fresh reader login, and
 * keys of each scope. Workers are the caller's: in-process or as processes, with {@link ReportStack.env}.
 */
export const startReportStack = async (
  stack: LogStack,
  options: { readonly more?: ReadonlyArray<Projection>; readonly projectionWaitMs?: number } = {}
): Promise<ReportStack> => {
  const { url, sql } = await stack.database()
  await ensureApiKeys(sql)
  await ensureJobTables(sql)
  const known = [...marts, REPORTS_ADMIN_SCOPE]
  const keys = {
    reader: (await createApiKey(sql, "picker", ["reports"], known)).key,
    admin: (await createApiKey(sql, "admin", [REPORTS_ADMIN_SCOPE], known)).key,
    other: (await createApiKey(sql, "warehouse only", ["warehouse"], known)).key
  }
  const nc = await connectReports({
    url: stack.nats.url,
    servers: [stack.nats.url],
    user: "reports",
    password: stack.nats.reports.password
  })
  const js = jetstream(nc)
  const stop = new AbortController()
  const projecting = serveProjections({
    sql,
    nc: stack.projector,
    jsm: stack.jsm,
    projections: [reportsProjection, ...(options.more ?? [])],
    signal: stop.signal,
    metricsPort: 0
  })
  const api = await startReadApi(sql, url, {
    maxStreams: 2,
    accessLog: false,
    extensions: [reportsApi({ sql, js, projectionWaitMs: options.projectionWaitMs ?? 15_000 })]
  })
  return {
    sql,
    databaseUrl: url,
    api,
    nc,
    js,
    keys,
    env: {
      DATABASE_URL: url,
      NATS_URL: stack.nats.url,
      NATS_USER: "reports",
      NATS_PASSWORD: stack.nats.reports.password
    },
    close: async () => {
      await api.close()
      stop.abort()
      await projecting
      await nc.close()
    }
  }
}

/** The demo retail report's rows: a store region per row and a year, one block each on its pages. */
export const DEMO_ROWS: ReadonlyArray<{ readonly Region: string; readonly Year: number; readonly Sales: number }> = [
  "North",
  "South",
  "East",
  "West"
].flatMap((Region, i) => [2023, 2024].map((Year) => ({ Region, Year, Sales: 1000 + 250 * i + (Year - 2023) * 100 })))

export const DEMO_PAGES = [
  { name: "ReportSection1", display_name: "Overview" },
  { name: "ReportSection2", display_name: "By region" },
  { name: "ReportSection3", display_name: "By year" }
] as const

/** The demo report's filter sheet (CSV): a region without a default, a year with one. */
export const demoFilterSheet = (reportId: string): string =>
  [
    "report_id,filter_label,column_name,allowed_values,default",
    `${reportId},Region,Store/Region,North;South;East;West,`,
    `${reportId},Year,Store/Year,2023;2024,`
  ].join("\r\n") + "\r\n"

/**
 * A retail report in an emulated Power BI workspace: a push dataset whose `Store` table holds
 * {@link DEMO_ROWS} (pushed through the REST API, as the push sink would), and a three-page report
 * over it whose visual draws a block per row coloured by region.
 */
export const demoPowerBiReport = async (
  powerbi: { readonly emulator: PowerBiEmulator; readonly client: PowerBiClient },
  groupId: string,
  reportId?: string
): Promise<{ readonly datasetId: string; readonly reportId: string; readonly embedUrl: string }> => {
  const dataset = await powerbi.client.request<{ id: string }>("POST", `/groups/${groupId}/datasets?defaultRetentionPolicy=None`, {
    name: "Retail demo",
    defaultMode: "Push",
    tables: [
      {
        name: "Store",
        columns: [
          { name: "Region", dataType: "String" },
          { name: "Year", dataType: "Int64" },
          { name: "Sales", dataType: "Double" }
        ]
      }
    ]
  })
  await powerbi.client.request("POST", `/groups/${groupId}/datasets/${dataset.id}/tables/Store/rows`, { rows: DEMO_ROWS })
  const report = powerbi.emulator.addReport({
    groupId,
    ...(reportId === undefined ? {} : { id: reportId }),
    name: "Retail demo",
    datasetId: dataset.id,
    pages: DEMO_PAGES.map((page) => ({ name: page.name, displayName: page.display_name })),
    visual: { table: "Store", column: "Region" }
  })
  return { datasetId: dataset.id, reportId: report.id, embedUrl: report.embedUrl }
}

/** Registers a report with its pages and filter sheet through the admin API, as an admin would; throws on any refusal. */
export const registerThroughApi = async (
  apiUrl: string,
  adminKey: string,
  registration: Readonly<Record<string, unknown>> & { readonly report_id: string },
  pages: ReadonlyArray<{ readonly name: string; readonly display_name: string }>,
  sheetCsv: string
): Promise<void> => {
  const send = async (method: string, path: string, body: string, type = "application/json") => {
    const response = await fetch(`${apiUrl}${path}`, { method, headers: { "X-API-Key": adminKey, "Content-Type": type }, body })
    if (response.status !== 200 && response.status !== 201)
      throw new Error(`${method} ${path}: ${response.status} ${await response.text()}`)
  }
  await send("POST", "/api/admin/reports", JSON.stringify(registration))
  await send("PUT", `/api/admin/reports/${registration.report_id}/pages`, JSON.stringify({ pages }))
  await send("POST", `/api/admin/filters?report_id=${registration.report_id}&file_name=filters.csv`, sheetCsv, "text/csv")
}

/** The demo report `npm run up` registers: the emulator's retail report, rendered by the headless engine. */
export const DEMO_REPORT = {
  report_id: "demo-retail",
  title: "Retail demo (emulated Power BI)",
  emulatorId: "99999999-9999-4999-8999-999999999999"
}

/**
 * Declares the demo report in the local emulator (it keeps nothing between runs) and registers it
 * through the admin API unless the registry has it with the same embed URL already, so a restart
 * appends nothing.
 */
export const registerDemoReport = async (
  powerbi: { readonly emulator: PowerBiEmulator; readonly client: PowerBiClient },
  groupId: string,
  api: { readonly url: string; readonly key: string }
): Promise<void> => {
  const demo = await demoPowerBiReport(powerbi, groupId, DEMO_REPORT.emulatorId)
  const known = await fetch(`${api.url}/api/reports`, { headers: { "X-API-Key": api.key } })
  const reports = known.ok
    ? ((await known.json()) as { reports: ReadonlyArray<{ report_id: string; embed_url: string | null }> }).reports
    : []
  if (reports.some((report) => report.report_id === DEMO_REPORT.report_id && report.embed_url === demo.embedUrl)) return
  await registerThroughApi(
    api.url,
    api.key,
    { report_id: DEMO_REPORT.report_id, title: DEMO_REPORT.title, engine: "embed", embed_url: demo.embedUrl },
    DEMO_PAGES,
    demoFilterSheet(DEMO_REPORT.report_id)
  )
}

/** Worker settings for tests and benches: short waits, a cache big enough for their files. */
export const TEST_WORKER_SETTINGS: WorkerSettings = {
  concurrency: 2,
  maxAttempts: 2,
  timeoutMs: 30_000,
  ackWaitMs: 10_000,
  backoffMs: [500],
  cache: { ttlMs: 3_600_000, maxBytes: 64 * 1024 * 1024 }
}

/** Export workers in this process over a report stack, on their own connection as the reports user; `close` stops them and it. */
export const startWorkersInProcess = async (
  stack: LogStack,
  reports: ReportStack,
  engineFor: EngineFor,
  settings: Partial<WorkerSettings> = {}
): Promise<{ readonly workers: ExportWorkers; readonly close: () => Promise<void> }> => {
  const nc = await connectReports({
    url: stack.nats.url,
    servers: [stack.nats.url],
    user: "reports",
    password: stack.nats.reports.password
  })
  const workers = await startExportWorkers({
    sql: reports.sql,
    js: jetstream(nc),
    jsm: await jetstreamManager(nc),
    engineFor,
    settings: { ...TEST_WORKER_SETTINGS, ...settings }
  })
  return {
    workers,
    close: async () => {
      await workers.stop(1000)
      await nc.close()
    }
  }
}

/** Registers a report with the demo's pages and filter sheet through the stack's admin API. */
export const registerWithDemoSheet = (
  reports: Pick<ReportStack, "api" | "keys">,
  registration: Readonly<Record<string, unknown>> & { readonly report_id: string }
): Promise<void> =>
  registerThroughApi(reports.api.url, reports.keys.admin, registration, DEMO_PAGES, demoFilterSheet(registration.report_id))
