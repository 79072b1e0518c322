import { type Consumer, type JetStreamClient, type JetStreamManager, jetstream, jetstreamManager } from "@nats-io/jetstream"
import type { NatsConnection } from "@nats-io/nats-core"
import type postgres from "postgres"
import { streamFor } from "../contracts/log.ts"
import { logEvent } from "../infra/logger.ts"
import type { Projection } from "../projections/projection.ts"
import { applyBatch, type BatchResult, CheckpointMoved, PoisonInRebuild } from "./apply.ts"
import { publishOutbox } from "./outbox.ts"
import { deleteConsumer, fetchBatch, openConsumer, toReadEvent } from "./reader.ts"
import { activate, activeGeneration, createGeneration, ensureRegistry, type Generation } from "./registry.ts"

export interface RuntimeOptions {
  readonly sql: postgres.Sql
  readonly nc: NatsConnection
  readonly projection: Projection
  readonly batchSize?: number
  /** How long one fetch waits for the first message. */
  readonly fetchWaitMs?: number
  /** Stops the loop after the batch in flight has committed and been acknowledged. */
  readonly signal?: AbortSignal
  readonly onBatch?: (result: BatchResult & { readonly events: number; readonly millis: number; readonly generation: number }) => void
  /** Called for each failure on our side that the runtime retries (Postgres or NATS unavailable). */
  readonly onRetry?: (error: unknown, attempt: number) => void
  /** Called when a fetch found nothing new: the projection is caught up with the log. */
  readonly onIdle?: (checkpoint: number) => void
  /** Publish side effects after each commit (default). Tests turn it off to stand for a crash in between. */
  readonly publishEffects?: boolean
}

const pause = (ms: number, signal?: AbortSignal) =>
  new Promise<void>((resolve) => {
    const timer = setTimeout(resolve, ms)
    signal?.addEventListener("abort", () => {
      clearTimeout(timer)
      resolve()
    }, { once: true })
  })

/** Exponential backoff for failures on our side (Postgres or NATS down): 100 ms doubling to 5 s. */
const backoff = (attempt: number) => Math.min(5000, 100 * 2 ** Math.min(attempt, 6))

interface Clients {
  readonly js: JetStreamClient
  readonly jsm: JetStreamManager
}

/**
 * Reads one generation from `checkpoint + 1` and applies batch after batch until `until` is
 * reached (rebuild), the generation stops being writable (a rebuild replaced it), or `signal`.
 * A batch that fails on our side is retried as it is, without acknowledging, until it commits.
 */
export const consumeGeneration = async (
  options: RuntimeOptions,
  clients: Clients,
  generation: Generation,
  mode: "live" | "rebuild",
  until?: () => number | undefined
): Promise<"stopped" | "replaced" | "reached"> => {
  const { sql, projection, signal } = options
  const stopped = () => signal?.aborted === true
  const batchSize = options.batchSize ?? 500
  let checkpoint = generation.checkpoint
  const publishEffects = mode === "live" && projection.effects !== undefined && options.publishEffects !== false
  /** Failures leave the effects pending for the next attempt; they never stop the projection. */
  const publishPending = () =>
    publishOutbox(sql, clients.js, projection.name).catch((error: unknown) => logEvent("warn", "publishing side effects failed; they stay pending", { error: String(error) }))
  if (publishEffects) await publishPending()
  /** Opens the consumer at `checkpoint + 1`, retrying with backoff while NATS is unavailable. */
  const reopen = async (): Promise<Consumer | undefined> => {
    for (let attempt = 0; !stopped(); attempt++) {
      try {
        return await openConsumer(clients.js, clients.jsm, projection, generation, checkpoint)
      } catch (error) {
        logEvent("warn", "opening the log consumer failed; retrying", { projection: projection.name, attempt, error: String(error) })
        options.onRetry?.(error, attempt)
        await pause(backoff(attempt), signal)
      }
    }
    return undefined
  }
  let consumer = await reopen()
  if (consumer === undefined) return "stopped"
  let failures = 0
  try {
    while (!stopped()) {
      const target = until?.()
      if (target !== undefined && checkpoint >= target) return "reached"
      let messages
      try {
        messages = await fetchBatch(consumer, target === undefined ? batchSize : Math.min(batchSize, Math.max(1, target - checkpoint)), options.fetchWaitMs ?? 1000)
      } catch (error) {
        logEvent("warn", "reading the log failed; retrying", { projection: projection.name, error: String(error) })
        options.onRetry?.(error, failures)
        await pause(backoff(failures++), signal)
        // Never reuse a consumer after a failed fetch: its delivery point may be past messages we dropped.
        consumer = await reopen()
        if (consumer === undefined) return "stopped"
        continue
      }
      if (messages.length === 0) {
        options.onIdle?.(checkpoint)
        continue
      }
      const events = messages.map(toReadEvent)
      const first = Math.min(...events.filter((event) => event.seq > checkpoint).map((event) => event.seq))
      if (Number.isFinite(first) && first !== checkpoint + 1 && (await messageExists(clients.jsm, projection, checkpoint + 1))) {
        logEvent("warn", "the log skipped events; reading again from the checkpoint", { projection: projection.name, checkpoint, first })
        consumer = await reopen()
        if (consumer === undefined) return "stopped"
        continue
      }
      const started = performance.now()
      let result: BatchResult | undefined
      for (let attempt = 0; result === undefined; attempt++) {
        try {
          result = await applyBatch(sql, projection, generation, checkpoint, events, mode)
        } catch (error) {
          if (error instanceof PoisonInRebuild) throw error
          if (error instanceof CheckpointMoved) {
            if (error.status !== (mode === "live" ? "active" : "building")) return "replaced"
            logEvent("warn", "checkpoint moved under us; resuming from the committed position", { projection: projection.name, found: error.found })
            checkpoint = error.found ?? checkpoint
            const reopened = await reopen()
            if (reopened === undefined) return "stopped"
            consumer = reopened
            break
          }
          logEvent("warn", "applying a batch failed; retrying without acknowledging", { projection: projection.name, attempt, error: String(error) })
          options.onRetry?.(error, attempt)
          await pause(backoff(attempt), signal)
          if (stopped()) return "stopped"
        }
      }
      if (result === undefined) continue
      failures = 0
      checkpoint = result.checkpoint
      for (const message of messages) message.ack()
      if (publishEffects && result.effects > 0) await publishPending()
      options.onBatch?.({ ...result, events: events.length, millis: performance.now() - started, generation: generation.generation })
    }
    return "stopped"
  } finally {
    await deleteConsumer(clients.jsm, projection, generation)
  }
}

/** Whether the domain's stream still holds `seq` (a deleted message is a legitimate gap). */
const messageExists = (jsm: JetStreamManager, projection: Projection, seq: number): Promise<boolean> =>
  jsm.streams.getMessage(streamFor(projection.domain), { seq }).then(
    (message) => message !== null,
    () => true
  )

export const clientsOf = async (nc: NatsConnection): Promise<Clients> => ({ js: jetstream(nc), jsm: await jetstreamManager(nc) })

/**
 * Runs a projection live: the active generation, or a first one made active at once, and
 * whichever generation replaces it after a rebuild.
 */
export const runLive = async (options: RuntimeOptions): Promise<void> => {
  await ensureRegistry(options.sql)
  const clients = await clientsOf(options.nc)
  while (options.signal?.aborted !== true) {
    let generation = await activeGeneration(options.sql, options.projection.name)
    if (generation === undefined) {
      const created = await createGeneration(options.sql, options.projection)
      await options.sql.begin((tx) => activate(tx, options.projection, created))
      generation = { ...created, status: "active" }
      logEvent("info", "created the first generation", { projection: options.projection.name, schema: created.schema })
    }
    if (generation.version !== options.projection.version)
      logEvent("warn", "the marts were built by another version of this projection; rebuild them", {
        projection: options.projection.name,
        built: generation.version,
        code: options.projection.version,
        fix: `npm run mesh -- rebuild ${options.projection.name}`
      })
    logEvent("info", "projecting", { projection: options.projection.name, generation: generation.generation, checkpoint: generation.checkpoint, stream: streamFor(options.projection.domain) })
    const outcome = await consumeGeneration(options, clients, generation, "live")
    if (outcome === "stopped") return
    logEvent("info", "generation replaced; switching", { projection: options.projection.name, generation: generation.generation })
  }
}
