import { qualified } from "../../platform/sql.ts"
import { selectList } from "../statements.ts"
import { type DerivedColumn, integer, type MartSet, type TableSpec, text, timestamp } from "../table.ts"

/**
 * The report registry (seed 003) as marts. Every change is kept: a page list or a filter sheet is
 * written whole under the id of the event that set it (`set_id`), and the report's current set is
 * the last one in log order. The published views show the current registry in the seed's shape:
 * reports (with `page_names`), pages and filters; the tables keep the history.
 */
export const reportsTables: ReadonlyArray<TableSpec> = [
  {
    name: "report_registrations",
    columns: [
      text("report_id"),
      text("title"),
      text("engine"),
      text("workspace_id", true),
      text("powerbi_report_id", true),
      text("embed_url", true),
      text("mart", true),
      timestamp("registered_at")
    ],
    key: ["report_id"],
    merge: "upsert"
  },
  {
    name: "report_page_sets",
    columns: [text("report_id"), text("set_id"), timestamp("set_at")],
    key: ["report_id"],
    merge: "upsert"
  },
  {
    name: "report_page_history",
    columns: [text("set_id"), integer("position"), text("report_id"), text("name"), text("display_name")],
    key: ["set_id", "position"],
    merge: "insert"
  },
  {
    name: "report_filter_sets",
    columns: [text("report_id"), text("set_id"), text("file_name"), timestamp("imported_at")],
    key: ["report_id"],
    merge: "upsert"
  },
  {
    name: "report_filter_history",
    columns: [
      text("set_id"),
      integer("position"),
      text("report_id"),
      text("filter_label"),
      text("column_name"),
      // JSON: an array of strings, numbers and booleans, and one of them or null.
      text("allowed_values"),
      text("default_value")
    ],
    key: ["set_id", "position"],
    merge: "insert"
  }
]

const reportColumns: ReadonlyArray<DerivedColumn> = [
  [text("report_id"), "r.report_id"],
  [text("title"), "r.title"],
  [text("engine"), "r.engine"],
  [text("workspace_id", true), "r.workspace_id"],
  [text("powerbi_report_id", true), "r.powerbi_report_id"],
  [text("embed_url", true), "r.embed_url"],
  [text("mart", true), "r.mart"],
  [text("page_names"), "coalesce((SELECT json_agg(p.name ORDER BY p.position)::text FROM pages p WHERE p.report_id = r.report_id), '[]')"],
  [timestamp("registered_at"), "r.registered_at"]
]

const pageColumns: ReadonlyArray<DerivedColumn> = [
  [text("report_id"), "h.report_id"],
  [integer("position"), "h.position"],
  [text("name"), "h.name"],
  [text("display_name"), "h.display_name"]
]

const filterColumns: ReadonlyArray<DerivedColumn> = [
  [text("report_id"), "h.report_id"],
  [integer("position"), "h.position"],
  [text("filter_label"), "h.filter_label"],
  [text("column_name"), "h.column_name"],
  [text("allowed_values"), "h.allowed_values"],
  [text("default_value"), "h.default_value"],
  [text("file_name"), "s.file_name"],
  [timestamp("imported_at"), "s.imported_at"]
]

const columnsOf = (derived: ReadonlyArray<DerivedColumn>) => derived.map(([column]) => column)

export const reportsMarts: MartSet = {
  name: "reports",
  tables: reportsTables,
  views: [
    { name: "reports", columns: columnsOf(reportColumns), key: ["report_id"] },
    { name: "pages", columns: columnsOf(pageColumns), key: ["report_id", "position"] },
    { name: "filters", columns: columnsOf(filterColumns), key: ["report_id", "position"] }
  ],
  extraSql: (schema) => [
    `CREATE VIEW ${qualified(schema, "pages")} AS
       SELECT ${selectList(pageColumns)}
       FROM ${qualified(schema, "report_page_sets")} s JOIN ${qualified(schema, "report_page_history")} h USING (set_id)`,
    `CREATE VIEW ${qualified(schema, "filters")} AS
       SELECT ${selectList(filterColumns)}
       FROM ${qualified(schema, "report_filter_sets")} s JOIN ${qualified(schema, "report_filter_history")} h USING (set_id)`,
    `CREATE VIEW ${qualified(schema, "reports")} AS
       WITH pages AS (SELECT * FROM ${qualified(schema, "pages")})
       SELECT ${selectList(reportColumns)}
       FROM ${qualified(schema, "report_registrations")} r`
  ],
  published: ["reports", "pages", "filters", "report_filter_history", "report_page_history"]
}
