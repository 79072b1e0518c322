import { describe, expect, it } from "vitest"
import { type EdgeBenchReport, runEdgeBench } from "../bench/edge.bench.ts"

/**
 * `npm run bench:edge`, short: the same code for half a second per target and scenario. Behaviour
 * only — the bench fails on any answer but 202, from the Worker or from the plain receiver, and every
 * event it sent is in the stream exactly once (those it sent while the log was stopped included,
 * drained from the spool; those sent through the cluster's region are counted on its hub); the figures are the bench's to report, not a test's
 * to assert.
 */
describe("the edge benchmark", () => {
  it("gets 202 for every request to the Worker and to the plain receiver, spooled with the log stopped, through a cluster's region, leaves each event it sent in the log once, and prints its ratio lines", async () => {
    const printed: Array<string> = []
    const report: EdgeBenchReport = await runEdgeBench({
      seconds: 0.5,
      concurrency: 4,
      direct: false,
      checkStored: true,
      log: (line) => printed.push(line)
    })

    expect(report.scenarios.map((scenario) => scenario.events)).toEqual([1, 100])
    for (const scenario of report.scenarios) {
      expect(scenario.edge.requests).toBeGreaterThan(0)
      expect(scenario.plain.requests).toBeGreaterThan(0)
    }
    expect(report.requests).toBeGreaterThan(0)
    expect(report.duplicates).toBe(0)
    expect(report.stored).toEqual({ once: report.events, missing: 0, repeated: 0 })
    expect(printed).toEqual(report.lines)
    for (const name of ["1-event", "100-events"]) {
      expect(printed.filter((line) => new RegExp(`^ratio edge/${name}: \\d+% of plain receiver$`).test(line))).toHaveLength(1)
      expect(
        printed.filter((line) => new RegExp(`^ratio edge/${name} p99: [+-]\\d+\\.\\d ms over plain receiver$`).test(line))
      ).toHaveLength(1)
      expect(
        printed.filter((line) =>
          new RegExp(
            `^edge/${name}: [\\d,]+ req/s, p50 [\\d.]+ ms, p99 [\\d.]+ ms; plain receiver: [\\d,]+ req/s, p50 [\\d.]+ ms, p99 [\\d.]+ ms$`
          ).test(line)
        )
      ).toHaveLength(1)
    }
    expect(report.faults.spooled?.requests).toBeGreaterThan(0)
    expect(report.faults.cluster?.requests).toBeGreaterThan(0)
    expect(printed.filter((line) => /^ratio edge\/1-event spooled: \d+% of log up$/.test(line))).toHaveLength(1)
    expect(printed.filter((line) => /^ratio edge\/1-event cluster: \d+% of one server$/.test(line))).toHaveLength(1)
  }, 240_000)
})
