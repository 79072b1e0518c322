import { jetstreamManager } from "@nats-io/jetstream"
import { millis, type NatsConnection } from "@nats-io/nats-core"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { connectAdmin } from "./local/stack.ts"
import { type NatsServer, startNatsServer } from "./nats/server.ts"
import { applyStreams, streamDeclarations } from "./streams.ts"

let nats: NatsServer
let admin: NatsConnection

beforeAll(async () => {
  nats = await startNatsServer()
  admin = await connectAdmin(nats)
})

afterAll(async () => {
  await admin?.close()
  await nats?.dispose()
})

describe("applying the stream declarations", () => {
  it("creates one stream per domain and one for derived events, then changes nothing when applied again", async () => {
    const jsm = await jetstreamManager(admin)
    const settings = { duplicateWindowMs: 5 * 60_000, replicas: 1 }
    expect(await applyStreams(jsm, streamDeclarations(settings))).toEqual([
      { name: "INGEST_CRM", action: "created" },
      { name: "INGEST_WAREHOUSE", action: "created" },
      { name: "INGEST_OEE", action: "created" },
      { name: "INGEST_RETAIL", action: "created" },
      { name: "DERIVED", action: "created" }
    ])
    expect((await applyStreams(jsm, streamDeclarations(settings))).map((change) => change.action)).toEqual(["unchanged", "unchanged", "unchanged", "unchanged", "unchanged"])
    const crm = await jsm.streams.info("INGEST_CRM")
    expect(crm.config.subjects).toEqual(["ingest.crm.>"])
    expect(millis(crm.config.duplicate_window)).toBe(5 * 60_000)
  })

  it("updates the duplicate window in place, keeping the stored events", async () => {
    const jsm = await jetstreamManager(admin)
    await admin.publish("ingest.oee.oee.snapshot_recorded", "{}")
    await admin.flush()
    const before = (await jsm.streams.info("INGEST_OEE")).state.messages
    const changes = await applyStreams(jsm, streamDeclarations({ duplicateWindowMs: 20 * 60_000, replicas: 1 }))
    expect(changes.map((change) => change.action)).toEqual(["updated", "updated", "updated", "updated", "updated"])
    const oee = await jsm.streams.info("INGEST_OEE")
    expect(millis(oee.config.duplicate_window)).toBe(20 * 60_000)
    expect(oee.state.messages).toBe(before)
  })
})
