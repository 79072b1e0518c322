import { join } from "node:path"
import { parseArgs } from "node:util"
import { type JetStreamManager, jetstream, jetstreamManager } from "@nats-io/jetstream"
import { connect } from "@nats-io/transport-node"
import postgres from "postgres"
import { serveProjections } from "../consumers/serve.ts"
import { powerBiSettings } from "../powerbi/auth.ts"
import { reportsApi } from "../reports/api.ts"
import { REPORTS_USAGE, reportsCommand } from "../reports/cli.ts"
import { ensureJobTables } from "../reports/jobs.ts"
import { connectReports, runExportWorkers } from "../reports/service.ts"
import { reportSettings } from "../reports/settings.ts"
import { projectionsFor } from "../projections/index.ts"
import { describePowerBiFailure, powerBiCommand, runPushers, runRefresher } from "../powerbi/cli.ts"
import { LOCAL_IMPORT_DATASET, LOCAL_WORKSPACE, startLocalPowerBi } from "./local/powerbi.ts"
import { connectProjector } from "./local/projector.ts"
import { registerDemoReport } from "./local/reports.ts"
import { startPostgres } from "./postgres/database.ts"
import { deadLettersCommand, projectCommand, rebuildCommand, statusCommand } from "../consumers/cli.ts"
import { defaultSources } from "../contracts/sources.ts"
import { PROJECTOR_INBOX_PREFIX } from "../contracts/log.ts"
import { alowareCall, erasureEvents, hubspotBatch, oeeEvents, postSigned, retailEvents, storeEvents } from "./local/samples.ts"
import { generateSecrets, startEdgeStack } from "./local/stack.ts"
import { startClusterStack } from "./local/cluster-stack.ts"
import { topologyOf, validateTopology } from "./nats/topology.ts"
import { clusterStatus } from "./nats/cluster-status.ts"
import { clusterLines, type EdgeHealth, edgeLines } from "./status.ts"
import {
  LOCAL_STATE_DIR as STATE_DIR,
  LOCAL_STATE_FILE as STATE_FILE,
  type LocalState,
  readLocalState,
  withLocalMesh,
  writeLocalState
} from "./local/state.ts"
import { commaList, NATS_URL, natsSettings, requiredSetting, type SettingSource } from "../platform/settings.ts"
import { chaosLine, runChaos } from "./local/chaos.ts"
import { setLogLevel } from "../platform/logger.ts"
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

const USAGE = `usage: npm run mesh -- <command>

  up                      run the local mesh: nats-server, Postgres (DATABASE_URL or embedded), the edge Worker in workerd, the projections
      --port N            edge HTTP port (default 8787)
      --nats-port N       NATS client port (default 14222; websocket N+1, monitor N+2)
      --pg-port N         embedded Postgres port (default 15432)
      --api-port N        read API port (default 8788)
      --powerbi-port N    Power BI emulator port (default 8790)
  cluster up [--regions eu,us]
                          the same mesh beyond one machine, on loopback: a hub of three nats-servers (R3 streams), a leaf
                          server per region sourced into it, an edge Worker per region (ports --port, +10, +20 ...)
  samples                 send signed sample traffic for every source to a running local mesh
  project [--batch-size N] [--metrics-port N] [--metrics-host H] [name...]
                          run projections live (default: all); NATS_URL, NATS_USER, NATS_PASSWORD, DATABASE_URL;
                          metrics and health on 127.0.0.1:9464 unless --metrics-host says otherwise
  rebuild <name...>       rebuild projections from the log, switching readers atomically
  status                  checkpoint, stream head, lag and dead letters per projection; for a cluster (MESH_REGIONS, or
                          the local cluster's) each region's leaf and source lag; each edge's spools (EDGE_URL, comma list)
  dead-letters list [name] | redrive <name> (<id>... | --all)
  quarantine list [source] [--all] | redrive <id>...
                          events the contracts refused (kept as received, with their issues); a re-drive
                          checks them again with the current contract and appends those that pass, once
  keys create --name NAME --marts warehouse,oee|*    an API key for the read API, scoped to marts (printed once)
  keys list | keys revoke <id>...
  reader-login <login>    create the read-only ingest_reader group and a login in it (READER_PASSWORD); prints READ_DATABASE_URL
  serve-api [--port N] [--reports]
                          the read API alone, as READ_DATABASE_URL (a role in the ingest_reader group); with --reports the
                          report export API and pages too (DATABASE_URL as the owner, NATS_URL as the reports user)
  chaos [--events N]      send N signed events (default 50,000) through a mesh of its own while killing the projection
                          process, restarting nats-server and Postgres; compares every mart with a clean run
  powerbi provision [--apply] | push [--once] | refresh | status | reload
                          Power BI (POWERBI_WORKSPACE, POWERBI_TENANT_ID, POWERBI_CLIENT_ID, POWERBI_CLIENT_SECRET; the local
                          emulator's while npm run up runs): create or check the push datasets, mirror the marts into them,
                          refresh the import datasets POWERBI_REFRESH lists after catch-up, their state, reload every table
${REPORTS_USAGE}
  streams apply           declare the log's streams on a NATS server (idempotent)
      --url URL           nats://host:port, comma-separated for a cluster (default $NATS_URL or nats://127.0.0.1:4222)
      --user U            (default $NATS_USER or admin; the password is read from $NATS_PASSWORD)
      --duplicate-window-minutes N   (default 10)
      --replicas N        (default 1; with --regions 3)
      --regions eu,us     a cluster: each region's streams in its JetStream domain (through the hub), then the hub's sourcing them
`

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

const up = async (args: ReadonlyArray<string>, shape: "single" | "cluster") => {
  const { values } = parseArgs({
    args: [...args],
    options: {
      port: { type: "string", default: "8787" },
      "nats-port": { type: "string", default: "14222" },
      "pg-port": { type: "string", default: "15432" },
      "metrics-port": { type: "string", default: "9464" },
      "api-port": { type: "string", default: "8788" },
      "powerbi-port": { type: "string", default: "8790" },
      ...(shape === "cluster" ? { regions: { type: "string" as const, default: "eu,us" } } : {})
    }
  })
  const port = Number(values.port)
  const natsPort = Number(values["nats-port"])
  const created = loadOrCreateState(`http://127.0.0.1:${port}`)
  const newPassword = () => `p${crypto.randomUUID().replaceAll("-", "")}`
  const state = {
    ...created,
    natsPasswords: { ...created.natsPasswords, leaf: created.natsPasswords.leaf ?? newPassword() },
    readerPassword: created.readerPassword ?? newPassword(),
    pgPassword: created.pgPassword ?? newPassword()
  }
  writeLocalState(state)
  // Miniflare installs signal handlers that stop its servers and exit at once; `up` takes them off
  // and stops everything itself, consumers drained first.
  const foreignHandlers = signalListeners()
  const pg = await startPostgres({ dataDir: join(STATE_DIR, "postgres"), port: Number(values["pg-port"]), password: state.pgPassword })
  const log: LocalLog =
    shape === "single"
      ? await (async () => {
          const stack = await startEdgeStack({
            secrets: state.secrets,
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
            secrets: state.secrets,
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
          () => state.apiKey,
          () => undefined
        )
  const apiKey = saved ?? (await createApiKey(sql, "local mesh (npm run up)", ["*"], marts, ALL_ROWS)).key
  const reader = postgres(await ensureReaderLogin(sql, pg.url, "ingest_api", state.readerPassword), {
    ...readerConnection,
    max: READ_POOL_SIZE
  })
  // The report export service beside the read API, as its own NATS user: registry changes, export jobs and workers.
  const reportsNats = { url: log.urls.join(","), servers: log.urls, user: "reports", password: state.natsPasswords.reports as string }
  const reportsNc = await connectReports(reportsNats)
  await ensureJobTables(sql)
  const api = await serveReadApi({
    sql: reader,
    port: Number(values["api-port"]),
    maxStreams: streamsFor(READ_POOL_SIZE),
    extensions: [reportsApi({ sql, js: jetstream(reportsNc) })]
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
  webhooks   POST ${edgeUrl}/v1/hooks/<source>   (sources: ${Object.keys(defaultSources).join(", ")})
  health     GET  ${edgeUrl}/healthz
${log.lines.join("\n")}
  metrics    http://127.0.0.1:${values["metrics-port"]}/metrics
  read API   ${api.url}/docs  (OData ${api.url}/odata/<mart>/; key in .mesh/local.json "apiKey", or npm run mesh -- keys create)
  reports    ${api.url}/reports/admin?api_key=${apiKey}   picker ${api.url}/reports/picker?api_key=${apiKey}
  try Power BI  ${api.url}/api/oee/export/snapshots?format=csv&api_key=${apiKey}
  Power BI   ${powerbi.emulator.url} (emulated; workspace ${LOCAL_WORKSPACE})  npm run mesh -- powerbi status
  Postgres   ${pg.url}${pg.embedded ? " (embedded, data in .mesh/postgres)" : " (DATABASE_URL)"}  marts in schemas mart_<name>
  secrets    ${STATE_FILE}
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
  if (failed !== undefined) console.error(`a projection cannot go on: ${failed instanceof Error ? failed.message : String(failed)}`)
  console.log("stopping...")
  stop.abort()
  await consumers.catch(() => undefined)
  await pushing
  await refreshing
  await exportWorkers.stop()
  await powerbi.close()
  await api.close()
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

/** `mesh samples`: signed sample traffic for every source to the local mesh's edge, or to each region's edge of `cluster up`. */
const samples = async () => {
  const state = readLocalState()
  if (state === undefined) throw new Error("no local mesh found: start it first with `npm run up`")
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
      ["pos", [...retailEvents("49", now + 1), ...storeEvents()]]
    ]
    for (const [source, payload] of traffic) {
      const response = await postSigned(edgeUrl, source, payload, state.secrets[source] as string)
      const answer = (await response.json()) as { accepted?: number; duplicates?: number; spooled?: number; message?: string }
      const outcome =
        response.status === 202
          ? `accepted ${answer.accepted}, duplicates ${answer.duplicates}${answer.spooled === undefined ? "" : `, spooled ${answer.spooled}`}`
          : answer.message
      console.log(`${region === "" ? "" : `${region.padEnd(4)} `}${source.padEnd(8)} ${response.status} ${outcome}`)
    }
  }
}

const streamsApply = async (settings: SettingSource, args: ReadonlyArray<string>) => {
  // A password on the command line ends up in the shell's history and in every `ps` listing.
  if (args.some((arg) => arg === "--password" || arg.startsWith("--password=")))
    throw new Error(
      "streams apply takes the password from NATS_PASSWORD, not the command line: NATS_PASSWORD=… npm run mesh -- streams apply …"
    )
  const { values } = parseArgs({
    args: [...args],
    options: {
      url: { type: "string" },
      user: { type: "string" },
      "duplicate-window-minutes": { type: "string", default: String(DEFAULT_STREAM_SETTINGS.duplicateWindowMs / 60_000) },
      // 1 on one server; a cluster's hub (--regions) is three servers, so 3 unless told.
      replicas: { type: "string" },
      regions: { type: "string" }
    }
  })
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
    const health = await fetch(`${edge}/healthz`, { signal: AbortSignal.timeout(5000) }).then(
      (response) => response.json() as Promise<EdgeHealth>,
      (error: unknown) => `did not answer: ${error instanceof Error ? error.message : String(error)}`
    )
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

const QUARANTINE_USAGE = "usage: npm run mesh -- quarantine list [source] [--all] | quarantine redrive <id>..."

/** `mesh quarantine list [source] [--all] | redrive <id...>` */
const quarantine = async (source: SettingSource, args: ReadonlyArray<string>) => {
  const { values, positionals } = parseArgs({
    args: [...args],
    allowPositionals: true,
    options: { all: { type: "boolean", default: false } }
  })
  const [action, ...rest] = positionals
  if (action !== "list" && action !== "redrive") throw new Error(QUARANTINE_USAGE)
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
    if (ids.length === 0) throw new Error(QUARANTINE_USAGE)
    for (const report of await redriveQuarantined(js, jsm, ids)) console.log(`#${report.id}  ${report.outcome}: ${report.detail}`)
  } finally {
    await nc.close()
  }
}

/** `mesh chaos [--events N]`: the chaos run against a mesh of its own; exits non-zero if anything was lost or doubled. */
const chaos = async (args: ReadonlyArray<string>) => {
  const { values } = parseArgs({
    args: [...args],
    options: { events: { type: "string", default: "50000" }, "kill-every-ms": { type: "string", default: "3000" } }
  })
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

const [command, ...rest] = process.argv.slice(2)
/** Settings from the environment, with the local mesh's filled in where it names no deployment. */
const local = (role: Parameters<typeof withLocalMesh>[1]): SettingSource => ({ env: withLocalMesh(process.env, role) })
const run = async () => {
  if (command === "up") return up(rest, "single")
  if (command === "cluster" && rest[0] === "up") return up(rest.slice(1), "cluster")
  if (command === "samples") return samples()
  if (command === "project") return projectCommand(local("projector"), rest)
  if (command === "rebuild") return rebuildCommand(local("projector"), rest)
  if (command === "status") return status()
  if (command === "dead-letters") return deadLettersCommand(local("projector"), rest)
  if (command === "quarantine") return quarantine(local("admin"), rest)
  if (command === "chaos") return chaos(rest)
  if (command === "keys") return keysCommand(local("owner"), rest)
  if (command === "serve-api") return serveApi(rest)
  if (command === "reports") return reportsCommand(local("reports"), rest)
  if (command === "reader-login") return readerLoginCommand(local("owner"), rest)
  if (command === "powerbi") return powerBiCommand(local("powerbi"), rest)
  if (command === "streams" && rest[0] === "apply") return streamsApply({ env: process.env }, rest.slice(1))
  console.error(USAGE)
  process.exitCode = command === undefined || command === "help" || command === "--help" ? 0 : 2
}

run().catch((error: unknown) => {
  console.error(error instanceof Error ? error.message : String(error))
  process.exitCode = 1
})
