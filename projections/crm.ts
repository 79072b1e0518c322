import { AlowareEvent } from "../contracts/aloware.ts"
import { HubSpotEvent } from "../contracts/hubspot.ts"
import { decodeWith } from "./decode.ts"
import { type LogEvent, type Outcome, poison, type Projection, rows, skip } from "./projection.ts"
import { dateRow, dimDateColumns } from "./calendar.ts"
import { date, integer, numeric, qualified, type Row, type TableSpec, text, timestamp } from "./table.ts"

/** Seed 004's CRM star: one fact per counted activity, the agent, date, metric and shift dimensions. */
export const crmTables: ReadonlyArray<TableSpec> = [
  {
    name: "fact_event",
    columns: [
      text("event_id"),
      text("source"),
      text("event_type"),
      text("metric_id"),
      text("agent_id"),
      integer("date_key"),
      text("shift_id"),
      timestamp("occurred_at"),
      numeric("value"),
      numeric("duration_seconds", true)
    ],
    key: ["event_id"],
    merge: "upsert",
    indexes: [["date_key"], ["occurred_at"]]
  },
  {
    name: "dim_agent",
    columns: [
      text("agent_id"),
      text("agent_name", true),
      text("source")
    ],
    key: ["agent_id"],
    merge: "upsert"
  },
  { name: "dim_date", columns: dimDateColumns, key: ["date_key"], merge: "insert" },
  {
    name: "dim_metric",
    columns: [
      text("metric_id"),
      text("metric_name"),
      text("description")
    ],
    key: ["metric_id"],
    merge: "upsert"
  },
  {
    name: "dim_shift",
    columns: [
      text("shift_id"),
      text("shift_name"),
      integer("start_hour"),
      integer("end_hour")
    ],
    key: ["shift_id"],
    merge: "upsert"
  }
]

/** The seed's metric vocabulary: what each counted activity is called. */
export const METRICS = {
  CALLS: ["Outbound calls", "Outbound calls placed by an agent (Aloware)"],
  INBOUND_CALLS: ["Inbound calls", "Calls received by an agent (Aloware)"],
  TEXTS: ["Texts", "Text messages sent or received (Aloware)"],
  EMAILS: ["Emails", "Emails logged in HubSpot or Aloware"],
  CASES: ["Cases", "Tickets created in HubSpot"],
  CONTACTS: ["Contacts", "Contacts created in HubSpot"],
  DEALS: ["Deals", "Deals created in HubSpot"]
} as const
export type MetricId = keyof typeof METRICS

/** Shifts by UTC hour: early 06–14, late 14–22, night 22–06. */
export const SHIFTS = [
  { shift_id: "EARLY", shift_name: "Early", start_hour: 6, end_hour: 14 },
  { shift_id: "LATE", shift_name: "Late", start_hour: 14, end_hour: 22 },
  { shift_id: "NIGHT", shift_name: "Night", start_hour: 22, end_hour: 6 }
] as const

const shiftOf = (iso: string): string => {
  const hour = new Date(iso).getUTCHours()
  return hour >= 6 && hour < 14 ? "EARLY" : hour >= 14 && hour < 22 ? "LATE" : "NIGHT"
}

/** HubSpot object type ids of the generic `object.creation` subscriptions we count. */
const HUBSPOT_OBJECT_METRICS: Readonly<Record<string, MetricId>> = { "0-1": "CONTACTS", "0-3": "DEALS", "0-5": "CASES", "0-49": "EMAILS" }
const HUBSPOT_LEGACY_METRICS: Readonly<Record<string, MetricId>> = { "contact.creation": "CONTACTS", "deal.creation": "DEALS", "ticket.creation": "CASES" }

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
  const decoded = decodeWith(HubSpotEvent, event.payload)
  if (!decoded.ok) return poison(decoded.reason)
  const hubspot = decoded.value
  const metric =
    hubspot.subscriptionType === "object.creation" ? HUBSPOT_OBJECT_METRICS[hubspot.objectTypeId ?? ""] : HUBSPOT_LEGACY_METRICS[hubspot.subscriptionType]
  if (metric === undefined || hubspot.objectId === undefined) return skip
  const user = /^userId:(\d+)$/.exec(hubspot.sourceId ?? "")?.[1]
  const agent: Row = user === undefined ? { agent_id: "unassigned", agent_name: null, source: "hubspot" } : { agent_id: `hubspot:${user}`, agent_name: null, source: "hubspot" }
  return fact(event, metric, `hubspot:${hubspot.portalId}:${metric}:${hubspot.objectId}`, agent)
}

const projectAloware = (event: LogEvent): Outcome => {
  const decoded = decodeWith(AlowareEvent, event.payload)
  if (!decoded.ok) return poison(decoded.reason)
  const { data } = decoded.value
  const name = decoded.value.event.toLowerCase()
  const channel = data.type ?? (/call/.test(name) ? "call" : /text|sms/.test(name) ? "text" : /email/.test(name) ? "email" : undefined)
  const metric: MetricId | undefined =
    channel === "call" ? (data.direction === "inbound" ? "INBOUND_CALLS" : "CALLS") : channel === "text" || channel === "sms" ? "TEXTS" : channel === "email" ? "EMAILS" : undefined
  if (metric === undefined) return skip
  const agent: Row =
    data.user_id === undefined
      ? { agent_id: "unassigned", agent_name: null, source: "aloware" }
      : { agent_id: `aloware:${data.user_id}`, agent_name: data.user_name ?? null, source: "aloware" }
  // Several Aloware events describe one communication: the communication is counted once.
  return fact(event, metric, `aloware:${channel}:${data.id}`, agent, { duration_seconds: channel === "call" ? (data.duration ?? null) : null })
}

/** HubSpot and Aloware events become counted activities by agent, day, metric and shift. */
export const crmProjection: Projection = {
  name: "crm",
  version: 2,
  domain: "crm",
  tables: crmTables,
  published: [...crmTables.map((table) => table.name), "fact_daily_metric"],
  views: [
    {
      name: "fact_daily_metric",
      columns: [integer("date_key"), date("full_date"), text("agent_id"), text("metric_id"), integer("event_count"), numeric("value"), numeric("duration_seconds", true)],
      key: ["date_key", "agent_id", "metric_id"]
    }
  ],
  extraSql: (schema) => [
    `INSERT INTO ${qualified(schema, "dim_metric")} (metric_id, metric_name, description) VALUES ${Object.entries(METRICS)
      .map(([id, [name, description]]) => `('${id}', '${name}', '${description}')`)
      .join(", ")}`,
    `INSERT INTO ${qualified(schema, "dim_shift")} (shift_id, shift_name, start_hour, end_hour) VALUES ${SHIFTS.map((s) => `('${s.shift_id}', '${s.shift_name}', ${s.start_hour}, ${s.end_hour})`).join(", ")}`,
    `INSERT INTO ${qualified(schema, "dim_agent")} (agent_id, agent_name, source) VALUES ('unassigned', NULL, 'any')`,
    `CREATE VIEW ${qualified(schema, "fact_daily_metric")} AS
       SELECT f.date_key, d.full_date, f.agent_id, f.metric_id, count(*)::integer AS event_count, sum(f.value) AS value, sum(f.duration_seconds) AS duration_seconds
       FROM ${qualified(schema, "fact_event")} f JOIN ${qualified(schema, "dim_date")} d USING (date_key)
       GROUP BY f.date_key, d.full_date, f.agent_id, f.metric_id`
  ],
  project: (event) => (event.schema.startsWith("hubspot/") ? projectHubSpot(event) : event.schema.startsWith("aloware/") ? projectAloware(event) : skip)
}
