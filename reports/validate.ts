import { createHash } from "node:crypto"
import { Schema } from "effect"
import { decodeIssues } from "../contracts/contract.ts"
import { Identifier } from "../contracts/primitives.ts"
import { FilterValue, ReportId } from "../contracts/reports.ts"
import { buildFilter, filterQuery } from "./filter-url.ts"
import { EXPORT_FORMATS, type ExportFormat, type Page, type Report, type ReportFilter } from "./model.ts"

/** The body of `POST /api/exports`, declared once: the handler decodes with it and the OpenAPI document shows it. */
export const ExportRequestBody = Schema.Struct({
  report_id: ReportId,
  /** One page by its `name`; or `pages`; neither: every page of the report (PDF, or PNG of a one-page report). */
  page: Schema.optionalKey(Identifier),
  pages: Schema.optionalKey(Schema.Array(Identifier)),
  /** Values by filter label: one value, or several (`in`). A filter not named takes its default. */
  filters: Schema.optionalKey(Schema.Record(Schema.String, Schema.Union([FilterValue, Schema.Array(FilterValue)]))),
  format: Schema.Literals(EXPORT_FORMATS)
})

/** One thing wrong with an export request: the field, why, and what it may be. */
export interface Problem {
  readonly field: string
  readonly message: string
  readonly allowed?: ReadonlyArray<unknown>
}

export interface ValidExport {
  readonly report: Report
  readonly pages: ReadonlyArray<Page>
  readonly filter: string | undefined
  readonly format: ExportFormat
  /** The selections as taken (defaults filled in), by label. */
  readonly filters: Readonly<Record<string, ReadonlyArray<FilterValue>>>
}

/** What the registry says of the report a request names: undefined when there is no such report. */
export interface RegistryView {
  readonly reportIds: ReadonlyArray<string>
  readonly report: Report | undefined
  readonly pages: ReadonlyArray<Page>
  readonly filters: ReadonlyArray<ReportFilter>
}

/** A requested value as the registry holds it: `"2024"` asked of a numeric filter means 2024; undefined when not allowed. */
const allowedValue = (filter: ReportFilter, value: FilterValue): FilterValue | undefined =>
  filter.allowed_values.find((allowed) =>
    typeof allowed === "string" && typeof value === "string"
      ? allowed.toLowerCase() === value.toLowerCase()
      : String(allowed) === String(value)
  )

/**
 * Checks an export request against the registry, naming every problem with what is allowed (pure:
 * the handler reads the registry first). Problems of the body's shape come first and alone: the
 * registry checks need a report id and a format.
 */
export const validateExport = (
  body: unknown,
  registry: (reportId: string) => RegistryView
): { readonly ok: true; readonly value: ValidExport } | { readonly ok: false; readonly problems: ReadonlyArray<Problem> } => {
  const decoded = decodeIssues(ExportRequestBody, body)
  if (!decoded.ok)
    return {
      ok: false,
      problems: decoded.issues.map((issue) => ({ field: issue.path.replace(/^\$\.?/, "") || "body", message: issue.message }))
    }
  const request = decoded.value
  const view = registry(request.report_id)
  if (view.report === undefined)
    return {
      ok: false,
      problems: [{ field: "report_id", message: `no report ${JSON.stringify(request.report_id)} is registered`, allowed: view.reportIds }]
    }
  const problems: Array<Problem> = []
  const pageNames = view.pages.map((page) => page.name)
  if (request.page !== undefined && request.pages !== undefined) problems.push({ field: "pages", message: "give page or pages, not both" })
  const named = request.pages ?? (request.page === undefined ? undefined : [request.page])
  const field = request.pages === undefined ? "page" : "pages"
  if (view.pages.length === 0) problems.push({ field, message: `report ${request.report_id} has no pages registered yet`, allowed: [] })
  for (const name of named ?? []) {
    if (!pageNames.includes(name))
      problems.push({ field, message: `report ${request.report_id} has no page ${JSON.stringify(name)}`, allowed: pageNames })
  }
  if (named !== undefined && new Set(named).size !== named.length) problems.push({ field, message: "a page is named twice" })
  if (named !== undefined && named.length === 0) problems.push({ field, message: "name at least one page", allowed: pageNames })
  const pages = named === undefined ? view.pages : view.pages.filter((page) => named.includes(page.name))
  const ordered = named === undefined ? pages : named.flatMap((name) => pages.filter((page) => page.name === name))
  if (request.format === "png" && (named?.length ?? view.pages.length) !== 1)
    problems.push({ field, message: "a PNG shows one page: name one page, or ask for a PDF", allowed: pageNames })
  const labels = view.filters.map((filter) => filter.label)
  // No prototype: a filter labelled `constructor` or `toString` is a filter like any other.
  const chosen: Record<string, ReadonlyArray<FilterValue>> = Object.create(null) as Record<string, ReadonlyArray<FilterValue>>
  for (const [label, value] of Object.entries(request.filters ?? {})) {
    const filter = view.filters.find((candidate) => candidate.label === label)
    if (filter === undefined) {
      problems.push({
        field: `filters.${label}`,
        message: `report ${request.report_id} has no filter ${JSON.stringify(label)}`,
        allowed: labels
      })
      continue
    }
    const values = Array.isArray(value) ? (value as ReadonlyArray<FilterValue>) : [value as FilterValue]
    if (values.length === 0)
      problems.push({ field: `filters.${label}`, message: "choose at least one value", allowed: filter.allowed_values })
    const taken: Array<FilterValue> = []
    for (const one of values) {
      const allowed = allowedValue(filter, one)
      if (allowed === undefined)
        problems.push({
          field: `filters.${label}`,
          message: `${JSON.stringify(one)} is not allowed for ${label}`,
          allowed: filter.allowed_values
        })
      else if (!taken.includes(allowed)) taken.push(allowed)
    }
    chosen[label] = taken
  }
  for (const filter of view.filters)
    if (chosen[filter.label] === undefined && filter.default !== null) chosen[filter.label] = [filter.default]
  if (problems.length > 0) return { ok: false, problems }
  const built = buildFilter(
    view.filters
      .filter((filter) => chosen[filter.label] !== undefined)
      .map((filter) => ({ column: filter.column, values: chosen[filter.label] ?? [] }))
  )
  if ("problem" in built) return { ok: false, problems: [{ field: "filters", message: built.problem }] }
  const inUrl = built.filter === undefined ? undefined : filterQuery(built.filter)
  if (inUrl !== undefined && "problem" in inUrl) return { ok: false, problems: [{ field: "filters", message: inUrl.problem }] }
  return { ok: true, value: { report: view.report, pages: ordered, filter: built.filter, format: request.format, filters: chosen } }
}

/**
 * The key results are cached by: the report as registered (engine and where it is), the pages, the
 * filter, the format and the data version — the position of the projection of the mart the report
 * shows, so new data means a new render.
 */
export const cacheKeyOf = (value: ValidExport, dataVersion: string): string =>
  createHash("sha256")
    .update(
      JSON.stringify([
        value.report.report_id,
        value.report.engine,
        value.report.workspace_id,
        value.report.powerbi_report_id,
        value.report.embed_url,
        value.pages.map((page) => page.name),
        value.filter ?? null,
        value.format,
        dataVersion
      ])
    )
    .digest("hex")
