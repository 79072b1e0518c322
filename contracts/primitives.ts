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
export const NonNegativeNumber = Schema.Finite.check(Schema.isGreaterThanOrEqualTo(0))
export const Percentage = Schema.Finite.check(Schema.isGreaterThanOrEqualTo(0), Schema.isLessThanOrEqualTo(100))
export const Identifier = Schema.NonEmptyString.check(Schema.isMaxLength(200))
/** An id a sender may send as a string or an integer. */
export const IdLike = Schema.Union([Identifier, Schema.Int])

/** Epoch milliseconds to ISO 8601 UTC. */
export const isoFromMillis = (millis: number): string => new Date(millis).toISOString()

/** Normalises any accepted date-time to ISO 8601 UTC. */
export const toUtcIso = (value: string): string => new Date(value).toISOString()
