import { DeliverPolicy } from "@nats-io/jetstream"
import { headers as natsHeaders } from "@nats-io/nats-core"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { headerValues } from "../contracts/log.ts"
import { appendAsEdge } from "../infra/local/append.ts"
import { type LogStack, startLogStack } from "../infra/local/log-stack.ts"
import { warehouseWorkload } from "../infra/local/samples.ts"
import { rawHeaderValues, toReadEvent } from "./reader.ts"

let stack: LogStack

beforeAll(async () => {
  stack = await startLogStack()
})

afterAll(async () => {
  await stack?.dispose()
})

const readAll = async (from: number, count: number) => {
  const consumer = await stack.js.consumers.get("INGEST_WAREHOUSE", { deliver_policy: DeliverPolicy.StartSequence, opt_start_seq: from })
  const messages = []
  for (let i = 0; i < count; i++) messages.push(await consumer.next({ expires: 5000 }))
  return messages.flatMap((message) => (message === null ? [] : [message]))
}

describe("reading a log message's headers from its bytes", () => {
  it("gives what nats.js's own decoder gives, for the edge's headers and for odd ones", async () => {
    const head = await appendAsEdge(stack.js, "erasure", warehouseWorkload(20))
    const odd = natsHeaders()
    odd.set("Ingest-Source", "erasure")
    odd.append("Repeated", "first")
    odd.append("Repeated", "second")
    odd.set("With-Colon", "a: b: c")
    odd.set("Spaced", "  padded value  ")
    odd.set("Unicode", "Zoë – 東京")
    await stack.js.publish("ingest.warehouse.erasure.odd", "{}", { headers: odd, msgID: "odd-1" })
    await stack.js.publish("ingest.warehouse.erasure.none", "{}", { msgID: "none-1" })

    const messages = await readAll(1, head + 2)
    expect(messages).toHaveLength(head + 2)
    for (const message of messages) {
      const fast = rawHeaderValues(message)
      expect(fast).toBeDefined()
      expect(fast).toEqual(headerValues(message.headers))
    }
    expect(rawHeaderValues(messages[head] as (typeof messages)[number])).toMatchObject({
      Repeated: "first",
      "With-Colon": "a: b: c",
      Spaced: "padded value",
      Unicode: "Zoë – 東京"
    })
    // Without the edge's time headers, the event takes the time the log stored it.
    const bare = toReadEvent(messages[head] as (typeof messages)[number])
    expect(Date.parse(bare.occurredAt)).toBeGreaterThan(Date.parse("2026-01-01"))
  })
})
