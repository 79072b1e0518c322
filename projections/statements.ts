import { qualified, quoteIdent } from "../platform/sql.ts"
import type { Column, DerivedColumn, Row, TableSpec } from "./table.ts"

/** The statements a {@link TableSpec} derives: its DDL, and the fold and bulk write of a batch's rows. */

/** `CREATE TABLE` and its indexes in `schema`. */
export const tableDdl = (schema: string, spec: TableSpec): ReadonlyArray<string> => [
  `CREATE TABLE ${qualified(schema, spec.name)} (${spec.columns
    .map((column) => `${quoteIdent(column.name)} ${column.type}${column.nullable === true ? "" : " NOT NULL"}`)
    .join(", ")}, PRIMARY KEY (${spec.key.map(quoteIdent).join(", ")}))`,
  ...(spec.indexes ?? []).map(
    (columns, i) =>
      `CREATE INDEX ${quoteIdent(`${spec.name}_ix${i}`)} ON ${qualified(schema, spec.name)} (${columns.map(quoteIdent).join(", ")})`
  )
]

const keyOf = (spec: TableSpec, row: Row): string => JSON.stringify(spec.key.map((column) => row[column] ?? null))

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

/** The bulk statement for `rows` (already merged): text arrays unnested and cast, one round trip. */
export const bulkWrite = (
  schema: string,
  spec: TableSpec,
  rows: ReadonlyArray<Row>
): { text: string; columns: ReadonlyArray<ReadonlyArray<string | null>> } => {
  const names = spec.columns.map((column) => column.name)
  const others = names.filter((name) => !spec.key.includes(name))
  const target = qualified(schema, spec.name)
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
    .join(", ")})${groupBy} ON CONFLICT (${spec.key.map(quoteIdent).join(", ")}) ${conflict}`
  const columns = names.map((name) => rows.map((row) => (row[name] === null || row[name] === undefined ? null : String(row[name]))))
  return { text, columns }
}

/** A view's SELECT list from its declared columns: `expression AS "name"`, in order. */
export const selectList = (columns: ReadonlyArray<DerivedColumn>): string =>
  columns.map(([column, expression]) => `${expression} AS ${quoteIdent(column.name)}`).join(", ")
