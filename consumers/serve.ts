import type { JetStreamManager } from "@nats-io/jetstream"
import type { NatsConnection } from "@nats-io/nats-core"
import type postgres from "postgres"
import { logEvent } from "../infra/logger.ts"
import type { Projection } from "../projections/projection.ts"
import { projectionMetrics, serveMetrics } from "./metrics.ts"
import { runLive } from "./runtime.ts"

/**
 * Runs projections live with their Prometheus metrics on `metricsPort` (0: none) and a log line
 * per committed batch, until `signal`; resolves once every projection has drained.
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
}): Promise<void> => {
  const metrics = projectionMetrics(options.jsm, options.projections)
  const server = options.metricsPort > 0 ? await serveMetrics(metrics.registry, options.metricsPort, options.metricsHost) : undefined
  if (server !== undefined) logEvent("info", "metrics", { url: `http://127.0.0.1:${options.metricsPort}/metrics` })
  try {
    await Promise.all(
      options.projections.map((projection) =>
        runLive({
          sql: options.sql,
          nc: options.nc,
          projection,
          signal: options.signal,
          ...(options.batchSize === undefined ? {} : { batchSize: options.batchSize }),
          onBatch: (batch) => {
            metrics.recordBatch(projection.name, batch)
            logEvent("info", "batch committed", { projection: projection.name, ...batch, millis: Math.round(batch.millis) })
          },
          onRetry: () => metrics.recordRetry(projection.name)
        })
      )
    )
  } finally {
    server?.close()
  }
}
