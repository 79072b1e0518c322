/**
 * Mart tables declared as data: the DDL, the bulk writer and the per-batch merge all derive
 * from one {@link TableSpec}, so a table's shape is written once.
 */

export type ColumnType = "text" | "integer" | "bigint" | "numeric" | "date" | "timestamptz" | "boolean"

export interface Column {
  readonly name: string
  readonly type: ColumnType
  readonly nullable?: boolean
}

/**
 * How a row meets an existing row with the same key: `insert` keeps the first, `upsert` takes the
 * last in log order, `latest` the one with the greatest `orderBy` value (event time, whatever the
 * arrival order), `increment` adds the numeric columns (counters fed exactly once by the dedupe ledger).
 */
/** Column declarations, nullable when `nullable` is true. */
export const text = (name: string, nullable = false): Column => ({ name, type: "text", nullable })
export const integer = (name: string, nullable = false): Column => ({ name, type: "integer", nullable })
export const numeric = (name: string, nullable = false): Column => ({ name, type: "numeric", nullable })
export const date = (name: string): Column => ({ name, type: "date" })
export const timestamp = (name: string, nullable = false): Column => ({ name, type: "timestamptz", nullable })
export const boolean = (name: string, nullable = false): Column => ({ name, type: "boolean", nullable })

export type Merge = "insert" | "upsert" | "latest" | "increment"

export interface TableSpec {
  readonly name: string
  readonly columns: ReadonlyArray<Column>
  readonly key: ReadonlyArray<string>
  readonly merge: Merge
  /** With `latest`: the column that orders rows, e.g. an event time. */
  readonly orderBy?: string
  /** Extra indexes, as column lists, for date-range reads. */
  readonly indexes?: ReadonlyArray<ReadonlyArray<string>>
}

export type Value = string | number | boolean | null
export type Row = Readonly<Record<string, Value>>

const quote = (identifier: string): string => `"${identifier.replaceAll('"', '""')}"`

export const qualified = (schema: string, table: string): string => `${quote(schema)}.${quote(table)}`

/** `CREATE TABLE` and its indexes in `schema`. */
export const tableDdl = (schema: string, spec: TableSpec): ReadonlyArray<string> => [
  `CREATE TABLE ${qualified(schema, spec.name)} (${spec.columns
    .map((column) => `${quote(column.name)} ${column.type}${column.nullable === true ? "" : " NOT NULL"}`)
    .join(", ")}, PRIMARY KEY (${spec.key.map(quote).join(", ")}))`,
  ...(spec.indexes ?? []).map((columns, i) => `CREATE INDEX ${quote(`${spec.name}_ix${i}`)} ON ${qualified(schema, spec.name)} (${columns.map(quote).join(", ")})`)
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
export const bulkWrite = (schema: string, spec: TableSpec, rows: ReadonlyArray<Row>): { text: string; columns: ReadonlyArray<ReadonlyArray<string | null>> } => {
  const names = spec.columns.map((column) => column.name)
  const others = names.filter((name) => !spec.key.includes(name))
  const target = qualified(schema, spec.name)
  const replace = `DO UPDATE SET ${others.map((name) => `${quote(name)} = EXCLUDED.${quote(name)}`).join(", ")}`
  const conflict =
    spec.merge === "insert" || others.length === 0
      ? "DO NOTHING"
      : spec.merge === "upsert"
        ? replace
        : spec.merge === "latest"
          ? `${replace} WHERE EXCLUDED.${quote(spec.orderBy as string)} >= ${target}.${quote(spec.orderBy as string)}`
          : `DO UPDATE SET ${others.map((name) => `${quote(name)} = ${target}.${quote(name)} + EXCLUDED.${quote(name)}`).join(", ")}`
  const cast = (column: Column, i: number) => `u.c${i}::${column.type}`
  const select =
    spec.merge === "increment"
      ? `SELECT ${spec.columns.map((column, i) => (spec.key.includes(column.name) ? cast(column, i) : `sum(${cast(column, i)})::${column.type}`)).join(", ")}`
      : `SELECT ${spec.columns.map(cast).join(", ")}`
  const groupBy = spec.merge === "increment" ? ` GROUP BY ${spec.columns.flatMap((column, i) => (spec.key.includes(column.name) ? [cast(column, i)] : [])).join(", ")}` : ""
  const text = `INSERT INTO ${target} (${names.map(quote).join(", ")}) ${select} FROM unnest(${names.map((_, i) => `$${i + 1}::text[]`).join(", ")}) AS u(${names
    .map((_, i) => `c${i}`)
    .join(", ")})${groupBy} ON CONFLICT (${spec.key.map(quote).join(", ")}) ${conflict}`
  const columns = names.map((name) => rows.map((row) => (row[name] === null || row[name] === undefined ? null : String(row[name]))))
  return { text, columns }
}
