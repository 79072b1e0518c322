import { parseArgs } from "node:util"
import { connect } from "@nats-io/transport-node"
import postgres from "postgres"
import { logEvent } from "../infra/logger.ts"
import { projections } from "../projections/index.ts"
import type { Projection } from "../projections/projection.ts"
import { runLive } from "./runtime.ts"

/** Where the consumers find NATS and Postgres: the environment, as in production. */
export const consumerSettings = (env: NodeJS.ProcessEnv = process.env) => {
  const databaseUrl = env.DATABASE_URL
  if (databaseUrl === undefined || databaseUrl === "") throw new Error("DATABASE_URL is not set: point it at the Postgres that holds the marts, e.g. postgres://user:pass@host:5432/db")
  return {
    natsUrl: env.NATS_URL ?? "nats://127.0.0.1:4222",
    natsUser: env.NATS_USER ?? "projector",
    natsPassword: env.NATS_PASSWORD,
    databaseUrl
  }
}

export const selectProjections = (names: ReadonlyArray<string>): ReadonlyArray<Projection> => {
  if (names.length === 0) return Object.values(projections)
  return names.map((name) => {
    const projection = projections[name]
    if (projection === undefined) throw new Error(`no projection named ${JSON.stringify(name)}; known: ${Object.keys(projections).join(", ")}`)
    return projection
  })
}

/** `mesh project [--batch-size N] [name...]`: runs projections live until SIGTERM or SIGINT, then drains and exits. */
export const projectCommand = async (args: ReadonlyArray<string>): Promise<void> => {
  const { values, positionals: names } = parseArgs({ args: [...args], allowPositionals: true, options: { "batch-size": { type: "string", default: "500" } } })
  const batchSize = Number(values["batch-size"])
  if (!Number.isInteger(batchSize) || batchSize < 1) throw new Error(`--batch-size must be a positive integer, got ${JSON.stringify(values["batch-size"])}`)
  const settings = consumerSettings()
  const selected = selectProjections(names)
  const sql = postgres(settings.databaseUrl, { onnotice: () => {}, max: selected.length + 1 })
  const nc = await connect({
    servers: settings.natsUrl,
    user: settings.natsUser,
    ...(settings.natsPassword === undefined ? {} : { pass: settings.natsPassword }),
    name: "ingest-projector",
    maxReconnectAttempts: -1
  })
  const stop = new AbortController()
  const drain = (signal: string) => {
    logEvent("info", "draining: finishing the batch in flight", { signal })
    stop.abort()
  }
  process.once("SIGTERM", () => drain("SIGTERM"))
  process.once("SIGINT", () => drain("SIGINT"))
  try {
    await Promise.all(
      selected.map((projection) =>
        runLive({
          sql,
          nc,
          projection,
          batchSize,
          signal: stop.signal,
          onBatch: (batch) => logEvent("info", "batch committed", { projection: projection.name, ...batch, millis: Math.round(batch.millis) })
        })
      )
    )
  } finally {
    await nc.drain().catch(() => undefined)
    await sql.end({ timeout: 5 })
  }
}
