import { describe, expect, it } from "vitest"
import { runReportsBench } from "../bench/reports.bench.ts"

/**
 * `npm run bench:reports`, short: the same code on a few jobs. Behaviour only — every distinct
 * export rendered once and succeeded, every repeat answered from the cache, the lines printed; the
 * figures are the bench's to report, not a test's to assert.
 */
describe("the report export benchmark", () => {
  it("renders each distinct export once with 1 and N workers on both engines, answers repeats from the cache, and prints its lines", async () => {
    const printed: Array<string> = []
    const report = await runReportsBench({ jobs: 6, powerBiJobs: 4, workers: 2, cacheHits: 20, log: (line) => printed.push(line) })
    expect(report.runs.map((run) => [run.engine, run.workers, run.succeeded, run.renders])).toEqual([
      ["embed", 1, 6, 6],
      ["embed", 2, 6, 6],
      ["powerbi", 1, 4, 4],
      ["powerbi", 2, 4, 4]
    ])
    expect(report.cache).toMatchObject({ requests: 20, cached: 20 })
    expect(report.ok).toBe(true)
    expect(printed).toEqual(report.lines)
    expect(printed.filter((line) => line.startsWith("reports: "))).toHaveLength(5)
    for (const path of ["Chromium 2 workers", "Export To File 2 workers", "cache hit"])
      expect(
        printed.some((line) => new RegExp(`^ratio reports ${path}: \\d+% of `).test(line)),
        path
      ).toBe(true)
  }, 180_000)
})
