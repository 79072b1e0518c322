import { realpathSync } from "node:fs"
import { join } from "node:path"
import { fileURLToPath } from "node:url"
import { type ParseArgsConfig, parseArgs } from "node:util"
import { type JetStreamManager, jetstream, jetstreamManager } from "@nats-io/jetstream"
import { connect } from "@nats-io/transport-node"
import { Effect } from "effect"
import postgres from "postgres"
import { serveProjections } from "../consumers/serve.ts"
import { powerBiSettings } from "../powerbi/auth.ts"
import { reportsApi } from "../reports/api.ts"
import { consoleApi, freshConsoleKey } from "../console/api.ts"
import { REPORTS_OPTIONS, REPORTS_USAGE, reportsCommand } from "../reports/cli.ts"
import { ensureJobTables } from "../reports/jobs.ts"
import { connectReports, runExportWorkers } from "../reports/service.ts"
import { reportSettings } from "../reports/settings.ts"
import { projectionsFor } from "../projections/index.ts"
import { describePowerBiFailure, POWERBI_OPTIONS, powerBiCommand, runPushers, runRefresher } from "../powerbi/cli.ts"
import { LOCAL_IMPORT_DATASET, LOCAL_WORKSPACE, startLocalPowerBi } from "./local/powerbi.ts"
import { connectProjector } from "./local/projector.ts"
import { registerDemoReport } from "./local/reports.ts"
import { startPostgres } from "./postgres/database.ts"
import {
  DEAD_LETTERS_OPTIONS,
  deadLettersCommand,
  describeMetricsAddressInUse,
  PROJECT_OPTIONS,
  projectCommand,
  rebuildCommand,
  statusCommand
} from "../consumers/cli.ts"
import { type ContractName, defaultSources, type Scheme } from "../contracts/sources.ts"
import { loadEdgeConfig } from "../edge/config.ts"
import { PROJECTOR_INBOX_PREFIX } from "../contracts/log.ts"
import { REPORTS_ADMIN_SCOPE } from "../contracts/reports.ts"
import { alowareCall, erasureEvents, hubspotBatch, oeeEvents, postSigned, retailEvents, storeEvents } from "./local/samples.ts"
import { generateSecret, generateSecrets, startEdgeStack } from "./local/stack.ts"
import { startClusterStack } from "./local/cluster-stack.ts"
import { topologyOf, validateTopology } from "./nats/topology.ts"
import { clusterStatus } from "./nats/cluster-status.ts"
import { clusterLines, edgeLines } from "./status.ts"
import { edgeHealth } from "../consumers/status.ts"
import {
  changeLocalSecrets,
  edgeSecretsOf,
  LOCAL_STATE_DIR as STATE_DIR,
  LOCAL_STATE_FILE as STATE_FILE,
  type LocalState,
  readLocalState,
  withLocalMesh,
  writeLocalState
} from "./local/state.ts"
import { commaList, NATS_URL, natsSettings, optionalSetting, requiredSetting, type SettingSource } from "../platform/settings.ts"
import { chaosLine, runChaos } from "./local/chaos.ts"
import { logEvent, setLogLevel } from "../platform/logger.ts"
import { readQuarantine, redriveQuarantined } from "./quarantine.ts"
import { applyStreams, applyTopologyStreams, DEFAULT_STREAM_SETTINGS, streamDeclarations } from "./streams.ts"
import {
  ALL_ROWS,
  authenticate,
  createApiKey,
  ensureApiKeys,
  ensureReaderLogin,
  keysCommand,
  marts,
  READ_POOL_SIZE,
  readerConnection,
  readerLoginCommand,
  serveApiCommand,
  serveReadApi,
  streamsFor
} from "../read/index.ts"
import { KEYS_CREATE_OPTIONS, READER_LOGIN_OPTIONS, SERVE_API_OPTIONS } from "../read/cli.ts"

/** The `options` of a `parseArgs` call: a command's option table. */
type OptionTable = NonNullable<ParseArgsConfig["options"]>

const UP_OPTION_LINES = `      --port N            edge HTTP port (default 8787)
      --nats-port N       NATS client port (default 14222; websocket N+1, monitor N+2)
      --pg-port N         embedded Postgres port (default 15432)
      --api-port N        read API port (default 8788)
      --powerbi-port N    Power BI emulator port (default 8790)
      --metrics-port N    the projections' metrics and health on 127.0.0.1 (default 9464)
      --rotate-secrets    a new secret for every source; the one it replaces still verifies (a rotation in progress)
      --retire-previous-secrets
                          only the current secrets verify from now on (the rotation is over)
      SOURCES='{"ci":{"contract":"warehouse","scheme":"hub-signature-256"}}'
                          further sources, or changes to the default ones, as the deployed edge takes them
      WEBHOOK_SECRETS='{"ci":["current secret","previous secret"]}'
                          the secrets of the sources it names, as the deployed edge takes them (the first signs samples)`

const UP_USAGE = `  up                      run the local mesh: nats-server, Postgres (DATABASE_URL or embedded), the edge Worker in workerd, the projections
${UP_OPTION_LINES}`

const CLUSTER_USAGE = `  cluster up [--regions eu,us]
                          the same mesh beyond one machine, on loopback: a hub of three nats-servers (R3 streams), a leaf
                          server per region sourced into it, an edge Worker per region (ports --port, +10, +20 ...); and up's options:
${UP_OPTION_LINES}`

const PROJECT_USAGE = `  project [name...]       run projections live (default: all), as NATS_URL, NATS_USER, NATS_PASSWORD into DATABASE_URL; without
                          DATABASE_URL, into the local mesh's database, as another replica of npm run up's projections
      --batch-size N      events per batch and transaction (default 500; PROJECT_BATCH_SIZE)
      --metrics-port N    metrics and health (default 9464; METRICS_PORT); 0 for no listener, another N beside npm run up
      --metrics-host H    the address they listen on (default 127.0.0.1; METRICS_HOST)
      --max-dead-letters-in-a-row N
                          a projection stops after N dead letters in a row (default 50; MAX_DEAD_LETTERS_IN_A_ROW)`

const QUARANTINE_USAGE = `  quarantine list [source] [--all] | quarantine redrive <id>...
                          events the contracts refused (kept as received, with their issues; --all: the re-driven too); a
                          re-drive checks them again with the current contract and appends those that pass, once`

const STREAMS_USAGE = `  streams apply           declare the log's streams on a NATS server (idempotent)
      --url URL           nats://host:port, comma-separated for a cluster (default $NATS_URL or nats://127.0.0.1:4222)
      --user U            (default $NATS_USER or admin; the password is read from $NATS_PASSWORD)
      --duplicate-window-minutes N   (default ${DEFAULT_STREAM_SETTINGS.duplicateWindowMs / 60_000})
      --replicas N        (default 1; with --regions 3)
      --regions eu,us     a cluster: each region's streams in its JetStream domain (through the hub), then the hub's sourcing them`

/** Secrets and passwords survive restarts of the local mesh, so its store and senders keep working. */
const loadOrCreateState = (edgeUrl: string): LocalState => {
  const existing = readLocalState()
  const password = () => `p${crypto.randomUUID().replaceAll("-", "")}`
  if (existing !== undefined)
    // A state file from before the report export service has no password for its user yet.
    return { ...existing, edgeUrl, natsPasswords: { ...existing.natsPasswords, reports: existing.natsPasswords.reports ?? password() } }
  return {
    edgeUrl,
    secrets: generateSecrets(),
    natsPasswords: { admin: password(), edge: password(), projector: password(), reports: password() }
  }
}

const SHUTDOWN_SIGNALS: ReadonlyArray<NodeJS.Signals> = ["SIGINT", "SIGTERM", "SIGHUP"]

/** The process's shutdown-signal listeners now, and a way to take off those added after. */
const signalListeners = () => {
  const before = new Map(SHUTDOWN_SIGNALS.map((signal) => [signal, process.listeners(signal)]))
  return {
    removeAdded: () => {
      for (const signal of SHUTDOWN_SIGNALS)
        for (const listener of process.listeners(signal)) if (!before.get(signal)?.includes(listener)) process.off(signal, listener)
    }
  }
}

/** The log and the edge of the local mesh: one nats-server and one edge, or a hub cluster, regions and an edge per region. */
interface LocalLog {
  /** Every server a client of the log connects to. */
  readonly urls: ReadonlyArray<string>
  readonly projector: { readonly user: string; readonly password: string }
  readonly jsm: JetStreamManager
  /** The edge of each region (`default` for one server). */
  readonly edges: ReadonlyArray<{ readonly region: string; readonly url: string }>
  readonly lines: ReadonlyArray<string>
  readonly dispose: () => Promise<void>
}

/** What `mesh up` parses. */
export const UP_OPTIONS = {
  port: { type: "string", default: "8787" },
  "nats-port": { type: "string", default: "14222" },
  "pg-port": { type: "string", default: "15432" },
  "metrics-port": { type: "string", default: "9464" },
  "api-port": { type: "string", default: "8788" },
  "powerbi-port": { type: "string", default: "8790" },
  "rotate-secrets": { type: "boolean", default: false },
  "retire-previous-secrets": { type: "boolean", default: false }
} as const satisfies OptionTable

/** What `mesh cluster up` parses. */
export const CLUSTER_UP_OPTIONS = { ...UP_OPTIONS, regions: { type: "string", default: "eu,us" } } as const satisfies OptionTable

/** A source of the local edge: how it signs, and the contract its sample traffic follows. */
interface LocalSource {
  readonly scheme: Scheme
  readonly contract: ContractName
  /** `WEBHOOK_SECRETS`' list for it, when given. */
  readonly given: ReadonlyArray<string>
}

/**
 * The local edge's sources, the defaults and those `SOURCES` declares, with `WEBHOOK_SECRETS`'
 * lists: checked as the deployed edge checks them, so a mistake stops `up` with the edge's own
 * message instead of a 503 on every webhook.
 */
export const localSources = (settings: { readonly SOURCES?: string | undefined; readonly WEBHOOK_SECRETS?: string | undefined }) => {
  const given = Object.fromEntries(Object.entries(settings).filter(([, value]) => value !== undefined && value !== ""))
  const loaded = Effect.runSync(Effect.result(loadEdgeConfig({ NATS_WS_URL: "ws://127.0.0.1:1", ...given })))
  if (loaded._tag === "Failure")
    throw new Error(
      `${loaded.failure.reason} (the local edge takes SOURCES and WEBHOOK_SECRETS as the deployed one does: docs/operations.md)`
    )
  return new Map<string, LocalSource>(
    [...loaded.success.sources].map(([name, source]) => [name, { scheme: source.scheme, contract: source.contract, given: source.secrets }])
  )
}

/** The `{name: value}` of `names` only: the local state keeps secrets of sources a later `SOURCES` may no longer declare. */
const only = <A>(record: Readonly<Record<string, A>>, names: ReadonlyArray<string>): Record<string, A> =>
  Object.fromEntries(Object.entries(record).filter(([name]) => names.includes(name)))

const up = async (args: ReadonlyArray<string>, shape: "single" | "cluster") => {
  const values =
    shape === "cluster"
      ? parseArgs({ args: [...args], options: CLUSTER_UP_OPTIONS }).values
      : { ...parseArgs({ args: [...args], options: UP_OPTIONS }).values, regions: undefined }
  const port = Number(values.port)
  const natsPort = Number(values["nats-port"])
  const setting = (name: string) => optionalSetting({ env: process.env }, { env: name })
  const sourcesSetting = setting("SOURCES")
  const sources = localSources({ SOURCES: sourcesSetting, WEBHOOK_SECRETS: setting("WEBHOOK_SECRETS") })
  const sourceNames = [...sources.keys()]
  const created = loadOrCreateState(`http://127.0.0.1:${port}`)
  const newPassword = () => `p${crypto.randomUUID().replaceAll("-", "")}`
  const state = {
    ...created,
    ...changeLocalSecrets(created, {
      sources: sourceNames,
      generate: (name) => generateSecret(sources.get(name)?.scheme ?? "hubspot"),
      given: Object.fromEntries([...sources].filter(([, source]) => source.given.length > 0).map(([name, source]) => [name, source.given])),
      rotate: values["rotate-secrets"],
      retirePrevious: values["retire-previous-secrets"]
    }),
    sources: sourcesSetting,
    natsPasswords: { ...created.natsPasswords, leaf: created.natsPasswords.leaf ?? newPassword() },
    readerPassword: created.readerPassword ?? newPassword(),
    pgPassword: created.pgPassword ?? newPassword()
  }
  writeLocalState(state)
  const secrets = only(state.secrets, sourceNames)
  const previousSecrets = only(state.previousSecrets ?? {}, sourceNames)
  const edgeSettings = sourcesSetting === undefined ? {} : { SOURCES: sourcesSetting }
  // Miniflare installs signal handlers that stop its servers and exit at once; `up` takes them off
  // and stops everything itself, consumers drained first.
  const foreignHandlers = signalListeners()
  const pg = await startPostgres({ dataDir: join(STATE_DIR, "postgres"), port: Number(values["pg-port"]), password: state.pgPassword })
  const log: LocalLog =
    shape === "single"
      ? await (async () => {
          const stack = await startEdgeStack({
            secrets,
            previousSecrets,
            settings: edgeSettings,
            edgePort: port,
            edgePersistDir: join(STATE_DIR, "edge"),
            verbose: true,
            nats: {
              port: natsPort,
              wsPort: natsPort + 1,
              monitorPort: natsPort + 2,
              storeDir: join(STATE_DIR, "nats"),
              passwords: state.natsPasswords,
              name: "ingest-local"
            }
          })
          return {
            urls: [stack.nats.url],
            projector: stack.nats.projector,
            jsm: stack.jsm,
            edges: [{ region: "default", url: stack.edge.url }],
            lines: [`  NATS       ${stack.nats.url}  (websocket ${stack.nats.wsUrl}, monitor ${stack.nats.monitorUrl})`],
            dispose: stack.dispose
          }
        })()
      : await (async () => {
          const regions = commaList(String(values.regions))
          const stack = await startClusterStack({
            topology: validateTopology(topologyOf(regions)),
            storeRoot: join(STATE_DIR, "cluster"),
            passwords: state.natsPasswords,
            secrets,
            // Every edge of the cluster takes the previous secrets too, in the edge's own setting.
            edgeSettings: { ...edgeSettings, WEBHOOK_SECRETS: JSON.stringify(edgeSecretsOf({ secrets, previousSecrets })) },
            edgePorts: regions.map((_, i) => port + i * 10),
            edgePersistRoot: join(STATE_DIR, "edge-regions"),
            verbose: true
          })
          return {
            urls: stack.cluster.hub.urls,
            projector: stack.cluster.hub.projector,
            jsm: stack.jsm,
            edges: stack.edges.map((edge) => ({ region: edge.region, url: edge.edge.url })),
            lines: [
              `  NATS hub   ${stack.cluster.hub.urls.join(",")}  (three servers, R3 streams)`,
              ...stack.cluster.regions.map(
                (region) => `  region ${region.name.padEnd(4)} leaf ${region.url} (domain ${region.name}, websocket ${region.wsUrl})`
              ),
              ...stack.edges.map((edge) => `  edge ${edge.region.padEnd(6)} ${edge.edge.url}  (requests arrive from colo ${edge.colo})`)
            ],
            dispose: stack.dispose
          }
        })()
  const edgeUrl = log.edges[0]?.url as string
  const projections = projectionsFor({ env: process.env })
  const sql = postgres(pg.url, { onnotice: () => {}, max: Object.keys(projections).length + 3 })
  await ensureApiKeys(sql)
  // The saved key, unless this database does not know it (a new DATABASE_URL, a wiped .mesh/postgres).
  const saved =
    state.apiKey === undefined
      ? undefined
      : await authenticate(sql, state.apiKey).then(
          // A key saved before `*` stopped covering the admin scopes is made again with the report registry's.
          (key) => (key.marts.includes(REPORTS_ADMIN_SCOPE) ? state.apiKey : undefined),
          () => undefined
        )
  const apiKey =
    saved ?? (await createApiKey(sql, "local mesh (npm run up)", ["*", REPORTS_ADMIN_SCOPE], [...marts, REPORTS_ADMIN_SCOPE], ALL_ROWS)).key
  const reader = postgres(await ensureReaderLogin(sql, pg.url, "ingest_api", state.readerPassword), {
    ...readerConnection,
    max: READ_POOL_SIZE
  })
  // The report export service beside the read API, as its own NATS user: registry changes, export jobs and workers.
  const reportsNats = { url: log.urls.join(","), servers: log.urls, user: "reports", password: state.natsPasswords.reports as string }
  const reportsNc = await connectReports(reportsNats)
  await ensureJobTables(sql)
  // The operator's console beside it, as a NATS admin (it re-drives the quarantine), behind a key of its own scope.
  const consoleNc = await connect({ servers: [...log.urls], user: "admin", pass: state.natsPasswords.admin, name: "ingest-console" })
  const consoleJsm = await jetstreamManager(consoleNc)
  const consoleKey = await freshConsoleKey(sql, "local console (npm run up)")
  const operatorConsole = consoleApi({
    sql,
    nc: consoleNc,
    projections: Object.values(projections),
    edgeUrls: log.edges.map((edge) => edge.url),
    quarantine: {
      list: () => readQuarantine(jetstream(consoleNc), consoleJsm),
      redrive: (ids) => redriveQuarantined(jetstream(consoleNc), consoleJsm, ids)
    }
  })
  const api = await serveReadApi({
    sql: reader,
    port: Number(values["api-port"]),
    maxStreams: streamsFor(READ_POOL_SIZE),
    extensions: [reportsApi({ sql, js: jetstream(reportsNc) }), operatorConsole]
  })
  // Power BI, emulated: the push sink mirrors the crm marts into a push dataset as sample traffic arrives.
  const powerbi = await startLocalPowerBi({
    port: Number(values["powerbi-port"]),
    importDatasets: [{ groupId: LOCAL_WORKSPACE, id: LOCAL_IMPORT_DATASET, name: "Mesh OEE (OData, import)", refreshMs: 20_000 }]
  })
  const powerbiEnv = {
    ...powerbi.env,
    POWERBI_REFRESH: process.env.POWERBI_REFRESH ?? `oee=${LOCAL_WORKSPACE}/${LOCAL_IMPORT_DATASET}`,
    POWERBI_REFRESH_MIN_INTERVAL: process.env.POWERBI_REFRESH_MIN_INTERVAL ?? "60"
  }
  writeLocalState({
    ...state,
    apiKey,
    apiUrl: api.url,
    edgeUrl,
    natsUrl: log.urls.join(","),
    ...(shape === "cluster"
      ? { regions: log.edges.map((edge) => edge.region), edgeUrls: Object.fromEntries(log.edges.map((edge) => [edge.region, edge.url])) }
      : { regions: undefined, edgeUrls: undefined }),
    databaseUrl: pg.url,
    powerbi: powerbiEnv
  })
  const projector = await connectProjector({ url: log.urls, projector: log.projector })
  const stop = new AbortController()
  const consumers = serveProjections({
    sql,
    nc: projector,
    jsm: log.jsm,
    projections: Object.values(projections),
    signal: stop.signal,
    metricsPort: Number(values["metrics-port"]),
    metricsHost: "127.0.0.1"
  })
  const powerbiSource = { env: { ...process.env, ...powerbiEnv, DATABASE_URL: pg.url } }
  const exportWorkers = await runExportWorkers({
    databaseUrl: pg.url,
    nats: reportsNats,
    settings: reportSettings({ env: process.env }),
    powerbi: powerBiSettings(powerbiSource)
  })
  // A report to export at once: the emulator's retail demo, in the registry.
  void registerDemoReport({ emulator: powerbi.emulator, client: powerbi.client() }, LOCAL_WORKSPACE, { url: api.url, key: apiKey }).catch(
    (error: unknown) => console.error(`the demo report was not registered: ${error instanceof Error ? error.message : String(error)}`)
  )
  const pushing = runPushers({ source: powerbiSource, sql, signal: stop.signal }).catch((error: unknown) =>
    console.error(`the Power BI pusher stopped: ${describePowerBiFailure(error)}`)
  )
  const refreshing = runRefresher({ source: powerbiSource, sql, nc: projector, signal: stop.signal }).catch((error: unknown) =>
    console.error(`the Power BI refresher stopped: ${describePowerBiFailure(error)}`)
  )
  console.log(`
ingest mesh is up
  webhooks   POST ${edgeUrl}/v1/hooks/<source>   (sources: ${sourceNames.join(", ")}${sourcesSetting === undefined ? "" : "; SOURCES given"})
  health     GET  ${edgeUrl}/healthz
${log.lines.join("\n")}
  metrics    http://127.0.0.1:${values["metrics-port"]}/metrics
  read API   ${api.url}/docs  (OData ${api.url}/odata/<mart>/; key in .mesh/local.json "apiKey", or npm run mesh -- keys create)
  reports    ${api.url}/reports/admin?api_key=${apiKey}   picker ${api.url}/reports/picker?api_key=${apiKey}
  console    ${api.url}/console?api_key=${consoleKey}  (a console:admin key, new on every start)
  try Power BI  ${api.url}/api/oee/export/snapshots?format=csv&api_key=${apiKey}
  Power BI   ${powerbi.emulator.url} (emulated; workspace ${LOCAL_WORKSPACE})  npm run mesh -- powerbi status
  Postgres   ${pg.url}${pg.embedded ? " (embedded, data in .mesh/postgres)" : " (DATABASE_URL)"}  marts in schemas mart_<name>
  secrets    ${STATE_FILE}${Object.keys(previousSecrets).length === 0 ? "" : `  (the previous secrets of ${Object.keys(previousSecrets).join(", ")} still verify; --retire-previous-secrets ends that)`}
  try it     npm run mesh -- samples      then  npm run mesh -- status
Ctrl-C stops it; the log and the marts are kept in ${STATE_DIR}.
`)

  foreignHandlers.removeAdded()
  // Until a signal, or until a projection cannot go on: then the whole mesh stops and says why.
  const failed = await new Promise<unknown>((resolveStop) => {
    for (const signal of SHUTDOWN_SIGNALS) process.once(signal, () => resolveStop(undefined))
    consumers.then(
      () => resolveStop(undefined),
      (error: unknown) => resolveStop(error)
    )
  })
  if (failed !== undefined)
    console.error(
      (failed as { code?: unknown }).code === "EADDRINUSE"
        ? await describeMetricsAddressInUse("127.0.0.1", Number(values["metrics-port"]))
        : `a projection cannot go on: ${failed instanceof Error ? failed.message : String(failed)}`
    )
  console.log("stopping...")
  stop.abort()
  await consumers.catch(() => undefined)
  await pushing
  await refreshing
  await exportWorkers.stop()
  await powerbi.close()
  await api.close()
  operatorConsole.close()
  await consoleNc.close()
  await reportsNc.close()
  await reader.end({ timeout: 5 })
  await projector.close()
  await sql.end({ timeout: 5 })
  await log.dispose()
  await pg.stop()
  if (failed !== undefined) process.exitCode = 1
}

/** `mesh serve-api [--reports]`: the read API alone; with `--reports`, the report export service's API and pages beside it. */
const serveApi = async (args: ReadonlyArray<string>): Promise<void> => {
  if (!args.includes("--reports")) return serveApiCommand({ env: process.env }, args)
  const source: SettingSource = { env: process.env }
  const sql = postgres(requiredSetting(source, { env: "DATABASE_URL" }, "the report export API keeps its jobs in the marts' database"), {
    onnotice: () => {},
    max: 4
  })
  await ensureJobTables(sql)
  const nc = await connectReports(natsSettings(source, "reports"))
  try {
    await serveApiCommand(
      source,
      args.filter((arg) => arg !== "--reports"),
      [reportsApi({ sql, js: jetstream(nc), projectionWaitMs: reportSettings(source).projectionWaitMs })]
    )
  } finally {
    await nc.drain().catch(() => undefined)
    await sql.end({ timeout: 5 })
  }
}

/** Sample traffic for a source `SOURCES` declares, after its contract (none for the report registry's). */
const sampleOf = (contract: ContractName, now: number): unknown => {
  const day = new Date(now).toISOString().slice(0, 10)
  switch (contract) {
    case "hubspot":
      return hubspotBatch(10, { firstEventId: now, occurredAt: now })
    case "aloware":
      return alowareCall(now % 1_000_000_000, new Date(now).toISOString())
    case "warehouse":
      return erasureEvents(8, { firstId: now, day })
    case "oee":
      return oeeEvents("M-01", now)
    case "retail":
      return retailEvents("47", now)
    case "reports":
      return undefined
  }
}

/**
 * `mesh samples`: signed sample traffic for every source to the local mesh's edge, or to each
 * region's edge of `cluster up` — the sources `SOURCES` declared to the last `up` too, each signed
 * with its current secret as its scheme signs.
 */
const samples = async () => {
  const state = readLocalState()
  if (state === undefined) throw new Error("no local mesh found: start it first with `npm run up`")
  const sources = localSources({ SOURCES: state.sources })
  const edges: ReadonlyArray<[string, string]> = state.edgeUrls === undefined ? [["", state.edgeUrl]] : Object.entries(state.edgeUrls)
  for (const [i, [region, edgeUrl]] of edges.entries()) {
    // Each region's events of their own: ids apart, so every region adds to the marts.
    const now = Date.now() + i * 1000
    const traffic: ReadonlyArray<[string, unknown]> = [
      ["hubspot", hubspotBatch(10, { firstEventId: now, occurredAt: now })],
      ["aloware", alowareCall(now % 1_000_000_000, new Date(now).toISOString())],
      ["erasure", erasureEvents(8, { firstId: now, day: new Date(now).toISOString().slice(0, 10) })],
      ["oee", oeeEvents("M-01", now)],
      ["pos", retailEvents("47", now)],
      ["pos", [...retailEvents("49", now + 1), ...storeEvents()]],
      ...[...sources].flatMap(([name, source]): ReadonlyArray<[string, unknown]> => {
        const payload = name in defaultSources ? undefined : sampleOf(source.contract, now)
        return payload === undefined ? [] : [[name, payload]]
      })
    ]
    for (const [source, payload] of traffic) {
      const secret = state.secrets[source]
      const scheme = sources.get(source)?.scheme
      if (secret === undefined || scheme === undefined) continue
      const response = await postSigned(edgeUrl, source, payload, secret, { scheme })
      const answer = (await response.json()) as { accepted?: number; duplicates?: number; spooled?: number; message?: string }
      const outcome =
        response.status === 202
          ? `accepted ${answer.accepted}, duplicates ${answer.duplicates}${answer.spooled === undefined ? "" : `, spooled ${answer.spooled}`}`
          : answer.message
      console.log(`${region === "" ? "" : `${region.padEnd(4)} `}${source.padEnd(8)} ${response.status} ${outcome}`)
    }
  }
}

/** What `mesh streams apply` parses. */
export const STREAMS_APPLY_OPTIONS = {
  url: { type: "string" },
  user: { type: "string" },
  "duplicate-window-minutes": { type: "string", default: String(DEFAULT_STREAM_SETTINGS.duplicateWindowMs / 60_000) },
  // 1 on one server; a cluster's hub (--regions) is three servers, so 3 unless told.
  replicas: { type: "string" },
  regions: { type: "string" }
} as const satisfies OptionTable

const streamsApply = async (settings: SettingSource, args: ReadonlyArray<string>) => {
  // A password on the command line ends up in the shell's history and in every `ps` listing.
  if (args.some((arg) => arg === "--password" || arg.startsWith("--password=")))
    throw new Error(
      "streams apply takes the password from NATS_PASSWORD, not the command line: NATS_PASSWORD=… npm run mesh -- streams apply …"
    )
  const { values } = parseArgs({ args: [...args], options: STREAMS_APPLY_OPTIONS })
  const nats = natsSettings({ env: settings.env, flags: { "nats-url": values.url, "nats-user": values.user } }, "admin")
  const nc = await connect({ servers: [...nats.servers], user: nats.user, ...(nats.password === undefined ? {} : { pass: nats.password }) })
  try {
    const regions = listSetting(values.regions)
    const streamSettings = {
      duplicateWindowMs: Number(values["duplicate-window-minutes"]) * 60_000,
      replicas: Number(values.replicas ?? (regions === undefined ? DEFAULT_STREAM_SETTINGS.replicas : 3))
    }
    if (regions === undefined) {
      const changes = await applyStreams(await jetstreamManager(nc), streamDeclarations(streamSettings))
      for (const change of changes) console.log(`${change.name.padEnd(18)} ${change.action}`)
      return
    }
    // Each region's streams in its JetStream domain, reached through the hub, then the hub's, which source them.
    for (const change of await applyTopologyStreams(nc, validateTopology(topologyOf(regions)), streamSettings))
      console.log(`${change.domain.padEnd(6)} ${change.name.padEnd(18)} ${change.action}`)
  } finally {
    await nc.close()
  }
}

const listSetting = (value: string | undefined): ReadonlyArray<string> | undefined => (value === undefined ? undefined : commaList(value))

/**
 * `mesh status`: the projections; then, for a cluster (MESH_REGIONS, or the regions of the local
 * `cluster up`), per region whether the hub reaches its leaf and how far the hub's sources lag; then
 * each edge's shards and spools (EDGE_URL, comma-separated, or the local mesh's edges).
 */
const status = async () => {
  await statusCommand(local("projector"))
  const deployment = process.env.NATS_URL !== undefined && process.env.NATS_URL !== ""
  const state = deployment ? undefined : readLocalState()
  const regions = listSetting(process.env.MESH_REGIONS) ?? state?.regions
  if (regions !== undefined && regions.length > 0) {
    // As the projections' user, which may read stream and account info in every domain (infra/nats/hub.conf), on its own inbox prefix.
    const nats = natsSettings(local("projector"), "projector")
    const nc = await connect({
      servers: [...nats.servers],
      user: nats.user,
      ...(nats.password === undefined ? {} : { pass: nats.password }),
      name: "ingest-status",
      inboxPrefix: PROJECTOR_INBOX_PREFIX
    })
    try {
      console.log("")
      for (const line of clusterLines(await clusterStatus(nc, validateTopology(topologyOf(regions))))) console.log(line)
    } finally {
      await nc.close()
    }
  }
  const edges =
    listSetting(process.env.EDGE_URL) ??
    (state === undefined ? [] : state.edgeUrls === undefined ? [state.edgeUrl] : Object.values(state.edgeUrls))
  for (const edge of edges) {
    const health = await edgeHealth(edge)
    console.log("")
    for (const line of edgeLines(edge, health)) console.log(line)
  }
}

/** An admin connection to NATS: NATS_URL, NATS_USER (admin) and NATS_PASSWORD. */
const connectAdmin = async (source: SettingSource) => {
  requiredSetting(
    source,
    NATS_URL,
    "set NATS_URL, NATS_USER and NATS_PASSWORD (an admin of the log), or start a local mesh with `npm run up`"
  )
  const nats = natsSettings(source, "admin")
  return connect({
    servers: [...nats.servers],
    user: nats.user,
    ...(nats.password === undefined ? {} : { pass: nats.password }),
    name: "ingest-admin"
  })
}

/** What `mesh quarantine` parses besides its action, source and ids. */
export const QUARANTINE_OPTIONS = { all: { type: "boolean", default: false } } as const satisfies OptionTable

/** `mesh quarantine list [source] [--all] | redrive <id...>` */
const quarantine = async (source: SettingSource, args: ReadonlyArray<string>) => {
  const { values, positionals } = parseArgs({
    args: [...args],
    allowPositionals: true,
    options: QUARANTINE_OPTIONS
  })
  const [action, ...rest] = positionals
  if (action !== "list" && action !== "redrive") throw new Error(`usage:\n${QUARANTINE_USAGE}`)
  const nc = await connectAdmin(source)
  try {
    const js = jetstream(nc)
    const jsm = await jetstreamManager(nc)
    if (action === "list") {
      const records = (await readQuarantine(js, jsm, rest[0])).filter((record) => values.all || record.redriven === undefined)
      if (records.length === 0)
        console.log(values.all ? "the quarantine is empty" : "no quarantined events waiting (--all lists re-driven ones too)")
      for (const record of records) {
        const status =
          record.redriven === undefined
            ? "waiting"
            : `re-driven ${record.redriven.at} as ${record.redriven.subject} seq ${record.redriven.seq}`
        console.log(
          `#${record.id}  ${record.source}  key ${record.key ?? "-"}  received ${record.receivedAt}  event $[${record.index}] of its request  ${status}`
        )
        for (const issue of record.issues) console.log(`    ${issue.path}: ${issue.message}`)
        console.log(
          `    event: ${record.data.length > 300 ? `${record.data.slice(0, 300)}… (${record.data.length} characters)` : record.data}`
        )
      }
      return
    }
    const ids = rest.map((id) => {
      if (!/^\d+$/.test(id)) throw new Error(`quarantine ids are numbers (the # in quarantine list), got ${JSON.stringify(id)}`)
      return Number(id)
    })
    if (ids.length === 0) throw new Error(`usage:\n${QUARANTINE_USAGE}`)
    for (const report of await redriveQuarantined(js, jsm, ids)) console.log(`#${report.id}  ${report.outcome}: ${report.detail}`)
  } finally {
    await nc.close()
  }
}

/** What `mesh chaos` parses. */
export const CHAOS_OPTIONS = {
  events: { type: "string", default: "50000" },
  "kill-every-ms": { type: "string", default: "3000" }
} as const satisfies OptionTable

/** `mesh chaos [--events N]`: the chaos run against a mesh of its own; exits non-zero if anything was lost or doubled. */
const chaos = async (args: ReadonlyArray<string>) => {
  const { values } = parseArgs({ args: [...args], options: CHAOS_OPTIONS })
  const events = Number(values.events)
  if (!Number.isInteger(events) || events < 100)
    throw new Error(`--events must be a whole number of at least 100, got ${JSON.stringify(values.events)}`)
  // Progress on stderr, the verdict alone on stdout; the clean run's own log lines would drown it.
  setLogLevel("warn")
  const report = await runChaos({ events, killEveryMs: Number(values["kill-every-ms"]), log: (line) => console.error(line) })
  console.error(
    `chaos: ${report.kills} projection processes killed, nats-server restarted ${report.natsRestarts}, Postgres restarted ${report.postgresRestarts}, ${report.seconds.toFixed(0)} s`
  )
  console.log(chaosLine(report))
  if (report.lost > 0 || report.doubled > 0) process.exitCode = 1
}

/** Settings from the environment, with the local mesh's filled in where it names no deployment. */
const local = (role: Parameters<typeof withLocalMesh>[1]): SettingSource => ({ env: withLocalMesh(process.env, role) })

/** A database URL without its password, to say which database a process uses. */
const withoutPassword = (url: string): string => {
  try {
    const parsed = new URL(url)
    return `${parsed.protocol}//${parsed.username === "" ? "" : `${parsed.username}@`}${parsed.host}${parsed.pathname}`
  } catch {
    return "(a URL that does not parse)"
  }
}

/**
 * `mesh project`: without DATABASE_URL it projects into the database of the local mesh (`npm run
 * up`) from its log, as one more replica of the projections `up` runs, and says so before it starts:
 * a data engineer who meant a deployment sees at once where the rows go.
 */
const project = (args: ReadonlyArray<string>): Promise<void> => {
  const source = local("projector")
  const given = (name: string) => optionalSetting({ env: process.env }, { env: name }) !== undefined
  const database = source.env.DATABASE_URL
  if (!given("DATABASE_URL") && database !== undefined)
    logEvent(
      "warn",
      "DATABASE_URL is not set: projecting into the local mesh's database from its log, as another replica of the projections npm run up runs " +
        "(each event still lands once, but the work is done twice); set DATABASE_URL and NATS_URL to project into a deployment",
      { database: withoutPassword(database), log: source.env.NATS_URL, from: STATE_FILE }
    )
  return projectCommand(source, args)
}

/**
 * A `mesh` command: the words that name it, what `mesh <command> --help` prints, every option
 * table it parses (so its help cannot leave one out: infra/cli-help.int.test.ts) and what it does.
 */
export interface MeshCommand {
  readonly name: string
  readonly usage: string
  readonly options: ReadonlyArray<OptionTable>
  readonly run: (args: ReadonlyArray<string>) => Promise<void>
}

/** Every `mesh` command, in the order `mesh --help` lists them. */
export const MESH_COMMANDS: ReadonlyArray<MeshCommand> = [
  { name: "up", usage: UP_USAGE, options: [UP_OPTIONS], run: (args) => up(args, "single") },
  { name: "cluster up", usage: CLUSTER_USAGE, options: [CLUSTER_UP_OPTIONS], run: (args) => up(args, "cluster") },
  {
    name: "samples",
    usage: "  samples                 send signed sample traffic for every source (SOURCES' too) to a running local mesh",
    options: [],
    run: () => samples()
  },
  { name: "project", usage: PROJECT_USAGE, options: [PROJECT_OPTIONS], run: project },
  {
    name: "rebuild",
    usage: "  rebuild <name...>       rebuild projections from the log, switching readers atomically",
    options: [],
    run: (args) => rebuildCommand(local("projector"), args)
  },
  {
    name: "status",
    usage: `  status                  checkpoint, stream head, lag and dead letters per projection; for a cluster (MESH_REGIONS, or
                          the local cluster's) each region's leaf and source lag; each edge's spools (EDGE_URL, comma list)`,
    options: [],
    run: () => status()
  },
  {
    name: "dead-letters",
    usage: "  dead-letters list [name] | dead-letters redrive <name> (<id>... | --all)",
    options: [DEAD_LETTERS_OPTIONS],
    run: (args) => deadLettersCommand(local("projector"), args)
  },
  { name: "quarantine", usage: QUARANTINE_USAGE, options: [QUARANTINE_OPTIONS], run: (args) => quarantine(local("admin"), args) },
  {
    name: "keys",
    usage: `  keys create --name NAME --marts warehouse,oee|* [--stores 47,48 | --regions Northeast | --all-rows]
                          an API key for the read API, scoped to marts (printed once); a key for the retail mart names its rows
  keys list | keys revoke <id>...`,
    options: [KEYS_CREATE_OPTIONS],
    run: (args) => keysCommand(local("owner"), args)
  },
  {
    name: "reader-login",
    usage: `  reader-login <login> [--marts-only (--stores 47,48 | --regions Northeast | --all-rows)]
                          create the read-only ingest_reader group and a login in it (READER_PASSWORD); prints READ_DATABASE_URL;
                          with --marts-only or a row scope, a BI user's login that sees only those rows`,
    options: [READER_LOGIN_OPTIONS],
    run: (args) => readerLoginCommand(local("owner"), args)
  },
  {
    name: "serve-api",
    usage: `  serve-api [--port N] [--host H] [--reports]
                          the read API alone, as READ_DATABASE_URL (a role in the ingest_reader group), on H (default 0.0.0.0)
                          port N (default 8788); with --reports the report export API and pages too (DATABASE_URL as the
                          owner, NATS_URL as the reports user)`,
    options: [SERVE_API_OPTIONS, { reports: { type: "boolean" } }],
    run: serveApi
  },
  {
    name: "chaos",
    usage: `  chaos [--events N] [--kill-every-ms MS]
                          send N signed events (default 50,000) through a mesh of its own while killing the projection
                          process (at most every MS, default 3000), restarting nats-server and Postgres; compares every mart
                          with a clean run`,
    options: [CHAOS_OPTIONS],
    run: chaos
  },
  {
    name: "powerbi",
    usage: `  powerbi provision [--apply] | push [--once] | refresh | status | reload
                          Power BI (POWERBI_WORKSPACE, POWERBI_TENANT_ID, POWERBI_CLIENT_ID, POWERBI_CLIENT_SECRET; the local
                          emulator's while npm run up runs): create or check the push datasets, mirror the marts into them,
                          refresh the import datasets POWERBI_REFRESH lists after catch-up, their state, reload every table`,
    options: Object.values(POWERBI_OPTIONS),
    run: (args) => powerBiCommand(local("powerbi"), args)
  },
  { name: "reports", usage: REPORTS_USAGE, options: Object.values(REPORTS_OPTIONS), run: (args) => reportsCommand(local("reports"), args) },
  { name: "streams apply", usage: STREAMS_USAGE, options: [STREAMS_APPLY_OPTIONS], run: (args) => streamsApply({ env: process.env }, args) }
]

export const USAGE = `usage: npm run mesh -- <command> [--help]

${MESH_COMMANDS.map((command) => command.usage).join("\n")}

npm run mesh -- <command> --help prints one command's usage.
`

/** The command `argv` names, and the arguments after its name. */
const commandOf = (argv: ReadonlyArray<string>): { command: MeshCommand; args: ReadonlyArray<string> } | undefined => {
  for (const command of MESH_COMMANDS) {
    const words = command.name.split(" ")
    if (words.every((word, i) => argv[i] === word)) return { command, args: argv.slice(words.length) }
  }
  return undefined
}

const isHelp = (arg: string) => arg === "--help" || arg === "-h"

/** The arguments before `--`, after which nothing is an option. */
const optionsPart = (args: ReadonlyArray<string>) => (args.includes("--") ? args.slice(0, args.indexOf("--")) : args)

const main = async (argv: ReadonlyArray<string>): Promise<void> => {
  const [first, ...rest] = argv
  if (first === "help" || optionsPart(argv).some(isHelp)) {
    const asked = (first === "help" ? rest : argv).filter((arg) => !isHelp(arg))
    // `mesh cluster --help` as well as `mesh cluster up --help`: the command its first word names.
    const named = commandOf(asked)?.command ?? MESH_COMMANDS.find((command) => command.name.split(" ")[0] === asked[0])
    console.log(named === undefined ? USAGE : `usage: npm run mesh --\n${named.usage}`)
    return
  }
  const found = commandOf(argv)
  if (found === undefined) {
    console.error(USAGE)
    process.exitCode = first === undefined ? 0 : 2
    return
  }
  return found.command.run(found.args)
}

/** Whether this module is the process's entry (`tsx infra/cli.ts …`), not imported by a test that reads its tables. */
const isEntry = (): boolean => {
  try {
    return process.argv[1] !== undefined && realpathSync(process.argv[1]) === realpathSync(fileURLToPath(import.meta.url))
  } catch {
    return false
  }
}

if (isEntry())
  main(process.argv.slice(2)).catch((error: unknown) => {
    console.error(error instanceof Error ? error.message : String(error))
    process.exitCode = 1
  })
