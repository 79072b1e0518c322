import { headers as natsHeaders } from "@nats-io/nats-core"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { toUtcIso } from "../contracts/primitives.ts"
import { contracts } from "../contracts/sources.ts"
import { startEdge } from "../infra/local/edge.ts"
import { erasureEvents, postSigned } from "../infra/local/samples.ts"
import { type EdgeStack, generateSecrets, startEdgeStack } from "../infra/local/stack.ts"
import { toLogMessages } from "./log-message.ts"

let stack: EdgeStack

beforeAll(async () => {
  // One publisher shard, so every request shares one Durable Object and its one NATS connection.
  stack = await startEdgeStack({
    secrets: { ...generateSecrets(), "erasure-q": generateSecrets().erasure as string },
    settings: {
      PUBLISHER_SHARDS: "1",
      SOURCES: JSON.stringify({ "erasure-q": { contract: "warehouse", scheme: "standard-webhooks", onInvalid: "quarantine" } })
    }
  })
})

afterAll(async () => {
  await stack?.dispose()
})

const monitor = async <T>(path: string): Promise<T> => (await (await fetch(`${stack.nats.monitorUrl}${path}`)).json()) as T
const edgeConnections = async () =>
  (await monitor<{ connections: Array<{ cid: number; name?: string }> }>("/connz")).connections
    .filter((connection) => connection.name === "ingest-edge")
    .map((connection) => connection.cid)

/** An erasure event padded with `size` characters in a field the contract does not model. */
const padded = (size: number) => ({
  id: "era_big",
  type: "erasure.success",
  timestamp: "2025-01-15T10:00:00Z",
  data: { device_type: "servers", initials: "JD", job_id: "JOB-BIG", note: "x".repeat(size) }
})

/** The bytes JetStream counts against max_payload for the edge's message of `payload`: headers as the edge sets them, and the data. */
const messageBytes = (payload: ReturnType<typeof padded>): number => {
  const [message] = toLogMessages(
    "erasure",
    contracts.warehouse,
    [{ index: 0, event: { key: payload.id, type: payload.type, occurredAt: toUtcIso(payload.timestamp), payload } }],
    { receivedAt: new Date().toISOString(), traceId: "0".repeat(32) }
  )
  if (message === undefined) throw new Error("no message")
  const headers = natsHeaders()
  for (const [name, value] of Object.entries(message.headers)) headers.set(name, value)
  headers.set("Nats-Msg-Id", message.msgId)
  headers.set("Nats-Expected-Stream", message.stream)
  return new TextEncoder().encode(String(headers)).byteLength + new TextEncoder().encode(message.data).byteLength
}

describe("an event near the log's max_payload", () => {
  it("is appended when its message is exactly max_payload, and one byte more is 413 naming the event, the connection kept", async () => {
    const { max_payload: limit } = await monitor<{ max_payload: number }>("/varz")
    const warmUp = await postSigned(stack.edge.url, "erasure", erasureEvents(1, { firstId: 60_000 }), stack.secrets.erasure as string)
    expect(warmUp.status).toBe(202)
    const connections = await edgeConnections()
    expect(connections).toHaveLength(1)

    const fits = limit - messageBytes(padded(0))
    expect(messageBytes(padded(fits))).toBe(limit)
    const over = await postSigned(stack.edge.url, "erasure", padded(fits + 1), stack.secrets.erasure as string)
    expect(over.status).toBe(413)
    expect(over.headers.get("retry-after")).toBeNull()
    expect(await over.json()).toEqual({
      error: "event_too_large",
      message: `event $[0] is ${limit + 1} bytes with the log's headers, more than the ${limit} bytes the log takes per event; nothing was appended: send it smaller`
    })
    expect(await edgeConnections()).toEqual(connections)

    const exact = await postSigned(stack.edge.url, "erasure", padded(fits), stack.secrets.erasure as string)
    expect(exact.status).toBe(202)
    expect(await edgeConnections()).toEqual(connections)
  })

  it("in a batch, names the event that is too large and appends none of them", async () => {
    const { max_payload: limit } = await monitor<{ max_payload: number }>("/varz")
    const before = (await stack.jsm.streams.info("INGEST_WAREHOUSE")).state.messages
    const small = (id: string) => ({ id, type: "intake.booked_in", timestamp: "2025-01-15T10:00:00Z", data: { count: 1 } })
    const events = [small("in_1"), small("in_2"), padded(limit - messageBytes(padded(0)) + 1)]
    const response = await postSigned(stack.edge.url, "erasure-q", events, stack.secrets["erasure-q"] as string)
    expect(response.status).toBe(413)
    expect(((await response.json()) as { message: string }).message).toMatch(/^event \$\[2\] is \d+ bytes/)
    expect((await stack.jsm.streams.info("INGEST_WAREHOUSE")).state.messages).toBe(before)
  })
})

describe("ids that only differ in how a lone surrogate is written", () => {
  const ids = ["s\ud800x", "s\udc01x", "s\ufffdx"]

  it("are refused by a source that refuses whole requests, each named", async () => {
    const events = erasureEvents(3, { firstId: 62_000 }).map((event, i) => ({ ...event, id: ids[i] as string }))
    const response = await postSigned(stack.edge.url, "erasure", JSON.stringify(events), stack.secrets.erasure as string)
    expect(response.status).toBe(422)
    expect(((await response.json()) as { issues: Array<{ path: string }> }).issues.map((issue) => issue.path)).toEqual([
      "$[0].id",
      "$[1].id"
    ])
  })

  it("are quarantined by a source that quarantines, and never collapse into the one well-formed key", async () => {
    const events = erasureEvents(3, { firstId: 62_100 }).map((event, i) => ({ ...event, id: ids[i] as string }))
    const response = await postSigned(stack.edge.url, "erasure-q", JSON.stringify(events), stack.secrets["erasure-q"] as string)
    expect(response.status).toBe(202)
    const answer = (await response.json()) as {
      accepted: number
      quarantined: Array<{ index: number; key?: string }>
      events: Array<{ id: string }>
    }
    expect(answer.quarantined.map((entry) => [entry.index, entry.key])).toEqual([
      [0, undefined],
      [1, undefined]
    ])
    expect(answer.events.map((event) => event.id)).toEqual(["erasure-q:s\ufffdx"])
  })
})

describe("an edge with a wrong setting", () => {
  it("answers 503 with Retry-After and no word of its internals, which it logs instead", async () => {
    const broken = await startEdge({
      natsWsUrl: "nats://10.0.0.7:4222",
      natsPassword: "x",
      secrets: { erasure: [stack.secrets.erasure as string] }
    })
    try {
      const response = await postSigned(broken.url, "erasure", erasureEvents(1), stack.secrets.erasure as string)
      expect(response.status).toBe(503)
      expect(Number(response.headers.get("retry-after"))).toBeGreaterThan(0)
      const text = await response.text()
      expect(JSON.parse(text)).toEqual({
        error: "edge_misconfigured",
        message: "the edge is misconfigured; its operator has been told, retry later"
      })
      expect(text).not.toMatch(/10\.0\.0\.7|NATS_WS_URL/)
      const health = await fetch(`${broken.url}/healthz`)
      expect(health.status).toBe(503)
      expect(await health.text()).not.toMatch(/10\.0\.0\.7/)
    } finally {
      await broken.dispose()
    }
  })
})
