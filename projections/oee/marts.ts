import { qualified, quoteIdent } from "../../platform/sql.ts"
import { dropIndexDdl, indexDdl, selectList, tableDdl } from "../statements.ts"
import { boolean, date, type DerivedColumn, integer, type MartSet, numeric, type TableSpec, text, timestamp } from "../table.ts"

/** Minutes each snapshot covers: the seed's 96 snapshots a day. */
export const SNAPSHOT_MINUTES = 15

/** Seed 001's OEE tables and masters, keyed by their ids. */
export const oeeTables: ReadonlyArray<TableSpec> = [
  {
    name: "oee_snapshots",
    columns: [
      text("id"),
      timestamp("snapshot_time"),
      text("org_id", true),
      text("machine_id"),
      text("line_id", true),
      text("shift_id", true),
      text("work_order_id", true),
      numeric("oee_pct"),
      numeric("availability_pct"),
      numeric("performance_pct"),
      numeric("quality_pct"),
      integer("total_pieces"),
      integer("good_pieces"),
      integer("rejected_pieces"),
      numeric("planned_production_time"),
      numeric("actual_production_time")
    ],
    key: ["id"],
    merge: "upsert",
    // work_order_id: the data mart finds the snapshots of a new or changed work order (or product) without a scan.
    indexes: [["snapshot_time"], ["machine_id", "snapshot_time"], ["work_order_id"]]
  },
  {
    name: "oee_downtime_events",
    columns: [
      text("id"),
      text("machine_id"),
      text("line_id", true),
      timestamp("start_time"),
      timestamp("end_time", true),
      numeric("duration_minutes"),
      boolean("is_planned"),
      text("reason", true),
      text("category", true),
      boolean("resolved", true)
    ],
    key: ["id"],
    merge: "upsert",
    indexes: [["machine_id", "start_time"], ["start_time"]]
  },
  {
    name: "shift_reports",
    columns: [
      text("id"),
      text("shift_id"),
      text("line_id", true),
      text("machine_id", true),
      date("report_date"),
      text("status"),
      numeric("oee_pct", true),
      integer("total_pieces", true),
      integer("good_pieces", true),
      integer("rejected_pieces", true),
      numeric("downtime_minutes", true),
      text("notes", true)
    ],
    key: ["id"],
    merge: "upsert",
    indexes: [["report_date"]]
  },
  { name: "machines", columns: [text("id"), text("name"), text("code", true), text("line_id", true)], key: ["id"], merge: "upsert" },
  { name: "production_lines", columns: [text("id"), text("name")], key: ["id"], merge: "upsert" },
  { name: "shifts", columns: [text("id"), text("name"), text("start_time", true), text("end_time", true)], key: ["id"], merge: "upsert" },
  {
    name: "work_orders",
    columns: [text("id"), text("wo_number"), text("product_id", true), text("status", true)],
    key: ["id"],
    merge: "upsert"
  },
  { name: "products", columns: [text("id"), text("name"), text("sku", true)], key: ["id"], merge: "upsert" }
]

const SNAPSHOTS = "oee_snapshots"
const DOWNTIME = "oee_downtime_events"
const DATA_MART = "oee_data_mart"

const end = `coalesce(de.end_time, de.start_time + de.duration_minutes * interval '1 minute')`
const window = `interval '${SNAPSHOT_MINUTES} minutes'`
const overlap = `greatest(0, extract(epoch FROM least(${end}, s.snapshot_time) - greatest(de.start_time, s.snapshot_time - ${window})) / 60)`
const downtime = (total: string) => `round(least(${SNAPSHOT_MINUTES}, coalesce(dt.${total}, 0)), 3)`

/** The masters a snapshot is joined to by id: each through a column of the snapshot, the product through its work order. */
const masters: ReadonlyArray<{ readonly alias: string; readonly table: string; readonly via: string }> = [
  { alias: "m", table: "machines", via: "s.machine_id" },
  { alias: "l", table: "production_lines", via: "s.line_id" },
  { alias: "sh", table: "shifts", via: "s.shift_id" },
  { alias: "wo", table: "work_orders", via: "s.work_order_id" },
  { alias: "p", table: "products", via: "wo.product_id" }
]

/** The data mart's columns, each declared once with the expression that computes it: the table's shape and every query filling it derive from this. */
export const dataMartColumns: ReadonlyArray<DerivedColumn> = [
  [text("snapshot_id"), "s.id"],
  [timestamp("snapshot_time"), "s.snapshot_time"],
  [text("org_id", true), "s.org_id"],
  [text("machine_id"), "s.machine_id"],
  [text("machine_name", true), "m.name"],
  [text("machine_code", true), "m.code"],
  [text("line_id", true), "s.line_id"],
  [text("line_name", true), "l.name"],
  [text("shift_id", true), "s.shift_id"],
  [text("shift_name", true), "sh.name"],
  [text("work_order_id", true), "s.work_order_id"],
  [text("wo_number", true), "wo.wo_number"],
  [text("product_name", true), "p.name"],
  [numeric("oee_pct"), "s.oee_pct"],
  [numeric("availability_pct"), "s.availability_pct"],
  [numeric("performance_pct"), "s.performance_pct"],
  [numeric("quality_pct"), "s.quality_pct"],
  [integer("total_pieces"), "s.total_pieces"],
  [integer("good_pieces"), "s.good_pieces"],
  [integer("rejected_pieces"), "s.rejected_pieces"],
  [numeric("planned_production_time"), "s.planned_production_time"],
  [numeric("actual_production_time"), "s.actual_production_time"],
  [numeric("downtime_minutes"), downtime("total_downtime")],
  [numeric("planned_downtime_minutes"), downtime("planned_downtime")],
  [numeric("unplanned_downtime_minutes"), downtime("unplanned_downtime")]
]

/**
 * `oee_data_mart` as a table in the generation's schema, a row per snapshot: read by date range in
 * the export's order (time, machine, snapshot) without a sort, or by machine.
 */
const dataMartTable: TableSpec = {
  name: DATA_MART,
  columns: dataMartColumns.map(([column]) => column),
  key: ["snapshot_id"],
  merge: "upsert",
  indexes: [
    ["snapshot_time", "machine_id", "snapshot_id"],
    ["machine_id", "snapshot_time"]
  ]
}

/** The function giving a stop's length as the data mart reads it, indexed so the longest stop is one index read. */
const stopLength = (schema: string) => qualified(schema, "oee_stop_length")

/** The longest stop recorded, as the view computed it: one scan of every stop, once per query. */
const longestScanned = (schema: string) =>
  `(SELECT coalesce(max(${end.replaceAll("de.", "")} - start_time), interval '0') FROM ${qualified(schema, DOWNTIME)})`

/** The same length from the index on {@link stopLength}: a batch's refresh never scans the history of stops. */
const longestIndexed = (schema: string) =>
  `(SELECT coalesce(max(${stopLength(schema)}(start_time, end_time, duration_minutes)), interval '0') FROM ${qualified(schema, DOWNTIME)})`

/**
 * Each snapshot with its machine, line, shift, work order and product, and the planned, unplanned
 * and total downtime minutes that overlap the snapshot's window `[snapshot_time - 15 min, snapshot_time)`
 * — a stop spanning snapshots is split between them; overlapping stops never add up to more than
 * the window. Each snapshot looks back only as far as `longest`, the longest stop recorded, so the
 * index on (machine_id, start_time) reads a stop or two per snapshot, however long the history, and
 * no stop is missed. Minutes are rounded to three decimals (a twentieth of a second). The snapshots
 * are `snapshots`: the table, or the rows a statement just inserted into it.
 */
const dataMartSelect = (schema: string, longest: string, snapshots = qualified(schema, SNAPSHOTS)): string => {
  const t = (name: string) => qualified(schema, name)
  return `SELECT ${selectList(dataMartColumns)}
    FROM ${snapshots} s
    ${masters.map(({ alias, table, via }) => `LEFT JOIN ${t(table)} ${alias} ON ${alias}.id = ${via}`).join("\n    ")}
    LEFT JOIN LATERAL (
      SELECT sum(${overlap}) AS total_downtime,
             sum(CASE WHEN de.is_planned THEN ${overlap} ELSE 0 END) AS planned_downtime,
             sum(CASE WHEN NOT de.is_planned THEN ${overlap} ELSE 0 END) AS unplanned_downtime
      FROM ${t(DOWNTIME)} de
      WHERE de.machine_id = s.machine_id
        AND de.start_time < s.snapshot_time
        AND de.start_time >= s.snapshot_time - ${window} - ${longest}
        AND ${end} > s.snapshot_time - ${window}
    ) dt ON true`
}

/** The query the seed's `oee_data_mart` view ran at every read (the table equals it at every commit). */
export const dataMartQuery = (schema: string): string => dataMartSelect(schema, longestScanned(schema))

/**
 * The whole data mart computed from the base tables in ONE statement, into its empty table: for a
 * bulk load that wrote the base tables with the data mart's triggers disabled
 * (`ALTER TABLE … DISABLE TRIGGER USER` on each of {@link dataMartSources}, enabled again after).
 */
export const dataMartFill = (schema: string): string =>
  `INSERT INTO ${qualified(schema, DATA_MART)} (${dataMartTable.columns.map((column) => quoteIdent(column.name)).join(", ")}) ${dataMartQuery(schema)}`

/**
 * The data mart computed whole after a bulk load, as the load does its own tables: its key and
 * indexes dropped, {@link dataMartFill}, the key and indexes built again, the table analysed.
 */
export const dataMartLoad = (schema: string): ReadonlyArray<string> => {
  const mart = qualified(schema, DATA_MART)
  return [
    ...dropIndexDdl(schema, dataMartTable),
    `ALTER TABLE ${mart} DROP CONSTRAINT ${quoteIdent(`${DATA_MART}_pkey`)}`,
    dataMartFill(schema),
    `ALTER TABLE ${mart} ADD PRIMARY KEY (${dataMartTable.key.map(quoteIdent).join(", ")})`,
    ...indexDdl(schema, dataMartTable),
    `ANALYZE ${mart}`
  ]
}

/** The base tables whose statements refresh the data mart, each through its triggers. */
export const dataMartSources: ReadonlyArray<string> = [SNAPSHOTS, DOWNTIME, ...masters.map((master) => master.table)]

type TriggerEvent = "INSERT" | "UPDATE" | "DELETE"

/**
 * The snapshots (`id`) whose rows `changed` (a base table's changed rows) affects: a snapshot
 * itself; every snapshot of a stop's machine whose window overlaps the stop (the lateral's
 * conditions, turned round for the index on (machine_id, snapshot_time)); every snapshot joined to
 * a master.
 */
const affectedBy = (schema: string, table: string, changed: string): string => {
  const snapshots = qualified(schema, SNAPSHOTS)
  if (table === SNAPSHOTS) return `SELECT id FROM ${changed}`
  if (table === DOWNTIME)
    return `SELECT s.id FROM ${changed} de JOIN ${snapshots} s ON s.machine_id = de.machine_id AND s.snapshot_time > de.start_time AND s.snapshot_time < ${end} + ${window}`
  const master = masters.find((candidate) => candidate.table === table)
  if (master === undefined) throw new Error(`the data mart reads no table ${table}`)
  const through = masters.find((candidate) => master.via.startsWith(`${candidate.alias}.`))
  const hop =
    through === undefined ? "" : ` JOIN ${qualified(schema, through.table)} ${through.alias} ON ${through.alias}.id = ${through.via}`
  return `SELECT s.id FROM ${snapshots} s${hop} WHERE ${master.via} IN (SELECT id FROM ${changed})`
}

/** The columns of `table` the data mart reads (as `alias.column` anywhere in its query): an update that changes none of them changes no row. */
const columnsRead = (schema: string, table: string): ReadonlyArray<string> => {
  const alias = table === SNAPSHOTS ? "s" : table === DOWNTIME ? "de" : masters.find((master) => master.table === table)?.alias
  const spec = oeeTables.find((candidate) => candidate.name === table)
  if (alias === undefined || spec === undefined) throw new Error(`the data mart reads no table ${table}`)
  const query = dataMartSelect(schema, longestIndexed(schema))
  return spec.columns.map((column) => column.name).filter((name) => new RegExp(`(?<![\\w."])${alias}\\.${name}\\b`).test(query))
}

/** The rows `table`'s statement changed, from its transition tables: for an update, the old and new versions that differ in a column the mart reads. */
const changedRows = (schema: string, table: string, event: TriggerEvent): string => {
  if (event === "INSERT") return "SELECT * FROM new_rows"
  if (event === "DELETE") return "SELECT * FROM old_rows"
  const read = columnsRead(schema, table).map(quoteIdent).join(", ")
  return `(SELECT ${read} FROM old_rows EXCEPT ALL SELECT ${read} FROM new_rows) UNION ALL (SELECT ${read} FROM new_rows EXCEPT ALL SELECT ${read} FROM old_rows)`
}

/**
 * Recomputes the data mart's rows of `snapshots` (the snapshot table, filtered by `where`, or the
 * rows a statement just inserted into it) and upserts those that differ.
 */
const upsertRows = (schema: string, snapshots: string, where: string): string => {
  const names = dataMartTable.columns.map((column) => quoteIdent(column.name))
  const others = names.filter((name) => name !== quoteIdent("snapshot_id"))
  return `INSERT INTO ${qualified(schema, DATA_MART)} AS d (${names.join(", ")})
    ${dataMartSelect(schema, longestIndexed(schema), snapshots)}
    ${where}
    ON CONFLICT (snapshot_id) DO UPDATE SET ${others.map((name) => `${name} = EXCLUDED.${name}`).join(", ")}
    WHERE (${others.map((name) => `d.${name}`).join(", ")}) IS DISTINCT FROM (${others.map((name) => `EXCLUDED.${name}`).join(", ")})`
}

/**
 * The body of the trigger function refreshing the data mart after `event` on `table`. New
 * snapshots are recomputed straight from the transition table (every batch does this). Otherwise
 * the affected snapshots' ids are collected first and the rows recomputed by id (deleted when their
 * snapshot is gone): each statement is run with EXECUTE, so it is planned at each call with the
 * rows this statement changed — a cached plan made for one row would serve a 2,000-row batch, one
 * made for a bulk load every batch after it — and with the ids as a value, which the planner
 * counts, where a join's estimate (a stop's snapshots by time range) would have it recompute every
 * snapshot to keep a few.
 */
const refreshBody = (schema: string, table: string, event: TriggerEvent): string => {
  const changes = event === "DELETE" ? "old_rows" : "new_rows"
  if (table === SNAPSHOTS && event === "INSERT")
    return `BEGIN
      IF EXISTS (SELECT FROM new_rows) THEN
        EXECUTE $upsert$${upsertRows(schema, "new_rows", "")}$upsert$;
      END IF;
      RETURN NULL;
    END`
  const remove =
    table === SNAPSHOTS
      ? `EXECUTE $remove$DELETE FROM ${qualified(schema, DATA_MART)} d WHERE d.snapshot_id = ANY($1)
          AND NOT EXISTS (SELECT FROM ${qualified(schema, SNAPSHOTS)} s WHERE s.id = d.snapshot_id)$remove$ USING affected;`
      : ""
  return `DECLARE affected text[];
    BEGIN
      IF EXISTS (SELECT FROM ${changes}) THEN
        EXECUTE $ids$WITH changed AS (${changedRows(schema, table, event)})
          SELECT array_agg(DISTINCT id) FROM (${affectedBy(schema, table, "changed")}) a$ids$ INTO affected;
        IF affected IS NOT NULL THEN
          ${remove}
          EXECUTE $upsert$${upsertRows(schema, qualified(schema, SNAPSHOTS), "WHERE s.id = ANY($1)")}$upsert$ USING affected;
        END IF;
      END IF;
      RETURN NULL;
    END`
}

/** The trigger function and the statement-level trigger that refresh the data mart after each `event` on `table`. */
const refreshTrigger = (schema: string, table: string, event: TriggerEvent): ReadonlyArray<string> => {
  const action = event.toLowerCase()
  const fn = qualified(schema, `${DATA_MART}_after_${action}_on_${table}`)
  const transitions = [
    ...(event === "INSERT" ? [] : ["OLD TABLE AS old_rows"]),
    ...(event === "DELETE" ? [] : ["NEW TABLE AS new_rows"])
  ].join(" ")
  return [
    `CREATE FUNCTION ${fn}() RETURNS trigger LANGUAGE plpgsql AS $refresh$
    ${refreshBody(schema, table, event)}
    $refresh$`,
    `CREATE TRIGGER ${quoteIdent(`${DATA_MART}_${action}`)} AFTER ${event} ON ${qualified(schema, table)}
    REFERENCING ${transitions} FOR EACH STATEMENT EXECUTE FUNCTION ${fn}()`
  ]
}

/**
 * The data mart materialised at write time: its table, and on each base table it reads a trigger
 * per event that recomputes exactly the rows the statement affected, in the statement's
 * transaction — a snapshot upserted; the snapshots a stop overlaps, before and after it moved; the
 * snapshots joined to a renamed master (a work order whose product changed included). Readers get
 * a table, never the join; a batch pays for the rows it changed. Writers of one generation are
 * serialised (a batch holds its registry row), so two refreshes never race on one snapshot. The
 * stop length is immutable in fact (a whole number of microseconds added to a time, no calendar
 * arithmetic), so it can be indexed.
 */
const dataMartDdl = (schema: string): ReadonlyArray<string> => [
  `CREATE FUNCTION ${stopLength(schema)}(start_time timestamptz, end_time timestamptz, duration_minutes numeric) RETURNS interval
    LANGUAGE sql IMMUTABLE PARALLEL SAFE RETURN ${end.replaceAll("de.", "")} - start_time`,
  `CREATE INDEX ${quoteIdent(`${DOWNTIME}_length`)} ON ${qualified(schema, DOWNTIME)} (${stopLength(schema)}(start_time, end_time, duration_minutes))`,
  ...tableDdl(schema, dataMartTable),
  ...dataMartSources.flatMap((table) => (["INSERT", "UPDATE", "DELETE"] as const).flatMap((event) => refreshTrigger(schema, table, event)))
]

/** Seed 001's OEE marts: the tables, and the data mart over them (a table kept by triggers, see {@link dataMartDdl}), all published. */
export const oeeMarts: MartSet = {
  name: "oee",
  tables: oeeTables,
  // The data mart is no table the projection writes rows into: its shape is declared here, and extraSql makes and maintains it.
  views: [{ name: DATA_MART, columns: dataMartTable.columns, key: dataMartTable.key }],
  extraSql: dataMartDdl,
  afterBulkLoad: dataMartLoad,
  published: [...oeeTables.map((table) => table.name), DATA_MART]
}
