import { Schema } from "effect"

const ISO_DATE_TIME = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(:\d{2}(\.\d{1,9})?)?(Z|[+-]\d{2}:\d{2})$/

/** An ISO 8601 date-time with a zone, e.g. `2025-01-15T10:32:00Z`. */
export const IsoDateTime = Schema.String.check(
  Schema.makeFilter((value: string) => ISO_DATE_TIME.test(value) && !Number.isNaN(Date.parse(value)), {
    message: "Expected an ISO 8601 date-time with a time zone, e.g. 2025-01-15T10:32:00Z"
  })
)

/** A calendar date `YYYY-MM-DD`. */
export const IsoDate = Schema.String.check(
  Schema.makeFilter((value: string) => /^\d{4}-\d{2}-\d{2}$/.test(value) && !Number.isNaN(Date.parse(`${value}T00:00:00Z`)), {
    message: "Expected a date YYYY-MM-DD, e.g. 2025-01-15"
  })
)

export const NonNegativeInt = Schema.Int.check(Schema.isGreaterThanOrEqualTo(0))
export const PositiveInt = Schema.Int.check(Schema.isGreaterThan(0))
/** A count or quantity that fits a 32-bit integer column, 0 to 2,147,483,647. */
export const Count = Schema.Int.check(Schema.isGreaterThanOrEqualTo(0), Schema.isLessThanOrEqualTo(2_147_483_647))
/** A count of at least one that fits a 32-bit integer column. */
export const PositiveCount = Schema.Int.check(Schema.isGreaterThan(0), Schema.isLessThanOrEqualTo(2_147_483_647))
export const NonNegativeNumber = Schema.Finite.check(Schema.isGreaterThanOrEqualTo(0))
export const Percentage = Schema.Finite.check(Schema.isGreaterThanOrEqualTo(0), Schema.isLessThanOrEqualTo(100))
const hasControlCharacter = (value: string): boolean => {
  for (let i = 0; i < value.length; i++) {
    const code = value.charCodeAt(i)
    if (code < 0x20 || code === 0x7f) return true
  }
  return false
}

/**
 * An id or name as senders send them: 1 to 200 characters, no control characters and no
 * surrounding whitespace, because ids become NATS message ids and header values.
 */
export const Identifier = Schema.String.check(
  Schema.makeFilter((value: string) => value.length > 0 && value.length <= 200 && value.trim() === value && !hasControlCharacter(value), {
    message: "Expected 1 to 200 characters without control characters or surrounding spaces"
  })
)
/** An id a sender may send as a string or an integer. */
export const IdLike = Schema.Union([Identifier, Schema.Int])

/** The last millisecond of 9999-12-31, the largest time ISO 8601 dates in four digits can show. */
export const MAX_EPOCH_MILLIS = 253_402_300_799_999

/** Epoch milliseconds to ISO 8601 UTC. */
export const isoFromMillis = (millis: number): string => new Date(millis).toISOString()

/** Normalises any accepted date-time to ISO 8601 UTC. */
export const toUtcIso = (value: string): string => new Date(value).toISOString()
