import type { JetStreamClient } from "@nats-io/jetstream"
import type postgres from "postgres"
import { isReportId } from "../contracts/reports.ts"
import { activeGeneration } from "../consumers/registry.ts"
import { logEvent } from "../platform/logger.ts"
import { acceptJob, type Job } from "./jobs.ts"
import type { Report } from "./model.ts"
import { queueJob } from "./queue.ts"
import { findReport, listReports, reportFilters, reportPages } from "./registry.ts"
import { cacheKeyOf, type Problem, validateExport } from "./validate.ts"

/** The data version results are cached by: the generation and position of the projection of the report's mart. */
export const dataVersion = async (sql: postgres.Sql, report: Report): Promise<string> => {
  if (report.mart === null) return "unversioned"
  const generation = await activeGeneration(sql, report.mart)
  return generation === undefined ? "unbuilt" : `${generation.generation}:${generation.checkpoint}`
}

/** The queue could not take the job: nothing was kept, the caller may ask again. */
export class QueueUnavailable extends Error {}

/**
 * An export request checked against the registry and accepted as a job: answered from the cache,
 * joined to an identical job in flight, or queued. What `POST /api/exports` and `mesh reports
 * export` both do.
 */
export const requestExport = async (
  sql: postgres.Sql,
  js: JetStreamClient,
  body: unknown
): Promise<{ readonly ok: true; readonly job: Job } | { readonly ok: false; readonly problems: ReadonlyArray<Problem> }> => {
  // Only a well-formed id is looked up; anything else is named by the validation below.
  const reportId =
    typeof body === "object" && body !== null && isReportId((body as { report_id?: unknown }).report_id)
      ? (body as { report_id: string }).report_id
      : undefined
  const [reports, report] = await Promise.all([listReports(sql), reportId === undefined ? undefined : findReport(sql, reportId)])
  const [pages, filters] =
    report === undefined ? [[], []] : await Promise.all([reportPages(sql, report.report_id), reportFilters(sql, report.report_id)])
  const judged = validateExport(body, () => ({ reportIds: reports.map((one) => one.report_id), report, pages, filters }))
  if (!judged.ok) return judged
  const value = judged.value
  const cacheKey = cacheKeyOf(value, await dataVersion(sql, value.report))
  const { job, queue } = await acceptJob(sql, cacheKey, {
    report_id: value.report.report_id,
    pages: value.pages,
    filter: value.filter ?? null,
    format: value.format,
    filters: value.filters
  })
  if (queue) {
    try {
      await queueJob(js, job.id)
    } catch (error) {
      // Not queued: failed, not deleted — an identical request may have joined it meanwhile, and polls it.
      await sql`UPDATE ingest.report_exports SET status = 'Failed', error = 'the export queue was unavailable; request the export again', updated_at = now()
        WHERE id = ${job.id} AND status = 'NotStarted'`
      logEvent("error", "report export not queued", { job: job.id, reason: error instanceof Error ? error.message : String(error) })
      throw new QueueUnavailable(`the export queue is unavailable: ${error instanceof Error ? error.message : String(error)}`)
    }
  }
  return { ok: true, job }
}
