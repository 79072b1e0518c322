import type { Readable } from "node:stream"
import type postgres from "postgres"
import { QueryTimedOut } from "./errors.ts"

/** Bytes gathered into one chunk before it is handed on: what one response holds in memory at a time, besides the sockets. */
export const COPY_CHUNK_BYTES = 64 * 1024

/** The bytes of a `COPY … TO STDOUT`, a chunk at a time; `close` ends it early (a client that went away). */
export interface CopyStream {
  readonly chunks: AsyncIterable<Uint8Array>
  readonly close: () => Promise<void>
}

/**
 * Runs `statement` (a `COPY (SELECT …) TO STDOUT`) and reads its first chunk before returning, so
 * that a failing query (a mart not built yet, a bad cast) is an error the caller can still answer
 * with a status. Postgres' messages are gathered into chunks of at least {@link COPY_CHUNK_BYTES}
 * (less only at the end) and read only as the consumer asks for them: postgres.js pauses the
 * socket while a chunk waits, so a slow client holds Postgres back instead of filling our memory.
 *
 * Each chunk must arrive within `timeout` or the statement is cancelled ({@link QueryTimedOut});
 * the time a consumer takes to ask for the next chunk never counts, which a `statement_timeout`
 * would. Closing early cancels the statement and reads what is still on its way, so the
 * connection is idle again (and may be given back) once `close` resolves.
 */
export const openCopy = async (
  sql: postgres.Sql,
  statement: string,
  timeout?: { readonly limitMs: number; readonly setting: string }
): Promise<CopyStream> => {
  const query = sql.unsafe(statement)
  // The first chunk's time runs from the statement's start: one waiting on a lock (a writer holding the
  // marts) never answers CopyOutResponse, and must be cancelled as a slow chunk is.
  let startTimedOut = false
  const startTimer =
    timeout === undefined
      ? undefined
      : setTimeout(() => {
          startTimedOut = true
          void Promise.resolve(query.cancel() as unknown as Promise<void> | null).catch(() => undefined)
        }, timeout.limitMs)
  let readable: Readable
  try {
    readable = (await query.readable()) as Readable
  } catch (error) {
    if (startTimedOut && timeout !== undefined) throw new QueryTimedOut(timeout)
    throw error
  } finally {
    clearTimeout(startTimer)
  }
  let ended = false
  let closed = false
  // Answered just as its start timed out: the cancel is on its way, so the first chunk reads as timed out.
  let timedOut = startTimedOut
  let failure: unknown
  let wake: (() => void) | undefined
  const notify = () => {
    const woken = wake
    wake = undefined
    woken?.()
  }
  readable.on("readable", notify)
  readable.once("end", () => {
    ended = true
    notify()
  })
  readable.once("error", (error) => {
    failure ??= error
    notify()
  })
  readable.once("close", () => {
    ended = true
    notify()
  })
  const settled = new Promise<void>((resolveSettled) =>
    readable.once("close", () => {
      // postgres.js resumes its socket only when this stream asks for more (`_read`); a COPY whose end
      // or error came while the socket was paused would leave it paused, and the connection's next query hanging.
      ;(readable as unknown as { _read: (size: number) => void })._read(0)
      resolveSettled()
    })
  )
  /** Cancels the statement once; resolves when the cancel request has been delivered (its connection closed). */
  let cancelling: Promise<unknown> | undefined
  const cancel = () => (cancelling ??= Promise.resolve(query.cancel() as unknown as Promise<void> | null).catch(() => undefined))

  /** The next chunk of at least COPY_CHUNK_BYTES, or what is left at the end; null once nothing is. */
  const fetch = async (): Promise<Uint8Array | null> => {
    const parts: Array<Buffer> = []
    let bytes = 0
    const timer =
      timeout === undefined
        ? undefined
        : setTimeout(() => {
            timedOut = true
            void cancel()
            notify()
          }, timeout.limitMs)
    try {
      for (;;) {
        if (timedOut && timeout !== undefined) throw new QueryTimedOut(timeout)
        if (failure !== undefined) throw failure
        if (closed) return null
        const part = readable.read() as Buffer | null
        if (part !== null) {
          parts.push(part)
          bytes += part.length
          if (bytes >= COPY_CHUNK_BYTES) break
          continue
        }
        if (ended) break
        await new Promise<void>((resolveWoken) => (wake = resolveWoken))
      }
    } finally {
      clearTimeout(timer)
    }
    if (bytes === 0) return null
    return parts.length === 1 ? (parts[0] as Buffer) : Buffer.concat(parts, bytes)
  }

  /** The fetch under way, if any: closing waits for it. */
  let fetching: Promise<Uint8Array | null> | undefined
  const close = async () => {
    if (closed) return
    closed = true
    notify()
    await fetching?.catch(() => undefined)
    // A cancel is delivered before the connection is given back, so it can never reach a later query on it.
    if (readable.destroyed || (ended && failure === undefined)) return void (await cancelling)
    const discard = () => {
      while (readable.read() !== null);
    }
    readable.on("readable", discard)
    discard()
    await cancel()
    await settled
  }

  let first: Uint8Array | null
  try {
    first = await fetch()
  } catch (error) {
    await close()
    throw error
  }
  const chunks = async function* () {
    try {
      if (first === null) return
      yield first
      first = null
      for (;;) {
        fetching = fetch()
        const next = await fetching
        fetching = undefined
        if (next === null) return
        yield next
      }
    } finally {
      fetching = undefined
      await close()
    }
  }
  return { chunks: chunks(), close }
}

const LF = 10

/**
 * COPY bytes cut at row ends: each piece is whole rows (Postgres ends every row with a line feed,
 * which in text format never occurs inside a value), the rest of a row carried to the next piece.
 */
export async function* wholeRows(chunks: AsyncIterable<Uint8Array>): AsyncGenerator<Uint8Array> {
  let carry: Uint8Array | undefined
  for await (const chunk of chunks) {
    const input = carry === undefined ? chunk : Buffer.concat([carry, chunk])
    const end = input.lastIndexOf(LF) + 1
    carry = end < input.length ? input.subarray(end) : undefined
    if (end > 0) yield input.subarray(0, end)
  }
  if (carry !== undefined) throw new Error("the COPY output ended inside a row")
}

/** `out`, or a buffer twice as large (at least `need` bytes) holding its first `used` bytes: an encoder's output that grows without a copy per row. */
export const withRoom = (out: Buffer<ArrayBuffer>, used: number, need: number): Buffer<ArrayBuffer> => {
  if (need <= out.length) return out
  const bigger = Buffer.allocUnsafe(Math.max(need, out.length * 2))
  out.copy(bigger, 0, 0, used)
  return bigger
}
