import { randomUUID } from "node:crypto"
import type { JetStreamClient } from "@nats-io/jetstream"
import type postgres from "postgres"
import { activeGeneration } from "../consumers/registry.ts"
import { describeIssues } from "../contracts/issues.ts"
import { REGISTRY_SOURCE, reportEventTypes, reportsContract } from "../contracts/reports.ts"
import { natsHeadersFor, toLogMessages } from "../edge/log-message.ts"
import type { FilterValue, Page, Report, ReportFilter } from "./model.ts"

/**
 * The report registry: read from the `reports` mart (what the projection made of the log), changed
 * by appending events to the log. A change is in the registry once the projection has applied it:
 * {@link appendChange} waits for that, so an admin who registers a report sees it in the next read.
 */

const MART = "mart_reports"

type Sql = postgres.Sql | postgres.TransactionSql

/** Whether the registry's mart exists yet (the projection made its first generation). */
const published = async (sql: Sql): Promise<boolean> => {
  const [row] = await sql`SELECT to_regclass(${`${MART}.reports`}) IS NOT NULL AS ok`
  return row?.ok === true
}

const toReport = (row: Record<string, unknown>): Report & { readonly page_names: ReadonlyArray<string> } => ({
  report_id: row.report_id as string,
  title: row.title as string,
  engine: row.engine as Report["engine"],
  workspace_id: (row.workspace_id as string | null) ?? null,
  powerbi_report_id: (row.powerbi_report_id as string | null) ?? null,
  embed_url: (row.embed_url as string | null) ?? null,
  mart: (row.mart as string | null) ?? null,
  page_names: JSON.parse(row.page_names as string) as ReadonlyArray<string>
})

export const listReports = async (sql: Sql): Promise<ReadonlyArray<Report & { readonly page_names: ReadonlyArray<string> }>> =>
  (await published(sql)) ? (await sql`SELECT * FROM ${sql(MART)}.reports ORDER BY report_id`).map(toReport) : []

export const findReport = async (
  sql: Sql,
  reportId: string
): Promise<(Report & { readonly page_names: ReadonlyArray<string> }) | undefined> => {
  if (!(await published(sql))) return undefined
  const [row] = await sql`SELECT * FROM ${sql(MART)}.reports WHERE report_id = ${reportId}`
  return row === undefined ? undefined : toReport(row)
}

export const reportPages = async (sql: Sql, reportId: string): Promise<ReadonlyArray<Page>> =>
  (await published(sql))
    ? (await sql`SELECT name, display_name FROM ${sql(MART)}.pages WHERE report_id = ${reportId} ORDER BY position`).map((row) => ({
        name: row.name as string,
        display_name: row.display_name as string
      }))
    : []

export const reportFilters = async (sql: Sql, reportId: string): Promise<ReadonlyArray<ReportFilter>> =>
  (await published(sql))
    ? (
        await sql`SELECT filter_label, column_name, allowed_values, default_value FROM ${sql(MART)}.filters WHERE report_id = ${reportId} ORDER BY position`
      ).map((row) => ({
        label: row.filter_label as string,
        column: row.column_name as string,
        allowed_values: JSON.parse(row.allowed_values as string) as ReadonlyArray<FilterValue>,
        default: JSON.parse(row.default_value as string) as FilterValue | null
      }))
    : []

export type RegistryChange = {
  readonly [K in keyof typeof reportEventTypes]: { readonly type: K; readonly data: (typeof reportEventTypes)[K]["Type"] }
}[keyof typeof reportEventTypes]

/** A change the registry's contract refuses: each issue's path and message, as the admin API answers them. */
export class InvalidChange extends Error {
  constructor(readonly issues: ReadonlyArray<{ readonly path: string; readonly message: string }>) {
    super(describeIssues(issues))
    this.name = "InvalidChange"
  }
}

/**
 * Appends one registry change to the log, judged by the registry's contract exactly as the edge
 * judges a sender's event (so the projection never meets one it cannot read), and resolves with
 * its stream sequence. The event id is new: two admins' identical changes are two changes.
 */
export const appendChange = async (js: JetStreamClient, change: RegistryChange, now = new Date()): Promise<number> => {
  const envelope = { id: `reg_${randomUUID()}`, type: change.type, timestamp: now.toISOString(), data: change.data }
  const judged = reportsContract.judge(envelope)
  if (judged._tag === "Invalid") throw new InvalidChange(judged.issues)
  const [message] = toLogMessages(REGISTRY_SOURCE, reportsContract, [{ index: 0, event: judged.event }], {
    receivedAt: now.toISOString(),
    traceId: randomUUID().replaceAll("-", "")
  })
  if (message === undefined) throw new Error("a registry change made no log message")
  const ack = await js.publish(message.subject, message.data, { headers: natsHeadersFor(message) })
  return ack.seq
}

/**
 * Resolves true once the registry's projection has applied the log up to `seq`, false after
 * `timeoutMs` (the projector is behind or not running: the change is on the log and will show).
 */
export const projectedThrough = async (owner: Sql, seq: number, timeoutMs: number): Promise<boolean> => {
  const deadline = Date.now() + timeoutMs
  for (;;) {
    const generation = await activeGeneration(owner, "reports").catch(() => undefined)
    if (generation !== undefined && generation.checkpoint >= seq) return true
    if (Date.now() >= deadline) return false
    await new Promise((resolveWait) => setTimeout(resolveWait, 50))
  }
}
