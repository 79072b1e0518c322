import type { JsMsg } from "@nats-io/jetstream"
import type postgres from "postgres"
import { logEvent } from "../platform/logger.ts"
import { type CacheBounds, claimJob, failAttempt, type Job, renewLease, reportProgress, succeedFromCache, succeedJob } from "./jobs.ts"
import { type RenderEngine, RenderFailed, type Report } from "./model.ts"
import { exportWorkersConsumer } from "./queue.ts"
import { findReport } from "./registry.ts"
import type { JetStreamClient, JetStreamManager } from "@nats-io/jetstream"

export interface WorkerSettings {
  /** Jobs one process renders at once (REPORTS_WORKER_CONCURRENCY). */
  readonly concurrency: number
  /** Attempts a job gets before it is Failed (REPORTS_EXPORT_ATTEMPTS). */
  readonly maxAttempts: number
  /** How long one attempt may take (REPORTS_EXPORT_TIMEOUT_MS). */
  readonly timeoutMs: number
  /** The queue's redelivery wait: a job of a worker that died is taken up again after it (REPORTS_ACK_WAIT_MS). */
  readonly ackWaitMs: number
  /** Waits before the 2nd, 3rd… attempt; the last repeats (REPORTS_RETRY_BACKOFF_MS). */
  readonly backoffMs: ReadonlyArray<number>
  readonly cache: CacheBounds
}

export const DEFAULT_WORKER_SETTINGS: WorkerSettings = {
  concurrency: 2,
  maxAttempts: 3,
  timeoutMs: 120_000,
  ackWaitMs: 30_000,
  backoffMs: [2_000, 10_000, 30_000],
  cache: { ttlMs: 3_600_000, maxBytes: 512 * 1024 * 1024 }
}

/** The wait before attempt `attempts + 1`: the configured backoff, or longer when the service asked (Retry-After). */
export const retryDelayMs = (settings: Pick<WorkerSettings, "backoffMs">, attempts: number, retryAfterMs?: number): number => {
  const configured = settings.backoffMs[Math.min(Math.max(attempts - 1, 0), settings.backoffMs.length - 1)] ?? 1000
  return Math.max(configured, retryAfterMs ?? 0)
}

export interface ExportWorkers {
  /** Stops taking jobs, lets the ones in hand finish (or aborts them after `graceMs`, to be delivered again), and resolves. */
  readonly stop: (graceMs?: number) => Promise<void>
  /** Jobs finished by this process since it started (succeeded, failed, or found done). */
  readonly handled: () => number
}

/** The engine that renders a report, or why none can. */
export type EngineFor = (report: Report) => RenderEngine

const describe = (error: unknown) => (error instanceof Error ? error.message : String(error))

/**
 * A pool of export workers: `concurrency` loops, each taking one job at a time from the queue,
 * rendering it with the report's engine and storing the file. A job is rendered at most once to
 * its end: its state moves in Postgres (claimed, then Succeeded with its file in one transaction)
 * before the queue's message is acknowledged, and a redelivered job that is done is only
 * acknowledged. While a job renders, its message is marked in progress, so only a dead worker's
 * jobs are delivered again.
 */
export const startExportWorkers = async (deps: {
  readonly sql: postgres.Sql
  readonly js: JetStreamClient
  readonly jsm: JetStreamManager
  readonly engineFor: EngineFor
  readonly settings: WorkerSettings
}): Promise<ExportWorkers> => {
  const { sql, settings } = deps
  const consumer = await exportWorkersConsumer(deps.js, deps.jsm, {
    ackWaitMs: settings.ackWaitMs,
    maxAckPending: Math.max(1000, settings.concurrency * 10)
  })
  const stopping = new AbortController()
  const inFlight = new Set<AbortController>()
  let handled = 0

  const render = async (job: Job, message: JsMsg): Promise<void> => {
    const report = await findReport(sql, job.spec.report_id)
    if (report === undefined) {
      await failAttempt(sql, job, `report ${job.spec.report_id} is no longer registered`, false)
      return
    }
    // Another job with the same key finished meanwhile (its file was not there when this one was accepted).
    if (await succeedFromCache(sql, job)) return
    const attempt = new AbortController()
    inFlight.add(attempt)
    const timeout = setTimeout(
      () => attempt.abort(new RenderFailed(`the export took longer than ${settings.timeoutMs} ms`, true)),
      settings.timeoutMs
    )
    // In progress, to the queue and in Postgres: the message is not delivered again, nor the job taken over, while this worker lives.
    const heartbeat = setInterval(
      () => {
        message.working()
        void renewLease(sql, job, settings.ackWaitMs).catch(() => undefined)
      },
      Math.max(200, Math.floor(settings.ackWaitMs / 3))
    )
    try {
      const engine = deps.engineFor(report)
      const file = await engine.render({
        report,
        pages: job.spec.pages,
        filter: job.spec.filter ?? undefined,
        format: job.spec.format,
        signal: attempt.signal,
        progress: (percent) => void reportProgress(sql, job, percent).catch(() => undefined)
      })
      if (!(await succeedJob(sql, job, file, settings.cache)))
        logEvent("warn", "report export rendered, but another worker holds the job now (this one's lease ran out); its file is not kept", {
          job: job.id
        })
    } catch (error) {
      const failure =
        attempt.signal.aborted && attempt.signal.reason instanceof RenderFailed
          ? attempt.signal.reason
          : error instanceof RenderFailed
            ? error
            : new RenderFailed(describe(error), true)
      // Stopped by the worker's own shutdown: not the job's failure; it stays as it was and is delivered again.
      if (attempt.signal.aborted && !(attempt.signal.reason instanceof RenderFailed)) throw error
      const retry = failure.retryable && job.attempts < settings.maxAttempts
      await failAttempt(sql, job, failure.message, retry)
      logEvent(retry ? "warn" : "error", "report export attempt failed", {
        job: job.id,
        attempt: job.attempts,
        retry,
        reason: failure.message
      })
      if (retry) {
        message.nak(retryDelayMs(settings, job.attempts, failure.retryAfterMs))
        throw new Handled()
      }
    } finally {
      clearTimeout(timeout)
      clearInterval(heartbeat)
      inFlight.delete(attempt)
    }
  }

  const handle = async (message: JsMsg): Promise<void> => {
    const id = message.string()
    try {
      const claim = await claimJob(sql, id, settings.maxAttempts, settings.ackWaitMs)
      if (claim._tag === "busy") {
        // Delivered again while another worker renders it (its heartbeat late): look again once its lease would have run out.
        message.nak(Math.ceil(claim.leaseLeftMs) + 100)
        return
      }
      if (claim._tag === "render") await render(claim.job, message)
      else if (claim._tag === "give-up") logEvent("error", "report export given up", { job: id, reason: claim.job.error })
      message.ack()
      handled++
    } catch (error) {
      if (error instanceof Handled) return
      // Our side (Postgres away, the worker stopping): the job stays as it was and comes back.
      logEvent("warn", "report export interrupted; the job will be delivered again", { job: id, reason: describe(error) })
      message.nak(retryDelayMs(settings, 1))
    }
  }

  const loop = async (): Promise<void> => {
    while (!stopping.signal.aborted) {
      let message: JsMsg | null = null
      try {
        message = await consumer.next({ expires: 1000 })
      } catch (error) {
        if (stopping.signal.aborted) return
        logEvent("warn", "report export queue unavailable; trying again", { reason: describe(error) })
        await new Promise((resolveWait) => setTimeout(resolveWait, 1000))
        continue
      }
      if (message !== null) await handle(message)
    }
  }
  const loops = Array.from({ length: settings.concurrency }, () => loop())
  return {
    handled: () => handled,
    stop: async (graceMs = 10_000) => {
      stopping.abort()
      const grace = setTimeout(() => {
        for (const attempt of inFlight) attempt.abort(new Error("the worker is stopping"))
      }, graceMs)
      await Promise.all(loops)
      clearTimeout(grace)
    }
  }
}

/** A failure already answered (the job put back for a later attempt). */
class Handled extends Error {}
