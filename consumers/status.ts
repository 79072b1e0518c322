import type { JetStreamManager } from "@nats-io/jetstream"
import type { NatsConnection } from "@nats-io/nats-core"
import type postgres from "postgres"
import { DOMAINS, QUARANTINE_STREAM, streamFor } from "../contracts/log.ts"
import type { Projection } from "../projections/projection.ts"
import { activeGeneration, type Generation } from "./registry.ts"
import { ensureRuntimeTables } from "./runtime-tables.ts"
import { clientsOf } from "./runtime.ts"

/**
 * The mesh's state as plain data, read once for every place that shows it: `mesh status` prints it,
 * the operator's console serves it, and the figures match because they come from here.
 */

/** The events of a stream after `checkpoint`: not projected yet. */
export const lagOf = (head: number, checkpoint: number): number => Math.max(0, head - checkpoint)

/** Seconds since the first event after `checkpoint` was stored (0 when nothing waits): how far behind the marts are in time; null when unknown. */
export const lagSecondsOf = async (
  jsm: JetStreamManager,
  stream: string,
  checkpoint: number,
  head: number,
  now: number
): Promise<number | null> => {
  if (head <= checkpoint) return 0
  // Unknown (null) when the event cannot be read: a user without message access, a server away.
  const first = await jsm.streams.getMessage(stream, { seq: checkpoint + 1 }).catch(() => null)
  return first === null ? null : Math.max(0, (now - first.time.getTime()) / 1000)
}

/** Per projection: the generation readers see, its position against the stream head, and open dead letters. */
export const projectionStatus = async (sql: postgres.Sql, nc: NatsConnection, projections: ReadonlyArray<Projection>) => {
  await ensureRuntimeTables(sql)
  const clients = await clientsOf(nc)
  const now = Date.now()
  return Promise.all(
    projections.map(async (projection) => {
      const active: Generation | undefined = await activeGeneration(sql, projection.name)
      const stream = streamFor(projection.domain)
      const head = (await clients.jsm.streams.info(stream)).state.last_seq
      const checkpoint = active?.checkpoint ?? 0
      const [letters] =
        await sql`SELECT count(*)::int AS open FROM ingest.dead_letters WHERE projection = ${projection.name} AND redriven_at IS NULL`
      const building =
        await sql`SELECT generation, checkpoint, switch_waiting_since, switch_attempts FROM ingest.projections WHERE name = ${projection.name} AND status = 'building'`
      return {
        projection: projection.name,
        domain: projection.domain,
        generation: active?.generation ?? null,
        version:
          active === undefined
            ? null
            : `${active.version}${active.version === projection.version ? "" : ` (code is ${projection.version}: rebuild)`}`,
        schema: active?.schema ?? null,
        checkpoint,
        head,
        lag: lagOf(head, checkpoint),
        lagSeconds: await lagSecondsOf(clients.jsm, stream, checkpoint, head, now),
        deadLetters: Number(letters?.open ?? 0),
        building: building.map((row) => ({
          generation: Number(row.generation),
          checkpoint: Number(row.checkpoint),
          // A rebuild replays up to the live generation's position (or the head without one): its target.
          target: active?.checkpoint ?? head,
          // Set while the rebuild has caught up but readers of the old marts keep its switch waiting.
          switchWaitingSince: row.switch_waiting_since === null ? null : (row.switch_waiting_since as Date).toISOString(),
          switchAttempts: Number(row.switch_attempts)
        }))
      }
    })
  )
}

export type ProjectionStatus = Awaited<ReturnType<typeof projectionStatus>>[number]

/** Per source, what the log holds: events appended to its subjects, and events its contract refused into the quarantine. */
export interface SourceCounts {
  readonly source: string
  readonly accepted: number
  readonly quarantined: number
}

/** The source token of a log subject: `ingest.<domain>.<source>.<type>[.<region>]` and `ingest.quarantine.<source>[.<region>]`. */
export const sourceOfSubject = (subject: string): string | undefined => subject.split(".")[2]

/** Sums per-subject counts (a stream's `subjects_filter` answer) by the subject's source. */
export const countBySource = (subjects: Readonly<Record<string, number>>): ReadonlyMap<string, number> => {
  const counts = new Map<string, number>()
  for (const [subject, count] of Object.entries(subjects)) {
    const source = sourceOfSubject(subject)
    if (source !== undefined) counts.set(source, (counts.get(source) ?? 0) + count)
  }
  return counts
}

/** A stream's messages per subject under `filter`; empty when the stream is not declared here. */
const subjectCounts = async (jsm: JetStreamManager, stream: string, filter: string): Promise<Readonly<Record<string, number>>> =>
  jsm.streams.info(stream, { subjects_filter: filter }).then(
    (info) => info.state.subjects ?? {},
    () => ({})
  )

/** Per source seen in the log: accepted events (its domain stream's subjects) and quarantined ones (the QUARANTINE stream's). */
export const sourceCounts = async (nc: NatsConnection): Promise<ReadonlyArray<SourceCounts>> => {
  const { jsm } = await clientsOf(nc)
  const accepted = new Map<string, number>()
  for (const domain of DOMAINS)
    for (const [source, count] of countBySource(await subjectCounts(jsm, streamFor(domain), `ingest.${domain}.>`)))
      accepted.set(source, (accepted.get(source) ?? 0) + count)
  const quarantined = countBySource(await subjectCounts(jsm, QUARANTINE_STREAM, "ingest.quarantine.>"))
  return [...new Set([...accepted.keys(), ...quarantined.keys()])]
    .sort()
    .map((source) => ({ source, accepted: accepted.get(source) ?? 0, quarantined: quarantined.get(source) ?? 0 }))
}

/** A shard's spool as the edge's `/healthz` gives it. */
export interface ShardHealth {
  readonly connected?: boolean
  readonly spool?: {
    readonly depth: number
    readonly oldest_age_ms: number | null
    readonly drain_failures: number
    readonly next_drain_at: number | null
  } | null
}

/** The parts of the edge's `/healthz` answer that status shows. */
export interface EdgeHealth {
  readonly status?: string
  readonly regions?: Readonly<Record<string, { readonly connected?: boolean; readonly shards?: Readonly<Record<string, ShardHealth>> }>>
}

/** An edge's `/healthz`, or why it did not answer. */
export const edgeHealth = async (edgeUrl: string, timeoutMs = 5000): Promise<EdgeHealth | string> =>
  fetch(`${edgeUrl}/healthz`, { signal: AbortSignal.timeout(timeoutMs) }).then(
    (response) => response.json() as Promise<EdgeHealth>,
    (error: unknown) => `did not answer: ${error instanceof Error ? error.message : String(error)}`
  )

/** Everything {@link meshStatus} reads. */
export interface MeshStatus {
  readonly at: string
  readonly projections: ReadonlyArray<ProjectionStatus>
  readonly sources: ReadonlyArray<SourceCounts>
  readonly edges: ReadonlyArray<{ readonly url: string; readonly health: EdgeHealth | string }>
}

/** The projections' positions, the sources' counts in the log, and each edge's shards and spools, read now. */
export const meshStatus = async (options: {
  readonly sql: postgres.Sql
  readonly nc: NatsConnection
  readonly projections: ReadonlyArray<Projection>
  readonly edgeUrls?: ReadonlyArray<string>
}): Promise<MeshStatus> => {
  const at = new Date().toISOString()
  const [projections, sources, edges] = await Promise.all([
    projectionStatus(options.sql, options.nc, options.projections),
    sourceCounts(options.nc),
    Promise.all((options.edgeUrls ?? []).map(async (url) => ({ url, health: await edgeHealth(url) })))
  ])
  return { at, projections, sources, edges }
}

/** The projection table of `mesh status`, as tab-separated lines. */
export const projectionLines = (rows: ReadonlyArray<ProjectionStatus>): ReadonlyArray<string> => [
  ["projection", "generation", "version", "checkpoint", "head", "lag", "lag s", "dead letters", "building"].join("\t"),
  ...rows.map((row) =>
    [
      row.projection,
      row.generation ?? "-",
      row.version ?? "-",
      row.checkpoint,
      row.head,
      row.lag,
      row.lagSeconds === null ? "-" : row.lagSeconds.toFixed(1),
      row.deadLetters,
      row.building
        .map(
          (b) =>
            `g${b.generation}@${b.checkpoint}${b.switchWaitingSince === null ? "" : ` (switch waiting for readers since ${b.switchWaitingSince}, ${b.switchAttempts} tries)`}`
        )
        .join(",") || "-"
    ].join("\t")
  )
]

/** The source table of `mesh status`: what the log holds per source. */
export const sourceLines = (rows: ReadonlyArray<SourceCounts>): ReadonlyArray<string> => [
  ["source", "accepted", "quarantined"].join("\t"),
  ...rows.map((row) => [row.source, row.accepted, row.quarantined].join("\t"))
]

/** An open dead letter, with its reason and the event as it was in the log. */
export interface DeadLetter {
  readonly id: number
  readonly projection: string
  readonly seq: number
  readonly subject: string
  readonly dedupeKey: string
  readonly sqlstate: string | null
  readonly reason: string
  readonly payload: string
  readonly createdAt: string
}

/** The open dead letters (not re-driven), oldest first, at most `limit`. */
export const openDeadLetters = async (sql: postgres.Sql, limit = 200): Promise<ReadonlyArray<DeadLetter>> => {
  await ensureRuntimeTables(sql)
  const rows = await sql`SELECT id, projection, seq, subject, dedupe_key, sqlstate, reason, payload, created_at FROM ingest.dead_letters
                         WHERE redriven_at IS NULL ORDER BY id LIMIT ${limit}`
  return rows.map((row) => ({
    id: Number(row.id),
    projection: row.projection as string,
    seq: Number(row.seq),
    subject: row.subject as string,
    dedupeKey: row.dedupe_key as string,
    sqlstate: (row.sqlstate as string | null) ?? null,
    reason: row.reason as string,
    payload: row.payload as string,
    createdAt: (row.created_at as Date).toISOString()
  }))
}
