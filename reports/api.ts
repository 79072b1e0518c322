import { readFile, readdir } from "node:fs/promises"
import { dirname, extname, join } from "node:path"
import { fileURLToPath } from "node:url"
import type { JetStreamClient } from "@nats-io/jetstream"
import { Schema } from "effect"
import type postgres from "postgres"
import { isReportId, PagesSet, ReportFilter, ReportPage, ReportRegistered, REPORTS_ADMIN_SCOPE } from "../contracts/reports.ts"
import { Forbidden, NotFound } from "../read/errors.ts"
import type { ApiContext, ApiExtension } from "../read/server.ts"
import { importFilterSheet, sheetEvent } from "./import.ts"
import { findJob, type Job, JOB_STATUSES, jobFile } from "./jobs.ts"
import { QueueUnavailable, requestExport } from "./exports.ts"
import { EXPORT_FORMATS, type Report } from "./model.ts"
import { appendChange, findReport, InvalidChange, listReports, projectedThrough, reportFilters, reportPages } from "./registry.ts"
import { filterTemplate } from "./template.ts"
import { ExportRequestBody } from "./validate.ts"

/**
 * The report export service's HTTP API (seed 003's frozen contract), served beside the read API
 * under its keys: `reports` reads the registry and exports, `reports:admin` changes the registry.
 * Every response shape is declared once, as a Schema, and its JSON Schema is what the OpenAPI
 * document shows.
 */

const ReportItem = Schema.Struct({
  report_id: Schema.String,
  title: Schema.String,
  engine: Schema.Literals(["powerbi", "embed"]),
  workspace_id: Schema.NullOr(Schema.String),
  powerbi_report_id: Schema.NullOr(Schema.String),
  embed_url: Schema.NullOr(Schema.String),
  mart: Schema.NullOr(Schema.String),
  page_names: Schema.Array(Schema.String)
})
export const ReportsResponse = Schema.Struct({ reports: Schema.Array(ReportItem) })
export const PagesResponse = Schema.Struct({ report_id: Schema.String, pages: Schema.Array(ReportPage) })
export const FiltersResponse = Schema.Struct({ filters: Schema.Array(ReportFilter) })
export const ExportJob = Schema.Struct({
  id: Schema.String,
  status: Schema.Literals(JOB_STATUSES),
  percent_complete: Schema.Number,
  error: Schema.NullOr(Schema.String),
  cached: Schema.Boolean,
  report_id: Schema.String,
  pages: Schema.Array(Schema.String),
  format: Schema.Literals(EXPORT_FORMATS),
  filter: Schema.NullOr(Schema.String),
  created_at: Schema.String,
  updated_at: Schema.String,
  file_url: Schema.NullOr(Schema.String)
})
const Problem = Schema.Struct({ field: Schema.String, message: Schema.String, allowed: Schema.optionalKey(Schema.Array(Schema.Unknown)) })
export const ExportProblems = Schema.Struct({
  error: Schema.Literal("invalid_export"),
  message: Schema.String,
  problems: Schema.Array(Problem)
})
const SheetProblem = Schema.Struct({
  sheet: Schema.String,
  row: Schema.Number,
  column: Schema.String,
  value: Schema.String,
  message: Schema.String
})
export const SheetProblems = Schema.Struct({
  error: Schema.Literal("invalid_filter_sheet"),
  message: Schema.String,
  problems: Schema.Array(SheetProblem)
})
export const ChangeProblems = Schema.Struct({
  error: Schema.Literal("invalid_change"),
  message: Schema.String,
  problems: Schema.Array(Schema.Struct({ field: Schema.String, message: Schema.String }))
})
export const RegisteredResponse = Schema.Struct({ report: ReportItem, projected: Schema.Boolean })
export const PagesSetResponse = Schema.Struct({ report_id: Schema.String, pages: Schema.Array(ReportPage), projected: Schema.Boolean })
export const ImportedResponse = Schema.Struct({
  imported: Schema.Array(Schema.Struct({ report_id: Schema.String, file_name: Schema.String, filters: Schema.Array(ReportFilter) })),
  projected: Schema.Boolean
})
const PagesBody = Schema.Struct({ pages: PagesSet.fields.pages })

/** What the service needs: the marts' database as its owner (registry reads, jobs), and the log. */
export interface ReportsApiDeps {
  readonly sql: postgres.Sql
  readonly js: JetStreamClient
  /** How long a registry change waits for its projection before answering 202 instead of 201 (default 10 s). */
  readonly projectionWaitMs?: number
  /** Largest filter sheet accepted (default 5 MiB). */
  readonly maxSheetBytes?: number
}

const JOB_ID = /^exp_[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/
const PAGES_DIR = join(dirname(fileURLToPath(import.meta.url)), "pages")
const ASSET_TYPES: Readonly<Record<string, string>> = {
  ".html": "text/html; charset=utf-8",
  ".js": "text/javascript; charset=utf-8",
  ".css": "text/css; charset=utf-8",
  ".svg": "image/svg+xml"
}

const schemaOf = (schema: Schema.Top) => Schema.toJsonSchemaDocument(schema).schema
const json = (schema: Schema.Top, description: string) => ({ description, content: { "application/json": { schema: schemaOf(schema) } } })
const error = (description: string) => ({
  description,
  content: { "application/json": { schema: { $ref: "#/components/schemas/Error" } } }
})
const reportIdParam = { name: "report_id", in: "path", required: true, schema: { type: "string" } }
const jobIdParam = { name: "id", in: "path", required: true, schema: { type: "string" } }
const unauthorised = { "401": error("No API key, an unknown one, or a revoked one."), "403": error("The key is not scoped to reports.") }

const openapi: ApiExtension["openapi"] = {
  paths: {
    "/api/reports": {
      get: {
        tags: ["reports"],
        summary: "The registered reports, with their page names.",
        responses: { "200": json(ReportsResponse, "Every report"), ...unauthorised }
      }
    },
    "/api/pages/{report_id}": {
      get: {
        tags: ["reports"],
        summary: "A report's pages in order: `name` is what an export names, `display_name` what users read.",
        parameters: [reportIdParam],
        responses: { "200": json(PagesResponse, "The pages"), "404": error("No such report."), ...unauthorised }
      }
    },
    "/api/filters/{report_id}": {
      get: {
        tags: ["reports"],
        summary: "A report's filters: label, the `Table/Field` it filters, the values allowed and the default.",
        parameters: [reportIdParam],
        responses: {
          "200": json(FiltersResponse, "The filters (seed 003's frozen shape)"),
          "404": error("No such report."),
          ...unauthorised
        }
      }
    },
    "/api/exports": {
      post: {
        tags: ["reports"],
        summary: "Export a report page as PNG, or pages as one PDF, with filter values the registry allows.",
        description:
          "Answers 202 with the job; poll GET /api/exports/{id} until Succeeded, then GET its file. An identical request (same report, pages, filter values, format and data) is answered from the cache.",
        requestBody: { required: true, content: { "application/json": { schema: schemaOf(ExportRequestBody) } } },
        responses: {
          "202": json(ExportJob, "The job, queued (or already done, from the cache)"),
          "400": json(
            ExportProblems,
            "Every problem with the request: unknown report, page or filter, or a value not allowed, with the allowed ones"
          ),
          ...unauthorised,
          "503": error("The queue is unavailable; retry after Retry-After seconds.")
        }
      }
    },
    "/api/exports/{id}": {
      get: {
        tags: ["reports"],
        summary: "An export job: status NotStarted, Running, Succeeded or Failed, percent complete, and the error of a failure.",
        parameters: [jobIdParam],
        responses: { "200": json(ExportJob, "The job"), "404": error("No such job."), ...unauthorised }
      }
    },
    "/api/exports/{id}/file": {
      get: {
        tags: ["reports"],
        summary: "The exported file of a job that succeeded.",
        parameters: [jobIdParam],
        responses: {
          "200": {
            description: "The file",
            content: {
              "image/png": { schema: { type: "string", format: "binary" } },
              "application/pdf": { schema: { type: "string", format: "binary" } }
            }
          },
          "404": error("No such job."),
          "409": error("The job has not succeeded (yet)."),
          "410": error("The file left the cache (its time or the cache's size bound): export again."),
          ...unauthorised
        }
      }
    },
    "/api/admin/reports": {
      post: {
        tags: ["reports admin"],
        summary: "Register a report, or change its registration (key scope reports:admin).",
        requestBody: { required: true, content: { "application/json": { schema: schemaOf(ReportRegistered) } } },
        responses: {
          "201": json(RegisteredResponse, "Registered and in the registry"),
          "202": json(RegisteredResponse, "On the log, not yet projected (projected: false): it shows once the projector catches up"),
          "400": json(ChangeProblems, "What is wrong with the registration")
        }
      }
    },
    "/api/admin/reports/{report_id}/pages": {
      put: {
        tags: ["reports admin"],
        summary: "Set a report's pages, in order (key scope reports:admin).",
        parameters: [reportIdParam],
        requestBody: { required: true, content: { "application/json": { schema: schemaOf(PagesBody) } } },
        responses: {
          "200": json(PagesSetResponse, "The pages set"),
          "400": json(ChangeProblems, "What is wrong with the pages"),
          "404": error("No such report.")
        }
      }
    },
    "/api/admin/filters": {
      post: {
        tags: ["reports admin"],
        summary:
          "Import a filter sheet (XLSX or CSV, the file as the body) for one report (`report_id`) or for the reports its report_id column names.",
        parameters: [
          { name: "report_id", in: "query", required: false, schema: { type: "string" } },
          {
            name: "file_name",
            in: "query",
            required: true,
            schema: { type: "string" },
            description: "The file's name: its extension says XLSX or CSV."
          }
        ],
        requestBody: {
          required: true,
          content: {
            "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet": { schema: { type: "string", format: "binary" } },
            "text/csv": { schema: { type: "string" } }
          }
        },
        responses: {
          "200": json(ImportedResponse, "Imported: each report's filters replaced by the sheet's"),
          "413": error("The sheet is over 5 MiB."),
          "422": json(SheetProblems, "Every problem in the sheet by sheet, row, column and value; nothing imported")
        }
      }
    }
  }
}

const jobBody = (job: Job, origin: string) => ({
  id: job.id,
  status: job.status,
  percent_complete: job.percent,
  error: job.error,
  cached: job.cached,
  report_id: job.spec.report_id,
  pages: job.spec.pages.map((page) => page.name),
  format: job.spec.format,
  filter: job.spec.filter,
  created_at: job.createdAt,
  updated_at: job.updatedAt,
  file_url: job.status === "Succeeded" ? `${origin}/api/exports/${job.id}/file` : null
})

const reportBody = (report: Report & { readonly page_names: ReadonlyArray<string> }) => ({
  report_id: report.report_id,
  title: report.title,
  engine: report.engine,
  workspace_id: report.workspace_id,
  powerbi_report_id: report.powerbi_report_id,
  embed_url: report.embed_url,
  mart: report.mart,
  page_names: report.page_names
})

const changeProblems = (issues: ReadonlyArray<{ path: string; message: string }>, prefix = "") => ({
  error: "invalid_change" as const,
  message: issues.map((issue) => `${issue.path}: ${issue.message}`).join("; "),
  problems: issues.map((issue) => ({ field: prefix + issue.path.replace(/^\$(\.data)?\.?/, ""), message: issue.message }))
})

/** The report export service's routes and OpenAPI paths, as an extension of the read API. */
export const reportsApi = (deps: ReportsApiDeps): ApiExtension => ({
  openapi: { paths: openapi.paths },
  mount: (app, { allow, origin }) => {
    const { sql, js } = deps
    const wait = deps.projectionWaitMs ?? 10_000
    const reader = (c: ApiContext) => {
      // An admin reads what it changes.
      try {
        allow(c, "reports")
      } catch (error) {
        if (!(error instanceof Forbidden)) throw error
        allow(c, REPORTS_ADMIN_SCOPE)
      }
    }
    const known = async (c: ApiContext) => {
      const id = c.req.param("report_id") as string
      // Not a report id at all (a NUL, a slash): no such report, asked of nobody.
      const report = isReportId(id) ? await findReport(sql, id) : undefined
      if (report === undefined)
        throw new NotFound({ message: `no report ${JSON.stringify(id)} is registered; see ${origin(c)}/api/reports` })
      return report
    }
    const bodyJson = async (c: ApiContext): Promise<unknown> => {
      try {
        return await c.req.json()
      } catch {
        return Symbol.for("not json")
      }
    }
    const notJson = (c: ApiContext) =>
      c.json({ error: "invalid_json", message: "the body is not JSON (send Content-Type: application/json)" }, 400)

    // The pages and the templates hold no data: served without a key (the pages ask for one).
    app.get("/reports", (c) => c.redirect(`${origin(c)}/reports/picker`))
    for (const page of ["admin", "picker"] as const) {
      app.get(`/reports/${page}`, async (c) => c.html(await readFile(join(PAGES_DIR, `${page}.html`), "utf8")))
    }
    app.get("/reports/assets/:file", async (c) => {
      const file = c.req.param("file")
      const type = ASSET_TYPES[extname(file)]
      if (type === undefined || !(await readdir(PAGES_DIR)).includes(file))
        throw new NotFound({ message: `no asset ${JSON.stringify(file)}` })
      return c.body(await readFile(join(PAGES_DIR, file)), 200, { "Content-Type": type, "Cache-Control": "no-cache" })
    })
    for (const format of ["xlsx", "csv"] as const)
      app.get(`/reports/template.${format}`, async (c) => {
        const bytes = await filterTemplate(format)
        return c.body(Buffer.from(bytes), 200, {
          "Content-Type":
            format === "xlsx" ? "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet" : "text/csv; charset=utf-8",
          "Content-Disposition": `attachment; filename="filters-template.${format}"`
        })
      })

    app.get("/api/reports", async (c) => {
      reader(c)
      return c.json({ reports: (await listReports(sql)).map(reportBody) })
    })
    app.get("/api/pages/:report_id", async (c) => {
      reader(c)
      const report = await known(c)
      return c.json({ report_id: report.report_id, pages: await reportPages(sql, report.report_id) })
    })
    app.get("/api/filters/:report_id", async (c) => {
      reader(c)
      const report = await known(c)
      return c.json({ filters: await reportFilters(sql, report.report_id) })
    })

    app.post("/api/exports", async (c) => {
      reader(c)
      const body = await bodyJson(c)
      if (typeof body === "symbol") return notJson(c)
      try {
        const requested = await requestExport(sql, js, body)
        if (!requested.ok)
          return c.json(
            {
              error: "invalid_export" as const,
              message: requested.problems.map((problem) => `${problem.field}: ${problem.message}`).join("; "),
              problems: requested.problems
            },
            400
          )
        const job = requested.job
        return c.json(jobBody(job, origin(c)), 202, { Location: `${origin(c)}/api/exports/${job.id}` })
      } catch (error) {
        if (!(error instanceof QueueUnavailable)) throw error
        return c.json({ error: "unavailable", message: `${error.message}; retry shortly` }, 503, { "Retry-After": "5" })
      }
    })
    const jobOf = async (c: ApiContext) => {
      reader(c)
      const id = c.req.param("id") as string
      const job = JOB_ID.test(id) ? await findJob(sql, id) : undefined
      if (job === undefined) throw new NotFound({ message: `no export job ${JSON.stringify(id)}` })
      return job
    }
    app.get("/api/exports/:id", async (c) => c.json(jobBody(await jobOf(c), origin(c))))
    app.get("/api/exports/:id/file", async (c) => {
      const job = await jobOf(c)
      if (job.status !== "Succeeded")
        return c.json(
          {
            error: "not_ready",
            message:
              job.status === "Failed"
                ? `the export failed: ${job.error ?? "no reason recorded"}`
                : `the export is ${job.status}; poll ${origin(c)}/api/exports/${job.id}`
          },
          409
        )
      const file = await jobFile(sql, job)
      if (file === undefined) return c.json({ error: "gone", message: "the file has left the cache: export again" }, 410)
      const extension = file.contentType === "application/pdf" ? "pdf" : "png"
      return c.body(Buffer.from(file.bytes), 200, {
        "Content-Type": file.contentType,
        "Content-Disposition": `${c.req.query("download") === undefined ? "inline" : "attachment"}; filename="${job.spec.report_id}-${job.id.slice(4, 12)}.${extension}"`,
        "Cache-Control": "private, max-age=300"
      })
    })

    const answer = async (c: ApiContext, seq: number, body: (projected: boolean) => Promise<unknown>, created = false) => {
      const projected = await projectedThrough(sql, seq, wait)
      return c.json((await body(projected)) as object, projected ? (created ? 201 : 200) : 202)
    }
    app.post("/api/admin/reports", async (c) => {
      allow(c, REPORTS_ADMIN_SCOPE)
      const body = await bodyJson(c)
      if (typeof body === "symbol") return notJson(c)
      try {
        const seq = await appendChange(js, { type: "report.registered", data: body as never })
        const data = body as typeof ReportRegistered.Type
        return await answer(
          c,
          seq,
          async (projected) => ({
            report: projected
              ? reportBody((await findReport(sql, data.report_id)) as NonNullable<Awaited<ReturnType<typeof findReport>>>)
              : reportBody({
                  report_id: data.report_id,
                  title: data.title,
                  engine: data.engine,
                  workspace_id: data.workspace_id ?? null,
                  powerbi_report_id: data.powerbi_report_id ?? null,
                  embed_url: data.embed_url ?? null,
                  mart: data.mart ?? null,
                  page_names: []
                }),
            projected
          }),
          true
        )
      } catch (error) {
        if (error instanceof InvalidChange) return c.json(changeProblems(error.issues), 400)
        throw error
      }
    })
    app.put("/api/admin/reports/:report_id/pages", async (c) => {
      allow(c, REPORTS_ADMIN_SCOPE)
      const report = await known(c)
      const body = await bodyJson(c)
      if (typeof body === "symbol") return notJson(c)
      const pages = typeof body === "object" && body !== null ? (body as { pages?: unknown }).pages : undefined
      try {
        const seq = await appendChange(js, { type: "report.pages_set", data: { report_id: report.report_id, pages } as never })
        return await answer(c, seq, async (projected) => ({ report_id: report.report_id, pages, projected }))
      } catch (error) {
        if (error instanceof InvalidChange) return c.json(changeProblems(error.issues), 400)
        throw error
      }
    })
    app.post("/api/admin/filters", async (c) => {
      allow(c, REPORTS_ADMIN_SCOPE)
      const fileName = c.req.query("file_name") ?? ""
      const reportId = c.req.query("report_id")
      const max = deps.maxSheetBytes ?? 5 * 1024 * 1024
      const tooLarge = (size: number) =>
        c.json({ error: "too_large", message: `the sheet has ${size} bytes; at most ${max} are accepted` }, 413)
      // Refused before it is read, when the request says its size.
      const declared = Number(c.req.header("content-length") ?? "NaN")
      if (Number.isFinite(declared) && declared > max) return tooLarge(declared)
      const bytes = new Uint8Array(await c.req.arrayBuffer())
      if (bytes.length > max) return tooLarge(bytes.length)
      const reports = await listReports(sql)
      const imported = await importFilterSheet(
        { bytes, fileName },
        { ...(reportId === undefined || reportId === "" ? {} : { reportId }), knownReports: reports.map((report) => report.report_id) }
      )
      if (!imported.ok)
        return c.json(
          {
            error: "invalid_filter_sheet" as const,
            message: `${imported.problems.length} problem${imported.problems.length === 1 ? "" : "s"} in ${fileName || "the sheet"}; nothing was imported`,
            problems: imported.problems
          },
          422
        )
      // The whole sheet as one event: every report it names is imported, or none (the contract already passed: importFilterSheet decoded it).
      const last = await appendChange(js, { type: "report.filter_sheet_imported", data: sheetEvent(imported.reports) })
      return await answer(c, last, async (projected) => ({ imported: imported.reports, projected }))
    })
  }
})
