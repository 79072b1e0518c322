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

const EnvelopeKey = Schema.Struct({ id: Identifier })

/** A contract for an own-sender source whose events use {@link SenderEnvelope}. */
export const envelopeContract = (options: { readonly name: string; readonly domain: Domain; readonly schemaVersion: string; readonly types: EventTypes }): Contract => {
  const known = Object.keys(options.types)
  return makeContract({
    name: options.name,
    domain: options.domain,
    schemaVersion: options.schemaVersion,
    shape: "object or array",
    describe: "the sender envelope's events",
    judge: (payload, at) => {
      const key = decodeIssues(EnvelopeKey, payload)
      const invalid = (issues: ReadonlyArray<ContractIssue>): Judgement => ({ _tag: "Invalid", key: key.ok ? key.value.id : undefined, issues })
      const envelope = decodeIssues(SenderEnvelope, payload, at)
      if (!envelope.ok) return invalid(envelope.issues)
      const dataSchema = options.types[envelope.value.type]
      if (dataSchema === undefined)
        return invalid([{ path: renderPath([...at, "type"]), message: `Unknown event type ${JSON.stringify(envelope.value.type)}; expected one of ${known.join(", ")}` }])
      const data = decodeIssues(dataSchema, envelope.value.data, [...at, "data"])
      if (!data.ok) return invalid(data.issues)
      return { _tag: "Valid", event: { key: envelope.value.id, type: envelope.value.type, occurredAt: toUtcIso(envelope.value.timestamp), payload } }
    }
  })
}
