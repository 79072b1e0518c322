import { Effect, Schema } from "effect"
import type { ContractEvent, ContractIssue } from "./event.ts"
import { MAX_EVENTS_PER_REQUEST } from "./event.ts"
import { decodeAll, issuesOf, renderPath } from "./issues.ts"
import { jsonIssues, MAX_NESTING, tooDeep } from "./json-limits.ts"
import type { Domain } from "./log.ts"

/** A request body that is not a batch of events at all, or breaks its source's contract; answered 422 with every issue. */
export class ContractViolation extends Schema.TaggedError<ContractViolation>()("ContractViolation", {
  issues: Schema.Array(Schema.Struct({ path: Schema.String, message: Schema.String }))
}) {
  override get message(): string {
    return this.issues.map((issue) => `${issue.path}: ${issue.message}`).join("; ")
  }
}

/** What a contract makes of one event of a request. */
export type Judgement =
  | { readonly _tag: "Valid"; readonly event: ContractEvent }
  /** `key` when the fields that make the natural key are themselves valid. */
  | { readonly _tag: "Invalid"; readonly key: string | undefined; readonly issues: ReadonlyArray<ContractIssue> }

/** One event of a request as received (one element of a batch), where it stood, and its judgement. */
export interface JudgedEvent {
  readonly index: number
  readonly payload: unknown
  readonly judgement: Judgement
}

/** A request body split into its events, each judged on its own. */
export interface SplitBody {
  /** Whether the body was a JSON array, so paths read `$[i]`. */
  readonly batched: boolean
  readonly events: ReadonlyArray<JudgedEvent>
}

/**
 * What a source's sender posts and how it splits into log events. Pure: `split` judges a parsed
 * body event by event and fails only when the body is not a batch of events at all (the wrong
 * shape, empty, too many events, nested too deep); `judge` judges one event, so a quarantined
 * event can be checked again against the current contract.
 */
export interface Contract {
  readonly name: string
  readonly domain: Domain
  /** Written to the `Ingest-Schema` header of every event, e.g. `hubspot/v1`. */
  readonly schemaVersion: string
  readonly split: (body: unknown) => Effect.Effect<SplitBody, ContractViolation>
  /** Judges one event; issue paths start at `at` (its place in the body). */
  readonly judge: (event: unknown, at?: ReadonlyArray<number>) => Judgement
  /** Fields a sender changes between deliveries of one event (HubSpot's `attemptNumber`): two events differing only there are one. */
  readonly deliveryFields: ReadonlyArray<string>
}

/** Each schema's decoder, made once: making one costs more than using it on an event. */
const decoders = new WeakMap<object, (input: unknown) => ReturnType<ReturnType<typeof Schema.decodeUnknownResult>>>()

/** Decodes `input` reporting every issue, paths prefixed with `prefix`. */
export const decodeIssues = <S extends Schema.Decoder<unknown>>(schema: S, input: unknown, prefix: ReadonlyArray<PropertyKey> = []) => {
  let decode = decoders.get(schema)
  if (decode === undefined) {
    decode = Schema.decodeUnknownResult(schema, decodeAll) as (input: unknown) => ReturnType<ReturnType<typeof Schema.decodeUnknownResult>>
    decoders.set(schema, decode)
  }
  const result = decode(input) as ReturnType<ReturnType<typeof Schema.decodeUnknownResult<S>>>
  return result._tag === "Success"
    ? ({ ok: true, value: result.success } as const)
    : ({ ok: false, issues: issuesOf(result.failure, input, prefix) } as const)
}

export const violation = (...issues: ReadonlyArray<ContractIssue>) => new ContractViolation({ issues })

const kindOf = (value: unknown): string => (value === null ? "null" : Array.isArray(value) ? "array" : typeof value)

/** The JSON kinds of body a source accepts: one event object, an array of them, or either. */
export type BodyShape = "array" | "object" | "object or array"

/**
 * A contract from the judgement of one event: the body's shape and bounds are checked here, the
 * same for every source; each event is then checked against the generic JSON bounds and judged.
 */
export const makeContract = (options: {
  readonly name: string
  readonly domain: Domain
  readonly schemaVersion: string
  readonly shape: BodyShape
  /** How the sender's events are called in messages: "HubSpot events". */
  readonly describe: string
  readonly judge: (event: unknown, at: ReadonlyArray<number>) => Judgement
  readonly deliveryFields?: ReadonlyArray<string>
}): Contract => {
  const judge = (event: unknown, at: ReadonlyArray<number> = []): Judgement => {
    const bounds = jsonIssues(event, at)
    const judged = options.judge(event, at)
    if (bounds.length === 0) return judged
    // A schema issue at a place the bounds already named (an id with a lone surrogate) says the same thing again.
    const named = new Set(bounds.map((issue) => issue.path))
    const others = judged._tag === "Invalid" ? judged.issues.filter((issue) => !named.has(issue.path)) : []
    return { _tag: "Invalid", key: judged._tag === "Valid" ? undefined : judged.key, issues: [...bounds, ...others] }
  }
  const deliveryFields = options.deliveryFields ?? []
  return {
    name: options.name,
    domain: options.domain,
    schemaVersion: options.schemaVersion,
    deliveryFields,
    judge,
    split: (body) => {
      const batched = Array.isArray(body)
      const expected =
        options.shape === "array"
          ? `a JSON array of ${options.describe}`
          : options.shape === "object"
            ? `one of ${options.describe} as a JSON object`
            : `one of ${options.describe} or a JSON array of them`
      const fits =
        options.shape === "array" ? batched : options.shape === "object" ? kindOf(body) === "object" : batched || kindOf(body) === "object"
      if (!fits) return Effect.fail(violation({ path: "$", message: `Expected ${expected}, got ${kindOf(body)}` }))
      const deep = tooDeep(body)
      if (deep !== undefined)
        return Effect.fail(violation({ path: renderPath(deep), message: `the body nests deeper than ${MAX_NESTING} levels` }))
      const items: ReadonlyArray<unknown> = batched ? body : [body]
      if (items.length === 0) return Effect.fail(violation({ path: "$", message: "Expected at least one event, got an empty array" }))
      if (items.length > MAX_EVENTS_PER_REQUEST)
        return Effect.fail(
          violation({
            path: "$",
            message: `Expected at most ${MAX_EVENTS_PER_REQUEST} events per request, got ${items.length}: split the batch`
          })
        )
      const judged = items.map((payload, index) => ({ index, payload, judgement: judge(payload, batched ? [index] : []) }))
      return Effect.succeed({ batched, events: refuseConflictingKeys(judged, deliveryFields, batched) })
    }
  }
}

/** The content two events of one request are compared by: everything but the fields that change between deliveries. */
export const eventIdentity = (payload: unknown, deliveryFields: ReadonlyArray<string>): string =>
  JSON.stringify(
    deliveryFields.length > 0 && payload !== null && typeof payload === "object" && !Array.isArray(payload)
      ? Object.fromEntries(Object.entries(payload).filter(([name]) => !deliveryFields.includes(name)))
      : payload
  )

/**
 * A later event of a request that reuses a valid event's natural key with other content is
 * invalid: the log keeps the first of a key and would drop it as a resend. Repeats of the same
 * event (identical, or differing only in delivery fields such as HubSpot's `attemptNumber`) stay
 * valid and are stored once.
 */
export const refuseConflictingKeys = (
  events: ReadonlyArray<JudgedEvent>,
  deliveryFields: ReadonlyArray<string>,
  batched: boolean
): ReadonlyArray<JudgedEvent> => {
  const first = new Map<string, { index: number; identity: string }>()
  return events.map((item) => {
    if (item.judgement._tag !== "Valid") return item
    const { key } = item.judgement.event
    const identity = eventIdentity(item.payload, deliveryFields)
    const seen = first.get(key)
    if (seen === undefined) {
      first.set(key, { index: item.index, identity })
      return item
    }
    if (seen.identity === identity) return item
    return {
      ...item,
      judgement: {
        _tag: "Invalid",
        key,
        issues: [
          {
            path: batched ? `$[${item.index}]` : "$",
            message: `Event key ${JSON.stringify(key)} was already used by $[${seen.index}] with different content; give each event its own id`
          }
        ]
      }
    }
  })
}

/** Every issue of every invalid event of a split body, in order. */
export const issuesOfSplit = (split: SplitBody): ReadonlyArray<ContractIssue> =>
  split.events.flatMap((item) => (item.judgement._tag === "Invalid" ? item.judgement.issues : []))

/** The valid events of a split body with their places, in order. */
export const validEvents = (split: SplitBody): ReadonlyArray<{ readonly index: number; readonly event: ContractEvent }> =>
  split.events.flatMap((item) => (item.judgement._tag === "Valid" ? [{ index: item.index, event: item.judgement.event }] : []))

/** The valid events of a split body; fails with every issue when any event is invalid (a source that refuses whole requests). */
export const requireAllValid = (
  split: SplitBody
): Effect.Effect<ReadonlyArray<{ readonly index: number; readonly event: ContractEvent }>, ContractViolation> => {
  const issues = issuesOfSplit(split)
  return issues.length > 0 ? Effect.fail(violation(...issues)) : Effect.succeed(validEvents(split))
}
