import { randomUUID } from "node:crypto"
import { listen } from "../../platform/http.ts"
import { type Context, Hono } from "hono"
import { resultRow, runDax } from "./dax.ts"
import { type EmulatorReportSpec, mountReports, type ReportOptions, type ReportStats } from "./reports.ts"
import {
  isColumnName,
  isTableName,
  LIMITS,
  newPeak,
  newWindow,
  notePeak,
  type Peak,
  type PushType,
  pushTypeOf,
  valueProblem,
  waitToFit,
  type Window
} from "../rules.ts"

/**
 * A Power BI emulator: the Entra token endpoint (client credentials) and the push datasets API
 * (`/v1.0/myorg/groups/{g}/datasets…`), answering with Power BI's statuses and bodies and refusing
 * whatever the service documents it refuses (powerbi.md §1, sinks-edge-regions.md §A). Its clock can
 * run fast (`clockSpeed`), so a test lives through an "hour" of rate limits in seconds. The one part
 * of the system that is emulated; `/_emulator/…` routes are its own, for tests to look inside.
 *
 * `executeQueries` answers a small DAX subset (`dax.ts`) over the rows a push dataset holds; `faults`
 * makes rows POSTs fail now and then, as a real service does, so a client's retries can be tested.
 */

export interface EmulatorApp {
  readonly tenantId: string
  readonly clientId: string
  readonly clientSecret: string
}

export interface EmulatorWorkspace {
  readonly id: string
  /** Shared capacity allows 8 refreshes a day per dataset; Premium is limited by load only. */
  readonly capacity: "shared" | "premium"
}

/**
 * A failure injected into a rows POST: `429` (Retry-After 1, the bare `{"message"}` body), `500-before`
 * (500, the rows not stored), `500-after` (the rows stored, then 500: the outcome a client cannot tell
 * from `500-before`) or `503` (Retry-After 1, the rows not stored).
 */
export type EmulatorFaultKind = "429" | "500-before" | "500-after" | "503"

export const FAULT_KINDS: ReadonlyArray<EmulatorFaultKind> = ["429", "500-before", "500-after", "503"]

export interface EmulatorOptions extends ReportOptions {
  readonly port?: number
  readonly host?: string
  readonly apps: ReadonlyArray<EmulatorApp>
  readonly workspaces: ReadonlyArray<EmulatorWorkspace>
  /** Import-mode datasets (over the marts' OData feeds) that can be refreshed: not created through the API. */
  readonly importDatasets?: ReadonlyArray<{
    readonly groupId: string
    readonly id: string
    readonly name: string
    readonly refreshMs?: number
    /** Every refresh of this dataset ends `Failed`, with the `serviceExceptionJson` of missing credentials. */
    readonly failRefreshes?: boolean
  }>
  /** Emulated milliseconds per real millisecond (default 1): 60 makes an hour pass in a minute. */
  readonly clockSpeed?: number
  /** The emulated clock itself, in milliseconds (replaces `clockSpeed`): for tests that step through time. */
  readonly clock?: () => number
  /** How long a refresh runs, in emulated milliseconds (default 60 s). */
  readonly refreshMs?: number
  /** How long a POST of rows takes, in real milliseconds (default 0): makes pending requests overlap. */
  readonly postLatencyMs?: number
  /** Lifetime of an access token in (real) seconds (default 3599, as Entra). */
  readonly tokenLifetimeSeconds?: number
  /** The resource whose `.default` scope tokens are issued for. */
  readonly resource?: string
  /**
   * Failures injected into rows POSTs: each POST that would be accepted fails instead with probability
   * `rate` (0 to 1), as one of `kinds` (default all) picked at random. The draws come from a PRNG seeded
   * with `seed` (default 1), so a seed gives the same faults in the same order on every run. A fault
   * that stores no rows counts against no limit; `stats().injected` counts them apart from `throttled`.
   */
  readonly faults?: {
    readonly rate: number
    readonly seed?: number
    readonly kinds?: ReadonlyArray<EmulatorFaultKind>
  }
}

interface PushColumn {
  readonly name: string
  readonly dataType: PushType
}

interface PushTable {
  readonly name: string
  columns: ReadonlyArray<PushColumn>
  measures: ReadonlyArray<{ readonly name: string; readonly expression: string }>
  readonly rows: Array<Record<string, unknown>>
}

interface Refresh {
  readonly requestId: string
  readonly refreshType: "ViaApi"
  readonly startTime: number
  readonly endTime: number
  /** Ends `Failed` rather than `Completed`. */
  readonly fails: boolean
}

/** What a dataset took in: totals, and the peaks of the rolling windows Power BI limits. */
interface Intake {
  rows: number
  posts: number
  readonly rowsPerHour: Peak
  readonly postsPerMinute: Peak
  readonly postsPerHour: Peak
}

interface Dataset {
  readonly id: string
  readonly name: string
  readonly push: boolean
  readonly retention: "None" | "basicFIFO"
  readonly tables: Map<string, PushTable>
  readonly relationships: ReadonlyArray<unknown>
  readonly createdAt: number
  pending: number
  readonly posts: Window
  readonly rowsAdded: Window
  readonly refreshes: Array<Refresh>
  readonly refreshMs?: number
  readonly failRefreshes?: boolean
  readonly intake: Intake
}

/** Requests served and refused, across the emulator. */
export interface EmulatorStats {
  readonly tokenRequests: number
  readonly apiRequests: number
  /** 429s answered because a limit was reached (rows POSTs and executeQueries); injected 429s are not counted here. */
  readonly throttled: number
  /** executeQueries requests let through the per-user limit (answered 200, or 400 for a refused query or body). */
  readonly queries: number
  /** Faults injected into rows POSTs (the `faults` option), by kind. */
  readonly injected: Readonly<Record<EmulatorFaultKind, number>>
}

/** What one dataset took in through rows POSTs, for a bench to prove it stayed under Power BI's limits. */
export interface EmulatorDatasetStats {
  /** Rows stored, in all (basicFIFO may have dropped some of them since). */
  readonly rowsAdded: number
  /** POSTs whose rows were stored: a `500-after` fault included, its rows stored although it answered 500. */
  readonly postsAccepted: number
  /** The most rows stored within any rolling emulated hour (Power BI allows 1,000,000). */
  readonly peakRowsPerHour: number
  /** The most POSTs accepted within any rolling emulated minute (Power BI allows 120). */
  readonly peakPostsPerMinute: number
  /** The most POSTs accepted within any rolling emulated hour (Power BI allows 120 once a table holds 250,000 rows). */
  readonly peakPostsPerHour: number
}

/** A dataset as the emulator stores it. */
export interface EmulatorDatasetView {
  readonly id: string
  readonly name: string
  /** Created through the API as a push dataset; false for the `importDatasets`. */
  readonly push: boolean
  readonly defaultRetentionPolicy: "None" | "basicFIFO"
  readonly tables: ReadonlyArray<{
    readonly name: string
    readonly columns: ReadonlyArray<{ readonly name: string; readonly dataType: PushType }>
    readonly measures: ReadonlyArray<{ readonly name: string; readonly expression: string }>
    readonly rowCount: number
  }>
  /** As the create request gave them. */
  readonly relationships: ReadonlyArray<unknown>
}

export interface PowerBiEmulator {
  readonly url: string
  /** The authority msal-node is given, and the `authorityMetadata` that points it at this emulator over plain HTTP. */
  readonly authorityFor: (tenantId: string) => {
    readonly authority: string
    readonly knownAuthorities: ReadonlyArray<string>
    readonly authorityMetadata: string
  }
  /** Every access token issued so far stops being accepted (as when they expire). */
  readonly expireTokens: () => void
  /** Token requests and API requests served, 429s answered for real limits, queries run and faults injected (also `GET /_emulator/stats`). */
  readonly stats: () => EmulatorStats
  /** What a dataset took in (also `GET /_emulator/groups/{g}/datasets/{d}/stats`); undefined for an unknown one. */
  readonly datasetStats: (groupId: string, datasetId: string) => EmulatorDatasetStats | undefined
  /** The rows a table holds, oldest first (also `GET /_emulator/groups/{g}/datasets/{d}/tables/{t}/rows`); undefined for an unknown table. */
  readonly tableRows: (groupId: string, datasetId: string, table: string) => ReadonlyArray<Readonly<Record<string, unknown>>> | undefined
  /** A workspace's datasets as stored (also `GET /_emulator/groups/{g}/datasets`); undefined for an unknown workspace. */
  readonly datasets: (groupId: string) => ReadonlyArray<EmulatorDatasetView> | undefined
  /** Export To File calls per report and files served (also `GET /_emulator/reports/stats`). */
  readonly reportStats: () => ReportStats
  /** Declares a report (as `POST /_emulator/groups/{g}/reports` does): its id, embedUrl and the rest as the API describes it. */
  readonly addReport: (spec: EmulatorReportSpec) => { readonly id: string; readonly embedUrl: string }
  readonly close: () => Promise<void>
}

const API = "/v1.0/myorg"

type Body = Record<string, unknown>

/** Power BI's error body for a missing item: `{"error":{"code","pbi.error":{…}}}`. */
const notFound = (c: Context, code: string, message: string) =>
  c.json({ error: { code, message, "pbi.error": { code, parameters: {}, details: [], exceptionCulprit: 1 } } }, 404)

/** A request the service refuses for its content: 400 with the error's code and a message naming what is wrong. */
const badRequest = (c: Context, code: string, message: string) => c.json({ error: { code, message } }, 400)

/** Power BI's body for an error of its own (`UnknownError`), as a 500 carries it: the same whether or not the rows were stored. */
const serverError = (c: Context) =>
  c.json(
    {
      error: {
        code: "UnknownError",
        message: "An internal error occurred while processing the request.",
        "pbi.error": { code: "UnknownError", parameters: {}, details: [], exceptionCulprit: 1 }
      }
    },
    500
  )

/** The service unavailable for a moment: 503 with Retry-After. */
const unavailable = (c: Context, retryAfterSeconds: number) => {
  c.header("Retry-After", String(retryAfterSeconds))
  c.header("RequestId", randomUUID())
  return c.json(
    {
      error: {
        code: "ServiceUnavailable",
        message: "The service is temporarily unavailable.",
        "pbi.error": { code: "ServiceUnavailable", parameters: {}, details: [], exceptionCulprit: 1 }
      }
    },
    503
  )
}

/** A refused DAX query: 400 with the body executeQueries answers, the message in `details` (there is no `message` field). */
const queryError = (c: Context, message: string) =>
  c.json(
    {
      error: {
        code: "DatasetExecuteQueriesError",
        "pbi.error": {
          code: "DatasetExecuteQueriesError",
          parameters: {},
          details: [{ code: "DetailsMessage", detail: { type: 1, value: message } }]
        }
      }
    },
    400
  )

/** The error a refresh fails with when `failRefreshes` is set, as the refresh history carries it: JSON in a string. */
const REFRESH_FAILURE = JSON.stringify({ errorCode: "ModelRefreshFailed_CredentialsNotSpecified" })

/**
 * A PRNG for fault injection: a Weyl sequence through a 32-bit mixing finalizer, in [0, 1). Small,
 * good enough to draw faults, and the same numbers for the same seed everywhere.
 */
const seededRandom = (seed: number): (() => number) => {
  let state = seed >>> 0
  return () => {
    state = (state + 0x9e3779b9) >>> 0
    let z = state
    z = Math.imul(z ^ (z >>> 16), 0x85ebca6b)
    z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35)
    z ^= z >>> 16
    return (z >>> 0) / 4_294_967_296
  }
}

/** Over a rate limit: 429 with Retry-After (whole seconds) and the bare `{"message"}` body Power BI answers with. */
const throttle = (c: Context, retryAfterSeconds: number, message: string) => {
  c.header("Retry-After", String(retryAfterSeconds))
  c.header("RequestId", randomUUID())
  return c.json({ message: `${message} Retry in ${retryAfterSeconds} seconds.` }, 429)
}

/** Starts the emulator on `port` (0: any free port) on loopback. */
export const startPowerBiEmulator = async (options: EmulatorOptions): Promise<PowerBiEmulator> => {
  const speed = options.clockSpeed ?? 1
  const started = Date.now()
  /** Emulated now, in milliseconds. */
  const now = options.clock ?? (() => started + (Date.now() - started) * speed)
  const realSeconds = (emulatedMs: number) => Math.max(1, Math.ceil(emulatedMs / speed / 1000))
  const resource = options.resource ?? "https://analysis.windows.net/powerbi/api"
  const tokens = new Map<string, { readonly clientId: string; readonly expiresAt: number }>()
  const workspaces = new Map(options.workspaces.map((workspace) => [workspace.id, { ...workspace, datasets: new Map<string, Dataset>() }]))
  const counts = { tokenRequests: 0, apiRequests: 0, throttled: 0, queries: 0 }
  const injected: Record<EmulatorFaultKind, number> = { "429": 0, "500-before": 0, "500-after": 0, "503": 0 }
  /** executeQueries requests in the last minute, per client id: Power BI limits them per user, whatever the dataset. */
  const queryWindows = new Map<string, Window>()
  const faults = options.faults
  if (faults !== undefined) {
    if (!(faults.rate >= 0 && faults.rate <= 1)) throw new Error(`faults.rate must be between 0 and 1, got ${faults.rate}`)
    if (faults.kinds !== undefined && (faults.kinds.length === 0 || faults.kinds.some((kind) => !FAULT_KINDS.includes(kind))))
      throw new Error(`faults.kinds must be some of ${FAULT_KINDS.join(", ")}, got ${JSON.stringify(faults.kinds)}`)
  }
  const random = seededRandom(faults?.seed ?? 1)
  /** The fault a rows POST that would be accepted meets instead, if any. */
  const drawFault = (): EmulatorFaultKind | undefined => {
    if (faults === undefined || faults.rate === 0 || random() >= faults.rate) return undefined
    const kinds = faults.kinds ?? FAULT_KINDS
    return kinds[Math.min(kinds.length - 1, Math.floor(random() * kinds.length))]
  }
  const newDataset = (id: string, name: string, push: boolean, retention: Dataset["retention"]): Dataset => ({
    id,
    name,
    push,
    retention,
    tables: new Map(),
    relationships: [],
    createdAt: now(),
    pending: 0,
    posts: newWindow(),
    rowsAdded: newWindow(),
    refreshes: [],
    intake: { rows: 0, posts: 0, rowsPerHour: newPeak(3_600_000), postsPerMinute: newPeak(60_000), postsPerHour: newPeak(3_600_000) }
  })
  for (const imported of options.importDatasets ?? [])
    workspaces.get(imported.groupId)?.datasets.set(imported.id, {
      ...newDataset(imported.id, imported.name, false, "None"),
      ...(imported.refreshMs === undefined ? {} : { refreshMs: imported.refreshMs }),
      ...(imported.failRefreshes === undefined ? {} : { failRefreshes: imported.failRefreshes })
    })

  /** The API's routes know the client id of the token a request came with (`c.get("clientId")`). */
  const app = new Hono<{ Variables: { clientId: string } }>()
  let origin = ""

  app.get("/:tenant/v2.0/.well-known/openid-configuration", (c) => c.json(metadataFor(origin, c.req.param("tenant"))))

  app.post("/:tenant/oauth2/v2.0/token", async (c) => {
    counts.tokenRequests++
    const tenant = c.req.param("tenant")
    const form = new URLSearchParams(await c.req.text())
    const entraError = (status: 400 | 401, error: string, code: number, description: string) =>
      c.json(
        {
          error,
          error_description: `AADSTS${code}: ${description} Trace ID: ${randomUUID()} Correlation ID: ${randomUUID()} Timestamp: ${new Date().toISOString()}`,
          error_codes: [code],
          timestamp: new Date().toISOString().replace("T", " ").slice(0, 19) + "Z",
          trace_id: randomUUID(),
          correlation_id: randomUUID()
        },
        status
      )
    if (form.get("grant_type") !== "client_credentials")
      return entraError(400, "unsupported_grant_type", 70003, "The app requested an unsupported grant type.")
    const registered = options.apps.filter((candidate) => candidate.tenantId === tenant)
    if (registered.length === 0) return entraError(400, "invalid_request", 90002, `Tenant '${tenant}' not found.`)
    const clientId = form.get("client_id") ?? ""
    const appOf = registered.find((candidate) => candidate.clientId === clientId)
    if (appOf === undefined)
      return entraError(
        400,
        "unauthorized_client",
        700016,
        `Application with identifier '${clientId}' was not found in the directory '${tenant}'.`
      )
    if (form.get("client_secret") !== appOf.clientSecret)
      return entraError(
        401,
        "invalid_client",
        7000215,
        "Invalid client secret provided. Ensure the secret being sent in the request is the client secret value, not the client secret ID."
      )
    if (form.get("scope") !== `${resource}/.default`)
      return entraError(
        400,
        "invalid_scope",
        70011,
        `The provided value for the input parameter 'scope' is not valid. The scope ${form.get("scope")} is not valid.`
      )
    const lifetime = options.tokenLifetimeSeconds ?? 3599
    const token = `emulated.${randomUUID()}`
    tokens.set(token, { clientId, expiresAt: Date.now() + lifetime * 1000 })
    return c.json({ token_type: "Bearer", expires_in: lifetime, ext_expires_in: lifetime, access_token: token })
  })

  app.use(`${API}/*`, async (c, next) => {
    counts.apiRequests++
    const header = c.req.header("authorization") ?? ""
    const token = /^Bearer (.+)$/.exec(header)?.[1]
    const issued = token === undefined ? undefined : tokens.get(token)
    if (issued === undefined) {
      c.header("WWW-Authenticate", 'Bearer authorization_uri="https://login.microsoftonline.com/common/oauth2/authorize"')
      return c.json({ error: { code: "PowerBINotAuthorizedException", message: "The request has no valid access token." } }, 401)
    }
    if (issued.expiresAt <= Date.now())
      return c.json({ error: { code: "TokenExpired", message: "Access token has expired, resubmit with a new access token" } }, 403)
    c.set("clientId", issued.clientId)
    await next()
  })

  const workspaceOf = (c: Context) => workspaces.get(c.req.param("group") ?? "")
  const datasetOf = (c: Context) => workspaceOf(c)?.datasets.get(c.req.param("dataset") ?? "")
  const describe = (dataset: Dataset) => ({
    id: dataset.id,
    name: dataset.name,
    addRowsAPIEnabled: dataset.push,
    configuredBy: "emulator",
    isRefreshable: !dataset.push,
    isEffectiveIdentityRequired: false,
    isEffectiveIdentityRolesRequired: false,
    isOnPremGatewayRequired: false,
    targetStorageMode: dataset.push ? "Abf" : "Import",
    createdDate: new Date(dataset.createdAt).toISOString(),
    ...(dataset.push ? { defaultRetentionPolicy: dataset.retention } : {})
  })
  const describeTable = (table: PushTable) => ({ name: table.name, columns: table.columns, measures: table.measures })
  const missingWorkspace = (c: Context) =>
    notFound(c, "PowerBIEntityNotFound", `Workspace ${c.req.param("group")} not found or the app has no access to it.`)
  const missingDataset = (c: Context) =>
    notFound(c, "PowerBIEntityNotFound", `Dataset ${c.req.param("dataset")} not found in workspace ${c.req.param("group")}.`)

  /** A table declaration as the API takes it, or why it is refused. */
  const tableFrom = (value: unknown, where: string): PushTable | string => {
    const table = value as { name?: unknown; columns?: unknown; measures?: unknown }
    if (typeof table?.name !== "string" || !isTableName(table.name))
      return `${where}: ${JSON.stringify(table?.name)} is not a valid table name (1 to 100 characters, no . / \\ ( ) [ ] { } , ; : ' " ! ? $ % & * + < = > |)`
    if (!Array.isArray(table.columns) || table.columns.length === 0) return `${where} (${table.name}): columns are required`
    if (table.columns.length > LIMITS.columnsPerTable)
      return `${where} (${table.name}): ${table.columns.length} columns, more than the ${LIMITS.columnsPerTable} a table may have`
    const columns: Array<PushColumn> = []
    for (const [i, raw] of (table.columns as Array<{ name?: unknown; dataType?: unknown }>).entries()) {
      if (typeof raw?.name !== "string" || !isColumnName(raw.name))
        return `${where} (${table.name}) column ${i}: ${JSON.stringify(raw?.name)} is not a valid column name`
      const dataType = pushTypeOf(raw.dataType)
      if (dataType === undefined)
        return `${where} (${table.name}) column ${raw.name}: unknown dataType ${JSON.stringify(raw.dataType)}; use Int64, Double, Decimal, Boolean, DateTime or String`
      if (columns.some((column) => column.name === raw.name)) return `${where} (${table.name}): column ${raw.name} is declared twice`
      columns.push({ name: raw.name, dataType })
    }
    const measures = Array.isArray(table.measures)
      ? (table.measures as Array<{ name: string; expression: string }>).map(({ name, expression }) => ({ name, expression }))
      : []
    return { name: table.name, columns, measures, rows: [] }
  }

  app.get(`${API}/groups/:group/datasets`, (c) => {
    const workspace = workspaceOf(c)
    if (workspace === undefined) return missingWorkspace(c)
    return c.json({
      "odata.context": `${origin}${API}/groups/${workspace.id}/$metadata#datasets`,
      value: [...workspace.datasets.values()].map(describe)
    })
  })

  app.post(`${API}/groups/:group/datasets`, async (c) => {
    const workspace = workspaceOf(c)
    if (workspace === undefined) return missingWorkspace(c)
    const retentionParam = c.req.query("defaultRetentionPolicy") ?? "None"
    if (retentionParam !== "None" && retentionParam !== "basicFIFO")
      return badRequest(c, "InvalidRequest", `defaultRetentionPolicy must be None or basicFIFO, got ${JSON.stringify(retentionParam)}`)
    const body = (await c.req.json().catch(() => undefined)) as Body | undefined
    if (body === undefined || typeof body.name !== "string" || body.name === "")
      return badRequest(c, "InvalidRequest", "the request needs a dataset name")
    const mode = body.defaultMode ?? "Push"
    if (mode !== "Push" && mode !== "PushStreaming")
      return badRequest(
        c,
        "InvalidRequest",
        `the emulator creates push datasets only (defaultMode Push or PushStreaming), got ${JSON.stringify(mode)}`
      )
    if (!Array.isArray(body.tables) || body.tables.length === 0)
      return badRequest(c, "InvalidRequest", "the request needs at least one table")
    if (body.tables.length > LIMITS.tablesPerDataset)
      return badRequest(c, "InvalidRequest", `${body.tables.length} tables, more than the ${LIMITS.tablesPerDataset} a dataset may have`)
    const relationships = Array.isArray(body.relationships) ? body.relationships : []
    if (relationships.length > LIMITS.relationshipsPerDataset)
      return badRequest(
        c,
        "InvalidRequest",
        `${relationships.length} relationships, more than the ${LIMITS.relationshipsPerDataset} a dataset may have`
      )
    const tables = new Map<string, PushTable>()
    for (const [i, raw] of (body.tables as Array<unknown>).entries()) {
      const table = tableFrom(raw, `tables[${i}]`)
      if (typeof table === "string") return badRequest(c, "InvalidRequest", table)
      if (tables.has(table.name)) return badRequest(c, "InvalidRequest", `table ${table.name} is declared twice`)
      tables.set(table.name, table)
    }
    for (const [i, raw] of (
      relationships as Array<{ name?: unknown; fromTable?: unknown; fromColumn?: unknown; toTable?: unknown; toColumn?: unknown }>
    ).entries()) {
      const ends = [
        [raw.fromTable, raw.fromColumn],
        [raw.toTable, raw.toColumn]
      ] as const
      for (const [tableName, columnName] of ends) {
        const table = tables.get(String(tableName))
        if (table === undefined || !table.columns.some((column) => column.name === columnName))
          return badRequest(
            c,
            "InvalidRequest",
            `relationships[${i}] (${String(raw.name)}): no column ${String(columnName)} in table ${String(tableName)}`
          )
      }
    }
    const dataset = { ...newDataset(randomUUID(), body.name, true, retentionParam), relationships }
    for (const [name, table] of tables) dataset.tables.set(name, table)
    workspace.datasets.set(dataset.id, dataset)
    return c.json({ id: dataset.id, name: dataset.name, defaultRetentionPolicy: dataset.retention }, 201)
  })

  app.get(`${API}/groups/:group/datasets/:dataset`, (c) => {
    if (workspaceOf(c) === undefined) return missingWorkspace(c)
    const dataset = datasetOf(c)
    return dataset === undefined ? missingDataset(c) : c.json(describe(dataset))
  })

  app.get(`${API}/groups/:group/datasets/:dataset/tables`, (c) => {
    if (workspaceOf(c) === undefined) return missingWorkspace(c)
    const dataset = datasetOf(c)
    if (dataset === undefined) return missingDataset(c)
    return c.json({
      "odata.context": `${origin}${API}/groups/${c.req.param("group")}/$metadata#tables`,
      value: [...dataset.tables.values()].map(describeTable)
    })
  })

  app.put(`${API}/groups/:group/datasets/:dataset/tables/:table`, async (c) => {
    if (workspaceOf(c) === undefined) return missingWorkspace(c)
    const dataset = datasetOf(c)
    if (dataset === undefined) return missingDataset(c)
    const existing = dataset.tables.get(c.req.param("table"))
    // Power BI cannot add a table to an existing push dataset (powerbi.md §1.7).
    if (existing === undefined) return notFound(c, "ItemNotFound", `Table '${c.req.param("table")}' not found in dataset`)
    const table = tableFrom(await c.req.json().catch(() => undefined), "table")
    if (typeof table === "string") return badRequest(c, "InvalidRequest", table)
    if (table.name !== existing.name)
      return badRequest(c, "InvalidRequest", `the table's name ${table.name} differs from the path's ${existing.name}`)
    existing.columns = table.columns
    existing.measures = table.measures
    return c.json({ name: existing.name })
  })

  const rowsRoute = `${API}/groups/:group/datasets/:dataset/tables/:table/rows`
  app.post(rowsRoute, async (c) => {
    if (workspaceOf(c) === undefined) return missingWorkspace(c)
    const dataset = datasetOf(c)
    if (dataset === undefined) return missingDataset(c)
    if (!dataset.push) return notFound(c, "ItemNotFound", `Dataset ${dataset.id} is not Push API dataset.`)
    const table = dataset.tables.get(c.req.param("table"))
    if (table === undefined) return notFound(c, "ItemNotFound", `Table '${c.req.param("table")}' not found in dataset`)
    const text = await c.req.text()
    if (Buffer.byteLength(text) > LIMITS.bytesPerRequest)
      return c.json({ error: { code: "RequestEntityTooLarge", message: `the request is over ${LIMITS.bytesPerRequest} bytes` } }, 413)
    if (dataset.pending >= LIMITS.pendingPostsPerDataset) {
      counts.throttled++
      return throttle(c, 1, `There are already ${LIMITS.pendingPostsPerDataset} pending requests for this dataset.`)
    }
    let body: { rows?: unknown }
    try {
      body = JSON.parse(text) as { rows?: unknown }
    } catch {
      return badRequest(c, "InvalidRequest", "the body is not JSON")
    }
    if (!Array.isArray(body.rows)) return badRequest(c, "InvalidRequest", 'the body must be {"rows":[…]}')
    const rows = body.rows as Array<Record<string, unknown>>
    if (rows.length > LIMITS.rowsPerPost)
      return badRequest(c, "InvalidRequest", `${rows.length} rows in one request, more than the ${LIMITS.rowsPerPost} allowed`)
    const types = new Map(table.columns.map((column) => [column.name, column.dataType]))
    for (const [i, row] of rows.entries()) {
      if (row === null || typeof row !== "object" || Array.isArray(row))
        return badRequest(c, "InvalidRequest", `rows[${i}] is not an object`)
      for (const [name, value] of Object.entries(row)) {
        const type = types.get(name)
        if (type === undefined) return badRequest(c, "InvalidRequest", `rows[${i}]: table ${table.name} has no column ${name}`)
        const problem = valueProblem(type, value)
        if (problem !== undefined) return badRequest(c, "InvalidRequest", `rows[${i}].${name}: ${problem}`)
      }
    }
    const at = now()
    const large = [...dataset.tables.values()].some((candidate) => candidate.rows.length >= LIMITS.largeTableRows)
    const postWait = large
      ? waitToFit(dataset.posts, at, 3_600_000, LIMITS.postsPerHourWhenLarge, 1)
      : waitToFit(dataset.posts, at, 60_000, LIMITS.postsPerMinute, 1)
    if (postWait > 0) {
      counts.throttled++
      return throttle(
        c,
        realSeconds(postWait),
        "You have exceeded the amount of requests allowed in the current time frame and further requests will fail."
      )
    }
    const rowsWait = waitToFit(dataset.rowsAdded, at, 3_600_000, LIMITS.rowsPerHourPerDataset, rows.length)
    if (rowsWait > 0) {
      counts.throttled++
      return throttle(c, realSeconds(rowsWait), "You are over your rows per hour limit for this dataset.")
    }
    const cap = dataset.retention === "basicFIFO" ? Number.POSITIVE_INFINITY : LIMITS.noneRetentionRows
    if (table.rows.length + rows.length > cap)
      return badRequest(
        c,
        "InvalidRequest",
        `table ${table.name} would hold ${table.rows.length + rows.length} rows, more than the ${LIMITS.noneRetentionRows} a table without retention may`
      )
    // The POST would be accepted: now it may meet an injected fault. Those that store nothing count against no limit.
    const fault = drawFault()
    if (fault !== undefined && fault !== "500-after") {
      injected[fault]++
      if (fault === "429")
        return throttle(c, 1, "You have exceeded the amount of requests allowed in the current time frame and further requests will fail.")
      return fault === "503" ? unavailable(c, 1) : serverError(c)
    }
    dataset.posts.events.push({ at, weight: 1 })
    dataset.rowsAdded.events.push({ at, weight: rows.length })
    const intake = dataset.intake
    intake.rows += rows.length
    intake.posts++
    notePeak(intake.rowsPerHour, at, rows.length)
    notePeak(intake.postsPerMinute, at, 1)
    notePeak(intake.postsPerHour, at, 1)
    dataset.pending++
    try {
      if ((options.postLatencyMs ?? 0) > 0) await new Promise((resolveLater) => setTimeout(resolveLater, options.postLatencyMs))
      table.rows.push(...rows.map((row) => ({ ...row })))
      // basicFIFO keeps the newest rows only.
      if (dataset.retention === "basicFIFO" && table.rows.length > LIMITS.fifoRows)
        table.rows.splice(0, table.rows.length - LIMITS.fifoRows)
    } finally {
      dataset.pending--
    }
    if (fault === "500-after") {
      injected[fault]++
      return serverError(c)
    }
    return c.body(null, 200)
  })

  app.delete(rowsRoute, (c) => {
    if (workspaceOf(c) === undefined) return missingWorkspace(c)
    const dataset = datasetOf(c)
    if (dataset === undefined) return missingDataset(c)
    const table = dataset.tables.get(c.req.param("table"))
    if (table === undefined) return notFound(c, "ItemNotFound", `Table '${c.req.param("table")}' not found in dataset`)
    table.rows.length = 0
    return c.body(null, 200)
  })

  /** `Unknown` while it runs (as Power BI reports one in progress), then `Completed` or `Failed`. */
  const refreshStatus = (refresh: Refresh, at: number) => (at < refresh.endTime ? "Unknown" : refresh.fails ? "Failed" : "Completed")
  app.post(`${API}/groups/:group/datasets/:dataset/refreshes`, (c) => {
    const workspace = workspaceOf(c)
    if (workspace === undefined) return missingWorkspace(c)
    const dataset = datasetOf(c)
    if (dataset === undefined) return missingDataset(c)
    if (dataset.push) return badRequest(c, "InvalidRequest", `Dataset ${dataset.id} is a push dataset and cannot be refreshed`)
    const at = now()
    if (dataset.refreshes.some((refresh) => refreshStatus(refresh, at) === "Unknown"))
      return badRequest(c, "InvalidRequest", "Another refresh request is already executing for this dataset")
    if (
      workspace.capacity === "shared" &&
      dataset.refreshes.filter((refresh) => refresh.startTime > at - 86_400_000).length >= LIMITS.sharedRefreshesPerDay
    )
      return badRequest(
        c,
        "Request Throttled",
        "Invalid dataset refresh request. Number of refresh requests in last 24 hours exceeded limit"
      )
    const refresh: Refresh = {
      requestId: randomUUID(),
      refreshType: "ViaApi",
      startTime: at,
      endTime: at + (dataset.refreshMs ?? options.refreshMs ?? 60_000),
      fails: dataset.failRefreshes === true
    }
    dataset.refreshes.push(refresh)
    c.header("x-ms-request-id", refresh.requestId)
    c.header("Location", `${origin}${API}/groups/${workspace.id}/datasets/${dataset.id}/refreshes/${refresh.requestId}`)
    return c.body(null, 202)
  })

  app.get(`${API}/groups/:group/datasets/:dataset/refreshes`, (c) => {
    if (workspaceOf(c) === undefined) return missingWorkspace(c)
    const dataset = datasetOf(c)
    if (dataset === undefined) return missingDataset(c)
    const at = now()
    const top = Math.max(1, Math.min(60, Number(c.req.query("$top") ?? "60") || 60))
    const value = [...dataset.refreshes]
      .reverse()
      .slice(0, top)
      .map((refresh) => {
        const status = refreshStatus(refresh, at)
        return {
          requestId: refresh.requestId,
          id: refresh.startTime,
          refreshType: refresh.refreshType,
          startTime: new Date(refresh.startTime).toISOString(),
          ...(status === "Unknown" ? {} : { endTime: new Date(refresh.endTime).toISOString() }),
          status,
          ...(status === "Failed" ? { serviceExceptionJson: REFRESH_FAILURE } : {})
        }
      })
    return c.json({ "odata.context": `${origin}${API}/groups/${c.req.param("group")}/$metadata#refreshes`, value })
  })

  /**
   * Datasets - Execute Queries In Group: one DAX query of the subset in `dax.ts`, one result table.
   * An unknown workspace or dataset is 404 first; then the request counts against its user's 120 a
   * minute (429 past them); then the body and the query are checked (400).
   */
  app.post(`${API}/groups/:group/datasets/:dataset/executeQueries`, async (c) => {
    if (workspaceOf(c) === undefined) return missingWorkspace(c)
    const dataset = datasetOf(c)
    if (dataset === undefined) return missingDataset(c)
    const clientId = c.get("clientId")
    const window = queryWindows.get(clientId) ?? newWindow()
    queryWindows.set(clientId, window)
    const at = now()
    const wait = waitToFit(window, at, 60_000, LIMITS.queriesPerMinutePerUser, 1)
    if (wait > 0) {
      counts.throttled++
      return throttle(
        c,
        realSeconds(wait),
        `You have exceeded the ${LIMITS.queriesPerMinutePerUser} query requests a user may send in a minute.`
      )
    }
    window.events.push({ at, weight: 1 })
    counts.queries++
    const body = (await c.req.json().catch(() => undefined)) as
      { queries?: unknown; serializerSettings?: { includeNulls?: unknown } | null } | null | undefined
    if (body === null || typeof body !== "object" || !Array.isArray(body.queries))
      return badRequest(c, "InvalidRequest", 'the body must be {"queries":[{"query":"<DAX>"}]}')
    if (body.queries.length !== 1)
      return badRequest(
        c,
        "InvalidRequest",
        `${body.queries.length} queries in the request; executeQueries takes exactly one query per call`
      )
    const query = (body.queries[0] as { query?: unknown } | null)?.query
    if (typeof query !== "string") return badRequest(c, "InvalidRequest", "queries[0].query must be the DAX query as a string")
    const includeNulls = body.serializerSettings?.includeNulls ?? false
    if (typeof includeNulls !== "boolean")
      return badRequest(c, "InvalidRequest", `serializerSettings.includeNulls must be true or false, got ${JSON.stringify(includeNulls)}`)
    const outcome = runDax(query, [...dataset.tables.values()])
    if (!outcome.ok) return queryError(c, outcome.message)
    return c.json({ results: [{ tables: [{ rows: [resultRow(outcome.value, includeNulls)] }] }] })
  })

  const tableRowsOf = (groupId: string, datasetId: string, table: string) =>
    workspaces.get(groupId)?.datasets.get(datasetId)?.tables.get(table)?.rows
  const datasetStatsOf = (groupId: string, datasetId: string): EmulatorDatasetStats | undefined => {
    const intake = workspaces.get(groupId)?.datasets.get(datasetId)?.intake
    return intake === undefined
      ? undefined
      : {
          rowsAdded: intake.rows,
          postsAccepted: intake.posts,
          peakRowsPerHour: intake.rowsPerHour.peak,
          peakPostsPerMinute: intake.postsPerMinute.peak,
          peakPostsPerHour: intake.postsPerHour.peak
        }
  }
  const datasetsOf = (groupId: string): ReadonlyArray<EmulatorDatasetView> | undefined => {
    const workspace = workspaces.get(groupId)
    return workspace === undefined
      ? undefined
      : [...workspace.datasets.values()].map((dataset) => ({
          id: dataset.id,
          name: dataset.name,
          push: dataset.push,
          defaultRetentionPolicy: dataset.retention,
          tables: [...dataset.tables.values()].map((table) => ({
            name: table.name,
            columns: table.columns.map(({ name, dataType }) => ({ name, dataType })),
            measures: table.measures.map(({ name, expression }) => ({ name, expression })),
            rowCount: table.rows.length
          })),
          relationships: [...dataset.relationships]
        }))
  }
  const statsNow = (): EmulatorStats => ({ ...counts, injected: { ...injected } })
  const reportsPart = mountReports(
    app,
    {
      api: API,
      origin: () => origin,
      capacityOf: (groupId) => workspaces.get(groupId)?.capacity,
      tableOf: (groupId, datasetId, name) => {
        const table = workspaces.get(groupId)?.datasets.get(datasetId)?.tables.get(name)
        return table === undefined ? undefined : { columns: table.columns, rows: table.rows }
      }
    },
    options
  )
  app.get("/_emulator/reports/stats", (c) => c.json(reportsPart.stats()))

  app.get("/_emulator/stats", (c) => c.json(statsNow()))
  app.get("/_emulator/groups/:group/datasets", (c) => {
    const value = datasetsOf(c.req.param("group"))
    return value === undefined ? c.json({ error: "no such workspace" }, 404) : c.json({ value })
  })
  app.get("/_emulator/groups/:group/datasets/:dataset/stats", (c) => {
    const stats = datasetStatsOf(c.req.param("group"), c.req.param("dataset"))
    return stats === undefined ? c.json({ error: "no such dataset" }, 404) : c.json(stats)
  })
  app.get("/_emulator/groups/:group/datasets/:dataset/tables/:table/rows", (c) => {
    const rows = tableRowsOf(c.req.param("group"), c.req.param("dataset"), c.req.param("table"))
    return rows === undefined ? c.json({ error: "no such table" }, 404) : c.json({ rows })
  })

  const { url, port, close } = await listen(app.fetch, options.port ?? 0, options.host)
  origin = url
  return {
    url: origin,
    authorityFor: (tenantId) => ({
      authority: `https://localhost:${port}/${tenantId}`,
      knownAuthorities: [`localhost:${port}`],
      authorityMetadata: JSON.stringify(metadataFor(origin, tenantId))
    }),
    expireTokens: () => tokens.clear(),
    stats: statsNow,
    datasetStats: datasetStatsOf,
    tableRows: (groupId, datasetId, table) => {
      const rows = tableRowsOf(groupId, datasetId, table)
      return rows === undefined ? undefined : rows.map((row) => ({ ...row }))
    },
    datasets: datasetsOf,
    reportStats: reportsPart.stats,
    addReport: reportsPart.addReport,
    close
  }
}

/** The OpenID configuration of the emulated tenant: its token endpoint over plain HTTP. */
const metadataFor = (origin: string, tenantId: string) => ({
  issuer: `https://localhost/${tenantId}/v2.0`,
  token_endpoint: `${origin}/${tenantId}/oauth2/v2.0/token`,
  authorization_endpoint: `${origin}/${tenantId}/oauth2/v2.0/authorize`,
  jwks_uri: `${origin}/${tenantId}/discovery/v2.0/keys`,
  end_session_endpoint: `${origin}/${tenantId}/oauth2/v2.0/logout`,
  token_endpoint_auth_methods_supported: ["client_secret_post", "private_key_jwt", "client_secret_basic"],
  response_types_supported: ["code", "id_token", "code id_token", "id_token token"],
  scopes_supported: ["openid", "profile", "email", "offline_access"],
  subject_types_supported: ["pairwise"],
  id_token_signing_alg_values_supported: ["RS256"]
})
