import { jetstream, jetstreamManager } from "@nats-io/jetstream"
import type { NatsConnection } from "@nats-io/nats-core"
import { connect } from "@nats-io/transport-node"
import postgres from "postgres"
import { REPORTS_INBOX_PREFIX } from "../contracts/log.ts"
import type { NatsSettings } from "../platform/settings.ts"
import type { PowerBiSettings } from "../powerbi/auth.ts"
import { chromiumEngine } from "./engines/chromium.ts"
import { powerBiEngine } from "./engines/powerbi.ts"
import { ensureJobTables } from "./jobs.ts"
import type { RenderEngine, Report } from "./model.ts"
import { RenderFailed } from "./model.ts"
import type { ReportSettings } from "./settings.ts"
import { type ExportWorkers, startExportWorkers } from "./worker.ts"

/** A connection as the report export service's NATS user (registry appends, export jobs), on its own inbox prefix. */
export const connectReports = (nats: NatsSettings, name = "ingest-reports"): Promise<NatsConnection> =>
  connect({
    servers: [...nats.servers],
    user: nats.user,
    ...(nats.password === undefined ? {} : { pass: nats.password }),
    name,
    inboxPrefix: REPORTS_INBOX_PREFIX,
    maxReconnectAttempts: -1
  })

/** The engines of one process, each made on first use: the headless browser starts only when an embed report is exported. */
export const engineSet = (settings: ReportSettings, powerbi: PowerBiSettings | undefined) => {
  const made = new Map<Report["engine"], RenderEngine>()
  const engineFor = (report: Report): RenderEngine => {
    const existing = made.get(report.engine)
    if (existing !== undefined) return existing
    let engine: RenderEngine
    if (report.engine === "embed") {
      engine = chromiumEngine({
        executablePath: settings.chromiumBin,
        viewport: settings.viewport,
        renderTimeoutMs: settings.renderTimeoutMs,
        tabs: settings.browserTabs
      })
    } else {
      if (powerbi === undefined)
        throw new RenderFailed(
          `report ${report.report_id} is exported through Power BI's Export To File API, and POWERBI_TENANT_ID, POWERBI_CLIENT_ID and POWERBI_CLIENT_SECRET are not set`,
          false
        )
      engine = powerBiEngine(powerbi)
    }
    made.set(report.engine, engine)
    return engine
  }
  return {
    engineFor,
    close: async () => {
      await Promise.all([...made.values()].map((engine) => engine.close().catch(() => undefined)))
    }
  }
}

/** A running pool of export workers with what it holds open; `stop` lets jobs in hand finish, then closes all. */
export const runExportWorkers = async (options: {
  readonly databaseUrl: string
  readonly nats: NatsSettings
  readonly settings: ReportSettings
  readonly powerbi: PowerBiSettings | undefined
}): Promise<{ readonly workers: ExportWorkers; readonly stop: () => Promise<void> }> => {
  const sql = postgres(options.databaseUrl, { onnotice: () => {}, max: options.settings.worker.concurrency + 2 })
  await ensureJobTables(sql)
  const nc = await connectReports(options.nats, "ingest-report-workers")
  const engines = engineSet(options.settings, options.powerbi)
  const workers = await startExportWorkers({
    sql,
    js: jetstream(nc),
    jsm: await jetstreamManager(nc),
    engineFor: engines.engineFor,
    settings: options.settings.worker
  })
  return {
    workers,
    stop: async () => {
      await workers.stop()
      await engines.close()
      await nc.drain().catch(() => undefined)
      await sql.end({ timeout: 5 })
    }
  }
}
