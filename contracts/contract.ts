import { Effect, Schema } from "effect"
import type { ContractEvent, ContractIssue } from "./event.ts"
import { MAX_EVENTS_PER_REQUEST } from "./event.ts"
import { decodeAll, issuesOf } from "./issues.ts"
import type { Domain } from "./log.ts"

/** A request body that does not satisfy its source's contract; answered 422 with every issue. */
export class ContractViolation extends Schema.TaggedError<ContractViolation>()("ContractViolation", {
  issues: Schema.Array(Schema.Struct({ path: Schema.String, message: Schema.String }))
}) {
  override get message(): string {
    return this.issues.map((issue) => `${issue.path}: ${issue.message}`).join("; ")
  }
}

/**
 * What a source's sender posts and how it splits into log events. `split` is pure: it decodes
 * the parsed JSON body and returns one {@link ContractEvent} per event of the request.
 */
export interface Contract {
  readonly name: string
  readonly domain: Domain
  /** Written to the `Ingest-Schema` header of every event, e.g. `hubspot/v1`. */
  readonly schemaVersion: string
  readonly split: (body: unknown) => Effect.Effect<ReadonlyArray<ContractEvent>, ContractViolation>
}

/** Decodes `input` against `schema`, failing with every issue, paths prefixed by `prefix`. */
export const decodeOrViolation = <S extends Schema.Decoder<unknown>>(schema: S, input: unknown, prefix: ReadonlyArray<PropertyKey> = []) =>
  Effect.mapError(Schema.decodeUnknownEffect(schema, decodeAll)(input), (error) => new ContractViolation({ issues: issuesOf(error, input, prefix) }))

export const violation = (...issues: ReadonlyArray<ContractIssue>) => new ContractViolation({ issues })

/** Accepts one event object or a JSON array of them; bounds the batch size. */
export const asBatch = (body: unknown): Effect.Effect<ReadonlyArray<unknown>, ContractViolation> => {
  const items = Array.isArray(body) ? body : [body]
  if (items.length === 0) return Effect.fail(violation({ path: "$", message: "Expected at least one event, got an empty array" }))
  if (items.length > MAX_EVENTS_PER_REQUEST)
    return Effect.fail(violation({ path: "$", message: `Expected at most ${MAX_EVENTS_PER_REQUEST} events per request, got ${items.length}: split the batch` }))
  return Effect.succeed(items)
}

/**
 * Refuses a request in which two events share a natural key but differ in content: the log would
 * keep the first and drop the second as a resend. Exact repeats are allowed and stored once.
 */
export const requireDistinctKeys = (events: ReadonlyArray<ContractEvent>, batched: boolean): Effect.Effect<ReadonlyArray<ContractEvent>, ContractViolation> => {
  const first = new Map<string, { index: number; content: string }>()
  const issues: Array<ContractIssue> = []
  events.forEach((event, index) => {
    const content = JSON.stringify(event.payload)
    const seen = first.get(event.key)
    if (seen === undefined) first.set(event.key, { index, content })
    else if (seen.content !== content)
      issues.push({
        path: batched ? `$[${index}]` : "$",
        message: `Event key ${JSON.stringify(event.key)} was already used by $[${seen.index}] with different content; give each event its own id`
      })
  })
  return issues.length > 0 ? Effect.fail(new ContractViolation({ issues })) : Effect.succeed(events)
}
