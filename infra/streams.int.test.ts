import { jetstream, jetstreamManager } from "@nats-io/jetstream"
import { millis, type NatsConnection } from "@nats-io/nats-core"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { connectAdmin } from "./local/stack.ts"
import { type NatsServer, startNatsServer } from "./nats/server.ts"
import { applyStreams, type StreamDeclaration, streamDeclarations } from "./streams.ts"

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
  it("creates one stream per domain, one for derived events and the quarantine, then changes nothing when applied again", async () => {
    const jsm = await jetstreamManager(admin)
    const settings = { duplicateWindowMs: 5 * 60_000, replicas: 1 }
    expect(await applyStreams(jsm, streamDeclarations(settings))).toEqual([
      { name: "INGEST_CRM", action: "created" },
      { name: "INGEST_WAREHOUSE", action: "created" },
      { name: "INGEST_OEE", action: "created" },
      { name: "INGEST_RETAIL", action: "created" },
      { name: "INGEST_REPORTS", action: "created" },
      { name: "DERIVED", action: "created" },
      { name: "QUARANTINE", action: "created" },
      { name: "REPORT_EXPORTS", action: "created" }
    ])
    expect((await applyStreams(jsm, streamDeclarations(settings))).map((change) => change.action)).toEqual(Array(8).fill("unchanged"))
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
    expect(changes.map((change) => change.action)).toEqual(Array(8).fill("updated"))
    const oee = await jsm.streams.info("INGEST_OEE")
    expect(millis(oee.config.duplicate_window)).toBe(20 * 60_000)
    expect(oee.state.messages).toBe(before)
  })

  it("keeps every event: no message can be deleted and no stream purged, not even by the admin", async () => {
    const jsm = await jetstreamManager(admin)
    const ack = await jetstream(admin).publish("ingest.warehouse.erasure.erasure_success", "{}", { msgID: "keep-me" })
    await expect(jsm.streams.deleteMessage("INGEST_WAREHOUSE", ack.seq)).rejects.toThrow(/delete/i)
    await expect(jsm.streams.purge("INGEST_WAREHOUSE")).rejects.toThrow(/purge/i)
    for (const name of ["INGEST_CRM", "INGEST_WAREHOUSE", "INGEST_OEE", "INGEST_RETAIL", "INGEST_REPORTS", "DERIVED", "QUARANTINE"]) {
      expect((await jsm.streams.info(name)).config).toMatchObject({ deny_delete: true, deny_purge: true, max_age: 0 })
    }
    // Not the log: the export jobs' work queue, whose messages leave once a worker acknowledges them.
    expect((await jsm.streams.info("REPORT_EXPORTS")).config).toMatchObject({ retention: "workqueue", deny_purge: false })
    expect((await jsm.streams.getMessage("INGEST_WAREHOUSE", { seq: ack.seq }))?.seq).toBe(ack.seq)
  })

  it("turns an older deployment's streams, which allowed deletes, into ones that do not, keeping their events", async () => {
    const jsm = await jetstreamManager(admin)
    const derived = streamDeclarations().find((declaration) => declaration.name === "DERIVED") as StreamDeclaration
    await jsm.streams.delete("DERIVED").catch(() => undefined)
    await jsm.streams.add({ ...derived, name: "DERIVED", deny_delete: false, deny_purge: false })
    await jetstream(admin).publish("derived.retail.restock", "{}")
    expect(await applyStreams(jsm)).toContainEqual({ name: "DERIVED", action: "updated" })
    const info = await jsm.streams.info("DERIVED")
    expect(info.config).toMatchObject({ deny_delete: true, deny_purge: true })
    expect(info.state.messages).toBe(1)
  })
})
