import { qualified, quoteIdent } from "../platform/sql.ts"
import type { Column, DerivedColumn, Row, TableSpec } from "./table.ts"

/** The statements a {@link TableSpec} derives: its DDL, and the fold and bulk write of a batch's rows. */

/** `CREATE TABLE` and its indexes in `schema`. */
export const tableDdl = (schema: string, spec: TableSpec): ReadonlyArray<string> => [
  `CREATE TABLE ${qualified(schema, spec.name)} (${spec.columns
    .map((column) => `${quoteIdent(column.name)} ${column.type}${column.nullable === true ? "" : " NOT NULL"}`)
    .join(", ")}, PRIMARY KEY (${spec.key.map(quoteIdent).join(", ")}))`,
  ...indexDdl(schema, spec)
]

const indexName = (spec: TableSpec, i: number) => `${spec.name}_ix${i}`

/** The table's secondary indexes: built after a bulk load rather than maintained row by row during it. */
export const indexDdl = (schema: string, spec: TableSpec): ReadonlyArray<string> =>
  (spec.indexes ?? []).map(
    (columns, i) =>
      `CREATE INDEX ${quoteIdent(indexName(spec, i))} ON ${qualified(schema, spec.name)} (${columns.map(quoteIdent).join(", ")})`
  )

/** Drops what {@link indexDdl} builds. */
export const dropIndexDdl = (schema: string, spec: TableSpec): ReadonlyArray<string> =>
  (spec.indexes ?? []).map((_, i) => `DROP INDEX ${qualified(schema, indexName(spec, i))}`)

/** A row's key as one string, the key under which rows of a batch are folded in memory. */
export const keyOf = (spec: TableSpec, row: Row): string => JSON.stringify(spec.key.map((column) => row[column] ?? null))

/**
 * Folds a batch's rows by key the way the database would, so one statement never touches a row
 * twice: `insert` keeps the first, `upsert` the last, `latest` the greatest `orderBy`. `increment`
 * rows are left as they are: {@link bulkWrite} sums them in SQL, in exact `numeric` arithmetic,
 * so the totals never depend on how the log was cut into batches.
 */
export const mergeRows = (spec: TableSpec, rows: ReadonlyArray<Row>): ReadonlyArray<Row> => {
  if (spec.merge === "increment") return rows
  const merged = new Map<string, Row>()
  for (const row of rows) {
    const key = keyOf(spec, row)
    const existing = merged.get(key)
    if (existing === undefined || spec.merge === "upsert") merged.set(key, row)
    else if (spec.merge === "latest") {
      const column = spec.orderBy as string
      if (String(row[column]) >= String(existing[column])) merged.set(key, row)
    }
  }
  return [...merged.values()]
}

/** What a write does with a row whose key the table already holds, as its {@link TableSpec.merge} says. */
const onConflict = (target: string, spec: TableSpec): string => {
  const others = spec.columns.map((column) => column.name).filter((name) => !spec.key.includes(name))
  const replace = `DO UPDATE SET ${others.map((name) => `${quoteIdent(name)} = EXCLUDED.${quoteIdent(name)}`).join(", ")}`
  // A row that would not change is left alone: no dead tuple, and a change feed sees only real changes.
  const changed = `(${others.map((name) => `${target}.${quoteIdent(name)}`).join(", ")}) IS DISTINCT FROM (${others.map((name) => `EXCLUDED.${quoteIdent(name)}`).join(", ")})`
  const conflict =
    spec.merge === "insert" || others.length === 0
      ? "DO NOTHING"
      : spec.merge === "upsert"
        ? `${replace} WHERE ${changed}`
        : spec.merge === "latest"
          ? `${replace} WHERE EXCLUDED.${quoteIdent(spec.orderBy as string)} >= ${target}.${quoteIdent(spec.orderBy as string)} AND ${changed}`
          : `DO UPDATE SET ${others.map((name) => `${quoteIdent(name)} = ${target}.${quoteIdent(name)} + EXCLUDED.${quoteIdent(name)}`).join(", ")}`
  return `ON CONFLICT (${spec.key.map(quoteIdent).join(", ")}) ${conflict}`
}

/** The bulk statement for `rows` (already merged): text arrays unnested and cast, one round trip. */
export const bulkWrite = (
  schema: string,
  spec: TableSpec,
  rows: ReadonlyArray<Row>
): { text: string; columns: ReadonlyArray<ReadonlyArray<string | null>> } => {
  const names = spec.columns.map((column) => column.name)
  const target = qualified(schema, spec.name)
  const cast = (column: Column, i: number) => `u.c${i}::${column.type}`
  const select =
    spec.merge === "increment"
      ? `SELECT ${spec.columns.map((column, i) => (spec.key.includes(column.name) ? cast(column, i) : `sum(${cast(column, i)})::${column.type}`)).join(", ")}`
      : `SELECT ${spec.columns.map(cast).join(", ")}`
  const groupBy =
    spec.merge === "increment"
      ? ` GROUP BY ${spec.columns.flatMap((column, i) => (spec.key.includes(column.name) ? [cast(column, i)] : [])).join(", ")}`
      : ""
  const text = `INSERT INTO ${target} (${names.map(quoteIdent).join(", ")}) ${select} FROM unnest(${names.map((_, i) => `$${i + 1}::text[]`).join(", ")}) AS u(${names
    .map((_, i) => `c${i}`)
    .join(", ")})${groupBy} ${onConflict(target, spec)}`
  const columns = names.map((name) => rows.map((row) => (row[name] === null || row[name] === undefined ? null : String(row[name]))))
  return { text, columns }
}

/**
 * A bulk load (a rebuild's replay) writes each table's rows, unfolded and in log order, into an
 * unlogged staging table with COPY, then folds them into the table in one statement: the same
 * merge as batch after batch of {@link bulkWrite} would give, whatever the batch boundaries.
 */
export const STAGING_ORDER = "__ord"

export const stagingTable = (schema: string, spec: TableSpec): string => qualified(schema, `${spec.name}__load`)

/** The staging table: the table's columns, all nullable, and the rows' order in the log; no key, no index. */
export const stagingDdl = (schema: string, spec: TableSpec): string =>
  `CREATE UNLOGGED TABLE ${stagingTable(schema, spec)} (${spec.columns
    .map((column) => `${quoteIdent(column.name)} ${column.type}`)
    .join(", ")}, ${quoteIdent(STAGING_ORDER)} bigint NOT NULL)`

/** `COPY … FROM STDIN` into the staging table, in the column order of {@link copyRow}. */
export const copyIntoStaging = (schema: string, spec: TableSpec): string =>
  `COPY ${stagingTable(schema, spec)} (${[...spec.columns.map((column) => column.name), STAGING_ORDER].map(quoteIdent).join(", ")}) FROM STDIN`

/** `COPY … FROM STDIN` straight into the table, in its column order (an `insert` table whose first rows are decided before). */
export const copyIntoTable = (schema: string, spec: TableSpec): string =>
  `COPY ${qualified(schema, spec.name)} (${spec.columns.map((column) => quoteIdent(column.name)).join(", ")}) FROM STDIN`

/** A value in COPY's text format: `\N` for null, backslash, tab, newline and carriage return escaped. */
const copyValue = (value: Row[string] | undefined): string => {
  if (value === null || value === undefined) return "\\N"
  const text = String(value)
  return /[\\\t\n\r]/.test(text)
    ? text.replaceAll("\\", "\\\\").replaceAll("\t", "\\t").replaceAll("\n", "\\n").replaceAll("\r", "\\r")
    : text
}

/** One line of COPY's text format. */
export const copyLine = (values: ReadonlyArray<Row[string] | undefined>): string => `${values.map(copyValue).join("\t")}\n`

/** One staging row in COPY's text format, the values as {@link bulkWrite} sends them (`String(value)`), then its place in the log. */
export const copyRow = (spec: TableSpec, row: Row, order: number): string =>
  copyLine([...spec.columns.map((column) => row[column.name]), order])

/**
 * Folds the staging table into the table: `insert` keeps each key's first row in log order,
 * `upsert` its last, `latest` the greatest `orderBy` (the later on a tie), `increment` sums —
 * each meeting a row already there (seed rows) as {@link bulkWrite} would.
 */
export const foldStaged = (schema: string, spec: TableSpec): string => {
  const target = qualified(schema, spec.name)
  const names = spec.columns.map((column) => quoteIdent(column.name))
  const keys = spec.key.map(quoteIdent)
  const order = quoteIdent(STAGING_ORDER)
  const select =
    spec.merge === "increment"
      ? `SELECT ${spec.columns.map((column) => (spec.key.includes(column.name) ? quoteIdent(column.name) : `sum(${quoteIdent(column.name)})::${column.type}`)).join(", ")} FROM ${stagingTable(schema, spec)} GROUP BY ${keys.join(", ")}`
      : `SELECT DISTINCT ON (${keys.join(", ")}) ${names.join(", ")} FROM ${stagingTable(schema, spec)} ORDER BY ${keys.join(", ")}, ${
          spec.merge === "insert"
            ? `${order}`
            : spec.merge === "upsert"
              ? `${order} DESC`
              : `${quoteIdent(spec.orderBy as string)} DESC NULLS LAST, ${order} DESC`
        }`
  return `INSERT INTO ${target} (${names.join(", ")}) ${select} ${onConflict(target, spec)}`
}

/** A view's SELECT list from its declared columns: `expression AS "name"`, in order. */
export const selectList = (columns: ReadonlyArray<DerivedColumn>): string =>
  columns.map(([column, expression]) => `${expression} AS ${quoteIdent(column.name)}`).join(", ")
