import { qualified, quoteLiteral } from "../../platform/sql.ts"
import { dimDateColumns } from "../calendar.ts"
import { selectList } from "../statements.ts"
import { date, type DerivedColumn, integer, type MartSet, numeric, type TableSpec, text, timestamp } from "../table.ts"

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
    columns: [text("agent_id"), text("agent_name", true), text("source")],
    key: ["agent_id"],
    merge: "upsert"
  },
  { name: "dim_date", columns: dimDateColumns, key: ["date_key"], merge: "insert" },
  {
    name: "dim_metric",
    columns: [text("metric_id"), text("metric_name"), text("description")],
    key: ["metric_id"],
    merge: "upsert"
  },
  {
    name: "dim_shift",
    columns: [text("shift_id"), text("shift_name"), integer("start_hour"), integer("end_hour")],
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

/** The daily metric view's columns, each with the expression that computes it; the first four are its grain. */
const dailyMetricColumns: ReadonlyArray<DerivedColumn> = [
  [integer("date_key"), "f.date_key"],
  [date("full_date"), "d.full_date"],
  [text("agent_id"), "f.agent_id"],
  [text("metric_id"), "f.metric_id"],
  [integer("event_count"), "count(*)::integer"],
  [numeric("value"), "sum(f.value)"],
  [numeric("duration_seconds", true), "sum(f.duration_seconds)"]
]

/** Seed 004's CRM marts: the star's tables and the daily metric view, seeded with the metric and shift dimensions. */
export const crmMarts: MartSet = {
  name: "crm",
  tables: crmTables,
  published: [...crmTables.map((table) => table.name), "fact_daily_metric"],
  views: [{ name: "fact_daily_metric", columns: dailyMetricColumns.map(([column]) => column), key: ["date_key", "agent_id", "metric_id"] }],
  extraSql: (schema) => [
    `INSERT INTO ${qualified(schema, "dim_metric")} (metric_id, metric_name, description) VALUES ${Object.entries(METRICS)
      .map(([id, [name, description]]) => `(${quoteLiteral(id)}, ${quoteLiteral(name)}, ${quoteLiteral(description)})`)
      .join(", ")}`,
    `INSERT INTO ${qualified(schema, "dim_shift")} (shift_id, shift_name, start_hour, end_hour) VALUES ${SHIFTS.map(
      (s) => `(${quoteLiteral(s.shift_id)}, ${quoteLiteral(s.shift_name)}, ${s.start_hour}, ${s.end_hour})`
    ).join(", ")}`,
    `INSERT INTO ${qualified(schema, "dim_agent")} (agent_id, agent_name, source) VALUES ('unassigned', NULL, 'any')`,
    `CREATE VIEW ${qualified(schema, "fact_daily_metric")} AS
       SELECT ${selectList(dailyMetricColumns)}
       FROM ${qualified(schema, "fact_event")} f JOIN ${qualified(schema, "dim_date")} d USING (date_key)
       GROUP BY f.date_key, d.full_date, f.agent_id, f.metric_id`
  ]
}
