import { Cause, Effect, Exit } from "effect"
import { logEvent } from "../platform/logger.ts"
import { backoffMs, classifyFailure, describeFailure, fatal, ourSideBackoff, shouldRetry } from "./failures.ts"

/** How the runtime retries a step: what it needs of its options. */
export interface RetryOptions {
  readonly nc: { readonly isClosed: () => boolean }
  readonly projection: { readonly name: string }
  readonly signal?: AbortSignal
  readonly onRetry?: (error: unknown, attempt: number) => void
  readonly onState?: (state: "retrying", detail: string) => void
}

/** Waits `ms`, or less when `signal` asks to stop (at once when it already has). */
export const pause = (ms: number, signal?: AbortSignal) =>
  new Promise<void>((resolve) => {
    if (signal?.aborted === true) return resolve()
    const timer = setTimeout(resolve, ms)
    signal?.addEventListener(
      "abort",
      () => {
        clearTimeout(timer)
        resolve()
      },
      { once: true }
    )
  })

/**
 * The error to stop with after a failure of `what` on attempt `attempt` (0-based), or undefined when
 * it is waited out: a failure on our side (Postgres or NATS away) always, one of unknown kind a few
 * times; poison and fatal failures, and a NATS connection closed for good, never.
 */
export const givesUp = (options: RetryOptions, what: string, error: unknown, attempt: number): unknown => {
  if (options.nc.isClosed()) return fatal(`the NATS connection closed for good while ${what}`, "restart the process once NATS is reachable")
  const kind = classifyFailure(error)
  if (shouldRetry(kind, attempt)) return undefined
  return kind === "unknown"
    ? fatal(`${what} failed ${attempt + 1} times: ${describeFailure(error)}`, "see the error; restart once it is fixed")
    : error
}

const noteRetry = (options: RetryOptions, what: string, error: unknown, attempt: number): void => {
  logEvent("warn", `${what} failed; retrying`, { projection: options.projection.name, attempt, error: describeFailure(error) })
  options.onRetry?.(error, attempt)
  options.onState?.("retrying", `${what}: ${describeFailure(error)}`)
}

/** After a failed fetch (which is not retried as it is: the consumer is opened again), the same verdict and the same wait as {@link retrying}. */
export const afterFailure = async (options: RetryOptions, what: string, error: unknown, attempt: number): Promise<void> => {
  const stop = givesUp(options, what, error, attempt)
  if (stop !== undefined) throw stop
  noteRetry(options, what, error, attempt)
  await pause(backoffMs(attempt), options.signal)
}

/** Returned by {@link retrying} when the runtime was asked to stop while it waited. */
export const STOPPED = Symbol("stopped")

/**
 * Runs `step` until it succeeds, retrying on the {@link ourSideBackoff} schedule while the failure is
 * one a wait mends (Postgres or NATS away; one of unknown kind a few times). Poison and fatal
 * failures, and a NATS connection closed for good, are thrown, so the process stops and says why
 * instead of looping on something no retry mends. A step under way always finishes: a stop asked
 * for meanwhile takes effect after it ({@link STOPPED} only when it did not succeed).
 */
export const retrying = async <A>(options: RetryOptions, what: string, step: () => Promise<A>): Promise<A | typeof STOPPED> => {
  if (options.signal?.aborted === true) return STOPPED
  let attempt = 0
  let done: { readonly value: A } | undefined
  let failed: { readonly error: unknown } | undefined
  let giveUp: unknown
  const once = Effect.uninterruptible(
    Effect.tryPromise({
      try: async () => {
        failed = undefined
        const value = await step()
        done = { value }
        return value
      },
      catch: (error) => {
        failed = { error }
        return error
      }
    })
  )
  const program = once.pipe(
    Effect.retry({
      schedule: ourSideBackoff,
      while: (error) => {
        giveUp = givesUp(options, what, error, attempt)
        if (giveUp !== undefined) return false
        noteRetry(options, what, error, attempt++)
        return true
      }
    })
  )
  const exit = await Effect.runPromiseExit(program, options.signal === undefined ? undefined : { signal: options.signal })
  if (done !== undefined) return done.value
  if (giveUp !== undefined) throw giveUp
  // Asked to stop while the last try was under way, and it failed: a failure no wait mends is still the answer.
  const stop = failed === undefined ? undefined : givesUp(options, what, failed.error, attempt)
  if (stop !== undefined) throw stop
  if (Exit.isFailure(exit) && Cause.hasInterrupts(exit.cause)) return STOPPED
  throw Exit.isFailure(exit) ? Cause.squash(exit.cause) : new Error(`${what}: no result`)
}
