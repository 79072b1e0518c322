import { Effect, Schema } from "effect"
import { type Contract, decodeOrViolation } from "./contract.ts"
import { IdLike, Identifier, NonNegativeNumber, toUtcIso } from "./primitives.ts"

const ALOWARE_TIME = /^\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:?\d{2})?$/

/** Aloware sends `YYYY-MM-DD HH:MM:SS` (UTC) or ISO 8601; both are accepted. */
const AlowareTime = Schema.String.check(
  Schema.makeFilter((value: string) => ALOWARE_TIME.test(value) && !Number.isNaN(Date.parse(normaliseAlowareTime(value))), {
    message: "Expected a date-time like 2025-01-15 10:32:00 (UTC) or 2025-01-15T10:32:00Z"
  })
)

const normaliseAlowareTime = (value: string): string => {
  const iso = value.replace(" ", "T")
  return /(Z|[+-]\d{2}:?\d{2})$/.test(iso) ? iso : `${iso}Z`
}

/**
 * Aloware call and text webhooks (seed 004). Aloware publishes no payload schema, event id or
 * signature; this is the observed shape, versioned `aloware/v1`: one event per request, named by
 * `event` ("Call Disposed", "Text Received", ...), the communication in `data`.
 */
export const AlowareEvent = Schema.Struct({
  event: Identifier,
  data: Schema.Struct({
    id: IdLike,
    type: Schema.optionalKey(Schema.Literals(["call", "text", "sms", "email", "voicemail"])),
    direction: Schema.optionalKey(Schema.Literals(["inbound", "outbound"])),
    user_id: Schema.optionalKey(IdLike),
    user_name: Schema.optionalKey(Schema.String),
    contact_id: Schema.optionalKey(IdLike),
    duration: Schema.optionalKey(NonNegativeNumber),
    disposition: Schema.optionalKey(Schema.String),
    created_at: AlowareTime,
    updated_at: Schema.optionalKey(AlowareTime)
  })
})

/**
 * Aloware sends no event id: an event is identified by its name, the communication and the
 * communication's last change, so a resend collapses and a later change (a new disposition) does not.
 */
export const alowareKey = (event: typeof AlowareEvent.Type): string =>
  [event.event, String(event.data.id), toUtcIso(normaliseAlowareTime(event.data.updated_at ?? event.data.created_at))].map(encodeURIComponent).join(":")

export const alowareContract: Contract = {
  name: "aloware",
  domain: "crm",
  schemaVersion: "aloware/v1",
  split: (body) =>
    Effect.map(decodeOrViolation(AlowareEvent, body), (event) => [
      {
        key: alowareKey(event),
        type: event.event,
        occurredAt: toUtcIso(normaliseAlowareTime(event.data.created_at)),
        payload: body
      }
    ])
}
