import { jetstreamManager } from "@nats-io/jetstream"
import type { NatsConnection } from "@nats-io/nats-core"
import type postgres from "postgres"
import { decodeOutcome, OUTCOME_SUBJECTS, QUARANTINE_STREAM } from "../contracts/log.ts"
import { type DeadLetter, type EdgeHealth, meshStatus, openDeadLetters, type ProjectionStatus } from "../consumers/status.ts"
import { pushStatus } from "../powerbi/pusher.ts"
import { refreshStatus } from "../powerbi/refresh.ts"
import type { Projection } from "../projections/projection.ts"
import { addOutcome, NO_OUTCOMES, outcomesView, type SourceOutcomes } from "./outcomes.ts"
import {
  addToTally,
  etaSeconds,
  growth,
  keepRecent,
  lastMinutes,
  type MinuteTally,
  RATE_WINDOW_MS,
  rateOf,
  type Reading,
  tallyByMinute
} from "./rates.ts"

/** A quarantined event as the console lists it: what infra's quarantine reader gives, by shape. */
export interface QuarantinedEvent {
  readonly id: number
  readonly source: string
  readonly key: string | undefined
  readonly receivedAt: string
  readonly data: string
  readonly issues: ReadonlyArray<{ readonly path: string; readonly message: string }>
  readonly redriven: { readonly at: string; readonly subject: string; readonly seq: number } | undefined
}

/** The quarantine's reader and re-drive, as the CLI has them (infra/quarantine.ts), passed in by whoever serves the console. */
export interface QuarantineAccess {
  readonly list: () => Promise<ReadonlyArray<QuarantinedEvent>>
  readonly redrive: (
    ids: ReadonlyArray<number>
  ) => Promise<ReadonlyArray<{ readonly id: number; readonly outcome: string; readonly detail: string }>>
}

export interface MonitorOptions {
  /** The marts' database as its owner: runtime tables, dead letters, the Power BI sink's state. */
  readonly sql: postgres.Sql
  /** A connection that may read stream info and messages and hear the edge's outcomes (`ingest.outcomes.>`): an admin, as `up` runs it. */
  readonly nc: NatsConnection
  readonly projections: ReadonlyArray<Projection>
  readonly quarantine: QuarantineAccess
  /** Edges whose `/healthz` shows their spools (EDGE_URL). */
  readonly edgeUrls?: ReadonlyArray<string>
  /** How often the console samples while nobody asks (default 2 s): the per-minute counts keep going. */
  readonly sampleEveryMs?: number
  /** Reads closer together than this share one (default 500 ms). */
  readonly reuseWithinMs?: number
  readonly now?: () => number
}

/** The minutes the per-minute columns show. */
export const MINUTES_SHOWN = 10
/** The most bytes of a payload the console sends; the CLI shows the whole event. */
const PAYLOAD_CHARS = 4000

const clip = (text: string) => (text.length > PAYLOAD_CHARS ? `${text.slice(0, PAYLOAD_CHARS)}… (${text.length} characters)` : text)

/** What the console page shows, read at `at`. */
export type ConsoleView = Awaited<ReturnType<ReturnType<typeof consoleMonitor>["view"]>>

const groupBy = <T>(items: ReadonlyArray<T>, keyOf: (item: T) => string): ReadonlyMap<string, ReadonlyArray<T>> => {
  const groups = new Map<string, Array<T>>()
  for (const item of items) groups.set(keyOf(item), [...(groups.get(keyOf(item)) ?? []), item])
  return groups
}

const edgeView = (url: string, health: EdgeHealth | string) =>
  typeof health === "string"
    ? { url, status: "unreachable", error: health, shards: [] }
    : {
        url,
        status: health.status ?? "unknown",
        error: null,
        shards: Object.entries(health.regions ?? {}).flatMap(([region, body]) =>
          Object.entries(body.shards ?? {}).map(([shard, status]) => ({
            region,
            shard,
            connected: status.connected === true,
            depth: status.spool?.depth ?? null,
            oldestAgeMs: status.spool?.oldest_age_ms ?? null,
            drainFailures: status.spool?.drain_failures ?? null
          }))
        )
      }

/**
 * The console's view of the mesh: {@link meshStatus} (what `mesh status` prints) plus the dead
 * letters, the quarantine and the Power BI sink's state, with rates and per-minute counts from the
 * readings it keeps since it started.
 */
export const consoleMonitor = (options: MonitorOptions) => {
  const now = options.now ?? Date.now
  const startedAt = now()
  const checkpoints = new Map<string, Array<Reading>>()
  let acceptedBefore: ReadonlyMap<string, number> | undefined
  const acceptedPerMinute = new Map<string, MinuteTally>()
  let reading: { readonly at: number; readonly view: Promise<View> } | undefined
  let lastSampleAt = 0
  // The edge's answers (duplicates, rejections), heard while the console listens.
  const outcomes = new Map<string, SourceOutcomes>()
  const listening = options.nc.subscribe(OUTCOME_SUBJECTS, {
    callback: (error, message) => {
      if (error !== null) return
      const outcome = decodeOutcome(message.data)
      if (outcome === undefined) return
      outcomes.set(outcome.source, addOutcome(outcomes.get(outcome.source) ?? NO_OUTCOMES, outcome, now()))
    }
  })

  const readingsOf = (key: string, at: number, value: number) => {
    const readings = [...(checkpoints.get(key) ?? []), { at, value }]
    const kept = keepRecent(readings, RATE_WINDOW_MS)
    checkpoints.set(key, [...kept])
    return kept
  }

  const projectionView = (row: ProjectionStatus, at: number) => {
    const eventsPerSecond = rateOf(readingsOf(`live:${row.projection}:${row.generation}`, at, row.checkpoint))
    return {
      ...row,
      eventsPerSecond,
      catchUpSeconds: etaSeconds(row.lag, eventsPerSecond) ?? null,
      rebuilds: row.building.map((build) => {
        const rate = rateOf(readingsOf(`build:${row.projection}:${build.generation}`, at, build.checkpoint))
        return {
          ...build,
          position: build.checkpoint,
          percent: build.target <= 0 ? 100 : Math.min(100, (100 * build.checkpoint) / build.target),
          eventsPerSecond: rate,
          etaSeconds: etaSeconds(build.target - build.checkpoint, rate) ?? null
        }
      })
    }
  }

  /** Reads the status and takes its readings: the background sample (no edges asked) and the first part of a view. */
  const sample = async (edgeUrls: ReadonlyArray<string>) => {
    const at = now()
    const status = await meshStatus({ sql: options.sql, nc: options.nc, projections: options.projections, edgeUrls })
    const accepted = new Map(status.sources.map((source) => [source.source, source.accepted]))
    for (const [source, added] of growth(acceptedBefore, accepted))
      acceptedPerMinute.set(source, addToTally(acceptedPerMinute.get(source) ?? new Map(), at, added))
    acceptedBefore = accepted
    lastSampleAt = at
    return { at, status, projections: status.projections.map((row) => projectionView(row, at)) }
  }

  // The quarantine is read again only when its stream has grown (an event, a re-drive's outcome) or after a re-drive here.
  let quarantineCache: { readonly seq: number; readonly records: ReadonlyArray<QuarantinedEvent> } | undefined
  const quarantine = async () => {
    const last = await jetstreamManager(options.nc)
      .then((jsm) => jsm.streams.info(QUARANTINE_STREAM))
      .then(
        (info) => info.state.last_seq,
        () => -1
      )
    if (quarantineCache !== undefined && last >= 0 && quarantineCache.seq === last) return quarantineCache.records
    const records = await options.quarantine.list()
    quarantineCache = { seq: last, records }
    return records
  }

  const read = async () => {
    const [{ at, status, projections }, letters, quarantined, powerbi] = await Promise.all([
      sample(options.edgeUrls ?? []),
      openDeadLetters(options.sql),
      quarantine().then(
        (records) => ({ records, error: null }),
        (error: unknown) => ({
          records: [] as ReadonlyArray<QuarantinedEvent>,
          error: error instanceof Error ? error.message : String(error)
        })
      ),
      Promise.all([pushStatus(options.sql), refreshStatus(options.sql)]).then(
        ([push, refreshes]) => ({ push, refreshes, error: null }),
        (error: unknown) => ({ push: [], refreshes: [], error: error instanceof Error ? error.message : String(error) })
      )
    ])
    const bySource = groupBy(quarantined.records, (record) => record.source)
    const lettersBySource = groupBy(letters, (letter) => letter.subject.split(".")[2] ?? "")
    const lastError = (source: string) => {
      const issue = (bySource.get(source) ?? []).at(-1)
      const letter = (lettersBySource.get(source) ?? []).at(-1)
      const rejection = outcomes.get(source)?.lastRejection
      const candidates = [
        ...(rejection === undefined
          ? []
          : [
              {
                at: new Date(rejection.at).toISOString(),
                text: `answered ${rejection.status} ${rejection.error}${rejection.message === "" ? "" : `: ${rejection.message}`}`
              }
            ]),
        ...(issue === undefined
          ? []
          : [{ at: issue.receivedAt, text: `quarantined: ${issue.issues.map((one) => `${one.path}: ${one.message}`).join("; ")}` }]),
        ...(letter === undefined ? [] : [{ at: letter.createdAt, text: `dead letter in ${letter.projection}: ${letter.reason}` }])
      ]
      return candidates.sort((a, b) => a.at.localeCompare(b.at)).at(-1) ?? null
    }
    return {
      at: new Date(at).toISOString(),
      startedAt: new Date(startedAt).toISOString(),
      minutes: MINUTES_SHOWN,
      sources: status.sources.map((source) => ({
        ...source,
        acceptedPerMinute: lastMinutes(acceptedPerMinute.get(source.source) ?? new Map(), at, MINUTES_SHOWN),
        quarantinedPerMinute: lastMinutes(
          tallyByMinute((bySource.get(source.source) ?? []).map((record) => record.receivedAt)),
          at,
          MINUTES_SHOWN
        ),
        waitingInQuarantine: (bySource.get(source.source) ?? []).filter((record) => record.redriven === undefined).length,
        ...outcomesView(outcomes.get(source.source) ?? NO_OUTCOMES, at, MINUTES_SHOWN),
        lastError: lastError(source.source)
      })),
      projections,
      deadLetters: letters.map((letter: DeadLetter) => ({ ...letter, payload: clip(letter.payload) })),
      quarantine: {
        error: quarantined.error,
        waiting: quarantined.records
          .filter((record) => record.redriven === undefined)
          .map((record) => ({
            id: record.id,
            source: record.source,
            key: record.key ?? null,
            receivedAt: record.receivedAt,
            issues: record.issues,
            payload: clip(record.data)
          }))
      },
      powerbi,
      edges: status.edges.map((edge) => edgeView(edge.url, edge.health))
    }
  }
  type View = Awaited<ReturnType<typeof read>>

  // One read at a time: the counts' growth and the rates need the readings in the order they were taken.
  let queue: Promise<unknown> = Promise.resolve()
  const serially = <T>(task: () => Promise<T>): Promise<T> => {
    const next = queue.then(task, task)
    queue = next.catch(() => undefined)
    return next
  }

  const view = (): Promise<View> => {
    const at = now()
    if (reading === undefined || at - reading.at >= (options.reuseWithinMs ?? 500)) {
      const next = serially(read)
      reading = { at, view: next }
      // A failed read is not kept: the next ask tries again.
      next.catch(() => {
        if (reading?.view === next) reading = undefined
      })
    }
    return reading.view
  }

  const every = options.sampleEveryMs ?? 2000
  const timer = setInterval(() => {
    if (now() - lastSampleAt >= every) void serially(() => sample([])).catch(() => undefined)
  }, every)
  timer.unref()
  return {
    view,
    /** Forgets what was read, so the next view reads again (after a re-drive). */
    invalidate: () => {
      reading = undefined
      quarantineCache = undefined
    },
    close: () => {
      clearInterval(timer)
      listening.unsubscribe()
    }
  }
}
