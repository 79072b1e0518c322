import { Effect } from "effect"
import { describe, expect, it } from "vitest"
import { DRAIN_LIMIT_BYTES, readBody } from "./ingest.ts"

/** A request whose body arrives in chunks, with or without a Content-Length. */
const request = (bytes: number, declare: boolean) => {
  let sent = 0
  const chunk = new Uint8Array(1024 * 1024).fill(120)
  const body = new ReadableStream<Uint8Array>({
    pull: (controller) => {
      if (sent >= bytes) return controller.close()
      const size = Math.min(chunk.length, bytes - sent)
      sent += size
      controller.enqueue(chunk.subarray(0, size))
    }
  })
  return new Request("http://edge.test/v1/hooks/erasure", {
    method: "POST",
    body,
    headers: declare ? { "content-length": String(bytes) } : {},
    duplex: "half"
  } as RequestInit)
}

const read = (bytes: number, limit: number, declare = false) => Effect.runPromise(Effect.result(readBody(request(bytes, declare), limit)))

describe("reading a request's body", () => {
  it("refuses one over the limit, declared or not", async () => {
    expect(await read(3 * 1024 * 1024, 1024 * 1024)).toMatchObject({ _tag: "Failure", failure: { _tag: "PayloadTooLarge" } })
    expect(await read(3 * 1024 * 1024, 1024 * 1024, true)).toMatchObject({ _tag: "Failure", failure: { _tag: "PayloadTooLarge" } })
    expect(await read(DRAIN_LIMIT_BYTES + 1, 1024 * 1024, true)).toMatchObject({ _tag: "Failure", failure: { _tag: "PayloadTooLarge" } })
  })

  it("returns one within a limit set above the drain cap whole, never cut short", async () => {
    const result = await read(DRAIN_LIMIT_BYTES + 1024 * 1024, DRAIN_LIMIT_BYTES + 2 * 1024 * 1024)
    expect(result._tag === "Success" && result.success.byteLength).toBe(DRAIN_LIMIT_BYTES + 1024 * 1024)
  })
})
