import { type JetStreamClient, jetstream } from "@nats-io/jetstream"
import type { NatsConnection } from "@nats-io/nats-core"
import type postgres from "postgres"
import { serveProjections } from "../../consumers/serve.ts"
import { REPORTS_ADMIN_SCOPE } from "../../contracts/reports.ts"
import type { Projection } from "../../projections/projection.ts"
import { reportsProjection } from "../../projections/reports/projection.ts"
import { createApiKey, ensureApiKeys, marts } from "../../read/index.ts"
import { reportsApi } from "../../reports/api.ts"
import { ensureJobTables } from "../../reports/jobs.ts"
import { connectReports } from "../../reports/service.ts"
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
