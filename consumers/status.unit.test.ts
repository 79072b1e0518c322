import { describe, expect, it } from "vitest"
import { countBySource, lagOf, projectionLines, sourceLines, sourceOfSubject } from "./status.ts"

describe("the status of the log per source", () => {
  it("sums a stream's per-subject counts by the subject's source, regional subjects included", () => {
    expect(
      Object.fromEntries(
        countBySource({
          "ingest.crm.hubspot.contact_creation": 4,
          "ingest.crm.hubspot.deal_creation.eu": 2,
          "ingest.crm.aloware.call": 1,
          "ingest.quarantine.hubspot": 3
        })
      )
    ).toEqual({ hubspot: 9, aloware: 1 })
    expect(sourceOfSubject("ingest.quarantine.aloware.us")).toBe("aloware")
    expect(sourceOfSubject("ingest")).toBeUndefined()
  })

  it("prints one line per source", () => {
    expect(sourceLines([{ source: "erasure", accepted: 21, quarantined: 0 }])).toEqual(["source\taccepted\tquarantined", "erasure\t21\t0"])
  })
})

describe("the status of a projection", () => {
  it("lags by the events after its checkpoint, never below 0", () => {
    expect(lagOf(120, 100)).toBe(20)
    expect(lagOf(100, 120)).toBe(0)
  })

  it("prints its generation, position, lag in events and seconds, dead letters and rebuilds", () => {
    const lines = projectionLines([
      {
        projection: "warehouse",
        domain: "warehouse",
        generation: 1,
        version: "1",
        schema: "proj_warehouse_g1",
        checkpoint: 90,
        head: 100,
        lag: 10,
        lagSeconds: 2.25,
        deadLetters: 1,
        building: [{ generation: 2, checkpoint: 40, target: 90, switchWaitingSince: null, switchAttempts: 0 }]
      }
    ])
    expect(lines).toEqual([
      "projection\tgeneration\tversion\tcheckpoint\thead\tlag\tlag s\tdead letters\tbuilding",
      "warehouse\t1\t1\t90\t100\t10\t2.3\t1\tg2@40"
    ])
  })
})
