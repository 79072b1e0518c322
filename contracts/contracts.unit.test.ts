import { Effect } from "effect"
import { describe, expect, it } from "vitest"
import { alowareCall, erasureEvents, hubspotBatch, oeeEvents, retailEvents } from "../infra/local/samples.ts"
import { type Contract, type ContractViolation, requireDistinctKeys } from "./contract.ts"
import { subjectFor } from "./log.ts"
import { contracts } from "./sources.ts"

/** Bodies reach contracts as parsed JSON, so the tests send them through JSON too. */
const split = (contract: Contract, body: unknown) => Effect.runPromise(Effect.result(contract.split(JSON.parse(JSON.stringify(body)))))

const issuesOf = async (contract: Contract, body: unknown): Promise<ContractViolation["issues"]> => {
  const result = await split(contract, body)
  if (result._tag === "Success") throw new Error("expected a contract violation")
  return result.failure.issues
}

describe("HubSpot contract", () => {
  it("splits a batch into one event per element, keyed portalId:subscriptionId:eventId, timed by occurredAt", async () => {
    const result = await split(contracts.hubspot, hubspotBatch(3, { firstEventId: 10 }))
    expect(result._tag).toBe("Success")
    if (result._tag !== "Success") return
    expect(result.success.map((event) => [event.key, event.type, event.occurredAt])).toEqual([
      ["62515:4242:10", "contact.creation", "2025-01-16T04:00:00.000Z"],
      ["62515:4242:11", "deal.creation", "2025-01-16T04:00:01.000Z"],
      ["62515:4242:12", "ticket.creation", "2025-01-16T04:00:02.000Z"]
    ])
  })

  it("keeps fields it does not model in the logged payload", async () => {
    const [event] = hubspotBatch(1)
    const result = await split(contracts.hubspot, [{ ...event, futureField: { nested: true } }])
    expect(result._tag === "Success" && result.success[0]?.payload).toMatchObject({ futureField: { nested: true } })
  })

  it("reports every broken field with its path and the value received", async () => {
    const [good] = hubspotBatch(2)
    const issues = await issuesOf(contracts.hubspot, [good, { ...good, eventId: "7", portalId: -1, occurredAt: undefined }])
    expect(issues).toEqual([
      { path: "$[1].eventId", message: 'Expected number, got "7"' },
      { path: "$[1].portalId", message: "Expected a value greater than or equal to 0, got -1" },
      { path: "$[1].occurredAt", message: "Missing key" }
    ])
  })

  it("refuses a single object: HubSpot always sends an array", async () => {
    expect(await issuesOf(contracts.hubspot, hubspotBatch(1)[0])).toEqual([{ path: "$", message: "Expected a JSON array of HubSpot events, got object" }])
  })

  it("refuses an empty batch and a batch of more than 1000 events", async () => {
    expect(await issuesOf(contracts.hubspot, [])).toEqual([{ path: "$", message: "Expected at least one event, got an empty array" }])
    expect((await issuesOf(contracts.hubspot, hubspotBatch(1001)))[0]?.message).toMatch(/at most 1000 events per request, got 1001/)
  })
})

describe("own-sender envelope contracts (warehouse, oee, retail)", () => {
  it("accepts a single event and a batch, keyed by the sender's event id", async () => {
    const [first] = erasureEvents(1)
    const single = await split(contracts.warehouse, first)
    expect(single._tag === "Success" && single.success.map((event) => event.key)).toEqual(["era_1"])
    const batch = await split(contracts.warehouse, erasureEvents(4))
    expect(batch._tag === "Success" && batch.success.map((event) => event.type)).toEqual(["erasure.success", "erasure.success", "erasure.failure", "erasure.connected"])
  })

  it("accepts the OEE and retail samples", async () => {
    expect((await split(contracts.oee, oeeEvents()))._tag).toBe("Success")
    expect((await split(contracts.retail, retailEvents()))._tag).toBe("Success")
  })

  it("names an unknown event type and lists the known ones", async () => {
    const issues = await issuesOf(contracts.warehouse, { id: "x", type: "erasure.maybe", timestamp: "2025-01-15T10:00:00Z", data: {} })
    expect(issues).toEqual([
      { path: "$.type", message: 'Unknown event type "erasure.maybe"; expected one of erasure.success, erasure.failure, erasure.connected, intake.booked_in, qa.completed' }
    ])
  })

  it("checks data against its type, with paths into the batch", async () => {
    const events = erasureEvents(3)
    const broken = [events[0], { ...events[2], data: { ...events[2]?.data, error_type: undefined, initials: "J1" } }, { ...events[1], timestamp: "yesterday" }]
    expect(await issuesOf(contracts.warehouse, broken)).toEqual([
      { path: "$[1].data.initials", message: 'Expected engineer initials, 1 to 8 letters, e.g. JD, got "J1"' },
      { path: "$[1].data.error_type", message: "Missing key" },
      { path: "$[2].timestamp", message: 'Expected an ISO 8601 date-time with a time zone, e.g. 2025-01-15T10:32:00Z, got "yesterday"' }
    ])
  })

  it("bounds percentages in OEE snapshots", async () => {
    const [, snapshot] = oeeEvents()
    const issues = await issuesOf(contracts.oee, { ...snapshot, data: { ...(snapshot?.data as object), oee_pct: 140 } })
    expect(issues).toEqual([{ path: "$.data.oee_pct", message: "Expected a value less than or equal to 100, got 140" }])
  })
})

describe("Aloware contract", () => {
  it("keys a call by event name, communication id and time, and reads Aloware's UTC time format", async () => {
    const result = await split(contracts.aloware, alowareCall(555))
    expect(result._tag === "Success" && result.success.map((event) => [event.key, event.type, event.occurredAt])).toEqual([
      ["Call%20Disposed:555:2025-01-15T10%3A32%3A00.000Z", "Call Disposed", "2025-01-15T10:32:00.000Z"]
    ])
  })

  it("reports a missing communication id", async () => {
    const call = alowareCall(1)
    const { id: _id, ...data } = call.data
    expect(await issuesOf(contracts.aloware, { ...call, data })).toEqual([{ path: "$.data.id", message: "Missing key" }])
  })
})

describe("log subjects", () => {
  it("turn sender type names into single subject tokens", () => {
    expect(subjectFor("crm", "hubspot", "contact.propertyChange")).toBe("ingest.crm.hubspot.contact_propertychange")
    expect(subjectFor("crm", "aloware", "Call Disposed")).toBe("ingest.crm.aloware.call_disposed")
    expect(subjectFor("warehouse", "erasure", "erasure.success")).toBe("ingest.warehouse.erasure.erasure_success")
  })
})

describe("natural keys", () => {
  it("refuse ids with control characters or surrounding spaces, which NATS headers cannot carry", async () => {
    const [event] = erasureEvents(1)
    expect(await issuesOf(contracts.warehouse, { ...event, id: "era_bad\nid" })).toEqual([
      { path: "$.id", message: 'Expected 1 to 200 characters without control characters or surrounding spaces, got "era_bad\\nid"' }
    ])
    expect((await issuesOf(contracts.warehouse, { ...event, id: "era_500 " }))[0]?.path).toBe("$.id")
  })

  it("refuse a HubSpot occurredAt beyond year 9999 instead of failing on our side", async () => {
    const [event] = hubspotBatch(1)
    expect(await issuesOf(contracts.hubspot, [{ ...event, occurredAt: 9_000_000_000_000_000 }])).toEqual([
      { path: "$[0].occurredAt", message: "Expected a value less than or equal to 253402300799999, got 9000000000000000" }
    ])
  })

  it("tell an Aloware resend from a later change of the same call", async () => {
    const keyOf = async (body: unknown) => {
      const result = await split(contracts.aloware, body)
      return result._tag === "Success" ? result.success[0]?.key : undefined
    }
    const call = alowareCall(555)
    expect(await keyOf(call)).toBe("Call%20Disposed:555:2025-01-15T10%3A32%3A00.000Z")
    expect(await keyOf(call)).toBe(await keyOf(JSON.parse(JSON.stringify(call))))
    expect(await keyOf({ ...call, data: { ...call.data, updated_at: "2025-01-15 11:00:00" } })).toBe("Call%20Disposed:555:2025-01-15T11%3A00%3A00.000Z")
  })

  it("refuse two events of one request that share a key with different content, and allow exact repeats", async () => {
    const [a, b] = erasureEvents(2)
    const distinct = (body: ReadonlyArray<unknown>) =>
      Effect.runPromise(Effect.result(Effect.flatMap(contracts.warehouse.split(body), (events) => requireDistinctKeys(events, true))))
    const conflict = await distinct([a, { ...b, id: a?.id }])
    expect(conflict._tag === "Failure" && conflict.failure.issues).toEqual([
      { path: "$[1]", message: 'Event key "era_1" was already used by $[0] with different content; give each event its own id' }
    ])
    const repeat = await distinct([a, a])
    expect(repeat._tag === "Success" && repeat.success.length).toBe(2)
  })
})
