import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { QUARANTINE_STREAM } from "../contracts/log.ts"
import { freePort } from "../infra/ports.ts"
import { alowareCall, postSigned } from "../infra/local/samples.ts"
import { type EdgeStack, startEdgeStack } from "../infra/local/stack.ts"

/**
 * Regional shards on one machine: two regions whose leaves are, here, the same nats-server (its
 * streams take `ingest.<domain>.>`, so the regional subjects land in the same streams). What is
 * checked is the Worker's part: the route from `request.cf` to a region, the region's subjects and
 * shards, and `/healthz` per region.
 */

let stack: EdgeStack

beforeAll(async () => {
  const wsPort = await freePort("127.0.0.1")
  const url = `ws://127.0.0.1:${wsPort}`
  stack = await startEdgeStack({
    nats: { wsPort },
    settings: {
      REGIONS: JSON.stringify({ eu: { url, shards: 2, locationHint: "weur" }, us: { url, shards: 1, locationHint: "enam" } }),
      REGION_ROUTES: JSON.stringify({ "continent:EU": "eu", "colo:LHR": "us" }),
      DEFAULT_REGION: "us"
    }
  })
})

afterAll(async () => {
  await stack?.dispose()
})

/** A request as it arrives from a Cloudflare data centre: Miniflare takes `request.cf` from this header. */
const from = (cf: Record<string, string>) => ({ headers: { "MF-CF-Blob": JSON.stringify(cf) } })

const post = async (payload: unknown, cf?: Record<string, string>) => {
  const response = await postSigned(stack.edge.url, "aloware", payload, stack.secrets.aloware as string, cf === undefined ? {} : from(cf))
  expect(response.status).toBe(202)
  return (await response.json()) as {
    events: Array<{ subject: string; seq: number }>
    quarantined: Array<{ id: number }>
  }
}

describe("regional edge shards", () => {
  it("publish a request to its continent's region, with the region as the subject's last token", async () => {
    const answer = await post(alowareCall(1), { colo: "FRA", country: "DE", continent: "EU" })
    expect(answer.events[0]?.subject).toBe("ingest.crm.aloware.call_disposed.eu")
    const stored = await stack.jsm.streams.getMessage("INGEST_CRM", { seq: answer.events[0]?.seq as number })
    expect(stored?.subject).toBe("ingest.crm.aloware.call_disposed.eu")
  })

  it("let a colo's route win over its continent's, and send a request no route names to the default region", async () => {
    expect((await post(alowareCall(2), { colo: "LHR", country: "GB", continent: "EU" })).events[0]?.subject).toBe(
      "ingest.crm.aloware.call_disposed.us"
    )
    expect((await post(alowareCall(3), { colo: "NRT", country: "JP", continent: "AS" })).events[0]?.subject).toBe(
      "ingest.crm.aloware.call_disposed.us"
    )
    expect((await post(alowareCall(4))).events[0]?.subject).toBe("ingest.crm.aloware.call_disposed.us")
  })

  it("quarantine on the region's quarantine subject", async () => {
    const invalid = { ...alowareCall(5), data: { ...alowareCall(5).data, id: undefined } }
    const answer = await post(invalid, { colo: "FRA", continent: "EU" })
    const stored = await stack.jsm.streams.getMessage(QUARANTINE_STREAM, { seq: answer.quarantined[0]?.id as number })
    expect(stored?.subject).toBe("ingest.quarantine.aloware.eu")
  })

  it("report every region and each of its shards on /healthz", async () => {
    const response = await fetch(`${stack.edge.url}/healthz`)
    expect(response.status).toBe(200)
    const body = (await response.json()) as { status: string; regions: Record<string, { connected: boolean; shards: object }> }
    expect(body.status).toBe("ok")
    expect(Object.keys(body.regions).sort()).toEqual(["eu", "us"])
    expect(body.regions.eu).toMatchObject({ connected: true, rtt_ms: expect.any(Number) })
    expect(Object.keys(body.regions.eu?.shards ?? {})).toEqual(["eu-publisher-0", "eu-publisher-1"])
    expect(body.regions.us).toMatchObject({ default: true, shards: { "us-publisher-0": { connected: true, spool: { depth: 0 } } } })
  })
})
