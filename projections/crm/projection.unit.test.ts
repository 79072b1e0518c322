import { describe, expect, it } from "vitest"
import { alowareCall, hubspotBatch } from "../../infra/local/samples.ts"
import type { LogEvent, Outcome } from "../projection.ts"
import type { Row } from "../table.ts"
import { crmProjection } from "./projection.ts"

type HubSpotPayload = Record<string, unknown> & {
  readonly eventId: number
  readonly subscriptionId: number
  readonly portalId: number
  readonly occurredAt: number
}
type AlowarePayload = { readonly event: string; readonly data: Record<string, unknown> & { readonly created_at: string } }

const hubspot = (fields: Record<string, unknown> = {}): HubSpotPayload => ({
  eventId: 1,
  subscriptionId: 4242,
  portalId: 62515,
  appId: 54321,
  occurredAt: Date.parse("2025-01-15T10:32:00Z"),
  subscriptionType: "contact.creation",
  attemptNumber: 0,
  objectId: 1000,
  changeSource: "CRM_UI",
  ...fields
})

/** One HubSpot event as the runtime reads it: the edge put its type and time (from epoch millis) in the headers. */
const hubspotEvent = (payload: HubSpotPayload, overrides: Partial<LogEvent> = {}): LogEvent => ({
  seq: 1,
  subject: "ingest.crm.hubspot.contact_creation",
  source: "hubspot",
  type: String(payload.subscriptionType),
  dedupeKey: `hubspot:${payload.portalId}:${payload.subscriptionId}:${payload.eventId}`,
  occurredAt: new Date(payload.occurredAt).toISOString(),
  receivedAt: "2025-01-15T12:00:00.000Z",
  schema: "hubspot/v1",
  payload,
  ...overrides
})

/** One Aloware event as the runtime reads it: `created_at` (UTC unless zoned) is its time. */
const alowareEvent = (payload: AlowarePayload, overrides: Partial<LogEvent> = {}): LogEvent => {
  const created = payload.data.created_at.replace(" ", "T")
  const millis = Date.parse(/(Z|[+-]\d{2}:?\d{2})$/.test(created) ? created : `${created}Z`)
  return {
    seq: 2,
    subject: "ingest.crm.aloware.call_disposed",
    source: "aloware",
    type: payload.event,
    dedupeKey: `aloware:${payload.event}:${String(payload.data.id)}`,
    // A broken created_at never reaches the log from the edge; the runtime would then use the append time.
    occurredAt: new Date(Number.isNaN(millis) ? Date.parse("2025-01-15T15:00:00Z") : millis).toISOString(),
    receivedAt: "2025-01-15T12:00:00.000Z",
    schema: "aloware/v1",
    payload,
    ...overrides
  }
}

const rowsOf = (outcome: Outcome): Readonly<Record<string, ReadonlyArray<Row>>> => {
  if (outcome._tag !== "Rows") throw new Error(`expected Rows, got ${JSON.stringify(outcome)}`)
  return outcome.rows
}
const factOf = (outcome: Outcome): Row => {
  const [fact, ...more] = rowsOf(outcome).fact_event ?? []
  if (fact === undefined || more.length > 0) throw new Error(`expected one fact, got ${JSON.stringify(outcome)}`)
  return fact
}
const poisonReason = (outcome: Outcome): string => {
  if (outcome._tag !== "Poison") throw new Error(`expected Poison, got ${JSON.stringify(outcome)}`)
  return outcome.reason
}

const WEDNESDAY_15_JAN = {
  date_key: 20250115,
  full_date: "2025-01-15",
  day_of_week: 3,
  day_name: "Wednesday",
  month: 1,
  quarter: 1,
  year: 2025,
  is_weekend: false,
  is_holiday: false
}

describe("crm projection: HubSpot events", () => {
  it("counts a created contact once, for nobody in particular, with its day and shift", () => {
    expect(crmProjection.project(hubspotEvent(hubspot()))).toEqual({
      _tag: "Rows",
      rows: {
        fact_event: [
          {
            event_id: "hubspot:62515:CONTACTS:1000",
            source: "hubspot",
            event_type: "contact.creation",
            metric_id: "CONTACTS",
            agent_id: "unassigned",
            date_key: 20250115,
            shift_id: "EARLY",
            occurred_at: "2025-01-15T10:32:00.000Z",
            value: 1,
            duration_seconds: null
          }
        ],
        dim_agent: [{ agent_id: "unassigned", agent_name: null, source: "any" }],
        dim_date: [WEDNESDAY_15_JAN]
      }
    })
  })

  it.each([
    ["contact.creation", "CONTACTS"],
    ["deal.creation", "DEALS"],
    ["ticket.creation", "CASES"]
  ])("maps the legacy %s subscription to %s", (subscriptionType, metric) => {
    const fact = factOf(crmProjection.project(hubspotEvent(hubspot({ subscriptionType, objectId: 7 }))))
    expect(fact).toMatchObject({ metric_id: metric, event_id: `hubspot:62515:${metric}:7`, event_type: subscriptionType })
  })

  it.each([
    ["0-1", "CONTACTS"],
    ["0-3", "DEALS"],
    ["0-5", "CASES"],
    ["0-49", "EMAILS"]
  ])("maps a generic object.creation of object type %s to %s", (objectTypeId, metric) => {
    const fact = factOf(crmProjection.project(hubspotEvent(hubspot({ subscriptionType: "object.creation", objectTypeId, objectId: 8 }))))
    expect(fact).toMatchObject({ metric_id: metric, event_id: `hubspot:62515:${metric}:8`, event_type: "object.creation" })
  })

  it("counts an object once whether it came through the legacy or the generic subscription", () => {
    const legacy = factOf(crmProjection.project(hubspotEvent(hubspot({ subscriptionType: "deal.creation", objectId: 55 }))))
    const generic = factOf(
      crmProjection.project(hubspotEvent(hubspot({ eventId: 2, subscriptionType: "object.creation", objectTypeId: "0-3", objectId: 55 })))
    )
    expect(generic.event_id).toBe(legacy.event_id)
  })

  it("keeps objects of different portals apart", () => {
    const one = factOf(crmProjection.project(hubspotEvent(hubspot({ portalId: 1 }))))
    const two = factOf(crmProjection.project(hubspotEvent(hubspot({ portalId: 2 }))))
    expect([one.event_id, two.event_id]).toEqual(["hubspot:1:CONTACTS:1000", "hubspot:2:CONTACTS:1000"])
  })

  it("credits the HubSpot user named by sourceId userId:<n>", () => {
    const rows = rowsOf(crmProjection.project(hubspotEvent(hubspot({ sourceId: "userId:123" }))))
    expect(rows.fact_event?.[0]?.agent_id).toBe("hubspot:123")
    expect(rows.dim_agent).toEqual([{ agent_id: "hubspot:123", agent_name: null, source: "hubspot" }])
  })

  it.each(["userId:abc", "integration:99", "userId:12 ", ""])("leaves the activity unassigned for sourceId %j", (sourceId) => {
    const rows = rowsOf(crmProjection.project(hubspotEvent(hubspot({ sourceId }))))
    expect(rows.fact_event?.[0]?.agent_id).toBe("unassigned")
    expect(rows.dim_agent).toEqual([{ agent_id: "unassigned", agent_name: null, source: "any" }])
  })

  it.each([
    ["a property change", { subscriptionType: "contact.propertyChange", propertyName: "lifecyclestage", propertyValue: "customer" }],
    ["a deletion", { subscriptionType: "contact.deletion" }],
    ["a generic creation of an object type it does not count (companies)", { subscriptionType: "object.creation", objectTypeId: "0-2" }],
    ["a generic creation without an object type", { subscriptionType: "object.creation" }],
    ["a legacy subscription id sent as an object type", { subscriptionType: "object.creation", objectTypeId: "contact.creation" }]
  ])("skips %s", (_, fields) => {
    expect(crmProjection.project(hubspotEvent(hubspot(fields)))).toEqual({ _tag: "Skip" })
  })

  it("skips a counted creation that names no object", () => {
    const { objectId: _objectId, ...withoutObject } = hubspot()
    expect(crmProjection.project(hubspotEvent(withoutObject as HubSpotPayload))).toEqual({ _tag: "Skip" })
  })

  it("skips a subscription or object type named like an Object method: no metric is counted for it", () => {
    expect(crmProjection.project(hubspotEvent(hubspot({ subscriptionType: "toString" })))).toEqual({ _tag: "Skip" })
    expect(crmProjection.project(hubspotEvent(hubspot({ subscriptionType: "object.creation", objectTypeId: "constructor" })))).toEqual({
      _tag: "Skip"
    })
  })

  it("counts the sample batch's creations and skips its property changes", () => {
    const outcomes = hubspotBatch(8).map((payload) => crmProjection.project(hubspotEvent(payload)))
    expect(outcomes.map((outcome) => (outcome._tag === "Rows" ? factOf(outcome).metric_id : outcome._tag))).toEqual([
      "CONTACTS",
      "DEALS",
      "CASES",
      "Skip",
      "CONTACTS",
      "DEALS",
      "CASES",
      "Skip"
    ])
  })

  it("poisons an event that breaks the HubSpot contract, naming the field", () => {
    expect(poisonReason(crmProjection.project(hubspotEvent(hubspot({ portalId: "62515" }))))).toContain("$.portalId")
    expect(poisonReason(crmProjection.project(hubspotEvent(hubspot({ objectId: -1 }))))).toContain("$.objectId")
    const { subscriptionType: _type, ...untyped } = hubspot()
    expect(poisonReason(crmProjection.project(hubspotEvent(untyped as HubSpotPayload)))).toContain("$.subscriptionType: Missing key")
  })
})

describe("crm projection: Aloware events", () => {
  it("counts a disposed outbound call for its agent with the call's duration", () => {
    expect(crmProjection.project(alowareEvent(alowareCall(4242, "2025-01-15 10:32:00")))).toEqual({
      _tag: "Rows",
      rows: {
        fact_event: [
          {
            event_id: "aloware:call:4242",
            source: "aloware",
            event_type: "Call Disposed",
            metric_id: "CALLS",
            agent_id: "aloware:17",
            date_key: 20250115,
            shift_id: "EARLY",
            occurred_at: "2025-01-15T10:32:00.000Z",
            value: 1,
            duration_seconds: 184
          }
        ],
        dim_agent: [{ agent_id: "aloware:17", agent_name: "Dana Agent", source: "aloware" }],
        dim_date: [WEDNESDAY_15_JAN]
      }
    })
  })

  it("counts an inbound call as an inbound call", () => {
    const call = alowareCall(1)
    expect(
      factOf(crmProjection.project(alowareEvent({ ...call, event: "Call Ended", data: { ...call.data, direction: "inbound" } })))
    ).toMatchObject({
      metric_id: "INBOUND_CALLS",
      event_id: "aloware:call:1",
      duration_seconds: 184
    })
  })

  it("counts several events about one call as one activity", () => {
    const call = alowareCall(4242)
    const disposed = factOf(crmProjection.project(alowareEvent(call)))
    const summary = factOf(
      crmProjection.project(alowareEvent({ ...call, event: "Call Summarized", data: { ...call.data, updated_at: "2025-01-15 10:40:00" } }))
    )
    expect(summary.event_id).toBe(disposed.event_id)
    expect(summary.event_type).toBe("Call Summarized")
  })

  it.each([
    ["text", "TEXTS"],
    ["sms", "TEXTS"],
    ["email", "EMAILS"]
  ])("counts a communication of type %s as %s, without a duration", (type, metric) => {
    const payload = {
      event: "Communication Logged",
      data: { id: 77, type, direction: "outbound", user_id: 17, duration: 30, created_at: "2025-01-15 15:00:00" }
    }
    expect(factOf(crmProjection.project(alowareEvent(payload)))).toMatchObject({
      metric_id: metric,
      event_id: `aloware:${type}:77`,
      duration_seconds: null
    })
  })

  it.each([
    ["Call Disposed", "CALLS", "call"],
    ["Text Received", "TEXTS", "text"],
    ["SMS Sent", "TEXTS", "text"],
    ["Email Logged", "EMAILS", "email"]
  ])("tells the channel of an untyped %j event from its name", (event, metric, channel) => {
    const payload = { event, data: { id: 5, user_id: 17, duration: 60, created_at: "2025-01-15 15:00:00" } }
    expect(factOf(crmProjection.project(alowareEvent(payload)))).toMatchObject({
      metric_id: metric,
      event_id: `aloware:${channel}:5`,
      duration_seconds: channel === "call" ? 60 : null
    })
  })

  it("counts an untyped inbound call by its name and direction", () => {
    const payload = { event: "Call Answered", data: { id: 6, direction: "inbound", created_at: "2025-01-15 15:00:00" } }
    expect(factOf(crmProjection.project(alowareEvent(payload)))).toMatchObject({ metric_id: "INBOUND_CALLS", duration_seconds: null })
  })

  it("prefers the declared type to the event's name", () => {
    const payload = { event: "Call Disposed", data: { id: 8, type: "text", created_at: "2025-01-15 15:00:00" } }
    expect(factOf(crmProjection.project(alowareEvent(payload)))).toMatchObject({ metric_id: "TEXTS", event_id: "aloware:text:8" })
  })

  it.each([
    ["a voicemail", { event: "Voicemail Left", data: { id: 9, type: "voicemail", created_at: "2025-01-15 15:00:00" } }],
    ["an untyped event whose name names no channel", { event: "Contact Created", data: { id: 9, created_at: "2025-01-15 15:00:00" } }]
  ])("skips %s", (_, payload) => {
    expect(crmProjection.project(alowareEvent(payload))).toEqual({ _tag: "Skip" })
  })

  it("leaves a communication without a user unassigned, and a user without a name nameless", () => {
    const anonymous = rowsOf(
      crmProjection.project(alowareEvent({ event: "Text Sent", data: { id: 10, type: "text", created_at: "2025-01-15 15:00:00" } }))
    )
    expect(anonymous.fact_event?.[0]?.agent_id).toBe("unassigned")
    expect(anonymous.dim_agent).toEqual([{ agent_id: "unassigned", agent_name: null, source: "any" }])
    const nameless = rowsOf(
      crmProjection.project(
        alowareEvent({ event: "Text Sent", data: { id: 11, type: "text", user_id: "u-3", created_at: "2025-01-15 15:00:00" } })
      )
    )
    expect(nameless.dim_agent).toEqual([{ agent_id: "aloware:u-3", agent_name: null, source: "aloware" }])
  })

  it("poisons an event that breaks the Aloware contract, naming the field", () => {
    expect(
      poisonReason(crmProjection.project(alowareEvent({ event: "Call Disposed", data: { id: 1, created_at: "yesterday" } })))
    ).toContain("$.data.created_at")
    expect(
      poisonReason(
        crmProjection.project(alowareEvent({ event: "Call Disposed", data: { id: 1, type: "fax", created_at: "2025-01-15 15:00:00" } }))
      )
    ).toContain("$.data.type")
    const withoutId = { event: "Call Disposed", data: { created_at: "2025-01-15 15:00:00" } }
    expect(poisonReason(crmProjection.project(alowareEvent(withoutId)))).toContain("$.data.id: Missing key")
  })
})

describe("crm projection: days, shifts and schemas", () => {
  it.each([
    ["2025-01-15T05:59:59.999Z", "NIGHT"],
    ["2025-01-15T06:00:00.000Z", "EARLY"],
    ["2025-01-15T13:59:59.999Z", "EARLY"],
    ["2025-01-15T14:00:00.000Z", "LATE"],
    ["2025-01-15T21:59:59.999Z", "LATE"],
    ["2025-01-15T22:00:00.000Z", "NIGHT"],
    ["2025-01-15T00:00:00.000Z", "NIGHT"]
  ])("puts an activity at %s in the %s shift (by UTC hour)", (occurredAt, shift) => {
    const payload = hubspot({ occurredAt: Date.parse(occurredAt) })
    expect(factOf(crmProjection.project(hubspotEvent(payload))).shift_id).toBe(shift)
  })

  it("dates an activity by its UTC day, with that day's dim_date row", () => {
    const rows = rowsOf(crmProjection.project(alowareEvent(alowareCall(3, "2025-01-15T23:30:00-02:00"))))
    expect(rows.fact_event?.[0]).toMatchObject({ date_key: 20250116, occurred_at: "2025-01-16T01:30:00.000Z", shift_id: "NIGHT" })
    expect(rows.dim_date).toEqual([
      {
        date_key: 20250116,
        full_date: "2025-01-16",
        day_of_week: 4,
        day_name: "Thursday",
        month: 1,
        quarter: 1,
        year: 2025,
        is_weekend: false,
        is_holiday: false
      }
    ])
  })

  it("flags weekends and the fixed holidays in dim_date", () => {
    const christmas = rowsOf(crmProjection.project(hubspotEvent(hubspot({ occurredAt: Date.parse("2027-12-25T09:00:00Z") }))))
    expect(christmas.dim_date).toEqual([
      {
        date_key: 20271225,
        full_date: "2027-12-25",
        day_of_week: 6,
        day_name: "Saturday",
        month: 12,
        quarter: 4,
        year: 2027,
        is_weekend: true,
        is_holiday: true
      }
    ])
  })

  it("skips events of any other schema, whatever their payload", () => {
    expect(crmProjection.project(hubspotEvent(hubspot(), { schema: "warehouse/v1" }))).toEqual({ _tag: "Skip" })
    expect(crmProjection.project(alowareEvent(alowareCall(1), { schema: "unknown" }))).toEqual({ _tag: "Skip" })
  })

  it("reads a HubSpot or Aloware payload by its schema, not its shape", () => {
    expect(poisonReason(crmProjection.project(alowareEvent(alowareCall(1), { schema: "hubspot/v1" })))).toContain("$.eventId: Missing key")
    expect(poisonReason(crmProjection.project(hubspotEvent(hubspot(), { schema: "aloware/v1" })))).toContain("$.event: Missing key")
  })
})
