import { BadParameter } from "./errors.ts"
import type { Format } from "./formats.ts"

/**
 * The query parameters of the REST exports, declared once: the parser below and the OpenAPI
 * document are both read from these declarations.
 */
export type ParamSpec =
  | { readonly name: string; readonly kind: "format"; readonly formats: ReadonlyArray<Format>; readonly description: string }
  | { readonly name: string; readonly kind: "from" | "to"; readonly description: string }
  | { readonly name: string; readonly kind: "boolean"; readonly default: boolean; readonly description: string }
  | { readonly name: string; readonly kind: "limit"; readonly description: string }
  | { readonly name: string; readonly kind: "text"; readonly description: string }

/** Most rows one export returns when `limit` is given; without it the whole window streams. */
export const MAX_LIMIT = 100_000

/** The query parameter an API key may travel in (Power BI's "Web API" credential, `ApiKeyName="api_key"`). */
export const API_KEY_PARAM = "api_key"

export const DATE_FORM = "YYYY-MM-DD (a whole UTC day) or an ISO 8601 instant such as 2025-01-15T00:00:00Z"

export interface Window {
  /** Inclusive lower bound, an ISO instant. */
  readonly from?: string
  /** Exclusive upper bound, an ISO instant: a date-only value means the end of that day. */
  readonly to?: string
}

export interface ParsedParams {
  readonly format: Format
  readonly window: Window
  readonly limit?: number
  readonly booleans: Readonly<Record<string, boolean>>
  readonly texts: Readonly<Record<string, string>>
}

const DATE = /^(\d{4})-(\d{2})-(\d{2})$/
const INSTANT = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(:\d{2}(\.\d{1,7})?)?(Z|[+-]\d{2}:\d{2})$/
/** Years a bound may name: wide enough for any report, narrow enough that a day's end stays a valid instant everywhere. */
const FIRST_YEAR = 1900
const LAST_YEAR = 9998

const validDay = (value: string): number | undefined => {
  const match = DATE.exec(value)
  if (match === null) return undefined
  const [year, month, day] = [Number(match[1]), Number(match[2]), Number(match[3])]
  if (year < FIRST_YEAR || year > LAST_YEAR) return undefined
  const millis = Date.UTC(year, month - 1, day)
  const back = new Date(millis)
  return back.getUTCFullYear() === year && back.getUTCMonth() === month - 1 && back.getUTCDate() === day ? millis : undefined
}

/** A date or instant parameter as the instant it starts at, and whether it was a whole day. */
export const parseInstant = (parameter: string, given: string): { millis: number; wholeDay: boolean } => {
  // An offset's unencoded "+" arrives as a space.
  const value = given.replace(/^(\d{4}-\d{2}-\d{2}T[\d:.]+) (\d{2}:\d{2})$/, "$1+$2")
  const day = validDay(value)
  if (day !== undefined) return { millis: day, wholeDay: true }
  if (INSTANT.test(value) && validDay(value.slice(0, 10)) !== undefined) {
    const millis = Date.parse(value)
    if (!Number.isNaN(millis)) return { millis, wholeDay: false }
  }
  throw new BadParameter({ parameter, message: `${JSON.stringify(given)} is not a date; use ${DATE_FORM}` })
}

const DAY_MS = 86_400_000

const parseBoolean = (parameter: string, value: string): boolean => {
  const lower = value.toLowerCase()
  if (["true", "1", "yes"].includes(lower)) return true
  if (["false", "0", "no"].includes(lower)) return false
  throw new BadParameter({ parameter, message: `${JSON.stringify(value)} is not a boolean; use true or false` })
}

/** Parses and checks `query` against `specs`; an unknown or repeated parameter is an error too. */
export const parseParams = (specs: ReadonlyArray<ParamSpec>, query: URLSearchParams, defaultFormat: Format): ParsedParams => {
  const known = new Map(specs.map((spec) => [spec.name, spec]))
  const seen = new Set<string>()
  for (const name of query.keys()) {
    if (name === API_KEY_PARAM) continue
    if (!known.has(name)) {
      throw new BadParameter({
        parameter: name,
        message: `unknown parameter; this endpoint accepts ${specs.map((spec) => spec.name).join(", ")}`
      })
    }
    if (seen.has(name)) throw new BadParameter({ parameter: name, message: "given more than once; give it once" })
    seen.add(name)
  }
  let format = defaultFormat
  let from: { millis: number; name: string } | undefined
  let to: { millis: number; wholeDay: boolean; name: string } | undefined
  let limit: number | undefined
  const booleans: Record<string, boolean> = {}
  const texts: Record<string, string> = {}
  for (const spec of specs) {
    const value = query.get(spec.name)
    if (spec.kind === "boolean") booleans[spec.name] = value === null ? spec.default : parseBoolean(spec.name, value)
    if (value === null) continue
    switch (spec.kind) {
      case "format":
        if (!(spec.formats as ReadonlyArray<string>).includes(value)) {
          throw new BadParameter({
            parameter: spec.name,
            message: `${JSON.stringify(value)} is not a format of this endpoint; use one of ${spec.formats.join(", ")}`
          })
        }
        format = value as Format
        break
      case "from":
        from = { ...parseInstant(spec.name, value), name: spec.name }
        break
      case "to":
        to = { ...parseInstant(spec.name, value), name: spec.name }
        break
      case "limit":
        if (!/^\d{1,7}$/.test(value) || Number(value) < 1 || Number(value) > MAX_LIMIT) {
          throw new BadParameter({
            parameter: spec.name,
            message: `${JSON.stringify(value)} is not allowed; use a whole number from 1 to ${MAX_LIMIT}, or leave it out for every row in the window`
          })
        }
        limit = Number(value)
        break
      case "text":
        if (value.length === 0 || value.length > 200)
          throw new BadParameter({ parameter: spec.name, message: "must be 1 to 200 characters" })
        texts[spec.name] = value
        break
    }
  }
  const end = to === undefined ? undefined : to.millis + (to.wholeDay ? DAY_MS : 0)
  // A whole day as the end includes that day: ending on the day before the start leaves nothing.
  if (from !== undefined && to !== undefined && end !== undefined && (to.wholeDay ? end <= from.millis : end < from.millis)) {
    throw new BadParameter({ parameter: to.name, message: `is before ${from.name}; give a window whose end is on or after its start` })
  }
  const window: Window = {
    ...(from === undefined ? {} : { from: new Date(from.millis).toISOString() }),
    ...(end === undefined ? {} : { to: new Date(end).toISOString() })
  }
  return { format, window, ...(limit === undefined ? {} : { limit }), booleans, texts }
}
