import { Schema } from "effect"
import { ContractViolation } from "../contracts/contract.ts"
import { SignatureRejected } from "./verify/signed-request.ts"

/** `:source` names no configured source. */
export class UnknownSource extends Schema.TaggedError<UnknownSource>()("UnknownSource", {
  source: Schema.String
}) {}

export class UnsupportedMediaType extends Schema.TaggedError<UnsupportedMediaType>()("UnsupportedMediaType", {
  contentType: Schema.String
}) {}

export class PayloadTooLarge extends Schema.TaggedError<PayloadTooLarge>()("PayloadTooLarge", {
  limitBytes: Schema.Number
}) {}

/** One event, with the log's headers, is larger than the log takes in one message. */
export class EventTooLarge extends Schema.TaggedError<EventTooLarge>()("EventTooLarge", {
  index: Schema.Number,
  bytes: Schema.Number,
  limitBytes: Schema.Number
}) {}

export class MalformedBody extends Schema.TaggedError<MalformedBody>()("MalformedBody", {
  reason: Schema.String
}) {}

/** The log did not acknowledge in time: our failure, retryable by the sender. */
export class LogUnavailable extends Schema.TaggedError<LogUnavailable>()("LogUnavailable", {
  reason: Schema.String
}) {}

/** The log is unavailable and the shard's spool holds its bound (`SPOOL_MAX_EVENTS`): nothing of the request was kept. */
export class SpoolFull extends Schema.TaggedError<SpoolFull>()("SpoolFull", {
  depth: Schema.Number,
  limit: Schema.Number
}) {}

/** The log is unavailable and one event is larger than a spool row holds: nothing of the request was kept. */
export class SpoolRowTooLarge extends Schema.TaggedError<SpoolRowTooLarge>()("SpoolRowTooLarge", {
  index: Schema.Number,
  bytes: Schema.Number,
  limitBytes: Schema.Number
}) {}

/** The deployment's settings are invalid or a source has no secret: fail closed, retryable once fixed. */
export class EdgeMisconfigured extends Schema.TaggedError<EdgeMisconfigured>()("EdgeMisconfigured", {
  reason: Schema.String
}) {}

export type EdgeError =
  | UnknownSource
  | UnsupportedMediaType
  | PayloadTooLarge
  | EventTooLarge
  | SignatureRejected
  | MalformedBody
  | ContractViolation
  | LogUnavailable
  | SpoolFull
  | SpoolRowTooLarge
  | EdgeMisconfigured

/** The body of every error answer. */
export interface ErrorBody {
  readonly error: string
  readonly message: string
  readonly issues?: ReadonlyArray<{ readonly path: string; readonly message: string }>
}

/**
 * The status and body the sender gets for each error; our own failures are always 503 with
 * Retry-After. `detail` is for the edge's log only: it may name internals the sender must not see.
 */
export const describeError = (error: EdgeError): { status: number; retryable: boolean; body: ErrorBody; detail?: string } => {
  switch (error._tag) {
    case "UnknownSource":
      return {
        status: 404,
        retryable: false,
        body: { error: "unknown_source", message: `no webhook source named ${JSON.stringify(error.source)}` }
      }
    case "UnsupportedMediaType":
      return {
        status: 415,
        retryable: false,
        body: {
          error: "unsupported_media_type",
          message: `Content-Type must be application/json, got ${JSON.stringify(error.contentType)}`
        }
      }
    case "PayloadTooLarge":
      return {
        status: 413,
        retryable: false,
        body: { error: "payload_too_large", message: `the body exceeds the limit of ${error.limitBytes} bytes; split the batch` }
      }
    case "EventTooLarge":
      return {
        status: 413,
        retryable: false,
        body: {
          error: "event_too_large",
          message: `event $[${error.index}] is ${error.bytes} bytes with the log's headers, more than the ${error.limitBytes} bytes the log takes per event; nothing was appended: send it smaller`
        }
      }
    case "SignatureRejected":
      return { status: 401, retryable: false, body: { error: "unauthorized", message: error.reason } }
    case "MalformedBody":
      return { status: 400, retryable: false, body: { error: "malformed_body", message: error.reason } }
    case "ContractViolation":
      return {
        status: 422,
        retryable: false,
        body: {
          error: "contract_violation",
          message: `the body breaks the source's contract in ${error.issues.length} place(s)`,
          issues: error.issues
        }
      }
    case "LogUnavailable":
      return {
        status: 503,
        retryable: true,
        body: {
          error: "log_unavailable",
          message:
            "the event log did not acknowledge every event in time; retry the same request later: events already appended are recognised by their keys and counted once"
        },
        detail: error.reason
      }
    case "SpoolFull":
      return {
        status: 503,
        retryable: true,
        body: {
          error: "spool_full",
          message: `the event log is unavailable and this edge's spool holds its bound of ${error.limit} events; nothing was kept: retry the same request later`
        },
        detail: `spool depth ${error.depth} of SPOOL_MAX_EVENTS ${error.limit}`
      }
    case "SpoolRowTooLarge":
      return {
        status: 503,
        retryable: true,
        body: {
          error: "log_unavailable",
          message: `the event log is unavailable and event $[${error.index}] is ${error.bytes} bytes, more than the ${error.limitBytes} bytes the edge can hold until it is back; nothing was kept: retry the same request later`
        }
      }
    case "EdgeMisconfigured":
      // The reason may name internals (a NATS URL, a source's secrets); the caller is not authenticated yet.
      return {
        status: 503,
        retryable: true,
        body: { error: "edge_misconfigured", message: "the edge is misconfigured; its operator has been told, retry later" },
        detail: error.reason
      }
  }
}

export { ContractViolation, SignatureRejected }
