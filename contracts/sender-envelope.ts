import { Effect, Schema } from "effect"
import { asBatch, type Contract, type ContractViolation, decodeOrViolation, violation } from "./contract.ts"
import { renderPath } from "./issues.ts"
import type { ContractEvent } from "./event.ts"
import type { Domain } from "./log.ts"
import { Identifier, IsoDateTime, toUtcIso } from "./primitives.ts"

/**
 * The envelope our own senders (erasure stations, OEE gateways, store POS) post, signed with
 * Standard Webhooks: one event, or a JSON array of up to 1000 of them.
 *
 * ```json
 * { "id": "evt_01J8...", "type": "erasure.success", "timestamp": "2025-01-15T10:32:00Z", "data": { ... } }
 * ```
 *
 * `id` is the sender's event id, stable across retries: it is the natural key. `timestamp` is when
 * the event happened. `data` is checked against the schema of `type`.
 */
export const SenderEnvelope = Schema.Struct({
  id: Identifier,
  type: Identifier,
  timestamp: IsoDateTime,
  data: Schema.Unknown
})

/** Event types and the schema of each type's `data`. */
export type EventTypes = Readonly<Record<string, Schema.Decoder<unknown>>>

/** A contract for an own-sender source whose events use {@link SenderEnvelope}. */
export const envelopeContract = (options: {
  readonly name: string
  readonly domain: Domain
  readonly schemaVersion: string
  readonly types: EventTypes
}): Contract => {
  const known = Object.keys(options.types)
  const splitOne = (item: unknown, at: ReadonlyArray<number>): Effect.Effect<ContractEvent, ContractViolation> =>
    Effect.gen(function* () {
      const envelope = yield* decodeOrViolation(SenderEnvelope, item, at)
      const dataSchema = options.types[envelope.type]
      if (dataSchema === undefined) {
        return yield* violation({
          path: renderPath([...at, "type"]),
          message: `Unknown event type ${JSON.stringify(envelope.type)}; expected one of ${known.join(", ")}`
        })
      }
      yield* decodeOrViolation(dataSchema, envelope.data, [...at, "data"])
      return { key: envelope.id, type: envelope.type, occurredAt: toUtcIso(envelope.timestamp), payload: item }
    })

  return {
    name: options.name,
    domain: options.domain,
    schemaVersion: options.schemaVersion,
    split: (body) =>
      Effect.gen(function* () {
        const items = yield* asBatch(body)
        const results = yield* Effect.forEach(items, (item, index) => Effect.result(splitOne(item, Array.isArray(body) ? [index] : [])))
        const issues = results.flatMap((result) => (result._tag === "Failure" ? result.failure.issues : []))
        if (issues.length > 0) return yield* violation(...issues)
        return results.flatMap((result) => (result._tag === "Success" ? [result.success] : []))
      })
  }
}
