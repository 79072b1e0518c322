import { LIMITS } from "./rules.ts"

/**
 * Paces one push dataset's POSTs under every documented limit (powerbi.md §1.5), so that steady
 * state never sees a 429: rows through a token bucket that refills at a little under 1,000,000 rows an
 * hour and holds at most one POST's worth (so no rolling hour ever holds more than the limit), and
 * POSTs under 120 a minute, or 120 an hour once a table of the dataset holds 250,000 rows. One POST is
 * in flight at a time (the limit is 5 pending). Pure: times are in the service's milliseconds, given.
 */

export interface GovernorLimits {
  readonly rowsPerHour: number
  readonly rowsPerPost: number
  readonly postsPerMinute: number
  readonly postsPerHourWhenLarge: number
}

/** The documented limits, with a margin: 98.5 % of the rows an hour, two POSTs fewer than allowed per window. */
export const DEFAULT_LIMITS: GovernorLimits = {
  rowsPerHour: Math.floor(LIMITS.rowsPerHourPerDataset * 0.985),
  rowsPerPost: LIMITS.rowsPerPost,
  postsPerMinute: LIMITS.postsPerMinute - 2,
  postsPerHourWhenLarge: LIMITS.postsPerHourWhenLarge - 2
}

export interface Governor {
  readonly limits: GovernorLimits
  tokens: number
  refilledAt: number
  /** Times of the POSTs of the last hour, oldest first. */
  readonly posts: Array<number>
  /** No POST before this time (a `Retry-After`). */
  notBefore: number
}

const MINUTE = 60_000
const HOUR = 3_600_000

/** A governor with an empty bucket: after a restart it cannot know what the last process sent, so it starts from nothing. */
export const newGovernor = (now: number, limits: GovernorLimits = DEFAULT_LIMITS): Governor => ({
  limits,
  tokens: 0,
  refilledAt: now,
  posts: [],
  notBefore: now
})

const refill = (governor: Governor, now: number): void => {
  const rate = governor.limits.rowsPerHour / HOUR
  governor.tokens = Math.min(governor.limits.rowsPerPost, governor.tokens + Math.max(0, now - governor.refilledAt) * rate)
  governor.refilledAt = now
  while (governor.posts.length > 0 && (governor.posts[0] as number) <= now - HOUR) governor.posts.shift()
}

/** How many rows the next POST should carry, given `pending` waiting: as many as one POST may, or what is there. */
export const nextBatchSize = (governor: Governor, pending: number): number => Math.min(pending, governor.limits.rowsPerPost)

/**
 * How long (ms) until a POST of `rows` may go: 0 when it may now. `large` says a table of the
 * dataset holds 250,000 rows or more (POSTs are then counted per hour).
 */
export const waitBeforePost = (governor: Governor, now: number, rows: number, large: boolean): number => {
  refill(governor, now)
  const rate = governor.limits.rowsPerHour / HOUR
  const forRows = governor.tokens >= rows ? 0 : Math.ceil((rows - governor.tokens) / rate)
  const slot = (span: number, limit: number): number => {
    const recent = governor.posts.filter((at) => at > now - span)
    return recent.length < limit ? 0 : (recent[recent.length - limit] as number) + span - now
  }
  const forPosts = Math.max(slot(MINUTE, governor.limits.postsPerMinute), large ? slot(HOUR, governor.limits.postsPerHourWhenLarge) : 0)
  return Math.max(forRows, forPosts, governor.notBefore - now, 0)
}

/** Records a POST of `rows` sent at `now`. */
export const recordPost = (governor: Governor, now: number, rows: number): void => {
  refill(governor, now)
  governor.tokens -= rows
  governor.posts.push(now)
}

/** Power BI asked to wait (`Retry-After`): no POST before then. */
export const holdOff = (governor: Governor, now: number, ms: number): void => {
  governor.notBefore = Math.max(governor.notBefore, now + ms)
}
