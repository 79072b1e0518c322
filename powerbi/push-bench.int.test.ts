import { describe, expect, it } from "vitest"
import { type PushBenchReport, runPushBench } from "../bench/push.bench.ts"
import { LIMITS } from "./rules.ts"

/**
 * `npm run bench:push`, short: the same code on fewer rows and a faster clock. Behaviour only — every
 * row once, no 429, the emulator's peaks under the documented limits; the throughput figure is the
 * bench's to report, not a test's to assert (the clock is too fast here for it to mean anything).
 */
describe("the push benchmark", () => {
  it("pushes every row exactly once under Power BI's limits, without a 429, and prints its push: line", async () => {
    const printed: Array<string> = []
    const report: PushBenchReport = await runPushBench({ rows: 20_000, speed: 600, log: (line) => printed.push(line) })

    expect(report.factInMart).toBeGreaterThanOrEqual(20_000)
    expect(report.factInPowerBi).toBe(report.factInMart)
    expect({ missing: report.factMissing, twice: report.factDuplicated, extra: report.factExtra }).toEqual({
      missing: 0,
      twice: 0,
      extra: 0
    })
    for (const table of report.tables)
      expect({ table: table.table, rows: table.inPowerBi }).toEqual({ table: table.table, rows: table.inMart })
    expect(report.backlog).toBe(0)
    expect(report.rows).toBe(report.byTable.reduce((sum, table) => sum + table.rows, 0))
    expect(report.throttled).toBe(0)
    expect(report.throttledByPusher).toBe(0)
    expect(report.peakRowsPerHour).toBeLessThanOrEqual(LIMITS.rowsPerHourPerDataset)
    expect(report.peakPostsPerMinute).toBeLessThanOrEqual(LIMITS.postsPerMinute)
    expect(report.ok).toBe(true)
    expect(printed).toEqual(report.lines)
    expect(printed.filter((line) => line.startsWith("push:"))).toHaveLength(1)
    expect(printed.some((line) => /^ratio push: \d+% of 1,000,000 rows\/hour documented$/.test(line))).toBe(true)
  }, 240_000)
})
