/**
 * Mart tables and views declared as data: the DDL, the bulk writer, the per-batch merge and what
 * the read side publishes all derive from them ({@link ./statements.ts}, {@link ./catalogue.ts}),
 * so a table's shape is written once.
 */

export type ColumnType = "text" | "integer" | "bigint" | "numeric" | "date" | "timestamptz" | "boolean"

export interface Column {
  readonly name: string
  readonly type: ColumnType
  readonly nullable?: boolean
}

/** Column declarations, nullable when `nullable` is true. */
export const text = (name: string, nullable = false): Column => ({ name, type: "text", nullable })
export const integer = (name: string, nullable = false): Column => ({ name, type: "integer", nullable })
export const numeric = (name: string, nullable = false): Column => ({ name, type: "numeric", nullable })
export const date = (name: string): Column => ({ name, type: "date" })
export const timestamp = (name: string, nullable = false): Column => ({ name, type: "timestamptz", nullable })
export const boolean = (name: string, nullable = false): Column => ({ name, type: "boolean", nullable })

/**
 * How a row meets an existing row with the same key: `insert` keeps the first, `upsert` takes the
 * last in log order, `latest` the one with the greatest `orderBy` value (event time, whatever the
 * arrival order), `increment` adds the numeric columns (counters fed exactly once by the dedupe ledger).
 */
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
  /** The column naming the store a row belongs to: readers see the row only when the store is in their row scope ({@link RowScope}). */
  readonly rowScope?: string
}

/**
 * Row-level security by store and region (Postgres policies on the generation's tables): the
 * table of stores, its store id and its region. A reader's scope (an API key's, a BI login's) is
 * stores and regions; a region stands for the stores this table places in it.
 */
export interface RowScope {
  readonly stores: string
  readonly store: string
  readonly region: string
}

export type Value = string | number | boolean | null
export type Row = Readonly<Record<string, Value>>

/** A view's column with the SQL expression that computes it: the view's shape and its SELECT list derive from one list of these. */
export type DerivedColumn = readonly [Column, string]

/** A view's columns, in order, and the columns that identify a row (its paging key). */
export interface ViewSpec {
  readonly name: string
  readonly columns: ReadonlyArray<Column>
  readonly key: ReadonlyArray<string>
}

/** The tables and views one projection owns, declared as data: what it writes and what readers see. */
export interface MartSet {
  /** The projection's name; its marts are published as `mart_<name>.<object>`. */
  readonly name: string
  readonly tables: ReadonlyArray<TableSpec>
  /** The shape of each object {@link extraSql} makes that is published (a view, or a table its triggers maintain). */
  readonly views?: ReadonlyArray<ViewSpec>
  /** Views and seed rows created with the tables, in the generation's schema. */
  readonly extraSql?: (schema: string) => ReadonlyArray<string>
  /**
   * Statements that compute whole what {@link extraSql} keeps up to date with triggers on the tables
   * (a materialised data mart): a bulk load writes the tables with their user triggers disabled,
   * then runs these once, after the indexes are built.
   */
  readonly afterBulkLoad?: (schema: string) => ReadonlyArray<string>
  /** Set when readers see this mart's rows by store ({@link TableSpec.rowScope}). */
  readonly rowScope?: RowScope
  /** Reader-facing objects: table and view names published as `mart_<name>.<object>`. */
  readonly published: ReadonlyArray<string>
}
