import { Schema } from "effect"
import { type Contract, decodeIssues, makeContract } from "./contract.ts"
import { IdLike, Identifier, inYearRange, isCalendarDay, NonNegativeNumber, toUtcIso } from "./primitives.ts"

const ALOWARE_TIME = /^\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:?\d{2})?$/

/** Aloware sends `YYYY-MM-DD HH:MM:SS` (UTC) or ISO 8601; both are accepted. */
const AlowareTime = Schema.String.check(
  Schema.makeFilter(
    (value: string) =>
      ALOWARE_TIME.test(value) && inYearRange(Date.parse(normaliseAlowareTime(value))) && isCalendarDay(value.slice(0, 10)),
    {
      message: "Expected a date-time like 2025-01-15 10:32:00 (UTC) or 2025-01-15T10:32:00Z, years 0001 to 9999"
    }
  )
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

/** The fields an Aloware event's key is made of. */
const AlowareKeyFields = Schema.Struct({
  event: Identifier,
  data: Schema.Struct({ id: IdLike, created_at: AlowareTime, updated_at: Schema.optionalKey(AlowareTime) })
})

/**
 * Aloware sends no event id: an event is identified by its name, the communication and the
 * communication's last change, so a resend collapses and a later change (a new disposition) does
 * not. Each part is percent-encoded, so no two keys are alike unless their parts are (parts are
 * well-formed Unicode, checked by the contract).
 */
export const alowareKey = (event: typeof AlowareKeyFields.Type): string =>
  [event.event, String(event.data.id), toUtcIso(normaliseAlowareTime(event.data.updated_at ?? event.data.created_at))]
    .map(encodeURIComponent)
    .join(":")

export const alowareContract: Contract = makeContract({
  name: "aloware",
  domain: "crm",
  schemaVersion: "aloware/v1",
  shape: "object",
  describe: "Aloware's events",
  judge: (payload, at) => {
    const decoded = decodeIssues(AlowareEvent, payload, at)
    if (decoded.ok) {
      const event = decoded.value
      return {
        _tag: "Valid",
        event: { key: alowareKey(event), type: event.event, occurredAt: toUtcIso(normaliseAlowareTime(event.data.created_at)), payload }
      }
    }
    const key = decodeIssues(AlowareKeyFields, payload)
    return { _tag: "Invalid", key: key.ok ? alowareKey(key.value) : undefined, issues: decoded.issues }
  }
})
