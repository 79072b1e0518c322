import { type ParseArgsConfig, parseArgs } from "node:util"
import { jetstreamManager } from "@nats-io/jetstream"
import { connect } from "@nats-io/transport-node"
import { Presets, SingleBar } from "cli-progress"
import postgres from "postgres"
import { PROJECTOR_INBOX_PREFIX } from "../contracts/log.ts"
import { logEvent } from "../platform/logger.ts"
import { databaseUrl, natsSettings, optionalSetting, type SettingSource, wholeNumberSetting } from "../platform/settings.ts"
import { publishedSchema } from "../projections/catalogue.ts"
import { projectionsFor } from "../projections/index.ts"
import type { Projection } from "../projections/projection.ts"
import { DEFAULT_DEAD_LETTER_STREAK, redriveDeadLetters } from "./apply.ts"
import { meshStatus, projectionLines, sourceLines } from "./status.ts"
import { rebuildProjection } from "./rebuild.ts"
import { activeGeneration } from "./registry.ts"
import { ensureRuntimeTables } from "./runtime-tables.ts"
import { serveProjections } from "./serve.ts"

/** The `options` of a `parseArgs` call: a command's option table. */
type OptionTable = NonNullable<ParseArgsConfig["options"]>

/** Where the consumers find NATS and Postgres: DATABASE_URL, NATS_URL, NATS_USER (projector) and NATS_PASSWORD. */
export const consumerSettings = (source: SettingSource) => ({ nats: natsSettings(source, "projector"), databaseUrl: databaseUrl(source) })

/** The projections named (all when none is), as configured by `source` (RETAIL_LATENESS_MINUTES). */
export const selectProjections = (source: SettingSource, names: ReadonlyArray<string>): ReadonlyArray<Projection> => {
  const projections = projectionsFor(source)
  if (names.length === 0) return Object.values(projections)
  return names.map((name) => {
    const projection = projections[name]
    if (projection === undefined)
      throw new Error(`no projection named ${JSON.stringify(name)}; known: ${Object.keys(projections).join(", ")}`)
    return projection
  })
}

const connectAll = async (source: SettingSource, poolSize: number) => {
  const settings = consumerSettings(source)
  const sql = postgres(settings.databaseUrl, { onnotice: () => {}, max: poolSize })
  const nc = await connect({
    servers: [...settings.nats.servers],
    user: settings.nats.user,
    ...(settings.nats.password === undefined ? {} : { pass: settings.nats.password }),
    name: "ingest-projector",
    inboxPrefix: PROJECTOR_INBOX_PREFIX,
    maxReconnectAttempts: -1
  })
  return {
    sql,
    nc,
    close: async () => {
      await nc.drain().catch(() => undefined)
      await sql.end({ timeout: 5 })
    }
  }
}

/** `mesh rebuild <name...>`: rebuilds each projection from the log with no downtime for readers. */
export const rebuildCommand = async (source: SettingSource, names: ReadonlyArray<string>): Promise<void> => {
  if (names.length === 0) throw new Error(`name the projection(s) to rebuild: ${Object.keys(projectionsFor(source)).join(", ")}`)
  const selected = selectProjections(source, names)
  const { sql, nc, close } = await connectAll(source, 2)
  try {
    for (const projection of selected) {
      const bar = new SingleBar(
        {
          format: `${projection.name.padEnd(10)} [{bar}] {percentage}% | {value}/{total} events | {rate} ev/s | ETA {eta_formatted}`,
          noTTYOutput: true,
          notTTYSchedule: 5000,
          etaBuffer: 50
        },
        Presets.shades_classic
      )
      bar.start(1, 0, { rate: 0 })
      const result = await rebuildProjection({
        sql,
        nc,
        projection,
        onProgress: (progress) => {
          bar.setTotal(Math.max(progress.target, 1))
          bar.update(progress.position, { rate: Math.round(progress.eventsPerSecond) })
        }
      })
      bar.stop()
      console.log(
        `${projection.name}: generation ${result.generation} (${result.schema}) serves ${publishedSchema(projection)}.* now; ` +
          `${result.events} events in ${result.seconds.toFixed(1)} s; dropped ${result.dropped.join(", ") || "nothing"}`
      )
    }
  } finally {
    await close()
  }
}

/** `mesh status`: per projection, its checkpoint against the stream head, lag and open dead letters; per source, what the log holds. */
export const statusCommand = async (source: SettingSource): Promise<void> => {
  const { sql, nc, close } = await connectAll(source, 2)
  try {
    const status = await meshStatus({ sql, nc, projections: selectProjections(source, []) })
    for (const line of projectionLines(status.projections)) console.log(line)
    console.log("")
    for (const line of sourceLines(status.sources)) console.log(line)
  } finally {
    await close()
  }
}

/** What `mesh dead-letters` parses besides its action, projection and ids. */
export const DEAD_LETTERS_OPTIONS = { all: { type: "boolean", default: false } } as const satisfies OptionTable

/** `mesh dead-letters [list [projection]] | redrive <projection> (<id>... | --all)` */
export const deadLettersCommand = async (source: SettingSource, args: ReadonlyArray<string>): Promise<void> => {
  const { values, positionals } = parseArgs({ args: [...args], allowPositionals: true, options: DEAD_LETTERS_OPTIONS })
  const [action = "list", name, ...rest] = positionals
  const { sql, close } = await connectAll(source, 2)
  try {
    await ensureRuntimeTables(sql)
    if (action === "list") {
      const letters = await sql`SELECT id, projection, seq, subject, dedupe_key, reason, created_at FROM ingest.dead_letters
                                WHERE redriven_at IS NULL ${name === undefined ? sql`` : sql`AND projection = ${name}`} ORDER BY id`
      if (letters.length === 0) console.log("no open dead letters")
      for (const letter of letters) console.log(JSON.stringify(letter))
      return
    }
    if (action === "redrive") {
      const [projection] = selectProjections(source, name === undefined ? [] : [name])
      if (name === undefined || projection === undefined) throw new Error("usage: mesh dead-letters redrive <projection> (<id>... | --all)")
      const generation = await activeGeneration(sql, projection.name)
      if (generation === undefined) throw new Error(`${projection.name} has no active generation yet: run it first`)
      const ids = values.all
        ? (await sql`SELECT id FROM ingest.dead_letters WHERE projection = ${projection.name} AND redriven_at IS NULL`).map((row) =>
            Number(row.id)
          )
        : rest.map((id) => {
            if (!/^\d+$/.test(id)) throw new Error(`dead letter ids are numbers, got ${JSON.stringify(id)}`)
            return Number(id)
          })
      const result = await redriveDeadLetters(sql, projection, generation, ids)
      console.log(`re-driven: ${result.redriven.join(", ") || "none"}`)
      for (const letter of result.stillPoison) console.log(`still poison: ${letter.id}: ${letter.reason}`)
      return
    }
    throw new Error(`unknown dead-letters action ${JSON.stringify(action)}: use list or redrive`)
  } finally {
    await close()
  }
}

/** What `mesh project` parses besides the projections' names. */
export const PROJECT_OPTIONS = {
  "batch-size": { type: "string" },
  "metrics-port": { type: "string" },
  "metrics-host": { type: "string" },
  "max-dead-letters-in-a-row": { type: "string" }
} as const satisfies OptionTable

/**
 * What a metrics listener that cannot bind says: what holds the address (a projection process of
 * the mesh answers `/healthz` with its projections) and how to choose another.
 */
export const describeMetricsAddressInUse = async (host: string, port: number): Promise<string> => {
  const holder = await fetch(`http://${host === "0.0.0.0" ? "127.0.0.1" : host}:${port}/healthz`, { signal: AbortSignal.timeout(1000) })
    .then((response) => response.json() as Promise<{ projections?: Record<string, unknown> }>)
    .then(
      (health) =>
        health.projections === undefined
          ? "another program"
          : `another projection process (npm run up, or a second mesh project) serving ${Object.keys(health.projections).join(", ")}`,
      () => "another program"
    )
  return (
    `the metrics listener cannot bind ${host}:${port}: ${holder} is using it. ` +
    `Give this process another port with --metrics-port N (or METRICS_PORT), or --metrics-port 0 for no metrics listener`
  )
}

/** `mesh project [--batch-size N] [--metrics-port N] [name...]`: runs projections live until SIGTERM or SIGINT, then drains and exits. */
export const projectCommand = async (source: SettingSource, args: ReadonlyArray<string>): Promise<void> => {
  const { values, positionals: names } = parseArgs({ args: [...args], allowPositionals: true, options: PROJECT_OPTIONS })
  const flags: SettingSource = { env: source.env, flags: values }
  const batchSize = wholeNumberSetting(flags, { env: "PROJECT_BATCH_SIZE", flag: "batch-size" }, 500)
  const maxDeadLettersInARow = wholeNumberSetting(
    flags,
    { env: "MAX_DEAD_LETTERS_IN_A_ROW", flag: "max-dead-letters-in-a-row" },
    DEFAULT_DEAD_LETTER_STREAK
  )
  const metricsPort = wholeNumberSetting(flags, { env: "METRICS_PORT", flag: "metrics-port" }, 9464, 0)
  const metricsHost = optionalSetting(flags, { env: "METRICS_HOST", flag: "metrics-host" }) ?? "127.0.0.1"
  const selected = selectProjections(source, names)
  const { sql, nc, close } = await connectAll(source, selected.length + 1)
  const stop = new AbortController()
  const drain = (signal: string) => {
    logEvent("info", "draining: finishing the batch in flight", { signal })
    stop.abort()
  }
  process.on("SIGTERM", () => drain("SIGTERM"))
  process.on("SIGINT", () => drain("SIGINT"))
  try {
    await serveProjections({
      sql,
      nc,
      jsm: await jetstreamManager(nc),
      projections: selected,
      signal: stop.signal,
      metricsPort,
      metricsHost,
      batchSize,
      maxDeadLettersInARow
    })
  } catch (error) {
    if ((error as { code?: unknown } | undefined)?.code === "EADDRINUSE")
      throw new Error(await describeMetricsAddressInUse(metricsHost, metricsPort))
    throw error
  } finally {
    await close()
  }
}
