import type { JetStreamManager } from "@nats-io/jetstream"
import type { NatsConnection } from "@nats-io/nats-core"
import type postgres from "postgres"
import { logEvent } from "../platform/logger.ts"
import { publishedClashes } from "../projections/catalogue.ts"
import type { Projection } from "../projections/projection.ts"
import { projectionMetrics, serveMetrics } from "./metrics.ts"
import { runLive } from "./runtime.ts"

/**
 * Runs projections live with their Prometheus metrics and health on `metricsPort` (0: none) and a
 * log line per committed batch, until `signal`; resolves once every projection has drained. When
 * one cannot go on (a failure no retry mends), the others are stopped too and the failure is
 * thrown, so the process exits and says why rather than limping on.
 */
export const serveProjections = async (options: {
  readonly sql: postgres.Sql
  readonly nc: NatsConnection
  readonly jsm: JetStreamManager
  readonly projections: ReadonlyArray<Projection>
  readonly signal: AbortSignal
  readonly metricsPort: number
  readonly metricsHost?: string
  readonly batchSize?: number
  readonly maxDeadLettersInARow?: number
}): Promise<void> => {
  const clashes = publishedClashes(options.projections)
  if (clashes.length > 0) throw new Error(`more than one projection publishes ${clashes.join(", ")}: give each its own name`)
  const metrics = projectionMetrics(options.jsm, options.projections)
  const server =
    options.metricsPort > 0 ? await serveMetrics(metrics.registry, options.metricsPort, options.metricsHost, metrics.health) : undefined
  if (server !== undefined)
    logEvent("info", "metrics", {
      url: `http://${options.metricsHost ?? "127.0.0.1"}:${options.metricsPort}/metrics`,
      health: `http://${options.metricsHost ?? "127.0.0.1"}:${options.metricsPort}/healthz`
    })
  const stop = new AbortController()
  const stopAll = () => stop.abort()
  options.signal.addEventListener("abort", stopAll, { once: true })
  if (options.signal.aborted) stopAll()
  try {
    const outcomes = await Promise.allSettled(
      options.projections.map((projection) =>
        runLive({
          sql: options.sql,
          nc: options.nc,
          projection,
          signal: stop.signal,
          ...(options.batchSize === undefined ? {} : { batchSize: options.batchSize }),
          ...(options.maxDeadLettersInARow === undefined ? {} : { maxDeadLettersInARow: options.maxDeadLettersInARow }),
          onBatch: (batch) => {
            metrics.recordBatch(projection.name, batch)
            logEvent("info", "batch committed", { projection: projection.name, ...batch, millis: Math.round(batch.millis) })
          },
          onRetry: () => metrics.recordRetry(projection.name),
          onState: (state, detail) => metrics.recordState(projection.name, state, detail)
        }).catch((error: unknown) => {
          logEvent("error", "projection stopped: it cannot go on", {
            projection: projection.name,
            error: error instanceof Error ? error.message : String(error)
          })
          stopAll()
          throw error
        })
      )
    )
    const failed = outcomes.find((outcome) => outcome.status === "rejected")
    if (failed !== undefined) throw (failed as PromiseRejectedResult).reason
  } finally {
    options.signal.removeEventListener("abort", stopAll)
    server?.close()
  }
}
