import { Effect } from "effect"
import fc from "fast-check"
import { describe, expect, it } from "vitest"
import { alowareCall, erasureEvents, hubspotBatch, oeeEvents, retailEvents } from "../infra/local/samples.ts"
import { type Contract, type ContractViolation, issuesOfSplit, validEvents } from "./contract.ts"
import { messageIdFor, subjectFor } from "./log.ts"
import { contracts } from "./sources.ts"

/** Bodies reach contracts as parsed JSON, so the tests send them through JSON too. */
const splitBody = (contract: Contract, body: unknown) => Effect.runPromise(Effect.result(contract.split(JSON.parse(JSON.stringify(body)))))

/** The valid events of a body, or the whole-body violation. */
const split = async (contract: Contract, body: unknown) => {
  const result = await splitBody(contract, body)
  return result._tag === "Success" ? { _tag: "Success" as const, success: validEvents(result.success).map(({ event }) => event) } : result
}

/** Every issue the contract finds in a body: the whole-body violation, or each invalid event's. */
const issuesOf = async (contract: Contract, body: unknown): Promise<ContractViolation["issues"]> => {
  const result = await splitBody(contract, body)
  const issues = result._tag === "Failure" ? result.failure.issues : issuesOfSplit(result.success)
  if (issues.length === 0) throw new Error("expected issues")
  return issues
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
    expect(await issuesOf(contracts.hubspot, hubspotBatch(1)[0])).toEqual([
      { path: "$", message: "Expected a JSON array of HubSpot events, got object" }
    ])
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
    expect(batch._tag === "Success" && batch.success.map((event) => event.type)).toEqual([
      "erasure.success",
      "erasure.success",
      "erasure.failure",
      "erasure.connected"
    ])
  })

  it("accepts the OEE and retail samples", async () => {
    expect((await split(contracts.oee, oeeEvents()))._tag).toBe("Success")
    expect((await split(contracts.retail, retailEvents()))._tag).toBe("Success")
  })

  it("names an unknown event type and lists the known ones", async () => {
    const issues = await issuesOf(contracts.warehouse, { id: "x", type: "erasure.maybe", timestamp: "2025-01-15T10:00:00Z", data: {} })
    expect(issues).toEqual([
      {
        path: "$.type",
        message:
          'Unknown event type "erasure.maybe"; expected one of erasure.success, erasure.failure, erasure.connected, intake.booked_in, qa.completed'
      }
    ])
  })

  it("takes a type named like an Object method (toString, __proto__, constructor) for unknown, not for a schema", async () => {
    for (const type of ["toString", "__proto__", "constructor", "hasOwnProperty"]) {
      const issues = await issuesOf(contracts.warehouse, { id: "x", type, timestamp: "2025-01-15T10:00:00Z", data: {} })
      expect(issues, type).toEqual([{ path: "$.type", message: expect.stringMatching(new RegExp(`^Unknown event type "${type}"`)) }])
    }
  })

  it("checks data against its type, with paths into the batch", async () => {
    const events = erasureEvents(3)
    const broken = [
      events[0],
      { ...events[2], data: { ...events[2]?.data, error_type: undefined, initials: "J1" } },
      { ...events[1], timestamp: "yesterday" }
    ]
    expect(await issuesOf(contracts.warehouse, broken)).toEqual([
      { path: "$[1].data.initials", message: 'Expected engineer initials, 1 to 8 letters, e.g. JD, got "J1"' },
      { path: "$[1].data.error_type", message: "Missing key" },
      {
        path: "$[2].timestamp",
        message: 'Expected an ISO 8601 date-time with a time zone in years 0001 to 9999 (UTC), e.g. 2025-01-15T10:32:00Z, got "yesterday"'
      }
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
      {
        path: "$.id",
        message: 'Expected 1 to 200 characters of well-formed Unicode without control characters or surrounding spaces, got "era_bad\\nid"'
      }
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
    expect(await keyOf({ ...call, data: { ...call.data, updated_at: "2025-01-15 11:00:00" } })).toBe(
      "Call%20Disposed:555:2025-01-15T11%3A00%3A00.000Z"
    )
  })

  it("refuse two events of one request that share a key with different content, and allow exact repeats", async () => {
    const [a, b] = erasureEvents(2)
    expect(await issuesOf(contracts.warehouse, [a, { ...b, id: a?.id }])).toEqual([
      { path: "$[1]", message: 'Event key "era_1" was already used by $[0] with different content; give each event its own id' }
    ])
    const repeat = await split(contracts.warehouse, [a, a])
    expect(repeat._tag === "Success" && repeat.success.length).toBe(2)
  })
})

describe("a batch judged event by event", () => {
  it("keeps the 99 valid events of a 100-event HubSpot batch and says what is wrong with the other, keyed", async () => {
    const batch = hubspotBatch(100, { firstEventId: 1 }).map((event, i) => (i === 3 ? { ...event, propertyValue: 42 } : event))
    const result = await splitBody(contracts.hubspot, batch)
    if (result._tag !== "Success") throw new Error("the batch is a batch")
    expect(validEvents(result.success).map(({ index }) => index)).toEqual([...Array(100).keys()].filter((i) => i !== 3))
    expect(result.success.events[3]?.judgement).toEqual({
      _tag: "Invalid",
      key: "62515:4242:4",
      issues: [{ path: "$[3].propertyValue", message: "Expected string, got 42" }]
    })
  })

  it("treats two HubSpot events that differ only in attemptNumber as one event delivered twice", async () => {
    const [event] = hubspotBatch(1)
    const result = await splitBody(contracts.hubspot, [event, { ...event, attemptNumber: 3 }])
    if (result._tag !== "Success") throw new Error("the batch is a batch")
    expect(validEvents(result.success).map(({ event: { key } }) => key)).toEqual(["62515:4242:1", "62515:4242:1"])
    expect(await issuesOf(contracts.hubspot, [event, { ...event, attemptNumber: 3, propertyValue: "other" }])).toEqual([
      { path: "$[1]", message: 'Event key "62515:4242:1" was already used by $[0] with different content; give each event its own id' }
    ])
  })

  it("gives an invalid event no key when its key fields are broken too", async () => {
    const [event] = erasureEvents(1)
    const result = await splitBody(contracts.warehouse, [{ ...event, id: 7, data: {} }])
    expect(result._tag === "Success" && result.success.events[0]?.judgement).toMatchObject({ _tag: "Invalid", key: undefined })
  })
})

describe("bounds every event keeps, whatever its contract", () => {
  it("refuses a body nested 20,000 levels deep as a whole, without exhausting the stack", async () => {
    const deep = JSON.parse(`${"[".repeat(20_000)}${"]".repeat(20_000)}`) as unknown
    const result = await Effect.runPromise(Effect.result(contracts.hubspot.split(deep)))
    expect(result._tag === "Failure" && result.failure.issues).toEqual([
      { path: `$${"[0]".repeat(32)}`, message: "the body nests deeper than 32 levels" }
    ])
    const [event] = erasureEvents(1)
    let nested: unknown = "bottom"
    for (let i = 0; i < 40; i++) nested = { inner: nested }
    expect((await issuesOf(contracts.warehouse, { ...event, extra: nested }))[0]?.message).toBe("the body nests deeper than 32 levels")
  })

  it("judges an Aloware event whose name holds a lone surrogate invalid, naming it, instead of failing on our side", async () => {
    const call = alowareCall(1)
    const result = await splitBody(contracts.aloware, { ...call, event: "Call \ud800Disposed" })
    expect(result._tag === "Success" && result.success.events[0]?.judgement).toMatchObject({ _tag: "Invalid", key: undefined })
    expect(await issuesOf(contracts.aloware, { ...call, event: "Call \ud800Disposed" })).toContainEqual({
      path: "$.event",
      message: "the string contains a lone surrogate (\\ud800) at character 5: strings must be well-formed Unicode"
    })
  })

  it("refuses NUL characters and lone surrogates in every string, fields the contract does not model and member names included", async () => {
    const [event] = hubspotBatch(1)
    expect(
      await issuesOf(contracts.hubspot, [{ ...event, propertyValue: "a\u0000b", futureField: { note: "x\udc00" }, ["k\ud83d"]: 1 }])
    ).toEqual([
      { path: "$[0]", message: "a member name contains a lone surrogate (\\ud83d) at character 1: strings must be well-formed Unicode" },
      {
        path: "$[0].propertyValue",
        message: "the string contains a NUL character (\\u0000) at character 1, which no text column can hold"
      },
      {
        path: "$[0].futureField.note",
        message: "the string contains a lone surrogate (\\udc00) at character 1: strings must be well-formed Unicode"
      }
    ])
  })

  it("refuses numbers the log cannot keep exactly, rather than storing them changed", async () => {
    const [event] = hubspotBatch(1)
    const body = JSON.parse(
      JSON.stringify([{ ...event, extra: 1 }]).replace('"extra":1', '"extra":1e400,"id64":9007199254740993')
    ) as unknown
    const result = await Effect.runPromise(Effect.result(contracts.hubspot.split(body)))
    expect(result._tag === "Success" && issuesOfSplit(result.success)).toEqual([
      { path: "$[0].extra", message: "the number is too large for a JSON number (it parses as infinity); send it as a string" },
      { path: "$[0].id64", message: "the integer 9007199254740992 is beyond ±2^53 and would lose digits; send it as a string" }
    ])
  })

  it("refuses an object with more than 256 members", async () => {
    const [event] = erasureEvents(1)
    const wide = Object.fromEntries(Array.from({ length: 300 }, (_, i) => [`f${i}`, i]))
    expect(await issuesOf(contracts.warehouse, { ...event, data: { ...event?.data, ...wide } })).toEqual([
      { path: "$.data", message: "the object has 304 members, more than 256" }
    ])
  })

  it("refuses times that no column can hold once in UTC, and days the calendar does not have", async () => {
    const [event] = erasureEvents(1)
    for (const timestamp of ["0000-06-01T00:00:00Z", "9999-12-31T23:00:00-02:00", "2025-02-30T10:00:00Z"])
      expect((await issuesOf(contracts.warehouse, { ...event, timestamp }))[0]?.path).toBe("$.timestamp")
    expect((await issuesOf(contracts.aloware, alowareCall(1, "2025-02-30 10:00:00")))[0]?.path).toBe("$.data.created_at")
    expect((await split(contracts.warehouse, { ...event, timestamp: "9999-12-31T22:00:00-01:00" }))._tag).toBe("Success")
  })
})

describe("natural keys are injective", () => {
  it("refuses ids with lone surrogates, which UTF-8 headers would turn into U+FFFD and collapse into one key", async () => {
    const [event] = erasureEvents(1)
    expect((await issuesOf(contracts.warehouse, { ...event, id: "s\ud800x" })).map((issue) => issue.path)).toContain("$.id")
    expect((await issuesOf(contracts.warehouse, { ...event, id: "s\udc01x" })).map((issue) => issue.path)).toContain("$.id")
    const replacement = await split(contracts.warehouse, { ...event, id: "s\ufffdx" })
    expect(replacement._tag === "Success" && replacement.success[0]?.key).toBe("s\ufffdx")
  })

  it("for every id the contract accepts, the UTF-8 message id decodes back to the same key", async () => {
    const seed = Number(process.env.FUZZ_SEED ?? Date.now() % 2 ** 31)
    console.log(`key property seed: ${seed} (FUZZ_SEED=${seed} reproduces)`)
    const [event] = erasureEvents(1)
    const decoder = new TextDecoder()
    const encoder = new TextEncoder()
    await fc.assert(
      fc.asyncProperty(
        fc.string({ unit: "binary", minLength: 1, maxLength: 40 }),
        fc.string({ unit: "binary", minLength: 1, maxLength: 40 }),
        async (a, b) => {
          const keys = await Promise.all(
            [a, b].map(async (id) => {
              const result = await split(contracts.warehouse, { ...event, id })
              return result._tag === "Success" ? result.success[0]?.key : undefined
            })
          )
          for (const key of keys)
            if (key !== undefined) expect(decoder.decode(encoder.encode(messageIdFor("erasure", key)))).toBe(messageIdFor("erasure", key))
          if (keys[0] !== undefined && keys[1] !== undefined && a !== b)
            expect(encoder.encode(messageIdFor("erasure", keys[0]))).not.toEqual(encoder.encode(messageIdFor("erasure", keys[1])))
        }
      ),
      { seed, numRuns: 2000 }
    )
  })
})
