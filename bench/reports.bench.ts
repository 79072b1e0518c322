import { realpathSync } from "node:fs"
import { fileURLToPath } from "node:url"
import { startLogStack } from "../infra/local/log-stack.ts"
import { LOCAL_WORKSPACE, startLocalPowerBi } from "../infra/local/powerbi.ts"
import {
  DEMO_PAGES,
  DEMO_ROWS,
  demoPowerBiReport,
  registerWithDemoSheet,
  startReportStack,
  startWorkersInProcess
} from "../infra/local/reports.ts"
import { setLogLevel } from "../platform/logger.ts"
import { chromiumEngine } from "../reports/engines/chromium.ts"
import { powerBiEngine } from "../reports/engines/powerbi.ts"
import { measure } from "./measure.ts"

/**
 * `npm run bench:reports`: the export service's throughput, end to end — `POST /api/exports` over
 * HTTP, the job on the JetStream work queue, a worker rendering the embedded report page in Debian's
 * Chromium, the file stored in Postgres, the client polling the job to Succeeded — with 1 worker and
 * with N (BENCH_REPORTS_WORKERS, default 4), and the cache-hit path (an identical request answered
 * from the cache, no render); and the same through Power BI's Export To File against the emulator,
 * whose capacity takes EXPORT_MS per export (the service's own time, which a worker only waits on).
 * BENCH_REPORTS_JOBS (default 45): distinct Chromium exports per run — every page × region × year
 * the demo report's filters allow, so none is answered from the cache. The cache is emptied between
 * the runs. The baseline of each N-worker run is the 1-worker run of the same engine; that of the
 * cache-hit path is the 1-worker Chromium render rate.
 */

export interface ReportsBenchOptions {
  readonly jobs?: number
  readonly workers?: number
  /** Distinct exports through Export To File per run (default 20). */
  readonly powerBiJobs?: number
  /** Identical requests sent for the cache-hit path (default 500). */
  readonly cacheHits?: number
  readonly log?: (line: string) => void
}

export interface ReportsBenchRun {
  readonly engine: "embed" | "powerbi"
  readonly workers: number
  /** Distinct exports among the jobs (identical ones join one job). */
  readonly distinct: number
  readonly jobs: number
  readonly seconds: number
  readonly perMinute: number
  readonly succeeded: number
  readonly renders: number
}

export interface ReportsBenchReport {
  readonly runs: ReadonlyArray<ReportsBenchRun>
  readonly cache: { readonly requests: number; readonly seconds: number; readonly perMinute: number; readonly cached: number }
  readonly lines: ReadonlyArray<string>
  readonly ok: boolean
}

const CHROMIUM = process.env.CHROMIUM_BIN ?? "/usr/bin/chromium"
/** How long the emulated capacity takes per export (Power BI's own take seconds; the emulator's status polls ask for Retry-After: 1). */
const EXPORT_MS = 500

/** Every distinct export of the demo report, page by page and filter by filter. */
const distinctRequests = (reportId: string): ReadonlyArray<Record<string, unknown>> => {
  const regions = [undefined, ...new Set(DEMO_ROWS.map((row) => row.Region))]
  const years = [undefined, ...new Set(DEMO_ROWS.map((row) => row.Year))]
  return DEMO_PAGES.flatMap((page) =>
    regions.flatMap((Region) =>
      years.map((Year) => ({
        report_id: reportId,
        page: page.name,
        format: "png",
        filters: { ...(Region === undefined ? {} : { Region }), ...(Year === undefined ? {} : { Year }) }
      }))
    )
  )
}

export const runReportsBench = async (options: ReportsBenchOptions = {}): Promise<ReportsBenchReport> => {
  const log = options.log ?? ((line: string) => console.log(line))
  const lines: Array<string> = []
  const say = (line: string) => {
    lines.push(line)
    log(line)
  }
  const workerCount = options.workers ?? 4
  const stack = await startLogStack()
  try {
    const reports = await startReportStack(stack)
    // A workspace on a capacity, so the same report exports through Export To File too (EXPORT_MS each, as the service takes).
    const powerbi = await startLocalPowerBi({ workspaces: [{ id: LOCAL_WORKSPACE, capacity: "premium" }], exportMs: EXPORT_MS })
    const engine = chromiumEngine({ executablePath: CHROMIUM, viewport: { width: 800, height: 600 }, renderTimeoutMs: 30_000 })
    try {
      const demo = await demoPowerBiReport({ emulator: powerbi.emulator, client: powerbi.client() }, LOCAL_WORKSPACE)
      await registerWithDemoSheet(reports, { report_id: "retail", title: "Retail", engine: "embed", embed_url: demo.embedUrl })
      await registerWithDemoSheet(reports, {
        report_id: "retail-pbi",
        title: "Retail (Export To File)",
        engine: "powerbi",
        workspace_id: LOCAL_WORKSPACE,
        powerbi_report_id: demo.reportId
      })
      const all = distinctRequests("retail")
      const requests = Array.from({ length: options.jobs ?? all.length }, (_, i) => all[i % all.length] as Record<string, unknown>)
      const post = async (body: unknown) => {
        const response = await fetch(`${reports.api.url}/api/exports`, {
          method: "POST",
          headers: { "X-API-Key": reports.keys.reader, "Content-Type": "application/json" },
          body: JSON.stringify(body)
        })
        if (response.status !== 202) throw new Error(`POST /api/exports answered ${response.status}: ${await response.text()}`)
        return (await response.json()) as { id: string; status: string; cached: boolean }
      }
      // Untimed: the browser started and one page drawn, so neither run pays for Chromium's start.
      await engine.render({
        report: {
          report_id: "warm",
          title: "",
          engine: "embed",
          workspace_id: null,
          powerbi_report_id: null,
          embed_url: demo.embedUrl,
          mart: null
        },
        pages: [DEMO_PAGES[0]],
        filter: undefined,
        format: "png",
        signal: new AbortController().signal,
        progress: () => {}
      })

      const runs: Array<ReportsBenchRun> = []
      const powerBiEngine_ = powerBiEngine(powerbi.settings, { pollMs: 100 })
      const jobsOf = (engine: "embed" | "powerbi") =>
        engine === "embed" ? requests : distinctRequests("retail-pbi").slice(0, options.powerBiJobs ?? 20)
      for (const [kind, concurrency] of [
        ["embed", 1],
        ["embed", workerCount],
        ["powerbi", 1],
        ["powerbi", workerCount]
      ] as const) {
        await reports.sql`DELETE FROM ingest.report_export_files`
        const batch = jobsOf(kind)
        const workers = await startWorkersInProcess(stack, reports, (report) => (report.engine === "embed" ? engine : powerBiEngine_), {
          concurrency,
          timeoutMs: 60_000,
          ackWaitMs: 30_000,
          cache: { ttlMs: 3_600_000, maxBytes: 256 * 1024 * 1024 }
        })
        try {
          const timed = await measure(async () => {
            const ids = [...new Set((await Promise.all(batch.map(post))).map((job) => job.id))]
            for (;;) {
              const [row] = await reports.sql`SELECT count(*) FILTER (WHERE status IN ('Succeeded', 'Failed'))::int AS done,
                count(*) FILTER (WHERE status = 'Succeeded')::int AS ok, coalesce(sum(renders), 0)::int AS renders
                FROM ingest.report_exports WHERE id = ANY(${ids})`
              if ((row?.done as number) >= ids.length) return { succeeded: row?.ok as number, renders: row?.renders as number }
              await new Promise((resolveWait) => setTimeout(resolveWait, 20))
            }
          })
          const run = {
            engine: kind,
            workers: concurrency,
            jobs: batch.length,
            distinct: new Set(batch.map((request) => JSON.stringify(request))).size,
            seconds: timed.seconds,
            perMinute: (batch.length / timed.seconds) * 60,
            succeeded: timed.result.succeeded,
            renders: timed.result.renders
          }
          runs.push(run)
          say(
            `reports: ${kind === "embed" ? "Chromium" : `Export To File (${EXPORT_MS} ms each)`}, ${concurrency} worker${concurrency === 1 ? "" : "s"}: ${run.jobs} PNG exports in ${run.seconds.toFixed(2)} s = ${Math.round(run.perMinute)} exports/min, ${run.succeeded} succeeded, ${run.renders} renders, peak RSS ${Math.round(timed.peakMiB)} MiB`
          )
        } finally {
          await workers.close()
        }
      }

      // The cache-hit path: the same request, answered from the cache every time.
      // A request the last run rendered: its file is in the cache.
      const hit = jobsOf("powerbi")[0] as Record<string, unknown>
      const count = options.cacheHits ?? 500
      const cacheRun = await measure(async () => {
        let cached = 0
        const inFlight = 8
        let sent = 0
        await Promise.all(
          Array.from({ length: inFlight }, async () => {
            while (sent < count) {
              sent++
              if ((await post(hit)).cached) cached++
            }
          })
        )
        return cached
      })
      const cache = {
        requests: count,
        seconds: cacheRun.seconds,
        perMinute: (count / cacheRun.seconds) * 60,
        cached: cacheRun.result
      }
      say(
        `reports: cache hits: ${count} identical requests in ${cache.seconds.toFixed(2)} s = ${Math.round(cache.perMinute)} answers/min, ${cache.cached} from the cache`
      )
      const [one, many, pbiOne, pbiMany] = runs as [ReportsBenchRun, ReportsBenchRun, ReportsBenchRun, ReportsBenchRun]
      say(`ratio reports Chromium ${workerCount} workers: ${Math.round((many.perMinute / one.perMinute) * 100)}% of 1 worker`)
      say(`ratio reports Export To File ${workerCount} workers: ${Math.round((pbiMany.perMinute / pbiOne.perMinute) * 100)}% of 1 worker`)
      say(`ratio reports cache hit: ${Math.round((cache.perMinute / one.perMinute) * 100)}% of a 1-worker Chromium render`)
      const ok = runs.every((run) => run.succeeded === run.distinct && run.renders === run.distinct) && cache.cached === count
      return { runs, cache, lines, ok }
    } finally {
      await engine.close()
      await powerbi.close()
      await reports.close()
    }
  } finally {
    await stack.dispose()
  }
}

const main = async () => {
  setLogLevel("warn")
  const report = await runReportsBench({
    ...(process.env.BENCH_REPORTS_JOBS === undefined ? {} : { jobs: Number(process.env.BENCH_REPORTS_JOBS) }),
    workers: Number(process.env.BENCH_REPORTS_WORKERS ?? "4")
  })
  if (!report.ok) {
    console.error(
      "reports: FAILED: an export did not succeed, was rendered more than once, or a repeated request was not answered from the cache"
    )
    process.exitCode = 1
  }
}

// Run as a script (`tsx bench/reports.bench.ts`), not when a test imports runReportsBench.
if (process.argv[1] !== undefined && realpathSync(process.argv[1]) === fileURLToPath(import.meta.url))
  main().catch((error: unknown) => {
    console.error(error)
    process.exitCode = 1
  })
