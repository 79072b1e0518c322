import { publishedSchema } from "../projections/catalogue.ts"
import { boolean, type Column, date, integer, numeric, text, timestamp } from "../projections/table.ts"
import { type Feed, martFeeds } from "./feeds.ts"
import type { Format } from "./formats.ts"
import type { ParamSpec, ParsedParams } from "./params.ts"
import { BadParameter } from "./errors.ts"
import { cellSql, csvCellSql, type RowQuery } from "./rows.ts"
import { binder, type Parameter, quoteIdent } from "../platform/sql.ts"

/**
 * A REST export: a fixed query over `mart` views whose rows stream as CSV, JSON or XLSX. The
 * seeds' endpoints are declared here with their columns and filters; every other published mart
 * object gets a generic export of all its columns.
 */
export interface ExportEndpoint {
  readonly path: string
  readonly mart: string
  readonly summary: string
  /** File name stem; the export adds the UTC day it ran and the extension: `OEE_Snapshots_2025-01-15.csv`. */
  readonly fileName: string
  /** `FROM` clause over `mart` objects only. */
  readonly from: string
  /** Output columns in order, each with the SQL expression it reads. */
  readonly columns: ReadonlyArray<{ readonly column: Column; readonly sql: string }>
  /** The expression `date_from`/`date_to` (or `start_date`/`end_date`) bound. */
  readonly time?: string
  readonly params: ReadonlyArray<ParamSpec>
  /** Equality filters: text parameter name → the expression it must equal. */
  readonly equals?: Readonly<Record<string, string>>
  /** Extra conditions from boolean parameters. */
  readonly conditions?: (params: ParsedParams) => ReadonlyArray<string>
  readonly orderBy: string
  readonly defaultFormat: Format
}

const FORMATS: ReadonlyArray<Format> = ["csv", "json", "xlsx"]

const formatParam = (formats: ReadonlyArray<Format> = FORMATS): ParamSpec => ({
  name: "format",
  kind: "format",
  formats,
  description: `Response format: ${formats.join(", ")}.`
})
const windowParams = (fromName: string, toName: string, what: string): ReadonlyArray<ParamSpec> => [
  {
    name: fromName,
    kind: "from",
    description: `First ${what} included: YYYY-MM-DD (from the start of that UTC day) or an ISO 8601 instant (inclusive).`
  },
  {
    name: toName,
    kind: "to",
    description: `Last ${what} included: YYYY-MM-DD (to the end of that UTC day), or an ISO 8601 instant (exclusive), so adjacent windows never overlap.`
  }
]
const headersParam: ParamSpec = {
  name: "include_headers",
  kind: "boolean",
  default: true,
  description: "CSV only: write the header row (default true)."
}
const csvRawParam: ParamSpec = {
  name: "csv_raw",
  kind: "boolean",
  default: false,
  description:
    "CSV only: leave text that starts with = + - @ or a tab as stored (default false: such text gets a leading ' " +
    "so a spreadsheet shows it instead of running it). For BI tools that must read values unchanged."
}
const limitParam: ParamSpec = {
  name: "limit",
  kind: "limit",
  description: "Return at most this many rows, 1 to 100000; without it every row in the window streams."
}
const textParam = (name: string, description: string): ParamSpec => ({ name, kind: "text", description })

/** A published object of a mart, as the read-only role reads it: `mart_<mart>.<name>`. */
const m = (mart: string, name: string) => `${quoteIdent(publishedSchema({ name: mart }))}.${quoteIdent(name)}`
const col = (column: Column, sql: string) => ({ column, sql })

const warehouseExport = (
  path: string,
  table: string,
  summary: string,
  fileName: string,
  columns: ReadonlyArray<Column>,
  time: string,
  orderBy: string
): ExportEndpoint => ({
  path,
  mart: "warehouse",
  summary,
  fileName,
  from: `${m("warehouse", table)} t`,
  columns: columns.map((column) => col(column, `t.${quoteIdent(column.name)}`)),
  time: `t.${quoteIdent(time)}`,
  params: [...windowParams("start_date", "end_date", "day"), formatParam(), headersParam, csvRawParam, limitParam],
  orderBy,
  defaultFormat: "json"
})

/** Seed 000: the stats page's Power BI endpoints, JSON by default. */
const warehouseExports: ReadonlyArray<ExportEndpoint> = [
  warehouseExport(
    "/api/powerbi/daily-stats",
    "daily_stats",
    "Daily counts: devices booked in, erased and QA-checked per UTC day.",
    "Warehouse_Daily_Stats",
    [date("date"), integer("booked_in"), integer("erased"), integer("qa")],
    "date",
    "t.date"
  ),
  warehouseExport(
    "/api/powerbi/erasure-events",
    "erasures",
    "Every erasure event: success, failure or connected, with device type, engineer, duration, error and job.",
    "Warehouse_Erasure_Events",
    [
      timestamp("timestamp"),
      date("date"),
      text("month"),
      text("event"),
      text("device_type"),
      text("initials"),
      numeric("duration_seconds", true),
      text("error_type", true),
      text("job_id")
    ],
    "timestamp",
    "t.timestamp, t.event_id"
  ),
  warehouseExport(
    "/api/powerbi/engineer-stats",
    "engineer_stats",
    "Successful erasures per engineer (initials) per UTC day.",
    "Warehouse_Engineer_Stats",
    [date("date"), text("initials"), integer("count")],
    "date",
    "t.date, t.initials"
  )
]

const oeeFilters = ["machine_id", "line_id", "shift_id"]

/** Seed 001: the OEE exports for BI tools. */
const oeeExports: ReadonlyArray<ExportEndpoint> = [
  {
    path: "/api/oee/export/snapshots",
    mart: "oee",
    summary: "OEE snapshots (96 a day per machine) with the machine's name.",
    fileName: "OEE_Snapshots",
    from: `${m("oee", "oee_snapshots")} s LEFT JOIN ${m("oee", "machines")} mc ON mc.id = s.machine_id`,
    columns: [
      col(timestamp("snapshot_time"), "s.snapshot_time"),
      col(text("machine_id"), "s.machine_id"),
      col(text("machine_name", true), "mc.name"),
      col(numeric("oee_pct"), "s.oee_pct"),
      col(numeric("availability_pct"), "s.availability_pct"),
      col(numeric("performance_pct"), "s.performance_pct"),
      col(numeric("quality_pct"), "s.quality_pct"),
      col(text("shift_id", true), "s.shift_id")
    ],
    time: "s.snapshot_time",
    params: [
      formatParam(),
      ...windowParams("date_from", "date_to", "day"),
      textParam("machine_id", "Only this machine."),
      textParam("line_id", "Only this production line."),
      textParam("shift_id", "Only this shift."),
      headersParam,
      csvRawParam,
      limitParam
    ],
    equals: Object.fromEntries(oeeFilters.map((name) => [name, `s.${name}`])),
    orderBy: "s.snapshot_time, s.machine_id, s.id",
    defaultFormat: "json"
  },
  {
    path: "/api/oee/export/downtime",
    mart: "oee",
    summary: "Downtime events (stops), planned and unplanned, with the machine's name.",
    fileName: "OEE_Downtime",
    from: `${m("oee", "oee_downtime_events")} d LEFT JOIN ${m("oee", "machines")} mc ON mc.id = d.machine_id`,
    columns: [
      col(text("downtime_id"), "d.id"),
      col(text("machine_id"), "d.machine_id"),
      col(text("machine_name", true), "mc.name"),
      col(text("line_id", true), "d.line_id"),
      col(timestamp("start_time"), "d.start_time"),
      col(timestamp("end_time", true), "d.end_time"),
      col(numeric("duration_minutes"), "d.duration_minutes"),
      col(boolean("is_planned"), "d.is_planned"),
      col(text("reason", true), "d.reason"),
      col(text("category", true), "d.category"),
      col(boolean("resolved", true), "d.resolved")
    ],
    time: "d.start_time",
    params: [
      formatParam(),
      ...windowParams("date_from", "date_to", "day"),
      {
        name: "include_resolved",
        kind: "boolean",
        default: true,
        description: "Include stops marked resolved (default true); false returns only open ones."
      },
      textParam("machine_id", "Only this machine."),
      textParam("line_id", "Only this production line."),
      headersParam,
      csvRawParam,
      limitParam
    ],
    equals: { machine_id: "d.machine_id", line_id: "d.line_id" },
    conditions: (params) => (params.booleans.include_resolved === false ? ["d.resolved IS NOT TRUE"] : []),
    orderBy: "d.start_time, d.id",
    defaultFormat: "json"
  },
  {
    path: "/api/oee/export/shift-reports",
    mart: "oee",
    summary: "Shift reports with the shift's name.",
    fileName: "OEE_Shift_Reports",
    from: `${m("oee", "shift_reports")} r LEFT JOIN ${m("oee", "shifts")} sh ON sh.id = r.shift_id`,
    columns: [
      col(text("report_id"), "r.id"),
      col(date("report_date"), "r.report_date"),
      col(text("shift_id"), "r.shift_id"),
      col(text("shift_name", true), "sh.name"),
      col(text("line_id", true), "r.line_id"),
      col(text("machine_id", true), "r.machine_id"),
      col(text("status"), "r.status"),
      col(numeric("oee_pct", true), "r.oee_pct"),
      col(integer("total_pieces", true), "r.total_pieces"),
      col(integer("good_pieces", true), "r.good_pieces"),
      col(integer("rejected_pieces", true), "r.rejected_pieces"),
      col(numeric("downtime_minutes", true), "r.downtime_minutes"),
      col(text("notes", true), "r.notes")
    ],
    time: "r.report_date",
    params: [
      formatParam(),
      ...windowParams("date_from", "date_to", "day"),
      textParam("status", "Only reports with this status."),
      textParam("shift_id", "Only this shift."),
      textParam("line_id", "Only this production line."),
      headersParam,
      csvRawParam,
      limitParam
    ],
    equals: { status: "r.status", shift_id: "r.shift_id", line_id: "r.line_id" },
    orderBy: "r.report_date, r.id",
    defaultFormat: "json"
  },
  {
    path: "/api/oee/export/data-mart",
    mart: "oee",
    summary: "The denormalised OEE data mart: each snapshot with machine, line, shift, work order, product and the downtime in its window.",
    fileName: "OEE_Data_Mart",
    from: `${m("oee", "oee_data_mart")} v`,
    columns: (martFeeds.oee?.find((feed) => feed.name === "oee_data_mart")?.columns ?? []).map((column) =>
      col(column, `v.${quoteIdent(column.name)}`)
    ),
    time: "v.snapshot_time",
    params: [
      formatParam(),
      ...windowParams("date_from", "date_to", "day"),
      ...oeeFilters.map((name) => textParam(name, `Only this ${name.replace("_id", "")}.`)),
      headersParam,
      csvRawParam,
      limitParam
    ],
    equals: Object.fromEntries(oeeFilters.map((name) => [name, `v.${name}`])),
    orderBy: "v.snapshot_time, v.machine_id, v.snapshot_id",
    defaultFormat: "json"
  }
]

const ACRONYMS = new Set(["crm", "oee", "qa"])
const titleCase = (words: string) =>
  words
    .split("_")
    .map((word) => (ACRONYMS.has(word) ? word.toUpperCase() : `${word.charAt(0).toUpperCase()}${word.slice(1)}`))
    .join("_")

/** Every published object of every mart as `/api/<mart>/export/<name-with-dashes>`: all columns, by its key. */
export const genericExport = (feed: Feed): ExportEndpoint => ({
  path: `/api/${feed.mart}/export/${feed.name.replaceAll("_", "-")}`,
  mart: feed.mart,
  summary: `Every column of ${publishedSchema({ name: feed.mart })}.${feed.name}${feed.time === undefined ? "" : `, by ${feed.time.name}`}.`,
  fileName: titleCase(`${feed.mart}_${feed.name}`),
  from: `${m(feed.mart, feed.name)} t`,
  columns: feed.columns.map((column) => col(column, `t.${quoteIdent(column.name)}`)),
  ...(feed.time === undefined ? {} : { time: `t.${quoteIdent(feed.time.name)}` }),
  params: [
    formatParam(),
    ...(feed.time === undefined ? [] : windowParams("date_from", "date_to", feed.time.type === "date" ? "day" : "day or instant")),
    headersParam,
    csvRawParam,
    limitParam
  ],
  orderBy: feed.key.map((name) => `t.${quoteIdent(name)}`).join(", "),
  defaultFormat: "json"
})

const seedExports = [...warehouseExports, ...oeeExports]

/** The seeds' exports, then a generic one for every mart object whose path a seed export does not already take (`/api/oee/export/shift-reports`). */
export const exportEndpoints: ReadonlyArray<ExportEndpoint> = [
  ...seedExports,
  ...Object.values(martFeeds)
    .flat()
    .map(genericExport)
    .filter((generic) => !seedExports.some((seed) => seed.path === generic.path))
]

/** Binds a reader's value into a statement: a placeholder, or for COPY (which takes no parameters) a literal. */
type Bind = (value: Parameter, cast: string) => string

const selectOf = (
  endpoint: ExportEndpoint,
  params: ParsedParams,
  bind: Bind,
  cell: (column: Column, expression: string) => string
): string => {
  const where: Array<string> = []
  if (endpoint.time !== undefined && params.window.from !== undefined)
    where.push(`${endpoint.time} >= ${bind(params.window.from, "timestamptz")}`)
  if (endpoint.time !== undefined && params.window.to !== undefined)
    where.push(`${endpoint.time} < ${bind(params.window.to, "timestamptz")}`)
  for (const [name, expression] of Object.entries(endpoint.equals ?? {})) {
    const value = params.texts[name]
    if (value !== undefined) where.push(`${expression} = ${bind(value, "text")}`)
  }
  where.push(...(endpoint.conditions?.(params) ?? []))
  return `SELECT ${endpoint.columns.map(({ column, sql }) => `${cell(column, sql)} AS ${quoteIdent(column.name)}`).join(", ")} FROM ${endpoint.from}${
    where.length === 0 ? "" : ` WHERE ${where.join(" AND ")}`
  } ORDER BY ${endpoint.orderBy}${params.limit === undefined ? "" : ` LIMIT ${bind(params.limit, "bigint")}`}`
}

/** The statement of one export call; every value the reader gave is a bound parameter. */
export const exportQuery = (endpoint: ExportEndpoint, params: ParsedParams): RowQuery => {
  const { params: values, bind } = binder()
  return { text: selectOf(endpoint, params, bind, cellSql), params: values, columns: endpoint.columns.map(({ column }) => column) }
}

/**
 * A reader's value as a literal, for COPY: an escape string literal (`E'…'`), whose quoting holds
 * whatever `standard_conforming_strings` is, cast to its type. A NUL, which Postgres text cannot
 * hold and which would end the statement's text, is refused naming the parameter.
 */
const literalFor =
  (names: ReadonlyMap<Parameter, string>): Bind =>
  (value, cast) => {
    const text = String(value)
    if (text.includes("\u0000"))
      throw new BadParameter({ parameter: names.get(value) ?? "query", message: "a value may not contain a NUL character (%00)" })
    return `E'${text.replaceAll("\\", "\\\\").replaceAll("'", "''")}'::${cast}`
  }

/**
 * `COPY (the export's query) TO STDOUT` for a `csv` export in CSV format with every field as the
 * CSV export writes it ({@link csvCellSql}), else in text format with the cells of {@link cellSql}
 * for the JSON and XLSX encoders to read; the reader's values are literals (COPY takes no
 * parameters), quoted so that none can end its string.
 */
export const exportCopy = (endpoint: ExportEndpoint, params: ParsedParams): string => {
  const names = new Map<Parameter, string>(Object.entries(params.texts).map(([name, value]) => [value as Parameter, name]))
  const raw = params.booleans.csv_raw === true
  const select =
    params.format === "csv"
      ? selectOf(endpoint, params, literalFor(names), (column, expression) => csvCellSql(column, expression, raw))
      : selectOf(endpoint, params, literalFor(names), (column, expression) =>
          column.type === "text" ? `(${expression})::text` : cellSql(column, expression)
        )
  return `COPY (${select}) TO STDOUT WITH (FORMAT ${params.format === "csv" ? "csv" : "text"})`
}
