import { Data } from "effect"
import type { PowerBiClient } from "./client.ts"
import { PowerBiError } from "./client.ts"
import { datasetDefinition, datasetName, PUSH_SEQ, type PushDatasetSpec, specProblems } from "./dataset.ts"

/**
 * The push sink behind a small interface: what the pusher needs of any append-only analytics store.
 * Power BI's push datasets implement it here; a Fabric Eventstream sink (docs/powerbi.md, "After
 * push datasets") would implement the same four operations.
 */
export interface PushSink {
  /** Gets or creates the dataset and checks its tables against the declaration (`apply`: updates columns and measures that drifted). */
  readonly provision: (apply: boolean) => Promise<ProvisionReport>
  /** Appends rows to a table (at most one POST's worth). */
  readonly push: (table: string, rows: ReadonlyArray<Record<string, unknown>>) => Promise<void>
  /** The table's row count and the highest {@link PUSH_SEQ} it holds (null when empty): what landed. */
  readonly readBack: (table: string) => Promise<{ readonly rows: number; readonly maxSeq: number | null }>
  /** Deletes every row of a table (the only delete Power BI has): the start of a reload. */
  readonly clear: (table: string) => Promise<void>
}

export interface ProvisionReport {
  readonly dataset: string
  readonly datasetId: string
  readonly created: boolean
  /** What differs between the declaration and the dataset in Power BI; empty when they agree. */
  readonly drift: ReadonlyArray<string>
  /** Tables whose columns or measures were updated (with `apply`). */
  readonly updated: ReadonlyArray<string>
}

/** The declaration or the workspace cannot be provisioned as they are; nothing was created. */
export class ProvisionRefused extends Data.TaggedError("ProvisionRefused")<{ readonly problems: ReadonlyArray<string> }> {
  override get message(): string {
    return this.problems.join("\n")
  }
}

interface TableInService {
  readonly name: string
  readonly columns?: ReadonlyArray<{ readonly name: string; readonly dataType: string }>
  readonly measures?: ReadonlyArray<{ readonly name: string; readonly expression: string }>
}

/** What differs between the declared tables and those Power BI holds: the tables missing or extra (a new version), columns and measures (updatable). */
export const driftOf = (
  declared: ReadonlyArray<{
    readonly name: string
    readonly columns: ReadonlyArray<{ name: string; dataType: string }>
    readonly measures: ReadonlyArray<{ name: string; expression: string }>
  }>,
  inService: ReadonlyArray<TableInService>
): { readonly structural: ReadonlyArray<string>; readonly tables: ReadonlyMap<string, ReadonlyArray<string>> } => {
  const structural: Array<string> = []
  const tables = new Map<string, Array<string>>()
  for (const table of declared) {
    const found = inService.find((candidate) => candidate.name === table.name)
    if (found === undefined) {
      structural.push(
        `table ${table.name} is declared but not in the dataset: Power BI cannot add a table to a push dataset, so bump the dataset's version`
      )
      continue
    }
    const differences: Array<string> = []
    const columns = new Map((found.columns ?? []).map((column) => [column.name, column.dataType]))
    for (const column of table.columns) {
      const type = columns.get(column.name)
      if (type === undefined) differences.push(`column ${column.name} (${column.dataType}) is missing`)
      else if (type.toLowerCase() !== column.dataType.toLowerCase())
        differences.push(`column ${column.name} is ${type}, declared ${column.dataType}`)
    }
    for (const name of columns.keys())
      if (!table.columns.some((column) => column.name === name)) differences.push(`column ${name} is not declared`)
    const measures = new Map((found.measures ?? []).map((measure) => [measure.name, measure.expression]))
    for (const measure of table.measures)
      if (measures.get(measure.name) !== measure.expression) differences.push(`measure ${measure.name} differs or is missing`)
    for (const name of measures.keys())
      if (!table.measures.some((measure) => measure.name === name)) differences.push(`measure ${name} is not declared`)
    if (differences.length > 0) tables.set(table.name, differences)
  }
  for (const table of inService)
    if (!declared.some((candidate) => candidate.name === table.name))
      structural.push(`table ${table.name} is in the dataset but no longer declared: bump the dataset's version`)
  return { structural, tables }
}

const quoteTable = (name: string): string => `'${name.replaceAll("'", "''")}'`

/** A Power BI push dataset in workspace `groupId`, declared by `spec`: found by {@link PushSink.provision}, or given by id. */
export const powerBiSink = (client: PowerBiClient, groupId: string, spec: PushDatasetSpec, knownDatasetId?: string): PushSink => {
  let datasetId: string | undefined = knownDatasetId
  const group = `/groups/${encodeURIComponent(groupId)}`
  const definition = datasetDefinition(spec)
  const tableName = (table: string) => encodeURIComponent(table)
  const path = (rest: string) => {
    if (datasetId === undefined) throw new Error(`the ${datasetName(spec)} dataset is not provisioned yet`)
    return `${group}/datasets/${datasetId}${rest}`
  }
  const inWorkspace = async <A>(what: () => Promise<A>): Promise<A> => {
    try {
      return await what()
    } catch (error) {
      if (error instanceof PowerBiError && (error.status === 404 || error.status === 403) && error.path === `${group}/datasets`)
        throw new ProvisionRefused({
          problems: [
            `workspace ${groupId} was not found, or the app is not a member of it (Power BI answered ${error.status} ${error.code}: ${error.detail}); add the service principal to the workspace as a Member or Contributor`
          ]
        })
      throw error
    }
  }
  return {
    provision: async (apply) => {
      const problems = specProblems(spec)
      if (problems.length > 0) throw new ProvisionRefused({ problems })
      const listed = await inWorkspace(() =>
        client.request<{ value: ReadonlyArray<{ id: string; name: string; addRowsAPIEnabled?: boolean }> }>("GET", `${group}/datasets`)
      )
      const existing = listed.value.find((dataset) => dataset.name === definition.name)
      if (existing === undefined) {
        const created = await client.request<{ id: string }>("POST", `${group}/datasets?defaultRetentionPolicy=None`, definition)
        datasetId = created.id
        return { dataset: definition.name, datasetId: created.id, created: true, drift: [], updated: [] }
      }
      if (existing.addRowsAPIEnabled === false)
        throw new ProvisionRefused({
          problems: [`dataset ${definition.name} (${existing.id}) in workspace ${groupId} is not a push dataset`]
        })
      datasetId = existing.id
      const tables = await client.request<{ value: ReadonlyArray<TableInService> }>("GET", path("/tables"))
      const drift = driftOf(definition.tables, tables.value)
      if (drift.structural.length > 0)
        throw new ProvisionRefused({ problems: drift.structural.map((line) => `${definition.name}: ${line}`) })
      const lines = [...drift.tables].flatMap(([table, differences]) => differences.map((difference) => `${table}: ${difference}`))
      const updated: Array<string> = []
      if (apply)
        for (const table of definition.tables)
          if (drift.tables.has(table.name)) {
            await client.request("PUT", path(`/tables/${tableName(table.name)}`), table)
            updated.push(table.name)
          }
      return { dataset: definition.name, datasetId: existing.id, created: false, drift: lines, updated }
    },
    push: async (table, rows) => {
      await client.request("POST", path(`/tables/${tableName(table)}/rows`), { rows })
    },
    readBack: async (table) => {
      const query = `EVALUATE ROW("rows", COUNTROWS(${quoteTable(table)}), "maxSeq", MAX(${quoteTable(table)}[${PUSH_SEQ}]))`
      const answer = await client.request<{
        results: ReadonlyArray<{ tables: ReadonlyArray<{ rows: ReadonlyArray<Record<string, unknown>> }> }>
      }>("POST", path("/executeQueries"), { queries: [{ query }], serializerSettings: { includeNulls: true } })
      const row = answer.results[0]?.tables[0]?.rows[0] ?? {}
      const rows = row["[rows]"]
      const maxSeq = row["[maxSeq]"]
      return { rows: typeof rows === "number" ? rows : 0, maxSeq: typeof maxSeq === "number" ? maxSeq : null }
    },
    clear: async (table) => {
      await client.request("DELETE", path(`/tables/${tableName(table)}/rows`))
    }
  }
}
