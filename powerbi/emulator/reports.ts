import { randomUUID } from "node:crypto"
import type { Context, Hono } from "hono"
import { embedPage, pagePng, pagesPdf, pagesPng, parseFilter, type PageView, viewOf } from "./report-view.ts"

/**
 * Reports and Power BI's Export To File API, emulated (powerbi.md §4, sinks-edge-regions.md §E.2):
 * `ExportTo` → an `Export` that is NotStarted, then Running, then Succeeded or Failed as time passes
 * (202 while it runs, 200 once done) → its file. And the "embedded report" page, the shape of a
 * secure embed URL (`/reportEmbed?reportId&groupId&pageName&filter`), which draws the same picture.
 *
 * The real service makes reports by publishing a .pbix; the emulator's are declared
 * (`EmulatorOptions.reports`) or made with `POST /_emulator/groups/{g}/reports`. Each has one visual:
 * the rows of a table of its dataset (the push rows the emulator holds), one block per row coloured
 * by one column ({@link ./report-view.ts}).
 */

export interface EmulatorReportSpec {
  readonly groupId: string
  readonly id?: string
  readonly name: string
  readonly datasetId: string
  readonly pages: ReadonlyArray<{ readonly name: string; readonly displayName: string }>
  readonly visual: { readonly table: string; readonly column: string }
}

/** An export the emulator makes fail: `retryAfterSeconds` set means "busy, retry the whole export", unset a permanent failure. */
export interface ExportFailure {
  readonly message: string
  readonly retryAfterSeconds?: number
}

export interface ReportOptions {
  readonly reports?: ReadonlyArray<EmulatorReportSpec>
  /** How long an export takes, in real milliseconds (default 1500). */
  readonly exportMs?: number
  /** Decides, per ExportTo call, whether that export will fail and how (the call's 0-based count for the report). */
  readonly failExports?: (call: { readonly reportId: string; readonly count: number; readonly format: string }) => ExportFailure | undefined
}

export interface ReportStats {
  /** ExportTo calls accepted, by report id. */
  readonly exports: Readonly<Record<string, number>>
  /** Files served. */
  readonly files: number
}

interface Report extends Required<Omit<EmulatorReportSpec, "id">> {
  readonly id: string
}

interface Export {
  readonly id: string
  readonly report: Report
  readonly format: "PNG" | "PDF"
  readonly pages: ReadonlyArray<Report["pages"][number]>
  readonly filter: string | undefined
  readonly createdAt: number
  readonly failure: ExportFailure | undefined
  file?: { readonly bytes: Uint8Array; readonly extension: string }
}

/** The largest number of exports a capacity runs at once: beyond it, 429 (powerbi.md §4). */
const MAX_CONCURRENT_EXPORTS = 500
const MAX_PAGES = 50
const FILE_LIFETIME_MS = 24 * 3600 * 1000

export interface ReportDeps {
  readonly api: string
  readonly origin: () => string
  readonly capacityOf: (groupId: string) => "shared" | "premium" | undefined
  readonly tableOf: (
    groupId: string,
    datasetId: string,
    table: string
  ) =>
    | { readonly columns: ReadonlyArray<{ readonly name: string }>; readonly rows: ReadonlyArray<Readonly<Record<string, unknown>>> }
    | undefined
}

const error = (c: Context, status: 400 | 403 | 404 | 429, code: string, message: string) =>
  c.json({ error: { code, message, "pbi.error": { code, parameters: {}, details: [], exceptionCulprit: 1 } } }, status)

/** Adds the reports routes to the emulator's app; returns what the emulator's handle exposes of them. */
export const mountReports = (app: Hono<{ Variables: { clientId: string } }>, deps: ReportDeps, options: ReportOptions) => {
  const reports = new Map<string, Report>()
  const exports = new Map<string, Export>()
  const exportCounts: Record<string, number> = {}
  let files = 0
  const exportMs = options.exportMs ?? 1500

  const add = (spec: EmulatorReportSpec): Report => {
    const report: Report = { ...spec, id: spec.id ?? randomUUID() }
    reports.set(`${report.groupId}/${report.id}`, report)
    return report
  }
  for (const spec of options.reports ?? []) add(spec)

  const describe = (report: Report) => ({
    id: report.id,
    reportType: "PowerBIReport",
    name: report.name,
    datasetId: report.datasetId,
    webUrl: `${deps.origin()}/groups/${report.groupId}/reports/${report.id}`,
    embedUrl: `${deps.origin()}/reportEmbed?reportId=${report.id}&groupId=${report.groupId}`
  })
  const reportOf = (c: Context) => reports.get(`${c.req.param("group")}/${c.req.param("report")}`)
  const missing = (c: Context) =>
    error(c, 404, "PowerBIEntityNotFound", `Report ${c.req.param("report")} not found in workspace ${c.req.param("group")}.`)

  /** The picture of `pages` with `filter` applied, from the rows the dataset holds now; or why it cannot be drawn. */
  const draw = (
    report: Report,
    pages: ReadonlyArray<Report["pages"][number]>,
    filter: string | undefined
  ): ReadonlyArray<PageView> | string => {
    const table = deps.tableOf(report.groupId, report.datasetId, report.visual.table)
    if (table === undefined) return `the report's dataset has no table ${report.visual.table}`
    const parsed = filter === undefined || filter === "" ? { ok: true as const, conditions: [] } : parseFilter(filter)
    if (!parsed.ok) return parsed.message
    for (const condition of parsed.conditions) {
      if (condition.table !== report.visual.table) {
        const other = deps.tableOf(report.groupId, report.datasetId, condition.table)
        if (other === undefined) return `the filter names table ${condition.table}, which the report's dataset does not have`
        return `the filter names table ${condition.table}; the emulated report's visual reads ${report.visual.table} only`
      }
      if (!table.columns.some((column) => column.name === condition.column))
        return `the filter names column ${condition.table}/${condition.column}, which the table does not have`
    }
    return pages.map((page) => viewOf(page.displayName, table.rows, parsed.conditions, report.visual.column))
  }

  app.post("/_emulator/groups/:group/reports", async (c) => {
    const body = (await c.req.json().catch(() => undefined)) as Partial<EmulatorReportSpec> | undefined
    if (deps.capacityOf(c.req.param("group")) === undefined) return c.json({ error: "no such workspace" }, 404)
    if (
      body === undefined ||
      typeof body.name !== "string" ||
      typeof body.datasetId !== "string" ||
      !Array.isArray(body.pages) ||
      body.pages.length === 0 ||
      typeof body.visual?.table !== "string" ||
      typeof body.visual?.column !== "string"
    )
      return c.json({ error: "expected {name, datasetId, pages:[{name, displayName}], visual:{table, column}}" }, 400)
    const report = add({
      groupId: c.req.param("group"),
      name: body.name,
      datasetId: body.datasetId,
      pages: body.pages,
      visual: body.visual,
      ...(typeof body.id === "string" ? { id: body.id } : {})
    })
    return c.json(describe(report), 201)
  })

  app.get(`${deps.api}/groups/:group/reports`, (c) => {
    if (deps.capacityOf(c.req.param("group")) === undefined)
      return error(c, 404, "PowerBIEntityNotFound", `Workspace ${c.req.param("group")} not found or the app has no access to it.`)
    return c.json({ value: [...reports.values()].filter((report) => report.groupId === c.req.param("group")).map(describe) })
  })
  app.get(`${deps.api}/groups/:group/reports/:report`, (c) => {
    const report = reportOf(c)
    return report === undefined ? missing(c) : c.json(describe(report))
  })
  app.get(`${deps.api}/groups/:group/reports/:report/pages`, (c) => {
    const report = reportOf(c)
    if (report === undefined) return missing(c)
    return c.json({ value: report.pages.map((page, order) => ({ name: page.name, displayName: page.displayName, order })) })
  })

  const statusOf = (job: Export) => {
    const elapsed = Date.now() - job.createdAt
    if (elapsed < exportMs * 0.2) return { status: "NotStarted" as const, percent: 0 }
    if (elapsed < exportMs) return { status: "Running" as const, percent: Math.min(99, Math.floor((elapsed / exportMs) * 100)) }
    return { status: job.failure === undefined ? ("Succeeded" as const) : ("Failed" as const), percent: 100 }
  }
  const exportBody = (job: Export) => {
    const { status, percent } = statusOf(job)
    const base = `${deps.origin()}${deps.api}/groups/${job.report.groupId}/reports/${job.report.id}/exports/${job.id}`
    return {
      id: job.id,
      createdDateTime: new Date(job.createdAt).toISOString(),
      lastActionDateTime: new Date(Math.min(Date.now(), job.createdAt + exportMs)).toISOString(),
      reportId: job.report.id,
      reportName: job.report.name,
      status,
      percentComplete: percent,
      ...(status === "Succeeded"
        ? {
            resourceLocation: `${base}/file`,
            resourceFileExtension: job.format === "PDF" ? ".pdf" : job.pages.length === 1 ? ".png" : ".zip",
            expirationTime: new Date(job.createdAt + exportMs + FILE_LIFETIME_MS).toISOString()
          }
        : {}),
      ...(status === "Failed" ? { error: { code: "ExportFailed", message: job.failure?.message } } : {})
    }
  }

  app.post(`${deps.api}/groups/:group/reports/:report/ExportTo`, async (c) => {
    const report = reportOf(c)
    if (report === undefined) return missing(c)
    const capacity = deps.capacityOf(report.groupId)
    if (capacity !== "premium")
      return error(
        c,
        403,
        "FeatureNotAvailableError",
        "Export to file is available only for reports in a workspace on a Premium, Embedded or Fabric capacity; this workspace is on shared capacity."
      )
    const body = (await c.req.json().catch(() => undefined)) as
      { format?: unknown; powerBIReportConfiguration?: { reportLevelFilters?: unknown; pages?: unknown } } | undefined
    if (body === undefined) return error(c, 400, "InvalidRequest", "the request body must be JSON: {format, powerBIReportConfiguration}")
    const format = typeof body.format === "string" ? body.format.toUpperCase() : undefined
    if (format === "PPTX")
      return error(c, 400, "InvalidRequest", "PPTX is a format Power BI exports; the emulator does not draw it: ask for PNG or PDF")
    if (format !== "PNG" && format !== "PDF")
      return error(
        c,
        400,
        "InvalidRequest",
        `format ${JSON.stringify(body.format)} is not one a Power BI report exports to: PNG, PDF or PPTX (IMAGE, XLSX, DOCX, CSV, XML, MHTML and ACCESSIBLEPDF are for paginated reports)`
      )
    const configuration = body.powerBIReportConfiguration ?? {}
    const filters = (configuration.reportLevelFilters ?? []) as ReadonlyArray<{ filter?: unknown }>
    if (!Array.isArray(filters)) return error(c, 400, "InvalidRequest", "reportLevelFilters must be an array")
    if (filters.length > 1) return error(c, 400, "InvalidRequest", "reportLevelFilters: currently, only one filter is supported")
    const filter = filters[0]?.filter
    if (filter !== undefined && typeof filter !== "string")
      return error(c, 400, "InvalidRequest", "reportLevelFilters[0].filter must be a string")
    const named = (configuration.pages ?? []) as ReadonlyArray<{ pageName?: unknown }>
    if (!Array.isArray(named)) return error(c, 400, "InvalidRequest", "pages must be an array")
    if (named.length > MAX_PAGES)
      return error(c, 400, "InvalidRequest", `${named.length} pages: at most ${MAX_PAGES} pages or visuals may be exported in one job`)
    const pages: Array<Report["pages"][number]> = named.length === 0 ? [...report.pages] : []
    for (const one of named) {
      const page = report.pages.find((candidate) => candidate.name === one.pageName)
      if (page === undefined)
        return error(
          c,
          400,
          "InvalidRequest",
          `the report has no page ${JSON.stringify(one.pageName)}; its pages: ${report.pages.map((p) => p.name).join(", ")}`
        )
      pages.push(page)
    }
    const drawn = draw(report, pages, filter)
    if (typeof drawn === "string") return error(c, 400, "InvalidRequest", `reportLevelFilters[0].filter: ${drawn}`)
    const running = [...exports.values()].filter(
      (job) => deps.capacityOf(job.report.groupId) === capacity && statusOf(job).status !== "Succeeded" && statusOf(job).status !== "Failed"
    )
    if (running.length >= MAX_CONCURRENT_EXPORTS) {
      c.header("Retry-After", "5")
      return error(c, 429, "TooManyRequests", `the capacity runs ${MAX_CONCURRENT_EXPORTS} exports at once; retry later`)
    }
    const count = exportCounts[report.id] ?? 0
    exportCounts[report.id] = count + 1
    const job: Export = {
      id: randomUUID(),
      report,
      format,
      pages,
      filter,
      createdAt: Date.now(),
      failure: options.failExports?.({ reportId: report.id, count, format })
    }
    exports.set(job.id, job)
    return c.json(exportBody(job), 202)
  })

  const exportOf = (c: Context) => {
    const job = exports.get(c.req.param("export") ?? "")
    return job !== undefined && job.report.id === c.req.param("report") && job.report.groupId === c.req.param("group") ? job : undefined
  }
  app.get(`${deps.api}/groups/:group/reports/:report/exports/:export`, (c) => {
    const job = exportOf(c)
    if (job === undefined) return error(c, 404, "PowerBIEntityNotFound", `Export ${c.req.param("export")} not found.`)
    const body = exportBody(job)
    if (body.status === "NotStarted" || body.status === "Running") {
      c.header("Retry-After", "1")
      return c.json(body, 202)
    }
    if (body.status === "Failed" && job.failure?.retryAfterSeconds !== undefined)
      c.header("Retry-After", String(job.failure.retryAfterSeconds))
    return c.json(body, 200)
  })
  app.get(`${deps.api}/groups/:group/reports/:report/exports/:export/file`, async (c) => {
    const job = exportOf(c)
    if (job === undefined) return error(c, 404, "PowerBIEntityNotFound", `Export ${c.req.param("export")} not found.`)
    const { status } = statusOf(job)
    if (status !== "Succeeded") return error(c, 400, "InvalidRequest", `the export is ${status}: its file is not ready`)
    if (Date.now() > job.createdAt + exportMs + FILE_LIFETIME_MS)
      return error(c, 404, "PowerBIEntityNotFound", "the export's file has expired (24 h)")
    if (job.file === undefined) {
      // Drawn from the rows the dataset holds when the export finishes, as the service renders while it runs.
      const drawn = draw(job.report, job.pages, job.filter)
      if (typeof drawn === "string") return error(c, 400, "InvalidRequest", drawn)
      job.file = job.format === "PDF" ? { bytes: await pagesPdf(drawn), extension: ".pdf" } : pagesPng(drawn)
    }
    files++
    const type = job.file.extension === ".pdf" ? "application/pdf" : job.file.extension === ".zip" ? "application/zip" : "image/png"
    return c.body(Buffer.from(job.file.bytes), 200, { "Content-Type": type })
  })

  // The embedded report: no token here (the real page needs an embed token or a signed-in user).
  app.get("/reportEmbed", (c) => {
    const report = reports.get(`${c.req.query("groupId")}/${c.req.query("reportId")}`)
    if (report === undefined)
      return c.html(embedPage({ error: `no report ${c.req.query("reportId")} in workspace ${c.req.query("groupId")}` }), 404)
    const pageName = c.req.query("pageName")
    const page = pageName === undefined ? report.pages[0] : report.pages.find((candidate) => candidate.name === pageName)
    if (page === undefined) return c.html(embedPage({ error: `the report has no page ${JSON.stringify(pageName)}` }))
    const drawn = draw(report, [page], c.req.query("filter"))
    return c.html(embedPage(typeof drawn === "string" ? { error: drawn } : (drawn[0] as PageView)))
  })

  return {
    stats: (): ReportStats => ({ exports: { ...exportCounts }, files }),
    addReport: (spec: EmulatorReportSpec) => describe(add(spec))
  }
}

export { pagePng }
