import { readFile, writeFile } from "node:fs/promises"
import { basename, extname, resolve } from "node:path"
import { type ParseArgsConfig, parseArgs } from "node:util"
import { jetstream } from "@nats-io/jetstream"
import postgres from "postgres"
import type { FilterValue } from "../contracts/reports.ts"
import { logEvent } from "../platform/logger.ts"
import { databaseUrl, natsSettings, optionalSetting, type SettingSource } from "../platform/settings.ts"
import { powerBiSettings } from "../powerbi/auth.ts"
import { QueueUnavailable, requestExport } from "./exports.ts"
import { importFilterSheet, sheetEvent } from "./import.ts"
import { ensureJobTables, findJob, jobFile } from "./jobs.ts"
import { appendChange, InvalidChange, listReports, projectedThrough, reportFilters, reportPages } from "./registry.ts"
import { connectReports, runExportWorkers } from "./service.ts"
import { reportSettings } from "./settings.ts"
import { filterTemplate } from "./template.ts"

/** The `options` of a `parseArgs` call: a command's option table. */
type OptionTable = NonNullable<ParseArgsConfig["options"]>

export const REPORTS_USAGE = `  reports list                            the registry: each report, its engine, pages and filters
  reports register --id ID --title T --engine embed|powerbi [--embed-url URL] [--workspace GUID --powerbi-report GUID] [--mart M]
                                          register a report (or change its registration)
  reports pages ID name[=Display name]... set a report's pages, in order
  reports import <file.xlsx|file.csv> [--report ID]
                                          import a filter sheet: every problem named by sheet, row, column and value, nothing
                                          imported from a file with any
  reports template <file.xlsx|file.csv>   write a filter sheet to start from
  reports export ID [--page NAME]... [--filter Label=value]... --format png|pdf --out FILE [--timeout-seconds N]
                                          export through the job queue (a worker must run) and write the file, waiting
                                          at most N seconds (default 300)
  reports worker [--concurrency N]        run export workers until SIGTERM (REPORTS_… settings, docs/reports.md)`

/** What each `mesh reports` action parses besides its positionals. */
export const REPORTS_OPTIONS = {
  register: {
    id: { type: "string" },
    title: { type: "string" },
    engine: { type: "string" },
    "embed-url": { type: "string" },
    workspace: { type: "string" },
    "powerbi-report": { type: "string" },
    mart: { type: "string" }
  },
  import: { report: { type: "string" } },
  export: {
    page: { type: "string", multiple: true },
    filter: { type: "string", multiple: true },
    format: { type: "string" },
    out: { type: "string" },
    "timeout-seconds": { type: "string", default: "300" }
  },
  worker: { concurrency: { type: "string" } }
} as const satisfies Record<string, OptionTable>

/** The environment may name Power BI; without it, only embed reports can be exported. */
const optionalPowerBi = (source: SettingSource) =>
  optionalSetting(source, { env: "POWERBI_TENANT_ID" }) === undefined ? undefined : powerBiSettings(source)

const connectAll = async (source: SettingSource) => {
  const sql = postgres(databaseUrl(source), { onnotice: () => {}, max: 2 })
  const nc = await connectReports(natsSettings(source, "reports"))
  return {
    sql,
    js: jetstream(nc),
    close: async () => {
      await nc.drain().catch(() => undefined)
      await sql.end({ timeout: 5 })
    }
  }
}

const describeProjected = (projected: boolean) =>
  projected ? "" : " (on the log; not projected yet — is `npm run mesh -- project` running?)"

/**
 * A path as the user typed it: `npm run` starts the CLI in the project's folder, and says in
 * INIT_CWD where the user was.
 */
const userPath = (source: SettingSource, path: string) => resolve(source.env.INIT_CWD ?? process.cwd(), path)

/** `mesh reports …` */
export const reportsCommand = async (source: SettingSource, args: ReadonlyArray<string>): Promise<void> => {
  const [action, ...rest] = args
  const settings = reportSettings(source)
  if (action === "template") {
    const [file] = rest
    if (file === undefined || ![".xlsx", ".csv"].includes(extname(file))) throw new Error("usage: reports template <file.xlsx|file.csv>")
    await writeFile(userPath(source, file), await filterTemplate(extname(file) === ".xlsx" ? "xlsx" : "csv"))
    console.log(`wrote ${file}: fill in one row per filter, then npm run mesh -- reports import ${file} --report <id>`)
    return
  }
  if (action === "worker") {
    const { values } = parseArgs({ args: [...rest], options: REPORTS_OPTIONS.worker })
    const flagged = reportSettings({ env: source.env, flags: values })
    const running = await runExportWorkers({
      databaseUrl: databaseUrl(source),
      nats: natsSettings(source, "reports"),
      settings: flagged,
      powerbi: optionalPowerBi(source)
    })
    logEvent("info", "report export workers running", { concurrency: flagged.worker.concurrency })
    await new Promise<void>((resolveStop) => {
      process.once("SIGINT", () => resolveStop())
      process.once("SIGTERM", () => resolveStop())
    })
    await running.stop()
    return
  }
  const { sql, js, close } = await connectAll(source)
  try {
    if (action === "list") {
      for (const report of await listReports(sql)) {
        console.log(`${report.report_id}  ${report.engine}  ${report.title}`)
        console.log(
          `  pages: ${(await reportPages(sql, report.report_id)).map((page) => `${page.name} (${page.display_name})`).join(", ") || "none"}`
        )
        for (const filter of await reportFilters(sql, report.report_id))
          console.log(
            `  filter ${filter.label}: ${filter.column} in ${JSON.stringify(filter.allowed_values)}, default ${JSON.stringify(filter.default)}`
          )
      }
      return
    }
    if (action === "register") {
      const { values } = parseArgs({ args: [...rest], options: REPORTS_OPTIONS.register })
      const data = {
        report_id: values.id,
        title: values.title,
        engine: values.engine,
        ...(values["embed-url"] === undefined ? {} : { embed_url: values["embed-url"] }),
        ...(values.workspace === undefined ? {} : { workspace_id: values.workspace }),
        ...(values["powerbi-report"] === undefined ? {} : { powerbi_report_id: values["powerbi-report"] }),
        ...(values.mart === undefined ? {} : { mart: values.mart })
      }
      const seq = await appendChange(js, { type: "report.registered", data: data as never })
      console.log(`registered ${values.id}${describeProjected(await projectedThrough(sql, seq, settings.projectionWaitMs))}`)
      return
    }
    if (action === "pages") {
      const [id, ...specs] = rest
      if (id === undefined || specs.length === 0) throw new Error("usage: reports pages ID name[=Display name]...")
      const pages = specs.map((spec) => {
        const [name = "", ...display] = spec.split("=")
        return { name, display_name: display.length === 0 ? name : display.join("=") }
      })
      const seq = await appendChange(js, { type: "report.pages_set", data: { report_id: id, pages } })
      console.log(`set ${pages.length} pages of ${id}${describeProjected(await projectedThrough(sql, seq, settings.projectionWaitMs))}`)
      return
    }
    if (action === "import") {
      const { values, positionals } = parseArgs({ args: [...rest], allowPositionals: true, options: REPORTS_OPTIONS.import })
      const [file] = positionals
      if (file === undefined) throw new Error("usage: reports import <file.xlsx|file.csv> [--report ID]")
      const known = (await listReports(sql)).map((report) => report.report_id)
      const imported = await importFilterSheet(
        { bytes: new Uint8Array(await readFile(userPath(source, file))), fileName: basename(file) },
        { ...(values.report === undefined ? {} : { reportId: values.report }), knownReports: known }
      )
      if (!imported.ok) {
        for (const problem of imported.problems)
          console.error(
            `${problem.sheet} row ${problem.row}, column ${problem.column}${problem.value === "" ? "" : ` (${JSON.stringify(problem.value)})`}: ${problem.message}`
          )
        throw new Error(`${imported.problems.length} problem(s) in ${file}; nothing was imported`)
      }
      const seq = await appendChange(js, { type: "report.filter_sheet_imported", data: sheetEvent(imported.reports) })
      for (const one of imported.reports)
        console.log(`imported ${one.filters.length} filters for ${one.report_id}: ${one.filters.map((filter) => filter.label).join(", ")}`)
      console.log(`done${describeProjected(await projectedThrough(sql, seq, settings.projectionWaitMs))}`)
      return
    }
    if (action === "export") {
      const { values, positionals } = parseArgs({ args: [...rest], allowPositionals: true, options: REPORTS_OPTIONS.export })
      const [id] = positionals
      if (id === undefined || values.out === undefined)
        throw new Error("usage: reports export ID [--page NAME]... [--filter Label=value]... --format png|pdf --out FILE")
      const filters: Record<string, Array<FilterValue>> = {}
      for (const spec of values.filter ?? []) {
        const at = spec.indexOf("=")
        if (at < 1) throw new Error(`--filter takes Label=value, got ${JSON.stringify(spec)}`)
        ;(filters[spec.slice(0, at)] ??= []).push(spec.slice(at + 1))
      }
      await ensureJobTables(sql)
      const pages = values.page ?? []
      const requested = await requestExport(sql, js, {
        report_id: id,
        ...(pages.length === 1 ? { page: pages[0] } : pages.length > 1 ? { pages } : {}),
        filters,
        format: values.format
      }).catch((error: unknown) => {
        if (error instanceof QueueUnavailable) throw new Error(error.message)
        throw error
      })
      if (!requested.ok) {
        for (const problem of requested.problems)
          console.error(
            `${problem.field}: ${problem.message}${problem.allowed === undefined ? "" : `; allowed: ${JSON.stringify(problem.allowed)}`}`
          )
        throw new Error("the export request was refused")
      }
      const deadline = Date.now() + Number(values["timeout-seconds"]) * 1000
      let job = requested.job
      while (job.status === "NotStarted" || job.status === "Running") {
        if (Date.now() > deadline)
          throw new Error(`job ${job.id} is still ${job.status}: is a worker running (npm run mesh -- reports worker)?`)
        await new Promise((resolveWait) => setTimeout(resolveWait, 250))
        job = (await findJob(sql, job.id)) ?? job
      }
      if (job.status === "Failed") throw new Error(`job ${job.id} failed: ${job.error ?? "no reason recorded"}`)
      const file = await jobFile(sql, job)
      if (file === undefined) throw new Error(`job ${job.id} succeeded but its file has left the cache: export again`)
      const out = userPath(source, values.out)
      await writeFile(out, file.bytes)
      console.log(`wrote ${out} (${file.bytes.length} bytes, ${file.contentType}${job.cached ? ", from the cache" : ""}) for job ${job.id}`)
      return
    }
    throw new Error(`usage:\n${REPORTS_USAGE}`)
  } catch (error) {
    if (error instanceof InvalidChange) throw new Error(`refused: ${error.message}`)
    throw error
  } finally {
    await close()
  }
}
