import { Schema } from "effect"
import { envelopeContract } from "./sender-envelope.ts"
import { Identifier } from "./primitives.ts"

/**
 * The report registry (seed 003): the Power BI reports the export service may render, their pages
 * and their filters. Every change is an event on the log (`reports` domain), posted by the admin
 * page or `mesh reports`, and projected into the `reports` mart like any other domain's events.
 */

/** A report id as the registry and the API name it: `[A-Za-z0-9_-]`, 1 to 64 characters (a URL path segment as is). */
export const ReportId = Schema.String.check(
  Schema.isPattern(/^[A-Za-z0-9_-]{1,64}$/, { message: "Expected a report id of 1 to 64 letters, digits, '_' or '-', e.g. sales-overview" })
)

/** Whether a value is a {@link ReportId}: checked before an id from a URL or a body reaches a query. */
export const isReportId = Schema.is(ReportId)

/** How a report is rendered: Power BI's Export To File API (a workspace on a capacity), or headless Chromium loading its embed URL. */
export const REPORT_ENGINES = ["powerbi", "embed"] as const
export type ReportEngine = (typeof REPORT_ENGINES)[number]

const HttpUrl = Schema.String.check(
  Schema.makeFilter(
    (value: string) => {
      try {
        return ["http:", "https:"].includes(new URL(value).protocol)
      } catch {
        return false
      }
    },
    { message: "Expected an http(s) URL, e.g. https://app.powerbi.com/reportEmbed?reportId=…" }
  )
)

const Guid = Schema.String.check(
  Schema.isPattern(/^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$/, {
    message: "Expected a Power BI id (a GUID such as 0f4c1a3e-…)"
  })
)

export const ReportRegistered = Schema.Struct({
  report_id: ReportId,
  title: Identifier,
  engine: Schema.Literals(REPORT_ENGINES),
  /** The workspace (group) and report ids in Power BI: what Export To File is called with. */
  workspace_id: Schema.optionalKey(Schema.NullOr(Guid)),
  powerbi_report_id: Schema.optionalKey(Schema.NullOr(Guid)),
  /** The iframe / embed URL the headless engine loads (the filter and page are added to it). */
  embed_url: Schema.optionalKey(Schema.NullOr(HttpUrl)),
  /** The mart whose data the report shows: its projection's position is the data version results are cached by. */
  mart: Schema.optionalKey(Schema.NullOr(Identifier))
})

/** A report page: `name` as Power BI knows it (`ReportSection…`), `display_name` as users read it. */
export const ReportPage = Schema.Struct({ name: Identifier, display_name: Identifier })

export const PagesSet = Schema.Struct({
  report_id: ReportId,
  pages: Schema.Array(ReportPage).check(Schema.isMinLength(1), Schema.isMaxLength(50))
})

/** A filter value: what Power BI's URL filter syntax can compare (strings, numbers, booleans); text as an {@link Identifier}. */
export const FilterValue = Schema.Union([Identifier, Schema.Finite, Schema.Boolean])
export type FilterValue = typeof FilterValue.Type

export const ReportFilter = Schema.Struct({
  label: Identifier,
  /** `Table/Field` as Power BI's URL filter addresses it (names as in the model; escaped when the URL is built). */
  column: Identifier,
  allowed_values: Schema.Array(FilterValue).check(Schema.isMinLength(1)),
  default: Schema.NullOr(FilterValue)
})
export type ReportFilter = typeof ReportFilter.Type

export const FiltersImported = Schema.Struct({
  report_id: ReportId,
  /** Where the sheet came from, for the history: `filters.xlsx`, sheet `Filters`. */
  file_name: Identifier,
  filters: Schema.Array(ReportFilter).check(Schema.isMaxLength(10))
})

/**
 * One filter sheet imported whole: every report it names, in one event, so a sheet for several
 * reports is in the registry entirely or not at all.
 */
export const FilterSheetImported = Schema.Struct({
  file_name: Identifier,
  reports: Schema.Array(Schema.Struct({ report_id: ReportId, filters: FiltersImported.fields.filters })).check(Schema.isMinLength(1))
})

export const reportEventTypes = {
  "report.registered": ReportRegistered,
  "report.pages_set": PagesSet,
  "report.filters_imported": FiltersImported,
  "report.filter_sheet_imported": FilterSheetImported
}

export const reportsContract = envelopeContract({
  name: "reports",
  domain: "reports",
  schemaVersion: "reports/v1",
  types: reportEventTypes
})

/** The source name registry events are appended under (they come from the admin page and the CLI, not from a webhook sender). */
export const REGISTRY_SOURCE = "registry"

/** The API key scope that may change the registry (register, set pages, import filters); `reports` reads it and exports. */
export const REPORTS_ADMIN_SCOPE = "reports:admin"
