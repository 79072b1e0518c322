import { Schema } from "effect"
import { isWellFormed } from "./json-limits.ts"

const ISO_DATE_TIME = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(:\d{2}(\.\d{1,9})?)?(Z|[+-]\d{2}:\d{2})$/

/** The last millisecond of 9999-12-31, the largest time ISO 8601 dates in four digits can show. */
export const MAX_EPOCH_MILLIS = 253_402_300_799_999

/** Whether an instant's UTC year is 1 to 9999: what every column and ISO 8601 rendering of it can hold. */
export const inYearRange = (millis: number): boolean => {
  if (Number.isNaN(millis)) return false
  const year = new Date(millis).getUTCFullYear()
  return year >= 1 && year <= 9999
}

/** Whether `YYYY-MM-DD` names a day of the calendar (not 2025-02-30, which Date.parse rolls over to March). */
export const isCalendarDay = (day: string): boolean => {
  const millis = Date.parse(`${day}T00:00:00Z`)
  return !Number.isNaN(millis) && new Date(millis).toISOString().slice(0, 10) === day
}

/** An ISO 8601 date-time with a zone, e.g. `2025-01-15T10:32:00Z`, on a calendar day, in years 0001 to 9999 once in UTC. */
export const IsoDateTime = Schema.String.check(
  Schema.makeFilter((value: string) => ISO_DATE_TIME.test(value) && isCalendarDay(value.slice(0, 10)) && inYearRange(Date.parse(value)), {
    message: "Expected an ISO 8601 date-time with a time zone in years 0001 to 9999 (UTC), e.g. 2025-01-15T10:32:00Z"
  })
)

/** A calendar date `YYYY-MM-DD`, years 0001 to 9999. */
export const IsoDate = Schema.String.check(
  Schema.makeFilter(
    (value: string) => /^\d{4}-\d{2}-\d{2}$/.test(value) && isCalendarDay(value) && inYearRange(Date.parse(`${value}T00:00:00Z`)),
    {
      message: "Expected a real date YYYY-MM-DD in years 0001 to 9999, e.g. 2025-01-15"
    }
  )
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
 * An id or name as senders send them: 1 to 200 characters of well-formed Unicode, no control
 * characters and no surrounding whitespace, because ids become NATS message ids and header values
 * (UTF-8, where a lone surrogate would turn into U+FFFD and two ids into one).
 */
export const Identifier = Schema.String.check(
  Schema.makeFilter(
    (value: string) =>
      value.length > 0 && value.length <= 200 && value.trim() === value && !hasControlCharacter(value) && isWellFormed(value),
    {
      message: "Expected 1 to 200 characters of well-formed Unicode without control characters or surrounding spaces"
    }
  )
)
/** An id a sender may send as a string or an integer. */
export const IdLike = Schema.Union([Identifier, Schema.Int])

/** Epoch milliseconds to ISO 8601 UTC. */
export const isoFromMillis = (millis: number): string => new Date(millis).toISOString()

/** Normalises any accepted date-time to ISO 8601 UTC. */
export const toUtcIso = (value: string): string => new Date(value).toISOString()
