import type { NatsConnection } from "@nats-io/nats-core"
import type postgres from "postgres"
import { streamFor } from "../contracts/log.ts"
import { logEvent } from "../platform/logger.ts"
import type { Projection } from "../projections/projection.ts"
import { newerVersion } from "./apply.ts"
import { bulkLoad } from "./bulk-load.ts"
import { describeFailure, isFailure } from "./failures.ts"
import { activate, isLockTimeout, lockReaders, READER_LOCK_TIMEOUT_MS } from "./switch.ts"
import { activeGeneration, createGeneration, dropGeneration, dropRetired, generations, rebuildLockKey } from "./registry.ts"
import { ensureRuntimeTables } from "./runtime-tables.ts"
import { clientsOf, consumeGeneration } from "./runtime.ts"

export interface RebuildProgress {
  readonly position: number
  readonly target: number
  readonly eventsPerSecond: number
  /** Seconds left at the current rate, or undefined before the first batch. */
  readonly etaSeconds: number | undefined
}

/** A switch that found readers still streaming from the old marts, and when it tries again. */
export interface SwitchWait {
  readonly attempt: number
  readonly nextAttemptInMs: number
}

/**
 * How long a switch waits after its `attempt`-th (0-based) try found readers of the old marts:
 * 1 s doubling to 30 s. Each try holds new readers back for at most the lock timeout; the pause
 * lets them run between tries.
 */
export const switchBackoffMs = (attempt: number): number => Math.min(30_000, 1000 * 2 ** Math.min(attempt, 5))

export interface RebuildResult {
  readonly generation: number
  readonly schema: string
  readonly events: number
  readonly seconds: number
  readonly dropped: ReadonlyArray<string>
}

/**
 * Rebuilds a projection without downtime: replays the log into a new generation in a shadow schema
 * (bulk, same code path as live) up to exactly the live generation's position, then in ONE
 * transaction re-points the `mart` views and retires the old generation, and finally drops it.
 * Readers see the old marts until the switch and the complete new ones after it. An event the
 * projection cannot project stops the rebuild, naming it; the live marts are untouched.
 */
export const rebuildProjection = async (options: {
  readonly sql: postgres.Sql
  readonly nc: NatsConnection
  readonly projection: Projection
  readonly batchSize?: number
  /**
   * Replay as a bulk load (default): COPY into the shadow schema, indexes built after
   * ({@link bulkLoad}); false replays batch by batch as live does. Either way the events that
   * arrive meanwhile are caught up batch by batch before the switch.
   */
  readonly bulk?: boolean
  readonly onProgress?: (progress: RebuildProgress) => void
  /** How long each try of the switch waits for readers of the old marts (default {@link READER_LOCK_TIMEOUT_MS}). */
  readonly switchLockTimeoutMs?: number
  /** Called, and awaited, each time the switch found readers and is about to pause before trying again. */
  readonly onSwitchWait?: (wait: SwitchWait) => void | Promise<void>
}): Promise<RebuildResult> => {
  const { sql, projection } = options
  await ensureRuntimeTables(sql)
  // One rebuild per projection at a time, held for the whole rebuild on its own connection: a
  // generation still 'building' when we hold the lock was left by a rebuild that died, and goes.
  const lock = await sql.reserve()
  try {
    const [{ locked }] = (await lock`SELECT pg_try_advisory_lock(hashtext(${rebuildLockKey(projection)})) AS locked`) as unknown as [
      { locked: boolean }
    ]
    if (!locked) throw new Error(`another rebuild of ${projection.name} is running`)
    try {
      const live = await activeGeneration(sql, projection.name)
      // Older code must not replace marts that newer code built.
      if (live !== undefined && live.version > projection.version) throw newerVersion(projection, live.version)
      for (const stale of (await generations(sql, projection.name)).filter((generation) => generation.status === "building")) {
        await dropGeneration(sql, stale)
        logEvent("warn", "dropped a generation left by a rebuild that did not finish", {
          projection: projection.name,
          schema: stale.schema
        })
      }
      return await rebuildLocked(options)
    } finally {
      await lock`SELECT pg_advisory_unlock(hashtext(${rebuildLockKey(projection)}))`
    }
  } finally {
    lock.release()
  }
}

const rebuildLocked = async (options: Parameters<typeof rebuildProjection>[0]): Promise<RebuildResult> => {
  const { sql, projection } = options
  const clients = await clientsOf(options.nc)
  const generation = await createGeneration(sql, projection)
  logEvent("info", "rebuilding", { projection: projection.name, generation: generation.generation, schema: generation.schema })
  const started = performance.now()
  let position = 0
  // Never replay past the live generation: events after its position must be projected live, so
  // their side effects are recorded. Without a live generation, replay to the stream's head.
  let target =
    (await activeGeneration(sql, projection.name))?.checkpoint ??
    (await clients.jsm.streams.info(streamFor(projection.domain))).state.last_seq
  const report = (at: number) => {
    position = at
    const seconds = (performance.now() - started) / 1000
    const eventsPerSecond = position / Math.max(seconds, 0.001)
    options.onProgress?.({
      position,
      target,
      eventsPerSecond,
      etaSeconds: eventsPerSecond > 0 ? Math.max(0, target - position) / eventsPerSecond : undefined
    })
  }
  const consumeTo = async (until: number) => {
    target = until
    const outcome = await consumeGeneration(
      {
        sql,
        nc: options.nc,
        projection,
        batchSize: options.batchSize ?? 2000,
        // Also when a retried batch finds it had committed after all: the position is what is committed.
        onCheckpoint: (checkpoint) => {
          position = checkpoint
        },
        onBatch: (batch) => report(batch.checkpoint)
      },
      clients,
      { ...generation, checkpoint: position },
      "rebuild",
      () => target
    )
    if (outcome === "replaced")
      throw new Error(`generation ${generation.generation} of ${projection.name} was changed by another process during the rebuild`)
  }

  try {
    if (options.bulk !== false)
      try {
        // Progress during the load is what has been read; nothing is committed before its end.
        const loaded = await bulkLoad({ sql, js: clients.js, projection, generation, target, onProgress: report })
        position = loaded.checkpoint
        logEvent("info", "bulk load", { projection: projection.name, events: loaded.events, seconds: loaded.seconds })
      } catch (error) {
        if (isFailure(error, "PoisonInRebuild")) throw error
        // Rolled back whole. Batch by batch, a value Postgres refuses is found and named, and a failure on our side is retried.
        logEvent("warn", "the bulk load failed; replaying batch by batch", { projection: projection.name, error: describeFailure(error) })
        position = 0
      }
    await consumeTo(target)
    for (let attempt = 0; ;) {
      const live = await activeGeneration(sql, projection.name)
      if (live !== undefined && live.checkpoint > position) {
        await consumeTo(live.checkpoint)
        continue
      }
      let readersWaited = false
      const switched = await sql
        .begin(async (tx) => {
          await lockReaders(tx, projection, options.switchLockTimeoutMs ?? READER_LOCK_TIMEOUT_MS)
          if (live !== undefined) {
            const [row] =
              await tx`SELECT checkpoint FROM ingest.projections WHERE name = ${projection.name} AND generation = ${live.generation} FOR UPDATE`
            if (Number(row?.checkpoint) !== position) return false
          }
          await activate(tx, projection, generation)
          return true
        })
        .catch((error: unknown) => {
          if (!isLockTimeout(error)) throw error
          readersWaited = true
          return false
        })
      if (switched) break
      if (!readersWaited) continue
      const nextAttemptInMs = switchBackoffMs(attempt)
      await sql`UPDATE ingest.projections SET switch_waiting_since = coalesce(switch_waiting_since, now()), switch_attempts = switch_attempts + 1
                WHERE name = ${projection.name} AND generation = ${generation.generation}`
      logEvent("info", "readers of the old marts are still streaming; trying the switch again later", {
        projection: projection.name,
        generation: generation.generation,
        attempt,
        nextAttemptInMs
      })
      await options.onSwitchWait?.({ attempt, nextAttemptInMs })
      await new Promise((resolveLater) => setTimeout(resolveLater, nextAttemptInMs))
      attempt++
    }
  } catch (error) {
    await dropGeneration(sql, generation)
    throw error
  }
  const dropped = await dropRetired(sql, projection.name)
  const seconds = (performance.now() - started) / 1000
  logEvent("info", "rebuilt", { projection: projection.name, generation: generation.generation, events: position, seconds, dropped })
  return { generation: generation.generation, schema: generation.schema, events: position, seconds, dropped }
}
