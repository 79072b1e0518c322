import { describe, expect, it } from "vitest"
import { pushSettings } from "./cli.ts"

const datasetsFor = (push?: string) =>
  pushSettings({ env: { POWERBI_WORKSPACE: "w", ...(push === undefined ? {} : { POWERBI_PUSH: push }) } }).datasets.map(
    (spec) => spec.marts.name
  )

describe("which push datasets a pusher feeds (POWERBI_PUSH)", () => {
  it("feeds every dataset not marked opt-in when the setting is absent", () => {
    expect(datasetsFor()).toEqual(["crm"])
  })

  it("feeds an opt-in dataset when the setting names it", () => {
    expect(datasetsFor("crm, retail")).toEqual(["crm", "retail"])
    expect(datasetsFor("retail")).toEqual(["retail"])
  })

  it("refuses a name with no push dataset, listing the known ones", () => {
    expect(() => datasetsFor("crm,sales")).toThrow('POWERBI_PUSH: no push dataset for "sales"; known: crm, retail')
  })
})
