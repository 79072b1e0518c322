import { AlowareEvent } from "../../contracts/aloware.ts"
import { decodeIssues } from "../../contracts/contract.ts"
import { HubSpotEvent } from "../../contracts/hubspot.ts"
import { describeIssues } from "../../contracts/issues.ts"
import { dateRow } from "../calendar.ts"
import { type LogEvent, type Outcome, poison, type Projection, rows, skip } from "../projection.ts"
import type { Row } from "../table.ts"
import { crmMarts, type MetricId } from "./marts.ts"

/** The agent of activities no user is named for: the row the marts are seeded with, the same for every source (never rewritten). */
const UNASSIGNED: Row = { agent_id: "unassigned", agent_name: null, source: "any" }

const shiftOf = (iso: string): string => {
  const hour = new Date(iso).getUTCHours()
  return hour >= 6 && hour < 14 ? "EARLY" : hour >= 14 && hour < 22 ? "LATE" : "NIGHT"
}

/** HubSpot object type ids of the generic `object.creation` subscriptions we count. */
const HUBSPOT_OBJECT_METRICS: Readonly<Record<string, MetricId>> = { "0-1": "CONTACTS", "0-3": "DEALS", "0-5": "CASES", "0-49": "EMAILS" }
const HUBSPOT_LEGACY_METRICS: Readonly<Record<string, MetricId>> = {
  "contact.creation": "CONTACTS",
  "deal.creation": "DEALS",
  "ticket.creation": "CASES"
}

/** A table's own entry for `key`: a key named like an Object method (`toString`) has none. */
const ownValue = <V>(table: Readonly<Record<string, V>>, key: string): V | undefined => (Object.hasOwn(table, key) ? table[key] : undefined)

const fact = (event: LogEvent, metric: MetricId, eventId: string, agent: Row, extra: { duration_seconds?: number | null } = {}): Outcome =>
  rows({
    fact_event: [
      {
        event_id: eventId,
        source: event.source,
        event_type: event.type,
        metric_id: metric,
        agent_id: agent.agent_id as string,
        date_key: dateRow(event.occurredAt).date_key as number,
        shift_id: shiftOf(event.occurredAt),
        occurred_at: event.occurredAt,
        value: 1,
        duration_seconds: extra.duration_seconds ?? null
      }
    ],
    dim_agent: [agent],
    dim_date: [dateRow(event.occurredAt)]
  })

const projectHubSpot = (event: LogEvent): Outcome => {
  const decoded = decodeIssues(HubSpotEvent, event.payload)
  if (!decoded.ok) return poison(describeIssues(decoded.issues))
  const hubspot = decoded.value
  const metric =
    hubspot.subscriptionType === "object.creation"
      ? ownValue(HUBSPOT_OBJECT_METRICS, hubspot.objectTypeId ?? "")
      : ownValue(HUBSPOT_LEGACY_METRICS, hubspot.subscriptionType)
  if (metric === undefined || hubspot.objectId === undefined) return skip
  const user = /^userId:(\d+)$/.exec(hubspot.sourceId ?? "")?.[1]
  const agent: Row = user === undefined ? UNASSIGNED : { agent_id: `hubspot:${user}`, agent_name: null, source: "hubspot" }
  return fact(event, metric, `hubspot:${hubspot.portalId}:${metric}:${hubspot.objectId}`, agent)
}

const projectAloware = (event: LogEvent): Outcome => {
  const decoded = decodeIssues(AlowareEvent, event.payload)
  if (!decoded.ok) return poison(describeIssues(decoded.issues))
  const { data } = decoded.value
  const name = decoded.value.event.toLowerCase()
  const channel = data.type ?? (/call/.test(name) ? "call" : /text|sms/.test(name) ? "text" : /email/.test(name) ? "email" : undefined)
  const metric: MetricId | undefined =
    channel === "call"
      ? data.direction === "inbound"
        ? "INBOUND_CALLS"
        : "CALLS"
      : channel === "text" || channel === "sms"
        ? "TEXTS"
        : channel === "email"
          ? "EMAILS"
          : undefined
  if (metric === undefined) return skip
  const agent: Row =
    data.user_id === undefined ? UNASSIGNED : { agent_id: `aloware:${data.user_id}`, agent_name: data.user_name ?? null, source: "aloware" }
  // Several Aloware events describe one communication: the communication is counted once.
  return fact(event, metric, `aloware:${channel}:${data.id}`, agent, {
    duration_seconds: channel === "call" ? (data.duration ?? null) : null
  })
}

/** HubSpot and Aloware events become counted activities by agent, day, metric and shift. */
export const crmProjection: Projection = {
  ...crmMarts,
  // 3: a HubSpot subscription or object type named like an Object method (toString) is skipped, not counted.
  // 4: the unassigned agent keeps its seeded source, 'any', instead of flipping to the last source that used it.
  version: 4,
  domain: "crm",
  project: (event) =>
    event.schema.startsWith("hubspot/") ? projectHubSpot(event) : event.schema.startsWith("aloware/") ? projectAloware(event) : skip
}
