import { Schema } from "effect"

/** A query parameter the reader got wrong: named, with the form it accepts. */
export class BadParameter extends Schema.TaggedError<BadParameter>()("BadParameter", {
  parameter: Schema.String,
  message: Schema.String
}) {}

/** No key, an unknown key, or a revoked one. */
export class Unauthenticated extends Schema.TaggedError<Unauthenticated>()("Unauthenticated", {
  message: Schema.String
}) {}

/** A valid key whose scope does not include the mart asked for. */
export class Forbidden extends Schema.TaggedError<Forbidden>()("Forbidden", {
  mart: Schema.String,
  allowed: Schema.Array(Schema.String)
}) {}

export class NotFound extends Schema.TaggedError<NotFound>()("NotFound", {
  message: Schema.String
}) {}

/** The mart's projection has not activated a generation yet: retry once it has caught up. */
export class MartNotReady extends Schema.TaggedError<MartNotReady>()("MartNotReady", {
  mart: Schema.String,
  /** Set when the reader role may not read it: a mart built before row-level security stays closed until rebuilt. */
  closed: Schema.optionalKey(Schema.Boolean)
}) {}

/** As many queries of a kind are running as the API admits: retry shortly. */
export class Busy extends Schema.TaggedError<Busy>()("Busy", {
  kind: Schema.Literals(["long", "short"]),
  running: Schema.Number
}) {}

/** A query ran past its statement timeout: named with the setting that sets it. */
export class QueryTimedOut extends Schema.TaggedError<QueryTimedOut>()("QueryTimedOut", {
  limitMs: Schema.Number,
  setting: Schema.String
}) {}

/** Postgres is unreachable or failed: our side, retryable. */
export class ReadUnavailable extends Schema.TaggedError<ReadUnavailable>()("ReadUnavailable", {
  reason: Schema.String
}) {}

export type ReadError = BadParameter | Unauthenticated | Forbidden | NotFound | MartNotReady | Busy | QueryTimedOut | ReadUnavailable

const READ_ERROR_TAGS: ReadonlySet<string> = new Set([
  "BadParameter",
  "Unauthenticated",
  "Forbidden",
  "NotFound",
  "MartNotReady",
  "Busy",
  "QueryTimedOut",
  "ReadUnavailable"
] satisfies ReadonlyArray<ReadError["_tag"]>)

/** Whether `error` is one of the read side's own errors, told by its tag. */
export const isReadError = (error: unknown): error is ReadError => READ_ERROR_TAGS.has(String((error as { _tag?: unknown } | null)?._tag))

export interface ReadErrorBody {
  readonly error: string
  readonly message: string
  readonly parameter?: string
}

/**
 * The status, body and headers a reader gets for each error. Our own failures are 503 with a
 * `Retry-After` in delta-seconds at most 120, the form and range Power BI's Web.Contents honours.
 */
export const describeReadError = (
  error: ReadError
): { status: 400 | 401 | 403 | 404 | 503; body: ReadErrorBody; headers?: Record<string, string> } => {
  switch (error._tag) {
    case "BadParameter":
      return { status: 400, body: { error: "bad_parameter", parameter: error.parameter, message: `${error.parameter}: ${error.message}` } }
    case "Unauthenticated":
      return {
        status: 401,
        body: { error: "unauthorized", message: error.message },
        headers: { "WWW-Authenticate": 'ApiKey header="X-API-Key", query="api_key"' }
      }
    case "Forbidden":
      return {
        status: 403,
        body: {
          error: "forbidden",
          message: `this API key may read the ${error.allowed.join(", ")} mart(s), not ${error.mart}; create a key scoped to ${error.mart}`
        }
      }
    case "NotFound":
      return { status: 404, body: { error: "not_found", message: error.message } }
    case "MartNotReady":
      return {
        status: 503,
        body: {
          error: "mart_not_ready",
          message:
            error.closed === true
              ? `the ${error.mart} mart is closed to readers: it was built before its rows were scoped by store, and opens once an operator has run npm run mesh -- rebuild ${error.mart}`
              : `the ${error.mart} mart has not been projected yet; retry once its projection has caught up with the log`
        },
        headers: { "Retry-After": "30" }
      }
    case "Busy":
      return {
        status: 503,
        body: {
          error: "busy",
          message:
            error.kind === "long"
              ? `the read API is already running ${error.running} exports, pages and counts, its most at once; retry in a few seconds`
              : `the read API is already checking ${error.running} keys, its most at once; retry in a few seconds`
        },
        headers: { "Retry-After": "5" }
      }
    case "QueryTimedOut":
      return {
        status: 503,
        body: {
          error: "query_timeout",
          message: `the query ran past its statement timeout of ${error.limitMs} ms (${error.setting}); ask for a narrower window (date_from/date_to, $filter) or retry later`
        },
        headers: { "Retry-After": "30" }
      }
    case "ReadUnavailable":
      return {
        status: 503,
        body: { error: "unavailable", message: "the marts' database is unavailable; retry shortly" },
        headers: { "Retry-After": "5" }
      }
  }
}

/**
 * Postgres failures as reader-facing errors: a missing `mart` view means the mart is not built
 * yet; a value Postgres could not take (class 22) is the fault of `parameter`.
 */
export const fromDatabase = (
  error: unknown,
  mart: string,
  parameter: string,
  timeout?: { readonly limitMs: number; readonly setting: string }
): ReadError => {
  if (isReadError(error)) return error
  const code = (error as { code?: string }).code ?? ""
  if (code === "57014" && timeout !== undefined) return new QueryTimedOut(timeout)
  if (code === "42P01" || code === "3F000") return new MartNotReady({ mart })
  // insufficient_privilege: the reader group may not read the mart (consumers/switch.ts closeUnscoped).
  if (code === "42501") return new MartNotReady({ mart, closed: true })
  if (code.startsWith("22")) return new BadParameter({ parameter, message: `a value does not fit its column: ${(error as Error).message}` })
  return new ReadUnavailable({ reason: error instanceof Error ? error.message : String(error) })
}

/** Runs a query for `mart`, its failures mapped by {@link fromDatabase}. */
export const runQuery = async <A>(
  mart: string,
  action: () => Promise<A>,
  parameter = "query",
  timeout?: { readonly limitMs: number; readonly setting: string }
): Promise<A> => {
  try {
    return await action()
  } catch (error) {
    throw fromDatabase(error, mart, parameter, timeout)
  }
}
