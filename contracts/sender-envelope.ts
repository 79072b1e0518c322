import { Schema } from "effect"
import { type Contract, decodeIssues, type Judgement, makeContract } from "./contract.ts"
import type { ContractIssue } from "./event.ts"
import { renderPath } from "./issues.ts"
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

/** An envelope whose `data` was decoded by the schema of its `type`: one member per type, so a `switch` on `type` narrows `data`. */
export type DecodedEnvelope<Types extends EventTypes> = {
  readonly [K in keyof Types & string]: {
    readonly id: string
    readonly type: K
    readonly timestamp: string
    readonly data: Types[K]["Type"]
  }
}[keyof Types & string]

/**
 * Decodes an own-sender event: the envelope, then its `data` by the schema of its `type`. The one
 * decoder of envelopes, used by the edge's contract (issues for the sender, paths under `at`) and by
 * the projections (the same issues as a dead letter's reason).
 */
export const decodeEnvelope = <Types extends EventTypes>(
  types: Types,
  payload: unknown,
  at: ReadonlyArray<PropertyKey> = []
):
  { readonly ok: true; readonly value: DecodedEnvelope<Types> } | { readonly ok: false; readonly issues: ReadonlyArray<ContractIssue> } => {
  const envelope = decodeIssues(SenderEnvelope, payload, at)
  if (!envelope.ok) return envelope
  // Own keys only: a type named like an Object method (`toString`, `__proto__`) is unknown, not a schema.
  const dataSchema = Object.hasOwn(types, envelope.value.type) ? types[envelope.value.type] : undefined
  if (dataSchema === undefined)
    return {
      ok: false,
      issues: [
        {
          path: renderPath([...at, "type"]),
          message: `Unknown event type ${JSON.stringify(envelope.value.type)}; expected one of ${Object.keys(types).join(", ")}`
        }
      ]
    }
  const data = decodeIssues(dataSchema, envelope.value.data, [...at, "data"])
  if (!data.ok) return data
  return { ok: true, value: { ...envelope.value, data: data.value } as DecodedEnvelope<Types> }
}

const EnvelopeKey = Schema.Struct({ id: Identifier })

/** A contract for an own-sender source whose events use {@link SenderEnvelope}. */
export const envelopeContract = (options: {
  readonly name: string
  readonly domain: Domain
  readonly schemaVersion: string
  readonly types: EventTypes
}): Contract =>
  makeContract({
    name: options.name,
    domain: options.domain,
    schemaVersion: options.schemaVersion,
    shape: "object or array",
    describe: "the sender envelope's events",
    judge: (payload, at): Judgement => {
      const decoded = decodeEnvelope(options.types, payload, at)
      if (decoded.ok)
        return {
          _tag: "Valid",
          event: { key: decoded.value.id, type: decoded.value.type, occurredAt: toUtcIso(decoded.value.timestamp), payload }
        }
      const key = decodeIssues(EnvelopeKey, payload)
      return { _tag: "Invalid", key: key.ok ? key.value.id : undefined, issues: decoded.issues }
    }
  })
