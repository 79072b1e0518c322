import { Data, Duration, Effect, Schedule } from "effect"

/**
 * What kind of failure an error is, decided once for the whole runtime:
 * - `poison`: Postgres refused the values of some event (SQLSTATE class 22, data exception, or 23,
 *   integrity constraint): retrying changes nothing; the event is found and dead-lettered (live) or
 *   named (rebuild);
 * - `transient`: Postgres or NATS is away or busy (connection lost, shutting down, serialisation,
 *   lock timeouts, out of resources): wait and retry, losing nothing;
 * - `fatal`: nothing this process can do will help (a missing table, a permission, a newer version of
 *   the marts): stop and say why, so a supervisor or an operator acts;
 * - `unknown`: anything else; retried a few times, then treated as fatal.
 */
export type FailureKind = "poison" | "transient" | "fatal" | "unknown"

/** SQLSTATE classes that say the database is away or busy for now. */
const TRANSIENT_CLASSES = new Set(["08", "40", "53", "55", "57", "58"])

/** Errors of the client libraries and the OS that mean a connection was lost or could not be made. */
const CONNECTION_CODES = new Set([
  "CONNECTION_CLOSED",
  "CONNECTION_ENDED",
  "CONNECTION_DESTROYED",
  "CONNECT_TIMEOUT",
  "ECONNREFUSED",
  "ECONNRESET",
  "EPIPE",
  "ETIMEDOUT",
  "EHOSTUNREACH",
  "ENETUNREACH",
  "ENOTFOUND",
  "EAI_AGAIN"
])

/** NATS client errors (nats.js names them) that a reconnect or a later try resolves. */
const TRANSIENT_NATS_ERRORS = new Set([
  "TimeoutError",
  "ConnectionError",
  "RequestError",
  "NoResponders",
  "JetStreamNotEnabled",
  "JetStreamStatusError"
])
/** NATS client errors no retry resolves: a connection closed for good, a permission, a stream that was never declared. */
const FATAL_NATS_ERRORS = new Set([
  "ClosedConnectionError",
  "PermissionViolationError",
  "AuthorizationError",
  "UserAuthenticationExpiredError",
  "StreamNotFoundError"
])

/** The SQLSTATE of a Postgres error, or undefined. */
export const sqlState = (error: unknown): string | undefined => {
  const code = (error as { code?: unknown } | null)?.code
  return (error as { name?: unknown } | null)?.name === "PostgresError" && typeof code === "string" && /^[0-9A-Z]{5}$/.test(code)
    ? code
    : undefined
}

/** The error and the errors it wraps (`cause`), outermost first: nats.js wraps a permission violation in a RequestError. */
const causes = (error: unknown): ReadonlyArray<unknown> => {
  const chain: Array<unknown> = []
  for (let at: unknown = error; at !== undefined && at !== null && chain.length < 8; at = (at as { cause?: unknown }).cause) chain.push(at)
  return chain
}

export const classifyFailure = (error: unknown): FailureKind => {
  if (FATAL_TAGS.has(String((error as { _tag?: unknown } | null)?._tag))) return "fatal"
  // Whatever wraps it, an error no retry mends makes the whole failure fatal.
  if (causes(error).some((cause) => FATAL_NATS_ERRORS.has(String((cause as { name?: unknown }).name)))) return "fatal"
  const state = sqlState(error)
  if (state !== undefined) {
    const errorClass = state.slice(0, 2)
    if (errorClass === "22" || errorClass === "23") return "poison"
    return TRANSIENT_CLASSES.has(errorClass) ? "transient" : "fatal"
  }
  const code = (error as { code?: unknown } | null)?.code
  if (typeof code === "string" && CONNECTION_CODES.has(code)) return "transient"
  const name = (error as { name?: unknown } | null)?.name
  if (typeof name === "string" && TRANSIENT_NATS_ERRORS.has(name)) return "transient"
  if (typeof name === "string" && FATAL_NATS_ERRORS.has(name)) return "fatal"
  return "unknown"
}

/** A failure nothing in this process can mend; `fix` tells the operator what will. */
export class FatalFailure extends Data.TaggedError("FatalFailure")<{ readonly reason: string; readonly fix: string }> {
  override get message(): string {
    return `${this.reason}; ${this.fix}`
  }
}

/** A failure nothing in this process can mend, with what will: {@link FatalFailure}. */
export const fatal = (reason: string, fix: string): FatalFailure => new FatalFailure({ reason, fix })

/** Another writer moved the generation's checkpoint, or the generation stopped being the one to write: an expected outcome, resumed from. */
export class CheckpointMoved extends Data.TaggedError("CheckpointMoved")<{
  readonly generation: number
  readonly found: number | undefined
  readonly status: string | undefined
}> {
  override get message(): string {
    return `generation ${this.generation} is at checkpoint ${this.found} (${this.status}); expected to continue from ours`
  }
}

/** A rebuild met an event the projection cannot project, or whose rows Postgres refuses: it stops and names it. */
export class PoisonInRebuild extends Data.TaggedError("PoisonInRebuild")<{
  readonly seq: number
  readonly subject: string
  readonly dedupeKey: string
  readonly reason: string
}> {
  override get message(): string {
    return `event seq ${this.seq} (${this.subject}, key ${this.dedupeKey}) cannot be projected: ${this.reason}; the live marts are untouched; fix the projection and rebuild again`
  }
}

/** The tags of the runtime's expected failures, which no retry mends. */
const FATAL_TAGS = new Set(["FatalFailure", "PoisonInRebuild"])

/** Whether `error` is the runtime's tagged failure `tag`. */
export const isFailure = <Tag extends "FatalFailure" | "CheckpointMoved" | "PoisonInRebuild">(
  error: unknown,
  tag: Tag
): error is Extract<FatalFailure | CheckpointMoved | PoisonInRebuild, { readonly _tag: Tag }> =>
  (error as { _tag?: unknown } | null)?._tag === tag

/** How often an error of unknown kind is retried before the process gives up on it. */
export const UNKNOWN_FAILURE_ATTEMPTS = 5

/** Exponential backoff for failures on our side: 100 ms doubling to 5 s. */
export const backoffMs = (attempt: number): number => Math.min(5000, 100 * 2 ** Math.min(attempt, 6))

/** {@link backoffMs} as the schedule the runtime retries on: the n-th retry waits `backoffMs(n)`. */
export const ourSideBackoff = Schedule.exponential("100 millis").pipe(
  Schedule.modifyDelay(({ attempt }) => Effect.succeed(Duration.millis(backoffMs(attempt - 1))))
)

/**
 * Whether a failure on attempt `attempt` (0-based) is retried: transient ones always (the database
 * or NATS comes back), unknown ones {@link UNKNOWN_FAILURE_ATTEMPTS} times, poison and fatal ones never.
 */
export const shouldRetry = (kind: FailureKind, attempt: number): boolean =>
  kind === "transient" || (kind === "unknown" && attempt + 1 < UNKNOWN_FAILURE_ATTEMPTS)

/** The one-line reason of an error, with its SQLSTATE when Postgres gave one. */
export const describeFailure = (error: unknown): string => {
  const state = sqlState(error)
  const message = error instanceof Error ? error.message : String(error)
  return state === undefined ? message : `${state} ${message}`
}
