import { utf8 } from "../platform/text.ts"

/** Back-pressure: a response body pulled by the client, and the limits that keep a slow or stalled one from holding its cursor for ever. */

/** How a response's stream is kept from holding a cursor (and a stream slot, and its mart's views) for ever. */
export interface StreamLimits {
  /** A client that reads nothing for this long is ended (default 5 minutes). */
  readonly stallMs: number
  /** A client that reads slower than this (bytes per second), over a whole `slowWindowMs` spent waiting for it, is ended. */
  readonly minBytesPerSecond: number
  readonly slowWindowMs: number
  /** The longest a response may stream, however fast its client reads. */
  readonly maxMs: number
}

export const DEFAULT_STREAM_LIMITS: StreamLimits = {
  stallMs: 300_000,
  minBytesPerSecond: 8 * 1024,
  slowWindowMs: 30_000,
  maxMs: 30 * 60_000
}

/** One handover of a chunk to the client: when it asked for it, how long we waited for it to ask, and the chunk's size. */
interface Delivery {
  readonly at: number
  readonly waitedMs: number
  readonly bytes: number
}

/**
 * Whether a client is too slow: over the last `window` ms we spent (nearly) all the time waiting for
 * it to read on, and it took less than `minBytesPerSecond` in that time. Time spent producing rows
 * (a slow query) never counts against the client.
 */
export const tooSlow = (
  deliveries: ReadonlyArray<Delivery>,
  waitingSince: number | undefined,
  now: number,
  limits: Pick<StreamLimits, "minBytesPerSecond" | "slowWindowMs">
): boolean => {
  const from = now - limits.slowWindowMs
  let waited = waitingSince === undefined ? 0 : now - Math.max(waitingSince, from)
  let bytes = 0
  for (const delivery of deliveries) {
    if (delivery.at <= from) continue
    bytes += delivery.bytes
    waited += Math.min(delivery.waitedMs, delivery.at - from)
  }
  return waited >= 0.9 * limits.slowWindowMs && bytes < (limits.minBytesPerSecond * limits.slowWindowMs) / 1000
}

/**
 * A byte stream pulled chunk by chunk from `chunks`: nothing is produced ahead of what the client
 * reads. `release` (closing the database cursor) runs once however the stream ends: finished,
 * failed, cancelled by a client that went away (even before the first row), or ended because the
 * client broke a limit ({@link StreamLimits}): read nothing for `stallMs`, read slower than
 * `minBytesPerSecond` for a whole `slowWindowMs`, or kept it open past `maxMs`. A cursor held open
 * holds a stream slot and its mart's views (a rebuild waits for them), and Postgres' own idle
 * timeouts do not see a cursor between fetches.
 */
export const pullStream = (
  chunks: AsyncIterable<string | Uint8Array>,
  release: () => Promise<void>,
  limits: StreamLimits = DEFAULT_STREAM_LIMITS,
  /** Drops the connection when a limit ends the response: a client that does not read would never see the stream fail. */
  dropConnection: (reason: string) => void = () => {}
): ReadableStream<Uint8Array> => {
  const iterator = chunks[Symbol.asyncIterator]()
  const started = Date.now()
  let stall: NodeJS.Timeout | undefined
  let watch: NodeJS.Timeout | undefined
  let ended = false
  /** The fetch of the next chunk while one runs: a limit waits for it before closing the cursor under it. */
  let inFlight: Promise<unknown> | undefined
  /** When the last chunk was handed over and we began waiting for the client to ask for more. */
  let waitingSince: number | undefined
  const deliveries: Array<Delivery> = []
  const finish = async () => {
    ended = true
    clearTimeout(stall)
    clearInterval(watch)
    await release()
  }
  const end = (controller: ReadableStreamDefaultController<Uint8Array>, reason: string) => {
    if (ended) return
    ended = true
    controller.error(new Error(reason))
    dropConnection(reason)
    void (async () => {
      await inFlight?.catch(() => undefined)
      await iterator.return?.()
      await finish()
    })()
  }
  const armStall = (controller: ReadableStreamDefaultController<Uint8Array>) => {
    stall = setTimeout(() => end(controller, `the client read nothing for ${limits.stallMs} ms`), limits.stallMs)
  }
  return new ReadableStream<Uint8Array>(
    {
      start: (controller) => {
        armStall(controller)
        watch = setInterval(
          () => {
            const now = Date.now()
            if (now - started > limits.maxMs) return end(controller, `the response streamed for longer than ${limits.maxMs} ms`)
            while (deliveries.length > 0 && (deliveries[0] as Delivery).at <= now - limits.slowWindowMs) deliveries.shift()
            if (tooSlow(deliveries, waitingSince, now, limits))
              end(controller, `the client read slower than ${limits.minBytesPerSecond} bytes/s for ${limits.slowWindowMs} ms`)
          },
          Math.max(10, Math.min(1000, limits.slowWindowMs / 10, limits.maxMs / 2))
        )
        watch.unref()
      },
      pull: async (controller) => {
        if (ended) return
        clearTimeout(stall)
        const asked = Date.now()
        const waitedMs = waitingSince === undefined ? 0 : asked - waitingSince
        waitingSince = undefined
        try {
          const pending = iterator.next()
          inFlight = pending
          const next = await pending
          inFlight = undefined
          if (ended) return
          if (next.done === true) {
            await finish()
            controller.close()
            return
          }
          const chunk = typeof next.value === "string" ? utf8(next.value) : next.value
          deliveries.push({ at: asked, waitedMs, bytes: chunk.byteLength })
          controller.enqueue(chunk)
          waitingSince = Date.now()
          armStall(controller)
        } catch (error) {
          inFlight = undefined
          if (ended) return
          await finish()
          throw error
        }
      },
      cancel: async () => {
        if (ended) return
        await finish()
        await iterator.return?.()
      }
    },
    { highWaterMark: 0 }
  )
}
