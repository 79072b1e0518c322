/**
 * The edge spool's pure pieces: which sources spool, how a drain backs off, what fits in a row and
 * how rows are written. The Durable Object (`LogPublisher`) holds the storage and the timers.
 */

/** `SPOOL`: `on` spools every source, `off` none, `auto` (the default) those whose senders do not retry. */
export const SPOOL_MODES = ["on", "off", "auto"] as const
export type SpoolMode = (typeof SPOOL_MODES)[number]

/** A source's own `spool` in `SOURCES`, which wins over `SPOOL`. */
export const SOURCE_SPOOL_SETTINGS = ["on", "off"] as const
export type SourceSpoolSetting = (typeof SOURCE_SPOOL_SETTINGS)[number]

/**
 * Whether a source's events wait in the spool when the log does not acknowledge them (202
 * `spooled`) rather than being refused (503, the sender resends). A sender that retries is better
 * served by the 503: its events stay in its own hands, and no edge storage holds them.
 */
export const spoolsEvents = (mode: SpoolMode, source: SourceSpoolSetting | undefined, senderRetries: boolean): boolean =>
  source !== undefined ? source === "on" : mode === "auto" ? !senderRetries : mode === "on"

/**
 * How long a drain that failed `failures` times in a row waits before it tries again: `baseMs`
 * doubling per failure, never more than `maxMs`. The drain keeps its own schedule: the platform
 * would give up on an alarm after six thrown retries and leave the spool with nothing to drain it.
 */
export const drainBackoffMs = (failures: number, baseMs: number, maxMs: number): number =>
  failures <= 0 ? 0 : Math.min(maxMs, baseMs * 2 ** Math.min(failures - 1, 40))

/** Cloudflare's limit on one row of a SQLite-backed Durable Object (and on any one BLOB in it). */
export const SPOOL_ROW_LIMIT_BYTES = 2_000_000

/** What a row holds besides its message: seq, bytes, spooled_at and SQLite's record header, with room to spare. */
export const SPOOL_ROW_OVERHEAD_BYTES = 256

const encoder = new TextEncoder()

/** The bytes a spooled message's row takes: its subject, id, header block and data, and the rest. */
export const spoolRowBytes = (message: {
  readonly subject: string
  readonly msgId: string
  readonly headers: Uint8Array
  readonly data: Uint8Array
}): number =>
  encoder.encode(message.subject).byteLength +
  encoder.encode(message.msgId).byteLength +
  message.headers.byteLength +
  message.data.byteLength +
  SPOOL_ROW_OVERHEAD_BYTES

/** Values bound per spooled row (`msg_id, subject, headers, data, bytes, spooled_at`). */
export const SPOOL_ROW_VALUES = 6

/** Cloudflare binds at most 100 parameters per statement: 16 rows of 6 values. */
export const SPOOL_ROWS_PER_INSERT = Math.floor(100 / SPOOL_ROW_VALUES)

/** The insert of `rows` rows: new ones take the next seq, one whose message id waits already is left as it is. */
export const spoolInsert = (rows: number): string =>
  `INSERT INTO spool (msg_id, subject, headers, data, bytes, spooled_at) VALUES ${Array.from({ length: rows }, () => "(?, ?, ?, ?, ?, ?)").join(", ")} ON CONFLICT (msg_id) DO NOTHING RETURNING msg_id`

/** `items` in consecutive runs of at most `size`. */
export const chunked = <T>(items: ReadonlyArray<T>, size: number): ReadonlyArray<ReadonlyArray<T>> =>
  Array.from({ length: Math.ceil(items.length / size) }, (_, i) => items.slice(i * size, (i + 1) * size))

const decoder = new TextDecoder()

/**
 * The `Nats-Msg-Id` of an encoded header block (`NATS/1.0\r\nName: value\r\n…`), the spool's key:
 * the Worker sends each message's headers encoded, so the id is read back only when it is spooled.
 */
export const msgIdOf = (headers: Uint8Array): string | undefined => {
  for (const line of decoder.decode(headers).split("\r\n")) {
    const colon = line.indexOf(":")
    if (colon > 0 && line.slice(0, colon).trim().toLowerCase() === "nats-msg-id") return line.slice(colon + 1).trim()
  }
  return undefined
}

/**
 * Why a batch cannot be spooled, or undefined when it can: the spool would pass its bound
 * (`SPOOL_MAX_EVENTS`), or one message's row would pass the row limit. Either way nothing of the
 * batch is kept, and the sender gets a 503 naming the bound or the size.
 */
export const spoolRefusal = (
  depth: number,
  rowBytes: ReadonlyArray<number>,
  maxEvents: number
):
  | { readonly _tag: "Full"; readonly depth: number; readonly limit: number }
  | { readonly _tag: "RowTooLarge"; readonly position: number; readonly bytes: number; readonly limit: number }
  | undefined => {
  const position = rowBytes.findIndex((bytes) => bytes > SPOOL_ROW_LIMIT_BYTES)
  if (position >= 0) return { _tag: "RowTooLarge", position, bytes: rowBytes[position] as number, limit: SPOOL_ROW_LIMIT_BYTES }
  if (depth + rowBytes.length > maxEvents) return { _tag: "Full", depth, limit: maxEvents }
  return undefined
}

/** The watchdog re-arms a spool's drain when it has no alarm, or one this much in the past (the platform may run one up to a minute late). */
export const STALE_ALARM_MS = 60_000

/** Whether the watchdog should re-arm a spool of `depth` events whose alarm is at `alarmAt` (null: none). */
export const needsRearm = (depth: number, alarmAt: number | null, now: number): boolean =>
  depth > 0 && (alarmAt === null || alarmAt < now - STALE_ALARM_MS)
