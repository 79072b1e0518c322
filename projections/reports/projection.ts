import { describeIssues } from "../../contracts/issues.ts"
import { reportEventTypes, type ReportFilter } from "../../contracts/reports.ts"
import { decodeEnvelope } from "../../contracts/sender-envelope.ts"
import { poison, type Projection, rows, skip } from "../projection.ts"
import { reportsMarts } from "./marts.ts"

/** One report's imported filters: the set (the report's current one) and its rows, in order. */
const filterSet = (setId: string, reportId: string, fileName: string, filters: ReadonlyArray<ReportFilter>, at: string) => ({
  set: { report_id: reportId, set_id: setId, file_name: fileName, imported_at: at },
  history: filters.map((filter, position) => ({
    set_id: setId,
    position,
    report_id: reportId,
    filter_label: filter.label,
    column_name: filter.column,
    allowed_values: JSON.stringify(filter.allowed_values),
    default_value: JSON.stringify(filter.default)
  }))
})

/** Registry events become the registry's marts: a registration upserted, a page list or filter sheet kept whole under its event's id. */
export const reportsProjection: Projection = {
  ...reportsMarts,
  version: 1,
  domain: "reports",
  project: (event) => {
    const decoded = decodeEnvelope(reportEventTypes, event.payload)
    if (!decoded.ok) return poison(describeIssues(decoded.issues))
    const change = decoded.value
    const at = new Date(change.timestamp).toISOString()
    switch (change.type) {
      case "report.registered": {
        const r = change.data
        return rows({
          report_registrations: [
            {
              report_id: r.report_id,
              title: r.title,
              engine: r.engine,
              workspace_id: r.workspace_id ?? null,
              powerbi_report_id: r.powerbi_report_id ?? null,
              embed_url: r.embed_url ?? null,
              mart: r.mart ?? null,
              registered_at: at
            }
          ]
        })
      }
      case "report.pages_set": {
        const { report_id, pages } = change.data
        return rows({
          report_page_sets: [{ report_id, set_id: event.dedupeKey, set_at: at }],
          report_page_history: pages.map((page, position) => ({
            set_id: event.dedupeKey,
            position,
            report_id,
            name: page.name,
            display_name: page.display_name
          }))
        })
      }
      case "report.filters_imported": {
        const { report_id, file_name, filters } = change.data
        const set = filterSet(event.dedupeKey, report_id, file_name, filters, at)
        return rows({ report_filter_sets: [set.set], report_filter_history: set.history })
      }
      case "report.filter_sheet_imported": {
        const { file_name, reports } = change.data
        // Each report's filters a set of their own (keyed by the event and the report), as one import of each.
        const sets = reports.map(({ report_id, filters }) =>
          filterSet(`${event.dedupeKey}:${report_id}`, report_id, file_name, filters, at)
        )
        return rows({ report_filter_sets: sets.map((one) => one.set), report_filter_history: sets.flatMap((one) => one.history) })
      }
      default:
        return skip
    }
  }
}
