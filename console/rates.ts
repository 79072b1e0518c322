/**
 * The console's arithmetic over what it samples: rates from a counter's readings, the time a
 * remaining count takes at a rate, and counts per minute. Pure: readings in, figures out.
 */

/** A counter's value read at `at` (epoch ms). */
export interface Reading {
  readonly at: number
  readonly value: number
}

/** How far back a rate looks: long enough to smooth batch steps, short enough to follow a change. */
export const RATE_WINDOW_MS = 30_000

/** Keeps the readings of the last `keepMs` before the newest one, and at least the two newest. */
export const keepRecent = (readings: ReadonlyArray<Reading>, keepMs: number): ReadonlyArray<Reading> => {
  const newest = readings.at(-1)
  if (newest === undefined) return readings
  const recent = readings.filter((reading) => newest.at - reading.at <= keepMs)
  return recent.length >= 2 ? recent : readings.slice(-2)
}

/**
 * Per second, from the oldest reading within `windowMs` of the newest to the newest; 0 without two
 * readings apart in time, and never negative (a counter that went back, as a new generation's
 * checkpoint does, starts over).
 */
export const rateOf = (readings: ReadonlyArray<Reading>, windowMs = RATE_WINDOW_MS): number => {
  const newest = readings.at(-1)
  if (newest === undefined) return 0
  const oldest = readings.find((reading) => newest.at - reading.at <= windowMs) ?? newest
  const seconds = (newest.at - oldest.at) / 1000
  return seconds <= 0 ? 0 : Math.max(0, (newest.value - oldest.value) / seconds)
}

/** Seconds `remaining` events take at `perSecond`; undefined when nothing moves (no rate, no estimate). */
export const etaSeconds = (remaining: number, perSecond: number): number | undefined =>
  remaining <= 0 ? 0 : perSecond > 0 ? remaining / perSecond : undefined

/** The start (epoch ms) of the minute `at` is in. */
export const minuteOf = (at: number): number => at - (at % 60_000)

/** Counts per minute: minute start (epoch ms) → count. */
export type MinuteTally = ReadonlyMap<number, number>

/** `tally` with `count` more in the minute of `at`, minutes older than `minutes` before it dropped. */
export const addToTally = (tally: MinuteTally, at: number, count: number, minutes = 60): MinuteTally => {
  const minute = minuteOf(at)
  const next = new Map([...tally].filter(([start]) => start > minute - minutes * 60_000))
  if (count !== 0) next.set(minute, (next.get(minute) ?? 0) + count)
  return next
}

/** Tallies timestamps (ISO text or epoch ms) by minute. */
export const tallyByMinute = (times: Iterable<string | number>): MinuteTally => {
  const tally = new Map<number, number>()
  for (const time of times) {
    const at = typeof time === "number" ? time : Date.parse(time)
    if (Number.isNaN(at)) continue
    tally.set(minuteOf(at), (tally.get(minuteOf(at)) ?? 0) + 1)
  }
  return tally
}

/** The last `minutes` minutes up to `now`, oldest first, each with its count (0 where none). */
export const lastMinutes = (tally: MinuteTally, now: number, minutes: number): ReadonlyArray<{ minute: string; count: number }> =>
  Array.from({ length: minutes }, (_, i) => {
    const start = minuteOf(now) - (minutes - 1 - i) * 60_000
    return { minute: new Date(start).toISOString().slice(11, 16), count: tally.get(start) ?? 0 }
  })

/**
 * Each counter's growth since the previous reading. The first reading adds nothing (what the log
 * held before the console started is not this minute's); a counter first seen later grew from 0.
 */
export const growth = (
  previous: ReadonlyMap<string, number> | undefined,
  current: ReadonlyMap<string, number>
): ReadonlyMap<string, number> =>
  new Map([...current].map(([name, value]) => [name, previous === undefined ? 0 : Math.max(0, value - (previous.get(name) ?? 0))]))
