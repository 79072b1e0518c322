import { type ParseArgsConfig, parseArgs } from "node:util"
import type { NatsConnection } from "@nats-io/nats-core"
import { connect as connectNats } from "@nats-io/transport-node"
import postgres from "postgres"
import { Gauge, Registry } from "prom-client"
import { NoActiveGeneration } from "../consumers/changes.ts"
import { serveMetrics } from "../consumers/metrics.ts"
import { PROJECTOR_INBOX_PREFIX } from "../contracts/log.ts"
import { projectionsFor } from "../projections/index.ts"
import { logEvent } from "../platform/logger.ts"
import {
  databaseUrl,
  natsSettings,
  numberSetting,
  optionalSetting,
  requiredSetting,
  type SettingSource,
  SettingError,
  wholeNumberSetting
} from "../platform/settings.ts"
import { powerBiSettings, powerBiTokens } from "./auth.ts"
import { powerBiClient, PowerBiError } from "./client.ts"
import { datasetName, type PushDatasetSpec } from "./dataset.ts"
import { pushDatasets } from "./datasets.ts"
import { ensurePushTables, type PushStep, pusher, pushStatus, recordDataset, requestReload } from "./pusher.ts"
import { projectionPosition, refreshSettings, refreshStatus, startRefresher } from "./refresh.ts"
import { powerBiSink, ProvisionRefused } from "./sink.ts"

/** The `options` of a `parseArgs` call: a command's option table. */
type OptionTable = NonNullable<ParseArgsConfig["options"]>

/** What `mesh powerbi …` reads besides the Power BI credentials (auth.ts): the workspace, which marts to push, pacing. */
export const pushSettings = (source: SettingSource) => {
  const names = optionalSetting(source, { env: "POWERBI_PUSH", flag: "push" })
  const known = pushDatasets.map((spec) => spec.marts.name)
  const datasets: ReadonlyArray<PushDatasetSpec> =
    names === undefined
      ? pushDatasets.filter((spec) => spec.optIn !== true)
      : names
          .split(",")
          .map((name) => name.trim())
          .filter((name) => name !== "")
          .map((name) => {
            const spec = pushDatasets.find((candidate) => candidate.marts.name === name)
            if (spec === undefined)
              throw new SettingError({
                setting: "POWERBI_PUSH",
                message: `POWERBI_PUSH: no push dataset for ${JSON.stringify(name)}; known: ${known.join(", ")}`
              })
            return spec
          })
  const speed = numberSetting(source, { env: "POWERBI_CLOCK_SPEED" }, 1, 1)
  const origin = numberSetting(source, { env: "POWERBI_CLOCK_ORIGIN" }, Date.now(), 0)
  return {
    workspace: requiredSetting(
      source,
      { env: "POWERBI_WORKSPACE", flag: "workspace" },
      "the id of the Power BI workspace (group) the datasets live in"
    ),
    datasets,
    pollMs: wholeNumberSetting(source, { env: "POWERBI_POLL_MS", flag: "poll-ms" }, 1000),
    metricsPort: wholeNumberSetting(source, { env: "POWERBI_METRICS_PORT", flag: "metrics-port" }, 9465, 0),
    metricsHost: optionalSetting(source, { env: "METRICS_HOST", flag: "metrics-host" }) ?? "127.0.0.1",
    /** Only against the emulator: its clock runs `speed` times real time from `origin`, and the governor must share it. */
    clock: { speed, origin }
  }
}

/** What each `mesh powerbi` action parses. */
export const POWERBI_OPTIONS = {
  provision: { apply: { type: "boolean", default: false } },
  push: { once: { type: "boolean", default: false } }
} as const satisfies Record<string, OptionTable>

export const POWERBI_USAGE = `usage: npm run mesh -- powerbi <provision [--apply] | push [--once] | refresh | status | reload>
  provision   get or create each push dataset (POWERBI_PUSH, default all) in POWERBI_WORKSPACE, check its tables, report drift
              (--apply: update columns and measures that drifted; a new table needs a new dataset version)
  push        mirror the marts into the push datasets, exactly once, until stopped (--once: until caught up)
  status      per dataset and table: rows in Power BI, backlog, POSTs, 429s, unknown outcomes, reloads, last POST and error
  refresh     refresh the import datasets POWERBI_REFRESH lists once their projection has caught up
  reload      reload every table from the marts at the next push (after fixing rows Power BI refused)`

const connect = (source: SettingSource) => postgres(databaseUrl(source), { onnotice: () => {}, max: 2 })

const clientFor = (source: SettingSource) => {
  const settings = powerBiSettings(source)
  return powerBiClient(settings.apiBase, powerBiTokens(settings))
}

/** Explains a failure to reach or use Power BI in one paragraph: what refused, and what to check. */
export const describePowerBiFailure = (error: unknown): string => {
  if (error instanceof ProvisionRefused || error instanceof SettingError || error instanceof NoActiveGeneration) return error.message
  if (error instanceof PowerBiError) return error.message
  const msal = error as { errorCode?: string; errorMessage?: string }
  if (typeof msal?.errorCode === "string")
    return `Entra refused the app's credentials (${msal.errorCode}): ${msal.errorMessage ?? ""}; check POWERBI_TENANT_ID, POWERBI_CLIENT_ID and the secret or certificate`
  return error instanceof Error ? error.message : String(error)
}

const provisionAll = async (source: SettingSource, sql: postgres.Sql, apply: boolean) => {
  const settings = pushSettings(source)
  const client = clientFor(source)
  await ensurePushTables(sql)
  const sinks = []
  for (const spec of settings.datasets) {
    const sink = powerBiSink(client, settings.workspace, spec)
    const report = await sink.provision(apply)
    await recordDataset(sql, spec, settings.workspace, report.datasetId)
    console.log(
      `${report.dataset}: ${report.created ? "created" : "found"} (${report.datasetId}) in workspace ${settings.workspace}; ` +
        (report.drift.length === 0 ? "tables as declared" : `drift:\n  ${report.drift.join("\n  ")}`) +
        (report.updated.length === 0 ? "" : `\n  updated: ${report.updated.join(", ")}`)
    )
    sinks.push({ spec, sink })
  }
  return { settings, sinks }
}

/** Prometheus gauges over {@link pushStatus}: the same numbers `mesh powerbi status` prints. */
const pushMetrics = (sql: postgres.Sql): Registry => {
  const registry = new Registry()
  type Status = Awaited<ReturnType<typeof pushStatus>>
  // prom-client collects every metric of a scrape at once: they share one read of the state, made for that scrape.
  let reading: Promise<Status | undefined> | undefined
  const status = () => {
    reading ??= pushStatus(sql)
      .catch(() => undefined)
      .finally(() => setImmediate(() => (reading = undefined)))
    return reading
  }
  const gauge = (name: string, help: string, value: (row: Status[number]) => number) =>
    new Gauge({
      name,
      help,
      labelNames: ["dataset", "table"],
      registers: [registry],
      async collect() {
        this.reset()
        for (const row of (await status()) ?? []) this.set({ dataset: row.dataset, table: row.table }, value(row))
      }
    })
  new Gauge({
    name: "ingest_powerbi_up",
    help: "1 while the pusher can read its state",
    registers: [registry],
    async collect() {
      this.set((await status()) === undefined ? 0 : 1)
    }
  })
  gauge("ingest_powerbi_rows", "Rows the pusher knows are in the Power BI table", (row) => row.rowsInPowerBi)
  gauge("ingest_powerbi_backlog_rows", "Rows recorded in the marts and not yet pushed", (row) => row.backlog)
  gauge("ingest_powerbi_rows_pushed_total", "Rows pushed, reloads included", (row) => row.rowsPushed)
  gauge("ingest_powerbi_posts_total", "POSTs of rows Power BI accepted", (row) => row.posts)
  gauge("ingest_powerbi_throttled_total", "429s Power BI answered", (row) => row.throttled)
  gauge("ingest_powerbi_uncertain_total", "Answers that did not say whether rows landed (resolved by read-back)", (row) => row.uncertain)
  gauge("ingest_powerbi_reloads_total", "Reloads of the table from the marts", (row) => row.reloads)
  gauge("ingest_powerbi_blocked", "1 when the table is blocked by rows Power BI refuses", (row) => (row.phase === "blocked" ? 1 : 0))
  return registry
}

/**
 * Provisions (checks) each dataset, then pushes until `signal` aborts (`once`: until caught up). A
 * failure on Power BI's side or ours is retried with a capped backoff; a refusal of the declaration
 * or a dataset gone from Power BI stops it, explained.
 */
export const runPushers = async (options: {
  readonly source: SettingSource
  readonly sql: postgres.Sql
  readonly signal: AbortSignal
  readonly once?: boolean
  readonly onStep?: (step: PushStep, table: string) => void
  /** After each round over every dataset, with the rows it pushed (0: caught up). */
  readonly onRound?: (pushed: number) => void
}): Promise<void> => {
  const { sql, signal, source } = options
  const { settings, sinks } = await provisionAll(source, sql, false)
  const { speed, origin } = settings.clock
  const clock = speed === 1 ? Date.now : () => origin + (Date.now() - origin) * speed
  /** Waits `ms` of the service's clock, or until stopped. */
  const sleep = (ms: number) =>
    new Promise<void>((resolve) => {
      if (signal.aborted) return resolve()
      const stopped = () => {
        clearTimeout(timer)
        resolve()
      }
      const timer = setTimeout(() => {
        signal.removeEventListener("abort", stopped)
        resolve()
      }, ms / speed)
      signal.addEventListener("abort", stopped, { once: true })
    })
  const server =
    settings.metricsPort > 0 && options.once !== true
      ? await serveMetrics(pushMetrics(sql), settings.metricsPort, settings.metricsHost)
      : undefined
  if (server !== undefined)
    logEvent("info", "Power BI pusher metrics", { url: `http://${settings.metricsHost}:${settings.metricsPort}/metrics` })
  const pushers = sinks.map(({ spec, sink }) => ({
    spec,
    push: pusher({ sql, sink, spec, clock, sleep, ...(options.onStep === undefined ? {} : { onStep: options.onStep }) })
  }))
  try {
    let failures = 0
    while (!signal.aborted) {
      let pushed = 0
      try {
        for (const { push } of pushers) pushed += await push.round()
        failures = 0
        options.onRound?.(pushed)
      } catch (error) {
        if (error instanceof ProvisionRefused || error instanceof SettingError) throw error
        if (error instanceof PowerBiError && error.status === 404)
          throw new Error(`${describePowerBiFailure(error)}; the dataset is gone from Power BI: run npm run mesh -- powerbi provision`)
        failures++
        logEvent("warn", "pushing failed; trying again", { error: describePowerBiFailure(error), attempt: failures })
        await sleep(Math.min(60_000, 500 * 2 ** Math.min(failures, 7)) * speed)
        continue
      }
      if (options.once === true && pushed === 0) break
      if (pushed === 0) await sleep(settings.pollMs * speed)
    }
  } finally {
    server?.close()
    for (const { spec } of pushers) logEvent("info", "Power BI pusher stopped", { dataset: datasetName(spec) })
  }
}

/**
 * Runs the refresher (POWERBI_REFRESH) until `signal` aborts: import datasets refreshed after their
 * projection caught up, at most once per POWERBI_REFRESH_MIN_INTERVAL and within the daily cap.
 */
export const runRefresher = async (options: {
  readonly source: SettingSource
  readonly sql: postgres.Sql
  readonly nc: NatsConnection
  readonly signal: AbortSignal
}): Promise<void> => {
  const projections = projectionsFor(options.source)
  const settings = refreshSettings(options.source, Object.keys(projections))
  if (settings.targets.length === 0) return
  const refresher = await startRefresher({
    sql: options.sql,
    client: clientFor(options.source),
    targets: settings.targets,
    minIntervalMs: settings.minIntervalMs,
    dailyCap: settings.dailyCap,
    ...(settings.options === undefined ? {} : { options: settings.options }),
    position: projectionPosition(options.sql, options.nc, projections),
    pollMs: wholeNumberSetting(options.source, { env: "POWERBI_REFRESH_POLL_MS" }, 10_000)
  })
  logEvent("info", "Power BI refresher started", {
    datasets: settings.targets.map((target) => `${target.projection}=${target.groupId}/${target.datasetId}`),
    minIntervalSeconds: settings.minIntervalMs / 1000,
    dailyCap: settings.dailyCap
  })
  await new Promise<void>((resolve) => {
    if (options.signal.aborted) return resolve()
    options.signal.addEventListener("abort", () => resolve())
  })
  await refresher.stop()
}

/** `mesh powerbi refresh`: {@link runRefresher} until SIGINT or SIGTERM, as the projector's NATS user. */
const refreshCommand = async (source: SettingSource) => {
  const sql = connect(source)
  const nats = natsSettings(source, "projector")
  const nc = await connectNats({
    servers: [...nats.servers],
    user: nats.user,
    ...(nats.password === undefined ? {} : { pass: nats.password }),
    name: "ingest-powerbi-refresher",
    inboxPrefix: PROJECTOR_INBOX_PREFIX,
    maxReconnectAttempts: -1
  })
  const stop = new AbortController()
  const onSignal = () => stop.abort()
  process.once("SIGINT", onSignal)
  process.once("SIGTERM", onSignal)
  try {
    if (refreshSettings(source, Object.keys(projectionsFor(source))).targets.length === 0)
      throw new SettingError({
        setting: "POWERBI_REFRESH",
        message: "POWERBI_REFRESH names no dataset to refresh, e.g. oee=<workspace id>/<dataset id>"
      })
    await runRefresher({ source, sql, nc, signal: stop.signal })
  } finally {
    process.off("SIGINT", onSignal)
    process.off("SIGTERM", onSignal)
    await nc.drain().catch(() => undefined)
    await sql.end({ timeout: 5 })
  }
}

/** `mesh powerbi push [--once]`: {@link runPushers} until SIGINT or SIGTERM. */
const pushCommand = async (source: SettingSource, args: ReadonlyArray<string>, onStep?: (step: PushStep, table: string) => void) => {
  const { values } = parseArgs({ args: [...args], options: POWERBI_OPTIONS.push })
  const sql = connect(source)
  const stop = new AbortController()
  const onSignal = () => stop.abort()
  process.once("SIGINT", onSignal)
  process.once("SIGTERM", onSignal)
  try {
    await runPushers({ source, sql, signal: stop.signal, once: values.once === true, ...(onStep === undefined ? {} : { onStep }) })
  } finally {
    process.off("SIGINT", onSignal)
    process.off("SIGTERM", onSignal)
    await sql.end({ timeout: 5 })
  }
}

const statusCommand = async (source: SettingSource) => {
  const sql = connect(source)
  try {
    const refreshes = await refreshStatus(sql)
    if (refreshes.length > 0) {
      console.log(["projection", "dataset", "last refresh", "status", "finished", "error", "next allowed", "started in 24 h"].join("\t"))
      for (const row of refreshes)
        console.log(
          [
            row.projection,
            `${row.groupId}/${row.datasetId}`,
            row.lastTrigger.at,
            row.lastTrigger.status,
            row.lastTrigger.finishedAt ?? "-",
            row.lastTrigger.error ?? "-",
            row.nextAllowedAt ?? "-",
            row.startedLast24h
          ].join("\t")
        )
      console.log("")
    }
    const rows = await pushStatus(sql)
    if (rows.length === 0) console.log("nothing pushed yet: run npm run mesh -- powerbi push")
    else
      console.log(
        ["dataset", "table", "phase", "rows", "backlog", "posts", "429s", "unknown", "reloads", "last POST", "last error"].join("\t")
      )
    for (const row of rows)
      console.log(
        [
          row.dataset,
          row.table,
          row.phase,
          row.rowsInPowerBi,
          row.backlog,
          row.posts,
          row.throttled,
          row.uncertain,
          row.reloads,
          row.lastPostAt ?? "-",
          row.lastError ?? "-"
        ].join("\t")
      )
  } finally {
    await sql.end({ timeout: 5 })
  }
}

/** `mesh powerbi <provision | push | status>`. */
export const powerBiCommand = async (
  source: SettingSource,
  args: ReadonlyArray<string>,
  onStep?: (step: PushStep, table: string) => void
): Promise<void> => {
  const [action, ...rest] = args
  try {
    if (action === "provision") {
      const { values } = parseArgs({ args: [...rest], options: POWERBI_OPTIONS.provision })
      const sql = connect(source)
      try {
        await provisionAll(source, sql, values.apply === true)
      } finally {
        await sql.end({ timeout: 5 })
      }
      return
    }
    if (action === "push") return await pushCommand(source, rest, onStep)
    if (action === "status") return await statusCommand(source)
    if (action === "refresh") return await refreshCommand(source)
    if (action === "reload") {
      const sql = connect(source)
      try {
        await ensurePushTables(sql)
        for (const spec of pushSettings(source).datasets) {
          await requestReload(sql, spec)
          console.log(`${datasetName(spec)}: every table reloads from the marts at the next push`)
        }
      } finally {
        await sql.end({ timeout: 5 })
      }
      return
    }
  } catch (error) {
    throw new Error(describePowerBiFailure(error))
  }
  console.error(POWERBI_USAGE)
  process.exitCode = 2
}
