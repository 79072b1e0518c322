/**
 * What the Power BI push API documents and enforces, as pure checks: names, column types, values and
 * the rate limits (powerbi.md §1.3–1.6), and the limit on executeQueries ("Datasets - Execute Queries
 * In Group"). The emulator answers by these; the pusher paces by them.
 */

export const LIMITS = {
  rowsPerPost: 10_000,
  bytesPerRequest: 16 * 1024 * 1024,
  pendingPostsPerDataset: 5,
  postsPerMinute: 120,
  /** Once any table of the dataset holds this many rows, POSTs are limited per hour instead of per minute. */
  largeTableRows: 250_000,
  postsPerHourWhenLarge: 120,
  rowsPerHourPerDataset: 1_000_000,
  tablesPerDataset: 75,
  columnsPerTable: 75,
  relationshipsPerDataset: 75,
  stringCharacters: 4000,
  fifoRows: 200_000,
  noneRetentionRows: 5_000_000,
  /** Refreshes a dataset on shared capacity may have in 24 hours. */
  sharedRefreshesPerDay: 8,
  /** executeQueries requests a user (here: an app's client id) may send in a minute, whatever the dataset. */
  queriesPerMinutePerUser: 120
} as const

/** The data types a push table column may have, by the names the API takes (case-insensitive; `bool`, `string` as in Microsoft's samples). */
export type PushType = "Int64" | "Double" | "Decimal" | "Boolean" | "DateTime" | "String"

const TYPE_NAMES: Readonly<Record<string, PushType>> = {
  int64: "Int64",
  double: "Double",
  decimal: "Decimal",
  boolean: "Boolean",
  bool: "Boolean",
  datetime: "DateTime",
  string: "String"
}

/** The column type a `dataType` names, or undefined. */
export const pushTypeOf = (dataType: unknown): PushType | undefined =>
  typeof dataType === "string" ? TYPE_NAMES[dataType.toLowerCase()] : undefined

/** The API's pattern for table (and relationship) names: 1–100 characters, without `. / \ ( ) [ ] { } , ; : ' " ! ? $ % & * + < = > | `` `. */
// eslint-disable-next-line no-control-regex
const TABLE_NAME = /^[\x09\x0A\x0D\x20\x23\x2D\x30-\x39\x40-\x5A\x5E-\x5F\x61-\x7A\x7E-\uD7FF\uE000-\uFFFD\u{10000}-\u{10FFFF}]{1,100}$/u
// eslint-disable-next-line no-control-regex
const COLUMN_NAME = /^[\x09\x0A\x0D\x20-\uD7FF\uE000-\uFFFD\u{10000}-\u{10FFFF}]+$/u

export const isTableName = (name: string): boolean => TABLE_NAME.test(name)
export const isColumnName = (name: string): boolean => COLUMN_NAME.test(name)

const INT64_MAX = 9223372036854775807n
const INT64_MIN = -9223372036854775808n

/** Why `value` cannot go into a column of `type`, or undefined when it can (null always can). */
export const valueProblem = (type: PushType, value: unknown): string | undefined => {
  if (value === null || value === undefined) return undefined
  switch (type) {
    case "Int64": {
      if (typeof value !== "number" || !Number.isInteger(value)) return `expected a whole number for Int64, got ${JSON.stringify(value)}`
      const big = BigInt(value)
      return big >= INT64_MAX || big <= INT64_MIN ? "Int64.MaxValue and Int64.MinValue are not allowed" : undefined
    }
    case "Double":
    case "Decimal":
      if (typeof value !== "number" || !Number.isFinite(value)) return `expected a finite number for ${type}, got ${JSON.stringify(value)}`
      return Math.abs(value) === Number.MAX_VALUE ? "Double.MaxValue and Double.MinValue are not allowed" : undefined
    case "Boolean":
      return typeof value === "boolean" ? undefined : `expected true or false for Boolean, got ${JSON.stringify(value)}`
    case "DateTime":
      return typeof value === "string" && !Number.isNaN(Date.parse(value))
        ? undefined
        : `expected a date and time for DateTime, got ${JSON.stringify(value)}`
    case "String":
      if (typeof value !== "string") return `expected text for String, got ${JSON.stringify(value)}`
      return value.length > LIMITS.stringCharacters
        ? `a String value may hold ${LIMITS.stringCharacters} characters, this one holds ${value.length}`
        : undefined
  }
}

/** Times (emulated milliseconds) of recent events in a sliding window: POSTs in the last minute, rows in the last hour. */
export interface Window {
  readonly events: Array<{ readonly at: number; readonly weight: number }>
}

export const newWindow = (): Window => ({ events: [] })

/** The weight recorded in the `spanMs` before `now`, dropping what is older. */
export const weightIn = (window: Window, now: number, spanMs: number): number => {
  while (window.events.length > 0 && (window.events[0] as { at: number }).at <= now - spanMs) window.events.shift()
  return window.events.reduce((sum, event) => sum + event.weight, 0)
}

/**
 * How long (emulated ms) until `weight` more fits under `limit` in the window of `spanMs`, or 0 when
 * it fits now: the time until enough of the oldest events leave the window.
 */
export const waitToFit = (window: Window, now: number, spanMs: number, limit: number, weight: number): number => {
  let total = weightIn(window, now, spanMs)
  if (total + weight <= limit) return 0
  for (const event of window.events) {
    total -= event.weight
    if (total + weight <= limit) return event.at + spanMs - now
  }
  return spanMs
}

/** The most weight a rolling window of `spanMs` has held so far: what a bench shows to prove it stayed under a limit. */
export interface Peak {
  readonly spanMs: number
  readonly window: Window
  peak: number
}

export const newPeak = (spanMs: number): Peak => ({ spanMs, window: newWindow(), peak: 0 })

/**
 * Records `weight` at `now` (events in time order) and returns the peak so far. A rolling window's
 * total rises only when an event comes in, so its highest is always right after one: checking the
 * window ending at each event finds it.
 */
export const notePeak = (peak: Peak, now: number, weight: number): number => {
  peak.window.events.push({ at: now, weight })
  peak.peak = Math.max(peak.peak, weightIn(peak.window, now, peak.spanMs))
  return peak.peak
}
