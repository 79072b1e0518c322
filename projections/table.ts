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
 * twice: `insert` keeps the first, `upsert` the last, `increment` sums the non-key columns.
 */
export const mergeRows = (spec: TableSpec, rows: ReadonlyArray<Row>): ReadonlyArray<Row> => {
  const merged = new Map<string, Row>()
  for (const row of rows) {
    const key = keyOf(spec, row)
    const existing = merged.get(key)
    if (existing === undefined || spec.merge === "upsert") merged.set(key, row)
    else if (spec.merge === "latest") {
      const column = spec.orderBy as string
      if (String(row[column]) >= String(existing[column])) merged.set(key, row)
    } else if (spec.merge === "increment") {
      const sum: Record<string, Value> = { ...existing }
      for (const column of spec.columns) if (!spec.key.includes(column.name)) sum[column.name] = Number(existing[column.name] ?? 0) + Number(row[column.name] ?? 0)
      merged.set(key, sum)
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
  const text = `INSERT INTO ${target} (${names.map(quote).join(", ")}) SELECT ${spec.columns
    .map((column, i) => `u.c${i}::${column.type}`)
    .join(", ")} FROM unnest(${names.map((_, i) => `$${i + 1}::text[]`).join(", ")}) AS u(${names.map((_, i) => `c${i}`).join(", ")}) ON CONFLICT (${spec.key.map(quote).join(", ")}) ${conflict}`
  const columns = names.map((name) => rows.map((row) => (row[name] === null || row[name] === undefined ? null : String(row[name]))))
  return { text, columns }
}
