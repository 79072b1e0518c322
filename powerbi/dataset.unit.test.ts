import { describe, expect, it } from "vitest"
import { integer, text } from "../projections/table.ts"
import { datasetDefinition, pushRow, pushTypeFor, pushValue, rowProblem, specProblems } from "./dataset.ts"
import { crmPushDataset } from "./datasets.ts"
import { driftOf } from "./sink.ts"

describe("push datasets as code", () => {
  it("derives every pushed table's columns from its mart table, typed for Power BI, with the hidden push_seq last", () => {
    const definition = datasetDefinition(crmPushDataset)
    expect(definition.name).toBe("Mesh CRM v1")
    const fact = definition.tables.find((table) => table.name === "FactEvent")
    const mart = crmPushDataset.marts.tables.find((table) => table.name === "fact_event")
    expect(fact?.columns.map((column) => column.name)).toEqual([...(mart?.columns.map((column) => column.name) ?? []), "push_seq"])
    expect(fact?.columns.find((column) => column.name === "occurred_at")?.dataType).toBe("DateTime")
    expect(fact?.columns.at(-1)).toEqual({ name: "push_seq", dataType: "Int64", isHidden: true })
    expect(
      definition.relationships.map((relationship) => `${relationship.fromTable}.${relationship.fromColumn}>${relationship.toTable}`)
    ).toEqual(["FactEvent.date_key>DimDate", "FactEvent.agent_id>DimAgent", "FactEvent.metric_id>DimMetric", "FactEvent.shift_id>DimShift"])
    expect(specProblems(crmPushDataset)).toEqual([])
  })

  it("maps each mart type to a push type", () => {
    expect(["text", "integer", "bigint", "numeric", "date", "timestamptz", "boolean"].map((type) => pushTypeFor(type as never))).toEqual([
      "String",
      "Int64",
      "Int64",
      "Double",
      "DateTime",
      "DateTime",
      "Boolean"
    ])
  })

  it("names each problem of a declaration: a mirrored table the marts lack, a bad name, a relationship over a missing column", () => {
    const problems = specProblems({
      ...crmPushDataset,
      tables: [
        { from: "dim_agent", as: "Dim/Agent" },
        { from: "nowhere", as: "Nowhere" }
      ],
      relationships: [{ fromTable: "fact_event", fromColumn: "agent_id", toTable: "dim_agent", toColumn: "agent_id" }]
    })
    expect(problems).toEqual([
      expect.stringContaining('"Dim/Agent" is not a table name Power BI accepts'),
      "push dataset Mesh CRM v1: table Nowhere mirrors nowhere, which the crm marts do not have",
      "push dataset Mesh CRM v1: relationship fact_event.agent_id → dim_agent.agent_id: no pushed column fact_event.agent_id"
    ])
  })

  it("turns Postgres's to_jsonb values into what Power BI takes", () => {
    expect(pushValue("numeric", "12.50")).toBe(12.5)
    expect(pushValue("date", "2025-01-15")).toBe("2025-01-15T00:00:00.000Z")
    expect(pushValue("timestamptz", "2025-01-15T10:32:00+01:00")).toBe("2025-01-15T09:32:00.000Z")
    expect(pushValue("timestamptz", "not a time")).toBe("not a time")
    expect(pushValue("text", null)).toBeNull()
    const mart = { name: "t", columns: [text("id"), integer("n", true)], key: ["id"], merge: "upsert" as const }
    expect(pushRow(mart, { id: "a", n: 3, extra: "dropped" }, 42)).toEqual({ id: "a", n: 3, push_seq: 42 })
  })

  it("names the row, the column and the limit of a value Power BI would refuse", () => {
    const mart = { name: "t", columns: [text("id"), text("name", true)], key: ["id"], merge: "upsert" as const }
    expect(rowProblem({ from: "t", as: "T" }, mart, { id: "a", name: "x".repeat(4000) })).toBeUndefined()
    expect(rowProblem({ from: "t", as: "T" }, mart, { id: "a", name: "x".repeat(4001) })).toBe(
      'T row id="a", column name: a String value may hold 4000 characters, this one holds 4001'
    )
  })

  it("tells drift a PutTable mends from drift only a new dataset version can", () => {
    const declared = [{ name: "T", columns: [{ name: "a", dataType: "String" }], measures: [{ name: "M", expression: "1" }] }]
    expect(
      driftOf(declared, [{ name: "T", columns: [{ name: "a", dataType: "string" }], measures: [{ name: "M", expression: "1" }] }])
    ).toEqual({
      structural: [],
      tables: new Map()
    })
    const drift = driftOf(declared, [
      { name: "T", columns: [{ name: "b", dataType: "Int64" }] },
      { name: "Old", columns: [] }
    ])
    expect(drift.tables.get("T")).toEqual(["column a (String) is missing", "column b is not declared", "measure M differs or is missing"])
    expect(drift.structural).toEqual(["table Old is in the dataset but no longer declared: bump the dataset's version"])
  })
})
