import type { Column, ColumnType, MartSet, TableSpec } from "../projections/table.ts"
import { isColumnName, isTableName, LIMITS, type PushType, valueProblem } from "./rules.ts"

/**
 * Push datasets as code: which mart tables of a projection are pushed to Power BI, under which
 * names, with which relationships and measures. Columns are never re-typed: each push table takes
 * its columns from the mart table it mirrors ({@link TableSpec}), plus {@link PUSH_SEQ}, the
 * pusher's own bookkeeping column (docs/powerbi.md, "Exactly once").
 */

/** One mart table pushed as a Power BI table named `as`. Listed dimensions first: rows are pushed in this order. */
export interface PushedTable {
  readonly from: string
  readonly as: string
  readonly measures?: ReadonlyArray<{ readonly name: string; readonly expression: string; readonly formatString?: string }>
}

export interface PushRelationship {
  /** The many side (the table holding the foreign key) and its column, by the mart's column name. */
  readonly fromTable: string
  readonly fromColumn: string
  /** The one side (the dimension) and its key column. */
  readonly toTable: string
  readonly toColumn: string
}

export interface PushDatasetSpec {
  /** The projection whose marts are pushed. */
  readonly marts: MartSet
  /** The dataset's name in Power BI, without its version. */
  readonly name: string
  /**
   * Bumped when a table is added or removed: Power BI cannot add a table to an existing push dataset
   * (powerbi.md §1.7), so a new version is a new dataset, `<name> v<version>`, loaded from the marts.
   */
  readonly version: number
  /** Pushed only when POWERBI_PUSH names it; the others are pushed by default. */
  readonly optIn?: boolean
  readonly tables: ReadonlyArray<PushedTable>
  readonly relationships: ReadonlyArray<PushRelationship>
}

/** The column every pushed row carries: the change's sequence number, read back to resolve a crash (docs/powerbi.md). */
export const PUSH_SEQ = "push_seq"

/** The Power BI type a mart column is pushed as. */
export const pushTypeFor = (type: ColumnType): PushType =>
  type === "text"
    ? "String"
    : type === "integer" || type === "bigint"
      ? "Int64"
      : type === "numeric"
        ? "Double"
        : type === "boolean"
          ? "Boolean"
          : "DateTime"

export const datasetName = (spec: PushDatasetSpec): string => `${spec.name} v${spec.version}`

/** The mart table a pushed table mirrors. */
export const martTableOf = (spec: PushDatasetSpec, table: PushedTable): TableSpec => {
  const found = spec.marts.tables.find((candidate) => candidate.name === table.from)
  if (found === undefined) throw new Error(`push dataset ${spec.name}: the ${spec.marts.name} marts have no table ${table.from}`)
  return found
}

export interface PushColumnDefinition {
  readonly name: string
  readonly dataType: PushType
  readonly isHidden?: boolean
}

export interface PushTableDefinition {
  readonly name: string
  readonly columns: ReadonlyArray<PushColumnDefinition>
  readonly measures: ReadonlyArray<{ readonly name: string; readonly expression: string; readonly formatString?: string }>
}

/** The body of Power BI's `PostDatasetInGroup` for `spec`: tables, columns, relationships and measures, derived from the marts. */
export const datasetDefinition = (spec: PushDatasetSpec) => {
  const tables: ReadonlyArray<PushTableDefinition> = spec.tables.map((table) => ({
    name: table.as,
    columns: [
      ...martTableOf(spec, table).columns.map((column: Column) => ({ name: column.name, dataType: pushTypeFor(column.type) })),
      { name: PUSH_SEQ, dataType: "Int64" as const, isHidden: true }
    ],
    measures: table.measures ?? []
  }))
  const nameOf = (from: string) => spec.tables.find((table) => table.from === from)?.as ?? from
  return {
    name: datasetName(spec),
    defaultMode: "Push" as const,
    tables,
    relationships: spec.relationships.map((relationship) => ({
      name: `${nameOf(relationship.fromTable)}_${relationship.fromColumn}_${nameOf(relationship.toTable)}`,
      fromTable: nameOf(relationship.fromTable),
      fromColumn: relationship.fromColumn,
      toTable: nameOf(relationship.toTable),
      toColumn: relationship.toColumn,
      crossFilteringBehavior: "OneDirection" as const
    }))
  }
}

/**
 * Everything Power BI would refuse in `spec`, checked before any call so that nothing is half
 * provisioned: names by the API's patterns, the 75 tables, columns and relationships, relationships
 * over declared columns. Each problem names the table or column and the limit.
 */
export const specProblems = (spec: PushDatasetSpec): ReadonlyArray<string> => {
  const problems: Array<string> = []
  const where = `push dataset ${datasetName(spec)}`
  if (!isTableName(datasetName(spec))) problems.push(`${where}: the name is not one Power BI accepts`)
  if (spec.tables.length === 0) problems.push(`${where}: no tables`)
  if (spec.tables.length > LIMITS.tablesPerDataset)
    problems.push(`${where}: ${spec.tables.length} tables, more than the ${LIMITS.tablesPerDataset} a push dataset may have`)
  if (spec.relationships.length > LIMITS.relationshipsPerDataset)
    problems.push(
      `${where}: ${spec.relationships.length} relationships, more than the ${LIMITS.relationshipsPerDataset} a push dataset may have`
    )
  const seen = new Set<string>()
  for (const table of spec.tables) {
    const mart = spec.marts.tables.find((candidate) => candidate.name === table.from)
    if (mart === undefined) {
      problems.push(`${where}: table ${table.as} mirrors ${table.from}, which the ${spec.marts.name} marts do not have`)
      continue
    }
    if (seen.has(table.as)) problems.push(`${where}: table ${table.as} is declared twice`)
    seen.add(table.as)
    if (!isTableName(table.as))
      problems.push(
        `${where}: ${JSON.stringify(table.as)} is not a table name Power BI accepts (1–100 characters, no . / \\ ( ) [ ] , ; : ' " …)`
      )
    const columns = mart.columns.length + 1
    if (columns > LIMITS.columnsPerTable)
      problems.push(
        `${where}: table ${table.as} (${table.from}) would have ${columns} columns (${mart.columns.length} and ${PUSH_SEQ}), more than the ${LIMITS.columnsPerTable} a push table may have`
      )
    for (const column of mart.columns) {
      if (!isColumnName(column.name))
        problems.push(`${where}: table ${table.as}: ${JSON.stringify(column.name)} is not a column name Power BI accepts`)
      if (column.name === PUSH_SEQ) problems.push(`${where}: table ${table.as}: column ${PUSH_SEQ} is the pusher's own`)
    }
  }
  for (const relationship of spec.relationships)
    for (const [table, column] of [
      [relationship.fromTable, relationship.fromColumn],
      [relationship.toTable, relationship.toColumn]
    ] as const) {
      const mart = spec.tables.some((pushed) => pushed.from === table)
        ? spec.marts.tables.find((candidate) => candidate.name === table)
        : undefined
      if (mart === undefined || !mart.columns.some((candidate) => candidate.name === column))
        problems.push(
          `${where}: relationship ${relationship.fromTable}.${relationship.fromColumn} → ${relationship.toTable}.${relationship.toColumn}: no pushed column ${table}.${column}`
        )
    }
  return problems
}

/** A value as Postgres's `to_jsonb` renders it, as Power BI takes it for a column of `type`. */
export const pushValue = (type: ColumnType, value: unknown): unknown => {
  if (value === null || value === undefined) return null
  switch (type) {
    case "integer":
    case "bigint":
    case "numeric":
      return typeof value === "number" ? value : Number(value)
    case "date":
      return `${String(value).slice(0, 10)}T00:00:00.000Z`
    case "timestamptz": {
      const at = new Date(String(value))
      // An unreadable time goes on as it is, for rowProblem to name rather than to throw here.
      return Number.isNaN(at.getTime()) ? String(value) : at.toISOString()
    }
    case "boolean":
      return value === true || value === "true"
    case "text":
      return String(value)
  }
}

/** A mart row (as `to_jsonb` renders it) as the row Power BI is sent, with its {@link PUSH_SEQ}. */
export const pushRow = (mart: TableSpec, row: Readonly<Record<string, unknown>>, seq: number): Record<string, unknown> => {
  const pushed: Record<string, unknown> = {}
  for (const column of mart.columns) pushed[column.name] = pushValue(column.type, row[column.name])
  pushed[PUSH_SEQ] = seq
  return pushed
}

/** Why Power BI would refuse `row` of `table` (a String over 4,000 characters, a number it cannot hold), naming the row's key and the column; undefined when it would not. */
export const rowProblem = (table: PushedTable, mart: TableSpec, row: Readonly<Record<string, unknown>>): string | undefined => {
  for (const column of mart.columns) {
    // Judged as it is sent: the value after conversion is what Power BI sees.
    const problem = valueProblem(pushTypeFor(column.type), pushValue(column.type, row[column.name]))
    if (problem !== undefined)
      return `${table.as} row ${mart.key.map((key) => `${key}=${JSON.stringify(row[key])}`).join(", ")}, column ${column.name}: ${problem}`
  }
  return undefined
}
