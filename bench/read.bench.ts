import { type ChildProcess, spawn } from "node:child_process"
import { readFileSync } from "node:fs"
import { once } from "node:events"
import { createInterface } from "node:readline"
import { Writable } from "node:stream"
import { pipeline } from "node:stream/promises"
import postgres from "postgres"
import { seedOeeMart } from "../infra/local/oee-mart.ts"
import { freePort } from "../infra/ports.ts"
import { createDatabase, startPostgres } from "../infra/postgres/database.ts"
import { exportEndpoints, exportQuery } from "../read/exports.ts"
import { marts } from "../read/feeds.ts"
import { createApiKey } from "../read/keys.ts"
import { dropReaderLogin, ensureReaderLogin } from "../read/roles.ts"

/**
 * `npm run bench:read`: the seed's 90 days of the OEE data mart for 50 machines (432,000 rows)
 * exported through the read API as CSV, JSON and XLSX, beside a plain `COPY (same query) TO STDOUT`
 * of the same rows, in the same run on the same server. Each export runs in a fresh API process
 * and each COPY in a fresh Node process, so the peak RSS (the kernel's VmHWM) is that process's
 * own; a 10-day export, and the 90-day exports again with the API's heap capped at 64 MiB, show
 * that memory does not grow with the row count (the uncapped peak is V8 collecting lazily).
 * BENCH_READ_MACHINES (default 50), BENCH_READ_DAYS (default 90).
 */

const MACHINES = Number(process.env.BENCH_READ_MACHINES ?? "50")
const DAYS = Number(process.env.BENCH_READ_DAYS ?? "90")
const START = "2025-01-01T00:00:00Z"
const dayAfter = (days: number) => new Date(Date.parse(START) + (days - 1) * 86_400_000).toISOString().slice(0, 10)
const dataMart = exportEndpoints.find((endpoint) => endpoint.path === "/api/oee/export/data-mart")

const mib = (kib: number) => kib / 1024
const memoryOf = (pid: number) => {
  const status = readFileSync(`/proc/${pid}/status`, "utf8")
  const field = (name: string) => Number(new RegExp(`${name}:\\s+(\\d+) kB`).exec(status)?.[1] ?? "0")
  return { rssKiB: field("VmRSS"), peakKiB: field("VmHWM") }
}

/** Child mode: stream `COPY (query) TO STDOUT` into a byte counter; report bytes, seconds and this process's peak RSS. */
const copyBaseline = async () => {
  const sql = postgres(process.env.READ_DATABASE_URL as string, { max: 1, connection: { TimeZone: "UTC" }, onnotice: () => {} })
  await sql`SELECT 1`
  const idle = memoryOf(process.pid)
  const started = performance.now()
  let bytes = 0
  const source = await sql.unsafe(process.env.BENCH_COPY as string).readable()
  await pipeline(source, new Writable({ write: (chunk: Buffer, _encoding, done) => ((bytes += chunk.length), done()) }))
  const seconds = (performance.now() - started) / 1000
  console.log(JSON.stringify({ bytes, seconds, idleKiB: idle.rssKiB, peakKiB: memoryOf(process.pid).peakKiB }))
  await sql.end()
}

const startApi = async (readerUrl: string, nodeFlags: ReadonlyArray<string>): Promise<{ child: ChildProcess; url: string }> => {
  const port = await freePort()
  const child = spawn(
    process.execPath,
    [...nodeFlags, "--import", "tsx", "infra/cli.ts", "serve-api", "--port", String(port), "--host", "127.0.0.1"],
    {
      env: { ...process.env, READ_DATABASE_URL: readerUrl },
      stdio: ["ignore", "pipe", "inherit"]
    }
  )
  const lines = createInterface({ input: child.stdout as NonNullable<typeof child.stdout> })
  for await (const line of lines) if (line.includes("read api listening")) break
  return { child, url: `http://127.0.0.1:${port}` }
}

const exportOnce = async (readerUrl: string, key: string, format: string, days: number, nodeFlags: ReadonlyArray<string> = []) => {
  const { child, url } = await startApi(readerUrl, nodeFlags)
  try {
    // Warm the process (module loading, first connection) so the figures are the export's.
    await (await fetch(`${url}/api/oee/export/data-mart?format=${format}&limit=10`, { headers: { "X-API-Key": key } })).arrayBuffer()
    const idle = memoryOf(child.pid as number)
    const started = performance.now()
    const response = await fetch(
      `${url}/api/oee/export/data-mart?format=${format}&date_from=${START.slice(0, 10)}&date_to=${dayAfter(days)}`,
      { headers: { "X-API-Key": key } }
    )
    if (response.status !== 200) throw new Error(`${format}: ${response.status} ${await response.text()}`)
    let bytes = 0
    for await (const chunk of response.body as unknown as AsyncIterable<Uint8Array>) bytes += chunk.length
    const seconds = (performance.now() - started) / 1000
    return { bytes, seconds, idleKiB: idle.rssKiB, peakKiB: memoryOf(child.pid as number).peakKiB }
  } finally {
    child.kill("SIGTERM")
    await once(child, "exit")
  }
}

const copyOnce = async (readerUrl: string, days: number) => {
  if (dataMart === undefined) throw new Error("no data-mart export")
  const query = exportQuery(dataMart, {
    format: "csv",
    window: { from: START, to: `${dayAfter(days + 1)}T00:00:00.000Z` },
    booleans: {},
    texts: {}
  })
  // COPY takes no bind parameters: the two bounds are this benchmark's own constants, inlined.
  const text = query.text
    .replace("$1::timestamptz", `'${query.params[0]}'::timestamptz`)
    .replace("$2::timestamptz", `'${query.params[1]}'::timestamptz`)
  const child = spawn(process.execPath, ["--import", "tsx", "bench/read.bench.ts", "--copy-baseline"], {
    env: { ...process.env, READ_DATABASE_URL: readerUrl, BENCH_COPY: `COPY (${text}) TO STDOUT WITH (FORMAT csv, HEADER)` },
    stdio: ["ignore", "pipe", "inherit"]
  })
  let output = ""
  for await (const chunk of child.stdout as AsyncIterable<Buffer>) output += chunk.toString()
  await once(child, "exit")
  return JSON.parse(output.trim().split("\n").at(-1) as string) as { bytes: number; seconds: number; idleKiB: number; peakKiB: number }
}

const main = async () => {
  const pg = await startPostgres()
  const database = await createDatabase(pg.url, "ingest_bench")
  const owner = postgres(database.url, { max: 2, onnotice: () => {} })
  try {
    const seeded = performance.now()
    const { snapshots } = await seedOeeMart(owner, { machines: MACHINES, slots: DAYS * 96, start: START })
    console.log(
      `seeded ${snapshots} snapshots (${MACHINES} machines, ${DAYS} days) in ${((performance.now() - seeded) / 1000).toFixed(1)} s`
    )
    const key = (await createApiKey(owner, "bench", ["oee"], marts)).key
    const readerUrl = await ensureReaderLogin(owner, database.url, "ingest_bench_reader", "bench-reader")
    const tenDays = Math.min(10, DAYS)
    const runs: Array<[string, number, { bytes: number; seconds: number; idleKiB: number; peakKiB: number }]> = []
    runs.push(["COPY ... TO STDOUT (csv)", DAYS, await copyOnce(readerUrl, DAYS)])
    for (const format of ["csv", "json", "xlsx"])
      runs.push([`GET data-mart format=${format}`, DAYS, await exportOnce(readerUrl, key, format, DAYS)])
    runs.push(["COPY ... TO STDOUT (csv)", tenDays, await copyOnce(readerUrl, tenDays)])
    runs.push([`GET data-mart format=csv`, tenDays, await exportOnce(readerUrl, key, "csv", tenDays)])
    // With the API's heap capped, an export that held its rows would run out of memory.
    for (const format of ["csv", "json", "xlsx"])
      runs.push([`  ${format}, API heap capped 64 MiB`, DAYS, await exportOnce(readerUrl, key, format, DAYS, ["--max-old-space-size=64"])])
    const [{ version }] = (await owner`SELECT current_setting('server_version') AS version`) as unknown as [{ version: string }]
    console.log(
      `\nread benchmark: OEE data mart, ${MACHINES} machines x 96 snapshots/day, Postgres ${version}, Node ${process.version}, same machine\n`
    )
    console.log(
      `${"what".padEnd(32)}${"days".padStart(5)}${"rows".padStart(9)}${"MB".padStart(8)}${"seconds".padStart(9)}${"rows/s".padStart(10)}${"idle RSS".padStart(10)}${"peak RSS".padStart(10)}`
    )
    for (const [what, days, run] of runs) {
      const rows = MACHINES * 96 * days
      console.log(
        `${what.padEnd(32)}${String(days).padStart(5)}${String(rows).padStart(9)}${(run.bytes / 1e6).toFixed(1).padStart(8)}${run.seconds.toFixed(2).padStart(9)}${Math.round(
          rows / run.seconds
        )
          .toString()
          .padStart(10)}${`${mib(run.idleKiB).toFixed(0)} MiB`.padStart(10)}${`${mib(run.peakKiB).toFixed(0)} MiB`.padStart(10)}`
      )
    }
    // One line per goal (issue 12), for scripts: each 90-day export against the 90-day COPY of the same rows in this run.
    const copy = runs[0]?.[2] as (typeof runs)[number][2]
    console.log("")
    for (const format of ["csv", "json", "xlsx"]) {
      const run = runs.find(([what, days]) => what === `GET data-mart format=${format}` && days === DAYS)?.[2]
      if (run === undefined) continue
      console.log(`ratio export/${format}: ${Math.round((run.seconds / copy.seconds) * 100)}% of COPY`)
      console.log(`export/${format}: ${run.seconds.toFixed(2)} s`)
      console.log(`export/${format} peak RSS: idle + ${Math.round(mib(run.peakKiB - run.idleKiB))} MiB`)
    }
    console.log(`COPY: ${copy.seconds.toFixed(2)} s`)
  } finally {
    await dropReaderLogin(owner, "ingest_bench_reader")
    await owner.end({ timeout: 5 })
    await database.drop()
    await pg.dispose()
  }
}

;(process.argv.includes("--copy-baseline") ? copyBaseline() : main()).catch((error: unknown) => {
  console.error(error)
  process.exitCode = 1
})
