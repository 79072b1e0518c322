import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { erasureEvents, hubspotBatch, postSigned } from "../infra/local/samples.ts"
import { connectAdmin, type EdgeStack, startEdgeStack } from "../infra/local/stack.ts"
import { jetstreamManager } from "@nats-io/jetstream"

/** HubSpot and Shopify give up on a delivery after about 5 s. */
const SENDER_TIMEOUT_MS = 5000

let stack: EdgeStack

beforeAll(async () => {
  // No spool: every source gets today's 503, and /healthz says the log is gone (edge/spool.int.test.ts has the spool's answers).
  stack = await startEdgeStack({ settings: { SPOOL: "off" } })
})

afterAll(async () => {
  await stack?.dispose()
})

describe("when nats-server is down", () => {
  it("answers 503 with Retry-After within the sender's timeout, and the sender's retry after the restart is appended once", async () => {
    const batch = hubspotBatch(10, { firstEventId: 90_000 })
    const warmUp = await postSigned(stack.edge.url, "erasure", erasureEvents(1, { firstId: 90_000 }), stack.secrets.erasure as string)
    expect(warmUp.status).toBe(202)

    await stack.admin.close()
    await stack.nats.stop()

    const started = Date.now()
    const refused = await postSigned(stack.edge.url, "hubspot", batch, stack.secrets.hubspot as string)
    const elapsed = Date.now() - started
    expect(refused.status).toBe(503)
    expect(Number(refused.headers.get("retry-after"))).toBeGreaterThan(0)
    expect(await refused.json()).toMatchObject({ error: "log_unavailable" })
    expect(elapsed).toBeLessThan(SENDER_TIMEOUT_MS)

    const health = await fetch(`${stack.edge.url}/healthz`)
    expect(health.status).toBe(503)

    await stack.nats.start()
    const admin = await connectAdmin(stack.nats)
    try {
      const jsm = await jetstreamManager(admin)
      const before = (await jsm.streams.info("INGEST_CRM")).state.messages

      const retried = await postSigned(stack.edge.url, "hubspot", batch, stack.secrets.hubspot as string)
      expect(retried.status).toBe(202)
      expect(await retried.json()).toMatchObject({ accepted: 10, duplicates: 0 })
      const again = await postSigned(stack.edge.url, "hubspot", batch, stack.secrets.hubspot as string)
      expect(await again.json()).toMatchObject({ accepted: 10, duplicates: 10 })
      expect((await jsm.streams.info("INGEST_CRM")).state.messages).toBe(before + 10)
    } finally {
      await admin.close()
    }
  })
})
