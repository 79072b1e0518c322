import { randomUUID } from "node:crypto"
import type postgres from "postgres"
import { inSharedSchema } from "../platform/ingest-schema.ts"
import type { ExportFormat, Page, RenderedFile } from "./model.ts"

/**
 * Export jobs and the cache of their files, in Postgres (`ingest.report_exports`,
 * `ingest.report_export_files`): the state every worker and API process shares, so a job survives
 * whichever process dies. The queue (JetStream) only says which job to work on next.
 */

export const JOB_STATUSES = ["NotStarted", "Running", "Succeeded", "Failed"] as const
export type JobStatus = (typeof JOB_STATUSES)[number]

/** What a job renders, fixed when it is accepted: the registry may change meanwhile. */
export interface JobSpec {
  readonly report_id: string
  readonly pages: ReadonlyArray<Page>
  /** Power BI URL filter expression, or null for the unfiltered report. */
  readonly filter: string | null
  readonly format: ExportFormat
  /** The selections as the request named them, for the job's record. */
  readonly filters: Readonly<Record<string, unknown>>
}

export interface Job {
  readonly id: string
  readonly cacheKey: string
  readonly spec: JobSpec
  readonly status: JobStatus
  readonly percent: number
  readonly error: string | null
  readonly attempts: number
  /** The token of the claim that holds the job while Running (null otherwise). */
  readonly claim: string | null
  /** Served from the cache (rendered for an earlier, identical request). */
  readonly cached: boolean
  readonly createdAt: string
  readonly updatedAt: string
}

type Sql = postgres.Sql | postgres.TransactionSql

/**
 * How long a job may sit untouched in flight before an identical request gives up on it and starts
 * another: a NotStarted job not delivered, or a Running one whose worker stopped renewing its lease.
 */
export const ABANDONED_MS = 3_600_000

export const ensureJobTables = (sql: postgres.Sql): Promise<void> =>
  inSharedSchema(sql, async (tx) => {
    await tx.unsafe(`CREATE TABLE IF NOT EXISTS ingest.report_export_files (
      cache_key text PRIMARY KEY,
      content_type text NOT NULL,
      bytes bytea NOT NULL,
      size integer NOT NULL,
      created_at timestamptz NOT NULL DEFAULT now(),
      expires_at timestamptz NOT NULL)`)
    await tx.unsafe(`CREATE TABLE IF NOT EXISTS ingest.report_exports (
      id text PRIMARY KEY,
      cache_key text NOT NULL,
      spec jsonb NOT NULL,
      status text NOT NULL CHECK (status IN ('NotStarted', 'Running', 'Succeeded', 'Failed')),
      percent integer NOT NULL DEFAULT 0,
      error text,
      attempts integer NOT NULL DEFAULT 0,
      cached boolean NOT NULL DEFAULT false,
      renders integer NOT NULL DEFAULT 0,
      created_at timestamptz NOT NULL DEFAULT now(),
      updated_at timestamptz NOT NULL DEFAULT now())`)
    // The worker holding a Running job (a token per claim) and until when, renewed while it renders.
    await tx.unsafe(
      `ALTER TABLE ingest.report_exports ADD COLUMN IF NOT EXISTS claim text, ADD COLUMN IF NOT EXISTS lease_until timestamptz`
    )
    // One job in flight per cache key: an identical request while one renders joins it.
    await tx.unsafe(
      `CREATE UNIQUE INDEX IF NOT EXISTS report_exports_in_flight ON ingest.report_exports (cache_key) WHERE status IN ('NotStarted', 'Running')`
    )
    await tx.unsafe(`CREATE INDEX IF NOT EXISTS report_export_files_age ON ingest.report_export_files (created_at)`)
  })

const toJob = (row: Record<string, unknown>): Job => ({
  id: row.id as string,
  cacheKey: row.cache_key as string,
  spec: row.spec as JobSpec,
  status: row.status as JobStatus,
  percent: Number(row.percent),
  error: (row.error as string | null) ?? null,
  attempts: Number(row.attempts),
  claim: (row.claim as string | null) ?? null,
  cached: row.cached as boolean,
  createdAt: (row.created_at as Date).toISOString(),
  updatedAt: (row.updated_at as Date).toISOString()
})

export const findJob = async (sql: Sql, id: string): Promise<Job | undefined> => {
  const [row] = await sql`SELECT * FROM ingest.report_exports WHERE id = ${id}`
  return row === undefined ? undefined : toJob(row)
}

/** A job answered from the cache, Succeeded at once, when a fresh file for `cacheKey` is there; undefined when not. */
const cachedJob = async (sql: Sql, cacheKey: string, spec: JobSpec): Promise<Job | undefined> => {
  const [row] = await sql`INSERT INTO ingest.report_exports (id, cache_key, spec, status, percent, cached)
    SELECT ${`exp_${randomUUID()}`}, ${cacheKey}, ${sql.json(spec as never)}, 'Succeeded', 100, true
    WHERE EXISTS (SELECT 1 FROM ingest.report_export_files WHERE cache_key = ${cacheKey} AND expires_at > now())
    RETURNING *`
  return row === undefined ? undefined : toJob(row)
}

/**
 * A job for `spec`: answered from the cache when a fresh file exists (Succeeded at once, nothing to
 * queue), joined when an identical job is in flight, or new (NotStarted: the caller queues it).
 */
export const acceptJob = async (
  sql: postgres.Sql,
  cacheKey: string,
  spec: JobSpec
): Promise<{ readonly job: Job; readonly queue: boolean }> => {
  // A cache hit needs no lock (a Succeeded row is never joined): identical requests are answered side by side.
  const hit = await cachedJob(sql, cacheKey, spec)
  if (hit !== undefined) return { job: hit, queue: false }
  return sql.begin(async (tx) => {
    // Serialised per key, so two identical requests at once make one job.
    await tx`SELECT pg_advisory_xact_lock(hashtext(${`ingest.report_exports.${cacheKey}`}))`
    // The file may have been stored since the look above.
    const fresh = await cachedJob(tx, cacheKey, spec)
    if (fresh !== undefined) return { job: fresh, queue: false }
    const [flying] = await tx`SELECT *, (status = 'Running' AND lease_until < now() - ${`${ABANDONED_MS} milliseconds`}::interval)
        OR (status = 'NotStarted' AND updated_at < now() - ${`${ABANDONED_MS} milliseconds`}::interval) AS abandoned
      FROM ingest.report_exports WHERE cache_key = ${cacheKey} AND status IN ('NotStarted', 'Running')`
    if (flying !== undefined && flying.abandoned !== true) return { job: toJob(flying), queue: false }
    // No worker has touched it for a long time: its queue message is gone (a purged queue). A new job takes its place.
    if (flying !== undefined)
      await tx`UPDATE ingest.report_exports SET status = 'Failed', error = 'abandoned: no worker took it up (was its queue message lost?)', updated_at = now()
        WHERE id = ${flying.id as string}`
    const [row] = await tx`INSERT INTO ingest.report_exports (id, cache_key, spec, status)
      VALUES (${`exp_${randomUUID()}`}, ${cacheKey}, ${tx.json(spec as never)}, 'NotStarted') RETURNING *`
    return { job: toJob(row as Record<string, unknown>), queue: true }
  })
}

/**
 * What a worker may do with a delivered job: `render` it (it is now Running, this attempt counted),
 * `done` (it finished already: a redelivery after a worker died between finishing and acknowledging),
 * or `give-up` (it used every attempt: now Failed).
 */
export type Claim =
  | { readonly _tag: "render"; readonly job: Job & { readonly claim: string } }
  | { readonly _tag: "done"; readonly job: Job | undefined }
  | { readonly _tag: "give-up"; readonly job: Job }
  /** Another worker holds it, its lease running for `leaseLeftMs` more: a redelivery while it renders. */
  | { readonly _tag: "busy"; readonly leaseLeftMs: number }

/**
 * Claims a delivered job for one attempt, `leaseMs` long (renewed by {@link renewLease} while the
 * worker renders): a Running job is taken over only once its lease ran out, so a redelivery while
 * its worker lives cannot start a second render.
 */
export const claimJob = async (sql: postgres.Sql, id: string, maxAttempts: number, leaseMs: number): Promise<Claim> =>
  sql.begin(async (tx) => {
    const [row] = await tx`SELECT *, greatest(0, extract(epoch FROM lease_until - now()) * 1000)::float8 AS lease_left
      FROM ingest.report_exports WHERE id = ${id} FOR UPDATE`
    if (row === undefined) return { _tag: "done", job: undefined }
    const job = toJob(row)
    if (job.status === "Succeeded" || job.status === "Failed") return { _tag: "done", job }
    if (job.status === "Running" && Number(row.lease_left) > 0) return { _tag: "busy", leaseLeftMs: Number(row.lease_left) }
    if (job.attempts >= maxAttempts) {
      const message = `gave up after ${job.attempts} attempts${job.error === null ? "" : `; the last: ${job.error}`}`
      const [failed] = await tx`UPDATE ingest.report_exports SET status = 'Failed', error = ${message}, claim = NULL, updated_at = now()
        WHERE id = ${id} RETURNING *`
      return { _tag: "give-up", job: toJob(failed as Record<string, unknown>) }
    }
    const [running] = await tx`UPDATE ingest.report_exports
      SET status = 'Running', attempts = attempts + 1, percent = 0, claim = ${randomUUID()},
        lease_until = now() + ${`${leaseMs} milliseconds`}::interval, updated_at = now()
      WHERE id = ${id} RETURNING *`
    return { _tag: "render", job: toJob(running as Record<string, unknown>) as Job & { readonly claim: string } }
  })

/** Keeps the claim: false when it was lost (its lease ran out and another worker took the job over). */
export const renewLease = async (sql: Sql, job: Job, leaseMs: number): Promise<boolean> => {
  const rows = await sql`UPDATE ingest.report_exports SET lease_until = now() + ${`${leaseMs} milliseconds`}::interval
    WHERE id = ${job.id} AND status = 'Running' AND claim = ${job.claim} RETURNING id`
  return rows.length > 0
}

export const reportProgress = async (sql: Sql, job: Job, percent: number): Promise<void> => {
  await sql`UPDATE ingest.report_exports SET percent = ${Math.max(0, Math.min(99, Math.round(percent)))}, updated_at = now()
    WHERE id = ${job.id} AND status = 'Running' AND claim = ${job.claim}`
}

/** A fresh file for `cacheKey` rendered by another job meanwhile: this job succeeds from it. */
export const succeedFromCache = async (sql: postgres.Sql, job: Job): Promise<boolean> => {
  const rows =
    await sql`UPDATE ingest.report_exports SET status = 'Succeeded', percent = 100, cached = true, error = NULL, claim = NULL, updated_at = now()
    WHERE id = ${job.id} AND status = 'Running' AND claim = ${job.claim}
      AND EXISTS (SELECT 1 FROM ingest.report_export_files WHERE cache_key = ${job.cacheKey} AND expires_at > now())
    RETURNING id`
  return rows.length > 0
}

export interface CacheBounds {
  /** How long a file answers identical requests (REPORTS_CACHE_TTL_SECONDS). */
  readonly ttlMs: number
  /** Most bytes the cache keeps (REPORTS_CACHE_MAX_BYTES): the oldest files go first. */
  readonly maxBytes: number
}

/**
 * The job's file stored and the job Succeeded, in one transaction: a worker killed before it
 * commits leaves the job Running (delivered again), one killed after leaves it done. The cache is
 * then trimmed to its size bound, oldest first, never the file just written.
 */
export const succeedJob = async (sql: postgres.Sql, job: Job, file: RenderedFile, bounds: CacheBounds): Promise<boolean> =>
  sql.begin(async (tx) => {
    const expires = new Date(Date.now() + bounds.ttlMs)
    // Only the claim that holds the job stores its file: one that lost its lease stores nothing and leaves the job to its holder.
    const done = await tx`UPDATE ingest.report_exports
      SET status = 'Succeeded', percent = 100, error = NULL, renders = renders + 1, claim = NULL, updated_at = now()
      WHERE id = ${job.id} AND status = 'Running' AND claim = ${job.claim} RETURNING id`
    if (done.length === 0) return false
    await tx`INSERT INTO ingest.report_export_files (cache_key, content_type, bytes, size, expires_at)
      VALUES (${job.cacheKey}, ${file.contentType}, ${Buffer.from(file.bytes)}, ${file.bytes.length}, ${expires})
      ON CONFLICT (cache_key) DO UPDATE SET content_type = excluded.content_type, bytes = excluded.bytes, size = excluded.size,
        created_at = now(), expires_at = excluded.expires_at`
    await tx`DELETE FROM ingest.report_export_files WHERE expires_at <= now()`
    await tx`DELETE FROM ingest.report_export_files WHERE cache_key IN (
      SELECT cache_key FROM (
        SELECT cache_key, sum(size) OVER (ORDER BY created_at DESC, cache_key) AS kept FROM ingest.report_export_files
        WHERE cache_key <> ${job.cacheKey}) newest
      WHERE kept + ${file.bytes.length} > ${bounds.maxBytes})`
    return true
  })

/** A failed attempt: back to NotStarted to be tried again (`retry`), or Failed for good. */
export const failAttempt = async (sql: Sql, job: Job, error: string, retry: boolean): Promise<void> => {
  await sql`UPDATE ingest.report_exports SET status = ${retry ? "NotStarted" : "Failed"}, error = ${error}, percent = 0, claim = NULL, updated_at = now()
    WHERE id = ${job.id} AND status = 'Running' AND claim = ${job.claim}`
}

/** The job's file, when it succeeded and the file is still in the cache. */
export const jobFile = async (
  sql: Sql,
  job: Job
): Promise<{ readonly contentType: string; readonly bytes: Uint8Array; readonly expiresAt: string } | undefined> => {
  const [row] =
    await sql`SELECT content_type, bytes, expires_at FROM ingest.report_export_files WHERE cache_key = ${job.cacheKey} AND expires_at > now()`
  return row === undefined
    ? undefined
    : { contentType: row.content_type as string, bytes: row.bytes as Uint8Array, expiresAt: (row.expires_at as Date).toISOString() }
}

/** How many times a job was rendered to the end (0 when its file came from the cache): what the "rendered once" checks read. */
export const renderCount = async (sql: Sql, id: string): Promise<number> => {
  const [row] = await sql`SELECT renders FROM ingest.report_exports WHERE id = ${id}`
  return Number(row?.renders ?? 0)
}
