import { createServer, type Server } from "node:http"
import type { JetStreamManager } from "@nats-io/jetstream"
import { Counter, Gauge, Histogram, Registry } from "prom-client"
import { streamFor } from "../contracts/log.ts"
import type { Projection } from "../projections/projection.ts"
import type { BatchResult } from "./apply.ts"
import type { ProjectionState } from "./runtime.ts"
// The lag the metrics report is the one `mesh status` and the console show: one definition.
import { lagOf, lagSecondsOf } from "./status.ts"

const STATES: ReadonlyArray<ProjectionState> = ["starting", "running", "retrying", "waiting", "stopped", "failed"]

/** A projection's state, since when, and why (the error of a retry or a failure). */
export interface StateReport {
  readonly state: ProjectionState
  readonly since: string
  readonly detail?: string
}

/** The process's health from its projections' states: ok when every one runs, else which do not and why. */
export const healthOf = (
  states: ReadonlyMap<string, StateReport>
): { readonly status: "ok" | "degraded" | "failed"; readonly projections: Record<string, StateReport> } => {
  const all = [...states.values()]
  const status = all.some((report) => report.state === "failed")
    ? "failed"
    : all.every((report) => report.state === "running")
      ? "ok"
      : "degraded"
  return { status, projections: Object.fromEntries(states) }
}

/** Prometheus metrics of the projection runtime, one registry per process. */
export const projectionMetrics = (jsm: JetStreamManager, projections: ReadonlyArray<Projection>) => {
  const registry = new Registry()
  const checkpoints = new Map<string, number>()
  const events = new Counter({
    name: "ingest_projection_events_total",
    help: "Events read by a projection, by outcome: applied, duplicate, skipped or dead_letter",
    labelNames: ["projection", "outcome"],
    registers: [registry]
  })
  const batches = new Histogram({
    name: "ingest_projection_batch_seconds",
    help: "Time to project and commit one batch",
    labelNames: ["projection"],
    buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5],
    registers: [registry]
  })
  const retries = new Counter({
    name: "ingest_projection_retries_total",
    help: "Batches retried after a failure on our side",
    labelNames: ["projection"],
    registers: [registry]
  })
  const states = new Map<string, StateReport>(
    projections.map((projection) => [projection.name, { state: "starting", since: new Date().toISOString() }])
  )
  new Gauge({
    name: "ingest_projection_state",
    help: "1 for the state each projection's runtime is in (starting, running, retrying, waiting, stopped, failed), 0 for the others",
    labelNames: ["projection", "state"],
    registers: [registry],
    collect() {
      for (const [projection, report] of states) for (const state of STATES) this.set({ projection, state }, report.state === state ? 1 : 0)
    }
  })
  new Gauge({
    name: "ingest_projection_checkpoint",
    help: "Last stream sequence committed by the projection",
    labelNames: ["projection"],
    registers: [registry],
    collect() {
      for (const [projection, checkpoint] of checkpoints) this.set({ projection }, checkpoint)
    }
  })
  new Gauge({
    name: "ingest_projection_lag",
    help: "Events in the stream the projection has not committed yet",
    labelNames: ["projection"],
    registers: [registry],
    async collect() {
      for (const projection of projections) {
        const head = await jsm.streams.info(streamFor(projection.domain)).then(
          (info) => info.state.last_seq,
          () => undefined
        )
        if (head !== undefined) this.set({ projection: projection.name }, lagOf(head, checkpoints.get(projection.name) ?? 0))
      }
    }
  })
  new Gauge({
    name: "ingest_projection_lag_seconds",
    help: "Seconds since the first event the projection has not committed was stored (0 when it is caught up)",
    labelNames: ["projection"],
    registers: [registry],
    async collect() {
      const now = Date.now()
      for (const projection of projections) {
        const stream = streamFor(projection.domain)
        const head = await jsm.streams.info(stream).then(
          (info) => info.state.last_seq,
          () => undefined
        )
        if (head === undefined) continue
        const seconds = await lagSecondsOf(jsm, stream, checkpoints.get(projection.name) ?? 0, head, now)
        if (seconds !== null) this.set({ projection: projection.name }, seconds)
      }
    }
  })
  return {
    registry,
    recordBatch: (projection: string, batch: BatchResult & { readonly events: number; readonly millis: number }) => {
      checkpoints.set(projection, batch.checkpoint)
      events.inc({ projection, outcome: "applied" }, batch.applied)
      events.inc({ projection, outcome: "duplicate" }, batch.duplicates)
      events.inc({ projection, outcome: "skipped" }, batch.skipped)
      events.inc({ projection, outcome: "dead_letter" }, batch.deadLetters)
      batches.observe({ projection }, batch.millis / 1000)
    },
    recordRetry: (projection: string) => retries.inc({ projection }),
    recordState: (projection: string, state: ProjectionState, detail?: string) => {
      if (states.get(projection)?.state === state && detail === undefined) return
      states.set(projection, {
        state,
        since: states.get(projection)?.state === state ? (states.get(projection)?.since as string) : new Date().toISOString(),
        ...(detail === undefined ? {} : { detail })
      })
    },
    health: () => healthOf(states)
  }
}

/**
 * Serves `GET /metrics` in the Prometheus text format and `GET /healthz` (200 when every projection
 * runs, 503 with each one's state and reason otherwise), on loopback unless `host` says otherwise.
 */
export const serveMetrics = (
  registry: Registry,
  port: number,
  host = "127.0.0.1",
  health?: () => ReturnType<typeof healthOf>
): Promise<Server> =>
  new Promise((resolve, reject) => {
    const server = createServer((request, response) => {
      const path = request.url?.split("?")[0]
      if (request.method === "GET" && path === "/healthz" && health !== undefined) {
        const report = health()
        response.writeHead(report.status === "ok" ? 200 : 503, { "content-type": "application/json" }).end(JSON.stringify(report))
        return
      }
      if (request.method !== "GET" || path !== "/metrics") {
        response
          .writeHead(404, { "content-type": "text/plain" })
          .end(`metrics are at GET /metrics${health === undefined ? "" : ", health at GET /healthz"}\n`)
        return
      }
      registry.metrics().then(
        (text) => response.writeHead(200, { "content-type": registry.contentType }).end(text),
        (error: unknown) => response.writeHead(500, { "content-type": "text/plain" }).end(String(error))
      )
    })
    server.once("error", reject)
    server.listen(port, host, () => resolve(server))
  })
