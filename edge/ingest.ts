import { Effect } from "effect"
import { issuesOfSplit, validEvents, violation } from "../contracts/contract.ts"
import type { ContractIssue } from "../contracts/event.ts"
import { contracts, type Scheme } from "../contracts/sources.ts"
import type { EdgeConfig, EdgeSource } from "./config.ts"
import {
  EdgeMisconfigured,
  type EdgeError,
  type EventTooLarge,
  LogUnavailable,
  type SpoolFull,
  type SpoolRowTooLarge,
  MalformedBody,
  PayloadTooLarge,
  UnknownSource,
  UnsupportedMediaType
} from "./errors.ts"
import { type LogMessage, type LogReceipt, toLogMessages } from "./log-message.ts"
import { type InvalidEvent, quarantineMessages } from "./quarantine.ts"
import { concatBytes } from "../platform/text.ts"
import { verifiers } from "./verify/index.ts"

/** Schemes whose proof covers the body; the others are checked before the body is read. */
const SIGNS_BODY: Readonly<Record<Scheme, boolean>> = {
  hubspot: true,
  "standard-webhooks": true,
  "hub-signature-256": true,
  bearer: false,
  basic: false
}

/**
 * Appends messages to the log, all or none of them checked against the log's size limit first;
 * receipts in the order of `messages`. When the log does not acknowledge and the source spools,
 * every message waits in the edge's spool instead (all of them spooled, or none kept).
 * The Worker's implementation goes through the Durable Object.
 */
export type AppendToLog = (
  messages: ReadonlyArray<LogMessage>
) => Effect.Effect<ReadonlyArray<LogReceipt>, LogUnavailable | EventTooLarge | SpoolFull | SpoolRowTooLarge>

/**
 * A quarantined event in the 202 answer: where it stood, its key if it had one, its quarantine id and
 * why. One that waits in the spool has `spooled: true` and no id yet (the QUARANTINE stream gives it
 * one when the spool drains; `mesh quarantine` lists it then).
 */
export type Quarantined = {
  readonly index: number
  readonly key?: string
  readonly duplicate: boolean
  readonly issues: ReadonlyArray<ContractIssue>
} & (
  | {
      /** Its sequence in the QUARANTINE stream: the id `mesh quarantine redrive` takes. */
      readonly id: number
    }
  | { readonly spooled: true }
)

/** An event in the 202 answer: appended (`seq`), or waiting in the spool (`spooled: true`, no seq yet). */
export type AcceptedEvent =
  | { readonly id: string; readonly subject: string; readonly seq: number; readonly duplicate: boolean }
  | { readonly id: string; readonly subject: string; readonly spooled: true; readonly duplicate: boolean }

/**
 * The 202 answer: every valid event of the request is in the log, every invalid one in the
 * quarantine; or, when the log did not acknowledge in time and the source spools, every one of them
 * waits in the edge's spool, which appends them in order once the log is back. `spooled` (the count
 * of the request's messages spooled, quarantined ones included) is there only then: the answer of
 * the normal path is unchanged.
 */
export interface Accepted {
  readonly accepted: number
  readonly duplicates: number
  readonly spooled?: number
  readonly quarantined: ReadonlyArray<Quarantined>
  readonly trace_id: string
  readonly events: ReadonlyArray<AcceptedEvent>
}

export const findSource = (config: EdgeConfig, name: string): Effect.Effect<EdgeSource, UnknownSource | EdgeMisconfigured> => {
  const source = config.sources.get(name)
  if (source === undefined) return Effect.fail(new UnknownSource({ source: name }))
  if (source.secrets.length === 0)
    return Effect.fail(
      new EdgeMisconfigured({
        reason: `source ${JSON.stringify(name)} has no secret configured (WEBHOOK_SECRETS); refusing unauthenticated events`
      })
    )
  return Effect.succeed(source)
}

export const requireJson = (contentType: string | null): Effect.Effect<void, UnsupportedMediaType> => {
  const mediaType = (contentType ?? "").split(";")[0]?.trim().toLowerCase() ?? ""
  return mediaType === "application/json" || /^application\/[a-z0-9.+-]+\+json$/.test(mediaType)
    ? Effect.void
    : Effect.fail(new UnsupportedMediaType({ contentType: contentType ?? "" }))
}

/**
 * Most bytes of an oversized body the edge reads, and drops, before answering 413: a server that
 * answers and closes while the sender is still sending resets the connection, and the sender never
 * sees the answer (it retries, and never learns why).
 */
export const DRAIN_LIMIT_BYTES = 32 * 1024 * 1024

/** Reads the body, refusing to buffer more than `limit` bytes whatever Content-Length claims. */
export const readBody = (request: Request, limit: number): Effect.Effect<Uint8Array<ArrayBuffer>, PayloadTooLarge | MalformedBody> =>
  Effect.tryPromise({
    try: async () => {
      const declared = Number(request.headers.get("content-length") ?? "NaN")
      // Never below the limit itself, or a body the limit allows would be cut short.
      const drainCap = Math.max(limit, DRAIN_LIMIT_BYTES)
      const chunks: Array<Uint8Array> = []
      let total = 0
      if (request.body !== null) {
        const reader = request.body.getReader()
        if (declared > drainCap) {
          await reader.cancel()
          throw new PayloadTooLarge({ limitBytes: limit })
        }
        for (;;) {
          const { done, value } = await reader.read()
          if (done) break
          total += value.byteLength
          if (total > drainCap) {
            await reader.cancel()
            throw new PayloadTooLarge({ limitBytes: limit })
          }
          if (total <= limit) chunks.push(value)
        }
      }
      if (total > limit || declared > limit) throw new PayloadTooLarge({ limitBytes: limit })
      return concatBytes(...chunks)
    },
    catch: (error) =>
      error instanceof PayloadTooLarge ? error : new MalformedBody({ reason: `the body could not be read: ${String(error)}` })
  })

/** Decodes whole bodies only (never `stream: true`), so one decoder serves every request. */
const strictUtf8 = new TextDecoder("utf-8", { fatal: true, ignoreBOM: false })

export const parseJson = (body: Uint8Array): Effect.Effect<unknown, MalformedBody> =>
  Effect.try({
    try: () => JSON.parse(strictUtf8.decode(body)) as unknown,
    catch: (error) =>
      new MalformedBody({
        reason:
          body.byteLength === 0
            ? "the body is empty; expected JSON"
            : `the body is not valid UTF-8 JSON: ${error instanceof Error ? error.message : String(error)}`
      })
  })

const TRACEPARENT = /^[0-9a-f]{2}-([0-9a-f]{32})-[0-9a-f]{16}-[0-9a-f]{2}$/

/** The W3C trace id of the request when it has one, else a new one. */
export const traceIdOf = (headers: Headers): string => {
  const traceparent = TRACEPARENT.exec(headers.get("traceparent")?.trim() ?? "")
  if (traceparent?.[1] !== undefined && !/^0+$/.test(traceparent[1])) return traceparent[1]
  return crypto.randomUUID().replaceAll("-", "")
}

/** The URL the sender used, behind a proxy that rewrote it: the configured public origin with the request's path and query. */
const publicUrl = (publicBaseUrl: string, requestUrl: string): string => {
  const { pathname, search } = new URL(requestUrl)
  return `${publicBaseUrl}${pathname}${search}`
}

/**
 * `POST /v1/hooks/:source`: authenticate, validate, split and append; succeeds only once every
 * event of the request has a PubAck. Events that break the contract are quarantined (appended as
 * received to the quarantine stream) or refuse the whole request, as the source's policy says.
 */
export const ingestWebhook = (
  config: EdgeConfig,
  sourceName: string,
  request: Request,
  appendToLog: AppendToLog,
  now: () => number = Date.now
): Effect.Effect<Accepted, EdgeError> =>
  Effect.gen(function* () {
    const source = yield* findSource(config, sourceName)
    yield* requireJson(request.headers.get("content-type"))
    const url = config.publicBaseUrl === undefined ? request.url : publicUrl(config.publicBaseUrl, request.url)
    const verify = (body: Uint8Array<ArrayBuffer>) =>
      verifiers[source.scheme]({ method: request.method, url, headers: request.headers, body }, source.secrets, {
        toleranceMs: config.toleranceMs,
        now: now(),
        hubspotVersions: source.hubspotVersions
      })
    const credentialOnly = !SIGNS_BODY[source.scheme]
    if (credentialOnly) yield* verify(new Uint8Array(0))
    const body = yield* readBody(request, config.maxBodyBytes)
    if (!credentialOnly) yield* verify(body)
    const json = yield* parseJson(body)
    const contract = contracts[source.contract]
    const split = yield* contract.split(json)
    const invalid: ReadonlyArray<InvalidEvent> = split.events.flatMap((item) =>
      item.judgement._tag === "Invalid"
        ? [{ index: item.index, payload: item.payload, key: item.judgement.key, issues: item.judgement.issues }]
        : []
    )
    if (invalid.length > 0 && source.onInvalid === "reject") return yield* violation(...issuesOfSplit(split))
    const valid = validEvents(split)
    const context = { receivedAt: new Date(now()).toISOString(), traceId: traceIdOf(request.headers) }
    const quarantine = invalid.length === 0 ? [] : yield* Effect.promise(() => quarantineMessages(source.name, contract, invalid, context))
    const receipts = yield* appendToLog([...toLogMessages(source.name, contract, valid, context), ...quarantine])
    const appended = receipts.slice(0, valid.length)
    const spooled = receipts.filter((receipt) => receipt.spooled).length
    return {
      accepted: appended.length,
      duplicates: appended.filter((receipt) => receipt.duplicate).length,
      ...(spooled === 0 ? {} : { spooled }),
      quarantined: invalid.map((event, i) => {
        const receipt = receipts[valid.length + i] as LogReceipt
        return {
          index: event.index,
          ...(event.key === undefined ? {} : { key: event.key }),
          ...(receipt.spooled ? { spooled: true as const } : { id: receipt.seq }),
          duplicate: receipt.duplicate,
          issues: event.issues
        }
      }),
      trace_id: context.traceId,
      events: appended.map((receipt) =>
        receipt.spooled
          ? { id: receipt.msgId, subject: receipt.subject, spooled: true as const, duplicate: receipt.duplicate }
          : { id: receipt.msgId, subject: receipt.subject, seq: receipt.seq, duplicate: receipt.duplicate }
      )
    }
  })

const deadlinePassed = Symbol("deadline passed")

/**
 * Fails with {@link LogUnavailable} when `append` rejects or exceeds `deadlineMs`. The deadline is
 * one timer raced in the promise, not a fiber and a timer raced in Effect: this runs on every request.
 */
export const withDeadline = <A>(append: () => Promise<A>, deadlineMs: number): Effect.Effect<A, LogUnavailable> =>
  Effect.tryPromise({
    try: () =>
      new Promise<A>((resolve, reject) => {
        const timer = setTimeout(() => reject(deadlinePassed), deadlineMs)
        append().then(
          (value) => {
            clearTimeout(timer)
            resolve(value)
          },
          (error: unknown) => {
            clearTimeout(timer)
            reject(error)
          }
        )
      }),
    catch: (error) =>
      new LogUnavailable({
        reason: error === deadlinePassed ? `no PubAck within ${deadlineMs} ms` : error instanceof Error ? error.message : String(error)
      })
  })
