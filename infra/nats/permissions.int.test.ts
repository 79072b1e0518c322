import { AckPolicy, jetstream, jetstreamManager } from "@nats-io/jetstream"
import type { NatsConnection } from "@nats-io/nats-core"
import { connect } from "@nats-io/transport-node"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { EDGE_INBOX_PREFIX } from "../../contracts/log.ts"
import { connectProjector } from "../local/projector.ts"
import { connectAdmin } from "../local/stack.ts"
import { applyStreams } from "../streams.ts"
import { type NatsServer, startNatsServer } from "./server.ts"

let nats: NatsServer
let admin: NatsConnection
let edge: NatsConnection

beforeAll(async () => {
  nats = await startNatsServer()
  admin = await connectAdmin(nats)
  await applyStreams(await jetstreamManager(admin))
  edge = await connect({ servers: nats.url, user: nats.edge.user, pass: nats.edge.password, inboxPrefix: EDGE_INBOX_PREFIX })
})

afterAll(async () => {
  await edge?.close()
  await admin?.close()
  await nats?.dispose()
})

describe("the edge user on the real nats-server", () => {
  it("may append to ingest.> and read its PubAck", async () => {
    const ack = await jetstream(edge).publish("ingest.crm.hubspot.contact_creation", "{}", { msgID: "permissions-test-1" })
    expect(ack.stream).toBe("INGEST_CRM")
  })

  it("cannot subscribe to ingest.>", async () => {
    const sub = edge.subscribe("ingest.>")
    const closed = await sub.closed
    expect(String(closed)).toMatch(/Permissions Violation for Subscription to "ingest.>"/)
  })

  it("cannot call the JetStream API, so cannot create or read streams", async () => {
    await expect(jetstreamManager(edge, { timeout: 2000 })).rejects.toThrow(/Permissions Violation for Publish to "\$JS.API.INFO"/)
    const streams = await edge
      .request("$JS.API.STREAM.CREATE.EVIL", JSON.stringify({ name: "EVIL", subjects: ["evil.>"] }), { timeout: 2000 })
      .then(
        () => "created",
        (error: Error) => error.message
      )
    expect(streams).toMatch(/Permissions Violation for Publish to "\$JS.API.STREAM.CREATE.EVIL"/)
    const names = await (await jetstreamManager(admin)).streams.names().next()
    expect(names).not.toContain("EVIL")
  })

  it("cannot publish outside ingest.>", async () => {
    await expect(jetstream(edge, { timeout: 2000 }).publish("derived.retail.restock", "{}")).rejects.toThrow(
      /Permissions Violation for Publish to "derived.retail.restock"/
    )
  })
})

describe("the projector user on the real nats-server", () => {
  it("reads through a durable consumer with its own inbox prefix, and cannot subscribe to the admin's inboxes", async () => {
    const projector = await connectProjector(nats)
    try {
      const js = jetstream(projector)
      const jsm = await jetstreamManager(projector)
      await jsm.consumers.add("INGEST_CRM", {
        durable_name: "permissions-projector",
        ack_policy: AckPolicy.Explicit,
        filter_subject: "ingest.crm.>"
      })
      const messages = await (await js.consumers.get("INGEST_CRM", "permissions-projector")).fetch({ max_messages: 1, expires: 1000 })
      let read = 0
      for await (const message of messages) {
        message.ack()
        read++
      }
      expect(read).toBe(1)
      const sub = projector.subscribe("_INBOX.>")
      expect(String(await sub.closed)).toMatch(/Permissions Violation for Subscription to "_INBOX.>"/)
    } finally {
      await projector.close()
    }
  })
})
