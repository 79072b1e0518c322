import type { JetStreamManager } from "@nats-io/jetstream"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { DOMAINS, LogHeaders, QUARANTINE_STREAM, streamFor } from "../contracts/log.ts"
import { alowareCall, erasureEvents, hubspotBatch, oeeEvents, postSigned, retailEvents } from "../infra/local/samples.ts"
import { signHubSpotV3 } from "../infra/local/sign.ts"
import { type EdgeStack, startEdgeStack } from "../infra/local/stack.ts"

let stack: EdgeStack

beforeAll(async () => {
  stack = await startEdgeStack()
})

afterAll(async () => {
  await stack?.dispose()
})

const messageCount = async (jsm: JetStreamManager, stream: string) => (await jsm.streams.info(stream)).state.messages

/** Messages in every stream the edge appends to, the quarantine included. */
const allCounts = async () =>
  Object.fromEntries(
    await Promise.all(
      [...DOMAINS.map(streamFor), QUARANTINE_STREAM].map(async (stream) => [stream, await messageCount(stack.jsm, stream)] as const)
    )
  )

const storedMessage = async (stream: string, seq: number) => {
  const message = await stack.jsm.streams.getMessage(stream, { seq })
  if (message === null) throw new Error(`no message ${seq} in ${stream}`)
  return message
}

describe("a signed HubSpot batch", () => {
  const batch = hubspotBatch(100, { firstEventId: 1 })
  const body = JSON.stringify(batch)

  it("gets 202 and leaves exactly its 100 events in the stream, with subjects and headers", async () => {
    const before = await messageCount(stack.jsm, "INGEST_CRM")
    const response = await postSigned(stack.edge.url, "hubspot", body, stack.secrets.hubspot as string, {
      headers: { traceparent: "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01" }
    })
    expect(response.status).toBe(202)
    const answer = (await response.json()) as {
      accepted: number
      duplicates: number
      trace_id: string
      events: Array<{ id: string; subject: string; seq: number }>
    }
    expect(answer).toMatchObject({ accepted: 100, duplicates: 0, quarantined: [], trace_id: "4bf92f3577b34da6a3ce929d0e0e4736" })
    expect(await messageCount(stack.jsm, "INGEST_CRM")).toBe(before + 100)

    for (const [index, event] of batch.entries()) {
      const receipt = answer.events[index]
      const key = `${event.portalId}:${event.subscriptionId}:${event.eventId}`
      expect(receipt).toMatchObject({
        id: `hubspot:${key}`,
        subject: `ingest.crm.hubspot.${event.subscriptionType.replace(".", "_").toLowerCase()}`
      })
      const stored = await storedMessage("INGEST_CRM", receipt?.seq as number)
      expect(stored.subject).toBe(receipt?.subject)
      expect(stored.json()).toEqual(event)
      expect(stored.header.get("Nats-Msg-Id")).toBe(`hubspot:${key}`)
      expect(stored.header.get(LogHeaders.source)).toBe("hubspot")
      expect(stored.header.get(LogHeaders.type)).toBe(event.subscriptionType)
      expect(stored.header.get(LogHeaders.schema)).toBe("hubspot/v1")
      expect(stored.header.get(LogHeaders.key)).toBe(key)
      expect(stored.header.get(LogHeaders.occurredAt)).toBe(new Date(event.occurredAt).toISOString())
      expect(stored.header.get(LogHeaders.traceId)).toBe("4bf92f3577b34da6a3ce929d0e0e4736")
      expect(Date.now() - Date.parse(stored.header.get(LogHeaders.receivedAt))).toBeLessThan(60_000)
    }
  })

  it("sent again, gets 202 with duplicates: 100 and leaves the stream unchanged", async () => {
    const before = await stack.jsm.streams.info("INGEST_CRM")
    const response = await postSigned(stack.edge.url, "hubspot", body, stack.secrets.hubspot as string)
    expect(response.status).toBe(202)
    expect(await response.json()).toMatchObject({ accepted: 100, duplicates: 100 })
    const after = await stack.jsm.streams.info("INGEST_CRM")
    expect(after.state.messages).toBe(before.state.messages)
    expect(after.state.last_seq).toBe(before.state.last_seq)
  })
})

describe("requests the edge refuses", () => {
  const hubspotUrl = () => `${stack.edge.url}/v1/hooks/hubspot`
  const body = JSON.stringify(hubspotBatch(2, { firstEventId: 5000 }))
  const signed = (payload: string, secret = stack.secrets.hubspot as string) => ({
    "content-type": "application/json",
    ...signHubSpotV3(secret, "POST", hubspotUrl(), payload, Date.now())
  })
  const post = (init: { body: string; headers: Record<string, string>; method?: string; path?: string }) =>
    fetch(init.path === undefined ? hubspotUrl() : `${stack.edge.url}${init.path}`, {
      method: init.method ?? "POST",
      body: init.body,
      headers: init.headers
    })

  const cases: ReadonlyArray<{ name: string; status: number; error: string; message: RegExp; request: () => Promise<Response> }> = [
    {
      name: "a tampered body",
      status: 401,
      error: "unauthorized",
      message: /X-HubSpot-Signature-v3 does not match/,
      request: () => post({ body: body.replace('"objectId":1000', '"objectId":1001'), headers: signed(body) })
    },
    {
      name: "a signature made with a wrong secret",
      status: 401,
      error: "unauthorized",
      message: /does not match/,
      request: () => post({ body, headers: signed(body, "not-the-secret") })
    },
    {
      name: "a missing signature",
      status: 401,
      error: "unauthorized",
      message: /missing X-HubSpot-Signature-v3 header/,
      request: () => post({ body, headers: { "content-type": "application/json" } })
    },
    {
      name: "a body over the 1 MiB limit",
      status: 413,
      error: "payload_too_large",
      message: /exceeds the limit of 1048576 bytes/,
      request: () => {
        const big = JSON.stringify(
          hubspotBatch(1, { firstEventId: 6000 }).map((event) => ({ ...event, propertyValue: "x".repeat(1024 * 1024) }))
        )
        return post({ body: big, headers: signed(big) })
      }
    },
    {
      name: "a chunked body over the limit that declares no Content-Length",
      status: 413,
      error: "payload_too_large",
      message: /exceeds the limit of 1048576 bytes/,
      request: () => {
        const chunk = new TextEncoder().encode("x".repeat(64 * 1024))
        let sent = 0
        const stream = new ReadableStream<Uint8Array>({
          pull: (controller) => {
            if (sent++ < 20) controller.enqueue(chunk)
            else controller.close()
          }
        })
        return fetch(hubspotUrl(), { method: "POST", body: stream, headers: signed("[]"), duplex: "half" } as RequestInit)
      }
    },
    {
      name: "a body that is not JSON",
      status: 400,
      error: "malformed_body",
      message: /not valid UTF-8 JSON/,
      request: () => post({ body: "[{not json", headers: signed("[{not json") })
    },
    {
      name: "a batch with an event that breaks the contract, from a source that refuses whole requests",
      status: 422,
      error: "contract_violation",
      message: /in 2 place\(s\)/,
      request: () => {
        const [good, bad] = erasureEvents(2, { firstId: 7000 })
        return postSigned(stack.edge.url, "erasure", [good, { ...bad, id: 7, timestamp: "yesterday" }], stack.secrets.erasure as string)
      }
    },
    {
      name: "a HubSpot body that is not a batch of events at all",
      status: 422,
      error: "contract_violation",
      message: /in 1 place\(s\)/,
      request: () => post({ body: '{"eventId":1}', headers: signed('{"eventId":1}') })
    },
    {
      name: "a 40 KB body nested 20,000 levels deep",
      status: 422,
      error: "contract_violation",
      message: /in 1 place\(s\)/,
      request: () => {
        const deep = `${"[".repeat(20_000)}${"]".repeat(20_000)}`
        return post({ body: deep, headers: signed(deep) })
      }
    },
    {
      name: "a batch whose events reuse a key with different content",
      status: 422,
      error: "contract_violation",
      message: /in 1 place\(s\)/,
      request: () => {
        const [a, b] = erasureEvents(2, { firstId: 8000 })
        return postSigned(stack.edge.url, "erasure", [a, { ...b, id: a?.id }], stack.secrets.erasure as string)
      }
    },
    {
      name: "a batch with an event id a log header cannot carry",
      status: 422,
      error: "contract_violation",
      message: /in 1 place\(s\)/,
      request: () => {
        const events = erasureEvents(5, { firstId: 8100 })
        return postSigned(
          stack.edge.url,
          "erasure",
          events.map((event, i) => (i === 3 ? { ...event, id: "era_bad\nid" } : event)),
          stack.secrets.erasure as string
        )
      }
    },
    {
      name: "an unknown source",
      status: 404,
      error: "unknown_source",
      message: /no webhook source named "nosuch"/,
      request: () => post({ path: "/v1/hooks/nosuch", body, headers: signed(body) })
    },
    {
      name: "a GET on a hook",
      status: 405,
      error: "method_not_allowed",
      message: /delivered with POST/,
      request: () => fetch(hubspotUrl())
    },
    {
      name: "a body that is not declared as JSON",
      status: 415,
      error: "unsupported_media_type",
      message: /must be application\/json, got "text\/plain"/,
      request: () => post({ body, headers: { ...signed(body), "content-type": "text/plain" } })
    }
  ]

  for (const rejection of cases) {
    it(`answers ${rejection.status} to ${rejection.name}, says why, and appends nothing`, async () => {
      const before = await allCounts()
      const response = await rejection.request()
      expect(response.status).toBe(rejection.status)
      expect(response.headers.get("retry-after")).toBeNull()
      const answer = (await response.json()) as { error: string; message: string }
      expect(answer.error).toBe(rejection.error)
      expect(answer.message).toMatch(rejection.message)
      expect(await allCounts()).toEqual(before)
    })
  }

  it("lists each contract issue with its path", async () => {
    const [good, bad] = erasureEvents(2, { firstId: 7100 })
    const response = await postSigned(
      stack.edge.url,
      "erasure",
      [good, { ...bad, id: 7, timestamp: "yesterday" }],
      stack.secrets.erasure as string
    )
    expect(await response.json()).toMatchObject({
      issues: [
        { path: "$[1].id", message: "Expected string, got 7" },
        {
          path: "$[1].timestamp",
          message: 'Expected an ISO 8601 date-time with a time zone in years 0001 to 9999 (UTC), e.g. 2025-01-15T10:32:00Z, got "yesterday"'
        }
      ]
    })
  })
})

describe("every default source", () => {
  const samples: ReadonlyArray<{ source: string; payload: unknown; stream: string; subjects: ReadonlyArray<string> }> = [
    { source: "aloware", payload: alowareCall(31337), stream: "INGEST_CRM", subjects: ["ingest.crm.aloware.call_disposed"] },
    {
      source: "erasure",
      payload: erasureEvents(4, { firstId: 900 }),
      stream: "INGEST_WAREHOUSE",
      subjects: [
        "ingest.warehouse.erasure.erasure_success",
        "ingest.warehouse.erasure.erasure_success",
        "ingest.warehouse.erasure.erasure_failure",
        "ingest.warehouse.erasure.erasure_connected"
      ]
    },
    {
      source: "oee",
      payload: oeeEvents(),
      stream: "INGEST_OEE",
      subjects: ["ingest.oee.oee.machine_upserted", "ingest.oee.oee.snapshot_recorded", "ingest.oee.oee.downtime_recorded"]
    },
    {
      source: "pos",
      payload: retailEvents(),
      stream: "INGEST_RETAIL",
      subjects: ["ingest.retail.pos.sale_completed", "ingest.retail.pos.inventory_updated", "ingest.retail.pos.traffic_counted"]
    }
  ]

  for (const sample of samples) {
    it(`${sample.source}: signed sample traffic lands in ${sample.stream}`, async () => {
      const before = await messageCount(stack.jsm, sample.stream)
      const response = await postSigned(stack.edge.url, sample.source, sample.payload, stack.secrets[sample.source] as string)
      expect(response.status).toBe(202)
      const answer = (await response.json()) as { events: Array<{ subject: string; seq: number }> }
      expect(answer.events.map((event) => event.subject)).toEqual(sample.subjects)
      expect(await messageCount(stack.jsm, sample.stream)).toBe(before + sample.subjects.length)
    })
  }

  it("answers /healthz with the log's round trip", async () => {
    const response = await fetch(`${stack.edge.url}/healthz`)
    expect(response.status).toBe(200)
    expect(await response.json()).toMatchObject({
      status: "ok",
      log: { connected: true, server_version: expect.stringMatching(/^\d+\.\d+\.\d+/) }
    })
  })
})
