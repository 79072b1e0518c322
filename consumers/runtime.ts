import { type Consumer, type JetStreamClient, type JetStreamManager, type JsMsg, jetstream, jetstreamManager } from "@nats-io/jetstream"
import type { NatsConnection } from "@nats-io/nats-core"
import type postgres from "postgres"
import { streamFor } from "../contracts/log.ts"
import { logEvent } from "../platform/logger.ts"
import type { Outcome, Projection } from "../projections/projection.ts"
import { projectAhead } from "./batch.ts"
import type { ReadEvent } from "./events.ts"
import { applyFindingPoison, type BatchResult, newerVersion, newStreak } from "./apply.ts"
import { type CheckpointMoved, describeFailure, isFailure } from "./failures.ts"
import { afterFailure, pause, retrying, STOPPED } from "./retry.ts"
import { publishOutbox } from "./outbox.ts"
import { deleteConsumer, fetchBatch, openConsumer, toReadEvent } from "./reader.ts"
import { ensureActiveGeneration, type Generation, generationStatus } from "./registry.ts"
import { ensureRuntimeTables } from "./runtime-tables.ts"

/** Where a projection's runtime is: what `/healthz` and the `ingest_projection_state` metric report. */
export type ProjectionState = "starting" | "running" | "retrying" | "waiting" | "stopped" | "failed"

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
  /** Called whenever the committed position this runtime continues from changes: after a batch, or on finding another writer moved it. */
  readonly onCheckpoint?: (checkpoint: number) => void
  /** Called when a fetch found nothing new: the projection is caught up with the log. */
  readonly onIdle?: (checkpoint: number) => void
  /** Called whenever the runtime's state changes, with the reason of a retry, a wait or a failure. */
  readonly onState?: (state: ProjectionState, detail?: string) => void
  /** Dead letters in a row (nothing projected between them) after which the projection stops as fatal (default 50). */
  readonly maxDeadLettersInARow?: number
  /** Publish side effects after each commit (default). Tests turn it off to stand for a crash in between. */
  readonly publishEffects?: boolean
}

/** A batch read from the log: its messages, as events, and (fetched ahead) their outcomes. */
interface Fetched {
  readonly messages: Array<JsMsg>
  readonly events: ReadonlyArray<ReadEvent>
  readonly projected?: ReadonlyMap<ReadEvent, Outcome>
}

interface Clients {
  readonly js: JetStreamClient
  readonly jsm: JetStreamManager
}

/**
 * Reads one generation from `checkpoint + 1` and applies batch after batch until `until` is
 * reached (rebuild), the generation stops being writable (a rebuild replaced it), or `signal`.
 * A batch that fails on our side is retried as it is, without acknowledging, until it commits; a
 * batch Postgres refuses is bisected to the event it refuses ({@link applyFindingPoison}).
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
    publishOutbox(sql, clients.js, projection.name).catch((error: unknown) =>
      logEvent("warn", "publishing side effects failed; they stay pending", { error: String(error) })
    )
  if (publishEffects) await publishPending()
  /** Opens the consumer at `checkpoint + 1`; never reuses one after a failed fetch, whose delivery point may be past messages we dropped. */
  const reopen = async (): Promise<Consumer | undefined> => {
    const opened = await retrying(options, "opening the log consumer", () =>
      openConsumer(clients.js, clients.jsm, projection, generation, checkpoint)
    )
    return opened === STOPPED ? undefined : opened
  }
  let consumer = await reopen()
  if (consumer === undefined) return "stopped"
  /** Live, the next batch is fetched while this one commits; dropped (never applied) whenever the consumer is reopened. */
  let next: Promise<Fetched> | undefined
  const dropNext = () => {
    next?.catch(() => undefined)
    next = undefined
  }
  let fetchFailures = 0
  const streak = newStreak(options.maxDeadLettersInARow)
  try {
    while (!stopped()) {
      const target = until?.()
      if (target !== undefined && checkpoint >= target) return "reached"
      let fetched: Fetched
      try {
        fetched = await (next ??
          fetchBatch(
            consumer,
            target === undefined ? batchSize : Math.min(batchSize, Math.max(1, target - checkpoint)),
            options.fetchWaitMs ?? 1000
          ).then((messages) => ({ messages, events: messages.map(toReadEvent) })))
        next = undefined
        fetchFailures = 0
      } catch (error) {
        next = undefined
        await afterFailure(options, "reading the log", error, fetchFailures++)
        // Never reuse a consumer after a failed fetch: its delivery point may be past messages we dropped.
        consumer = await reopen()
        if (consumer === undefined) return "stopped"
        continue
      }
      const { messages, events } = fetched
      if (messages.length === 0) {
        // Caught up: a rebuild may have replaced this generation meanwhile, which only a write would tell.
        if (mode === "live") {
          const status = await retrying(options, "reading the registry", () => generationStatus(sql, generation))
          if (status === STOPPED) return "stopped"
          if (status !== "active") return "replaced"
        }
        options.onState?.("running")
        options.onIdle?.(checkpoint)
        continue
      }
      const first = Math.min(...events.filter((event) => event.seq > checkpoint).map((event) => event.seq))
      if (Number.isFinite(first) && first !== checkpoint + 1 && (await messageExists(clients.jsm, projection, checkpoint + 1))) {
        logEvent("warn", "the log skipped events; reading again from the checkpoint", { projection: projection.name, checkpoint, first })
        dropNext()
        consumer = await reopen()
        if (consumer === undefined) return "stopped"
        continue
      }
      // While Postgres commits this batch, the next is fetched, read and projected (the projection is pure).
      if (until === undefined && !stopped())
        next = fetchBatch(consumer, batchSize, options.fetchWaitMs ?? 1000).then((messages) => {
          const read = messages.map(toReadEvent)
          return { messages, events: read, projected: projectAhead(projection, read) }
        })
      const started = performance.now()
      const result = await retrying(options, "applying a batch", () =>
        applyFindingPoison(sql, projection, generation, checkpoint, events, mode, streak, fetched.projected).catch(
          (error: unknown): CheckpointMoved => {
            if (isFailure(error, "CheckpointMoved")) return error
            throw error
          }
        )
      )
      if (result === STOPPED) return "stopped"
      if ("_tag" in result) {
        dropNext()
        if (result.status !== (mode === "live" ? "active" : "building")) return "replaced"
        logEvent("warn", "checkpoint moved under us; resuming from the committed position", {
          projection: projection.name,
          found: result.found
        })
        checkpoint = result.found ?? checkpoint
        options.onCheckpoint?.(checkpoint)
        consumer = await reopen()
        if (consumer === undefined) return "stopped"
        continue
      }
      checkpoint = result.checkpoint
      options.onCheckpoint?.(checkpoint)
      messages[messages.length - 1]?.ack()
      if (publishEffects && result.effects > 0) await publishPending()
      options.onState?.("running")
      options.onBatch?.({ ...result, events: events.length, millis: performance.now() - started, generation: generation.generation })
    }
    return "stopped"
  } finally {
    dropNext()
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

/** How long a first start waits before looking again while a rebuild is making the projection's first generation. */
const REBUILD_WAIT_MS = 1000

/**
 * Runs a projection live: the active generation, or a first one made and activated at once, and
 * whichever generation replaces it after a rebuild. Resolves when `signal` stops it; rejects with
 * the reason when it cannot go on (a generation built by newer code, a failure no retry mends).
 */
export const runLive = async (options: RuntimeOptions): Promise<void> => {
  const { projection } = options
  options.onState?.("starting")
  try {
    if ((await retrying(options, "preparing the registry", () => ensureRuntimeTables(options.sql))) === STOPPED)
      return options.onState?.("stopped")
    const clients = await retrying(options, "connecting to JetStream", () => clientsOf(options.nc))
    if (clients === STOPPED) return options.onState?.("stopped")
    while (options.signal?.aborted !== true) {
      const ensured = await retrying(options, "finding the active generation", () => ensureActiveGeneration(options.sql, projection))
      if (ensured === STOPPED) break
      if (ensured === undefined) {
        options.onState?.("waiting", "a rebuild is making the first generation")
        await pause(REBUILD_WAIT_MS, options.signal)
        continue
      }
      const { generation, created, closed } = ensured
      if (created) logEvent("info", "created the first generation", { projection: projection.name, schema: generation.schema })
      if (closed === true)
        logEvent("error", "the marts are closed to readers: they were built before their rows were scoped by store", {
          projection: projection.name,
          built: generation.version,
          code: projection.version,
          fix: `npm run mesh -- rebuild ${projection.name}`
        })
      if (generation.version > projection.version) throw newerVersion(projection, generation.version)
      if (generation.version < projection.version)
        logEvent("warn", "the marts were built by an older version of this projection; rebuild them", {
          projection: projection.name,
          built: generation.version,
          code: projection.version,
          fix: `npm run mesh -- rebuild ${projection.name}`
        })
      logEvent("info", "projecting", {
        projection: projection.name,
        generation: generation.generation,
        checkpoint: generation.checkpoint,
        stream: streamFor(projection.domain)
      })
      const outcome = await consumeGeneration(options, clients, generation, "live")
      if (outcome === "stopped") break
      logEvent("info", "generation replaced; switching", { projection: projection.name, generation: generation.generation })
    }
    options.onState?.("stopped")
  } catch (error) {
    options.onState?.("failed", describeFailure(error))
    throw error
  }
}
