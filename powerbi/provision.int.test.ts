import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { LOCAL_WORKSPACE, type LocalPowerBi, startLocalPowerBi } from "../infra/local/powerbi.ts"
import { text } from "../projections/table.ts"
import { powerBiTokens } from "./auth.ts"
import { powerBiClient } from "./client.ts"
import { describePowerBiFailure } from "./cli.ts"
import type { PushDatasetSpec } from "./dataset.ts"
import { crmPushDataset } from "./datasets.ts"
import { powerBiSink, ProvisionRefused } from "./sink.ts"

let powerbi: LocalPowerBi

beforeAll(async () => {
  powerbi = await startLocalPowerBi()
})

afterAll(async () => {
  await powerbi?.close()
})

const refusal = async (promise: Promise<unknown>): Promise<unknown> => {
  try {
    await promise
  } catch (error) {
    return error
  }
  throw new Error("expected provisioning to be refused")
}

const datasetNames = () => (powerbi.emulator.datasets(LOCAL_WORKSPACE) ?? []).map((dataset) => dataset.name)

describe("provisioning push datasets", () => {
  it("creates the dataset once, finds it by name afterwards, and reports no drift", async () => {
    const first = await powerBiSink(powerbi.client(), LOCAL_WORKSPACE, crmPushDataset).provision(false)
    const second = await powerBiSink(powerbi.client(), LOCAL_WORKSPACE, crmPushDataset).provision(false)
    expect(first).toMatchObject({ dataset: "Mesh CRM v1", created: true })
    expect(second).toEqual({ ...first, created: false })
    const stored = powerbi.emulator.datasets(LOCAL_WORKSPACE)?.find((dataset) => dataset.id === first.datasetId)
    expect(stored?.tables.map((table) => table.name)).toEqual(["DimDate", "DimAgent", "DimMetric", "DimShift", "FactEvent"])
    expect(stored?.relationships).toHaveLength(4)
    expect(stored?.tables.find((table) => table.name === "FactEvent")?.measures.map((measure) => measure.name)).toContain("Event Count")
  })

  it("reports columns and measures that drifted in the service, and puts them back with apply", async () => {
    const sink = powerBiSink(powerbi.client(), LOCAL_WORKSPACE, crmPushDataset)
    const { datasetId } = await sink.provision(false)
    await powerbi.client().request("PUT", `/groups/${LOCAL_WORKSPACE}/datasets/${datasetId}/tables/DimShift`, {
      name: "DimShift",
      columns: [
        { name: "shift_id", dataType: "String" },
        { name: "shift_name", dataType: "Int64" }
      ]
    })
    const drifted = await sink.provision(false)
    expect(drifted.drift).toEqual(
      expect.arrayContaining([
        "DimShift: column shift_name is Int64, declared String",
        "DimShift: column start_hour (Int64) is missing",
        "DimShift: column push_seq (Int64) is missing"
      ])
    )
    expect(drifted.updated).toEqual([])
    expect((await sink.provision(true)).updated).toEqual(["DimShift"])
    expect((await sink.provision(false)).drift).toEqual([])
  })

  it("refuses a dataset in the service that lacks a declared table: a new table needs a new version", async () => {
    const fewer: PushDatasetSpec = {
      ...crmPushDataset,
      name: "Mesh CRM small",
      tables: crmPushDataset.tables.slice(0, 4),
      relationships: []
    }
    await powerBiSink(powerbi.client(), LOCAL_WORKSPACE, fewer).provision(false)
    const error = await refusal(
      powerBiSink(powerbi.client(), LOCAL_WORKSPACE, { ...crmPushDataset, name: "Mesh CRM small" }).provision(false)
    )
    expect(error).toBeInstanceOf(ProvisionRefused)
    expect(String((error as Error).message)).toContain(
      "table FactEvent is declared but not in the dataset: Power BI cannot add a table to a push dataset, so bump the dataset's version"
    )
  })

  it("names an unknown workspace, and creates nothing", async () => {
    const error = await refusal(powerBiSink(powerbi.client(), "22222222-0000-4000-8000-000000000000", crmPushDataset).provision(false))
    expect(error).toBeInstanceOf(ProvisionRefused)
    expect(describePowerBiFailure(error)).toMatch(
      /^workspace 22222222-0000-4000-8000-000000000000 was not found, or the app is not a member of it \(Power BI answered 404 PowerBIEntityNotFound/
    )
  })

  it("explains a wrong client secret as Entra's refusal of the app's credentials", async () => {
    const settings = { ...powerbi.settings, credential: { clientSecret: "not-the-secret" } }
    const client = powerBiClient(settings.apiBase, powerBiTokens(settings))
    const error = await refusal(powerBiSink(client, LOCAL_WORKSPACE, crmPushDataset).provision(false))
    expect(describePowerBiFailure(error)).toMatch(
      /^Entra refused the app's credentials \(invalid_client\): .*AADSTS7000215: Invalid client secret provided.*; check POWERBI_TENANT_ID, POWERBI_CLIENT_ID and the secret or certificate$/s
    )
    expect(describePowerBiFailure(error)).not.toContain("not-the-secret")
  })

  it("refuses a table over 75 columns before any call, naming the table and the limit, and nothing is half provisioned", async () => {
    const wide = {
      ...crmPushDataset.marts,
      tables: [{ name: "wide", columns: Array.from({ length: 75 }, (_, i) => text(`c${i}`)), key: ["c0"], merge: "upsert" as const }]
    }
    const spec: PushDatasetSpec = { marts: wide, name: "Too Wide", version: 1, tables: [{ from: "wide", as: "Wide" }], relationships: [] }
    const before = datasetNames()
    const error = await refusal(powerBiSink(powerbi.client(), LOCAL_WORKSPACE, spec).provision(false))
    expect(error).toBeInstanceOf(ProvisionRefused)
    expect((error as Error).message).toBe(
      "push dataset Too Wide v1: table Wide (wide) would have 76 columns (75 and push_seq), more than the 75 a push table may have"
    )
    expect(datasetNames()).toEqual(before)
  })
})
