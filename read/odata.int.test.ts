import postgres from "postgres"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { addSnapshots, seedOeeMart } from "../infra/local/oee-mart.ts"
import { type ReadApiHarness, readSlowly, startReadApi } from "../infra/local/read-api.ts"
import { createDatabase, type PostgresServer, startPostgres } from "../infra/postgres/database.ts"
import { marts } from "./feeds.ts"
import { createApiKey } from "./keys.ts"
import { serveReadApi } from "./server.ts"

const MACHINES = 50
const SLOTS = 5000
const START = "2025-03-01T00:00:00Z"

let pg: PostgresServer
let database: { url: string; drop: () => Promise<void> }
let owner: postgres.Sql
let api: ReadApiHarness
let key: string

interface Page {
  readonly "@odata.count"?: number
  readonly "@odata.nextLink"?: string
  readonly value: ReadonlyArray<{ id: string; snapshot_time: string }>
}

const fetchPage = async (url: string, init: RequestInit = {}): Promise<Page> => {
  const response = await fetch(url, { ...init, headers: { "X-API-Key": key, ...(init.headers as Record<string, string> | undefined) } })
  expect(response.status, await response.clone().text()).toBe(200)
  return (await response.json()) as Page
}

/** Follows `@odata.nextLink` from `first` to the end, as OData.Feed does; every row of every page. */
const walk = async (first: string, init: RequestInit = {}, afterPage: (pages: number) => Promise<void> = async () => {}) => {
  const rows: Array<{ id: string; snapshot_time: string }> = []
  let pages = 0
  let next: string | undefined = first
  while (next !== undefined) {
    const page = await fetchPage(next, init)
    rows.push(...page.value)
    pages++
    next = page["@odata.nextLink"]
    await afterPage(pages)
  }
  return { rows, pages }
}

beforeAll(async () => {
  pg = await startPostgres()
  database = await createDatabase(pg.url)
  owner = postgres(database.url, { onnotice: () => {}, max: 2 })
  await seedOeeMart(owner, { machines: MACHINES, slots: SLOTS, start: START })
  key = (await createApiKey(owner, "odata", ["oee"], marts)).key
  api = await startReadApi(owner, database.url, { maxStreams: 2, accessLog: false })
}, 120_000)

afterAll(async () => {
  await api?.close()
  await owner?.end({ timeout: 5 })
  await database?.drop()
  await pg?.dispose()
})

describe("OData server-driven paging", () => {
  it("a walk over 250,000 rows with @odata.nextLink returns each row exactly once", async () => {
    const { rows, pages } = await walk(`${api.url}/odata/oee/oee_snapshots?$select=id,snapshot_time&$count=true`)
    expect(rows).toHaveLength(MACHINES * SLOTS)
    expect(new Set(rows.map((row) => row.id)).size).toBe(MACHINES * SLOTS)
    expect(pages).toBe(25)
    const [{ n }] = (await owner`SELECT count(*)::int AS n FROM mart_oee.oee_snapshots`) as unknown as [{ n: number }]
    expect(rows).toHaveLength(n)
  }, 120_000)

  it("with $orderby, pages follow the order by keyset: rows written during the walk neither repeat nor push rows out", async () => {
    const added: Array<{ remove: () => Promise<unknown> }> = []
    const before = await owner`SELECT id FROM mart_oee.oee_snapshots WHERE machine_id = 'M-11'`
    const { rows } = await walk(
      `${api.url}/odata/oee/oee_snapshots?$select=id,snapshot_time&$filter=machine_id eq 'M-11'&$orderby=snapshot_time desc,oee_pct`.replaceAll(
        " ",
        "%20"
      ),
      { headers: { Prefer: "odata.maxpagesize=1000" } },
      async (pages) => {
        // New snapshots sort before the walk's position: an offset would now re-read 100 rows per page.
        if (pages <= 3)
          added.push(await addSnapshots(owner, { prefix: `late-${pages}-`, from: "2030-01-01T00:00:00Z", count: 100, machine: "M-11" }))
      }
    )
    expect(rows.map((row) => row.id).sort()).toEqual(before.map((row) => row.id as string).sort())
    expect(rows.map((row) => row.snapshot_time)).toEqual([...rows.map((row) => row.snapshot_time)].sort().reverse())
    for (const rows of added) await rows.remove()
  }, 60_000)

  it("honours Prefer: odata.maxpagesize, $top across pages, and $orderby across pages", async () => {
    const small = await fetch(`${api.url}/odata/oee/oee_snapshots?$select=id&$filter=machine_id eq 'M-07'`.replaceAll(" ", "%20"), {
      headers: { "X-API-Key": key, Prefer: "odata.maxpagesize=700" }
    })
    expect(small.headers.get("preference-applied")).toBe("odata.maxpagesize=700")
    const topped = await walk(
      `${api.url}/odata/oee/oee_snapshots?$select=id,snapshot_time&$filter=machine_id eq 'M-07'&$top=1500`.replaceAll(" ", "%20"),
      { headers: { Prefer: "odata.maxpagesize=700" } }
    )
    expect(topped.pages).toBe(3)
    expect(topped.rows).toHaveLength(1500)
    const ordered = await walk(
      `${api.url}/odata/oee/oee_snapshots?$select=id,snapshot_time&$filter=machine_id eq 'M-07'&$orderby=snapshot_time desc`.replaceAll(
        " ",
        "%20"
      ),
      {
        headers: { Prefer: "odata.maxpagesize=1000" }
      }
    )
    expect(ordered.rows).toHaveLength(SLOTS)
    expect(new Set(ordered.rows.map((row) => row.id)).size).toBe(SLOTS)
    expect(ordered.rows[0]?.snapshot_time).toBe(new Date(Date.parse(START) + (SLOTS - 1) * 15 * 60_000).toISOString())
  }, 60_000)
})

describe("incremental refresh windows", () => {
  const window = (from: string, to: string) => `snapshot_time ge ${from} and snapshot_time lt ${to}`
  const inWindow = async (from: string, to: string) => {
    const { rows } = await walk(
      `${api.url}/odata/oee/oee_snapshots?$select=id,snapshot_time&$filter=${encodeURIComponent(window(from, to))}`
    )
    return rows
  }

  it("a RangeStart/RangeEnd $filter returns exactly the half-open window [RangeStart, RangeEnd)", async () => {
    const [from, to] = ["2025-03-02T00:00:00Z", "2025-03-03T00:00:00Z"]
    const rows = await inWindow(from, to)
    const expected =
      await owner`SELECT id FROM mart_oee.oee_snapshots WHERE snapshot_time >= ${from}::timestamptz AND snapshot_time < ${to}::timestamptz ORDER BY id`
    expect(rows.map((row) => row.id).sort()).toEqual(expected.map((row) => row.id as string).sort())
    expect(rows).toHaveLength(MACHINES * 96)
    expect(rows.some((row) => row.snapshot_time === "2025-03-02T00:00:00.000Z")).toBe(true)
    expect(rows.some((row) => row.snapshot_time === "2025-03-03T00:00:00.000Z")).toBe(false)
  })

  it("adjacent partitions, in the offset form .NET writes, share no row and miss none", async () => {
    const bounds = [
      "2025-03-04T00:00:00.0000000+00:00",
      "2025-03-04T06:00:00.0000000+00:00",
      "2025-03-04T13:30:00.0000000+00:00",
      "2025-03-05T00:00:00.0000000+00:00"
    ]
    const partitions: Array<Awaited<ReturnType<typeof inWindow>>> = []
    for (const [i, to] of bounds.slice(1).entries()) partitions.push(await inWindow(bounds[i] as string, to))
    const ids = partitions.flat().map((row) => row.id)
    expect(new Set(ids).size).toBe(ids.length)
    expect(ids).toHaveLength(MACHINES * 96)
    expect(partitions.map((rows) => rows.length)).toEqual([MACHINES * 24, MACHINES * 30, MACHINES * 42])
  })
})

describe("behind a proxy", () => {
  it("links (@odata.context, @odata.nextLink) point at PUBLIC_URL, not at the address the API listens on", async () => {
    const proxied = await serveReadApi({
      sql: api.sql,
      port: 0,
      maxStreams: 2,
      accessLog: false,
      publicUrl: "https://reports.example.com/mesh/"
    })
    try {
      const page = await fetchPage(`${proxied.url}/odata/oee/oee_snapshots?$select=id&api_key=${encodeURIComponent(key)}`, {
        headers: { Prefer: "odata.maxpagesize=5" }
      })
      expect(page.value).toHaveLength(5)
      const next = new URL(page["@odata.nextLink"] as string)
      expect(`${next.origin}${next.pathname}`).toBe("https://reports.example.com/mesh/odata/oee/oee_snapshots")
      expect(next.searchParams.get("$select")).toBe("id")
      expect(next.searchParams.get("api_key")).toBe(key)
      expect(next.searchParams.get("$skiptoken")).not.toBeNull()
      expect((page as unknown as Record<string, string>)["@odata.context"]).toBe(
        "https://reports.example.com/mesh/odata/oee/$metadata#oee_snapshots(id)"
      )
    } finally {
      await proxied.close()
    }
  })
})

describe("hard limits on every query and response", () => {
  const headers = () => ({ "X-API-Key": key })

  it("runs $count under the admission cap: past it, 503 busy at once, while key checks keep their own slots", async () => {
    const narrow = await serveReadApi({ sql: api.sql, port: 0, maxStreams: 1, keyCheckSlots: 1, accessLog: false })
    try {
      // An export whose client reads nothing holds the one slot for long queries.
      const held = await fetch(`${narrow.url}/api/oee/export/snapshots?format=csv`, { headers: headers() })
      const reader = (held.body as ReadableStream<Uint8Array>).getReader()
      await reader.read()
      const count = await fetch(`${narrow.url}/odata/oee/oee_snapshots/$count?$filter=${encodeURIComponent("contains(machine_id,'1')")}`, {
        headers: headers()
      })
      expect(count.status).toBe(503)
      expect(count.headers.get("retry-after")).toBe("5")
      expect(((await count.json()) as { error: { code: string } }).error.code).toBe("busy")
      const inline = await fetch(`${narrow.url}/odata/oee/oee_snapshots?$count=true&$top=1`, { headers: headers() })
      expect(inline.status).toBe(503)
      // A key check is not stuck behind them.
      expect((await fetch(`${narrow.url}/odata/oee/`, { headers: headers() })).status).toBe(200)
      await reader.cancel()
      await api.cursorsClosed()
      // The slot is free once the server has wound the cancelled export up (after its cursor closed, on a loaded machine a
      // moment later): a client retrying after its 503, as Retry-After tells it to, gets the count.
      const deadline = Date.now() + 10_000
      let answer: Response
      for (;;) {
        answer = await fetch(`${narrow.url}/odata/oee/oee_snapshots/$count?$filter=${encodeURIComponent("machine_id eq 'M-01'")}`, {
          headers: headers()
        })
        if (answer.status !== 503 || Date.now() > deadline) break
        await answer.body?.cancel()
        await new Promise((resolveWait) => setTimeout(resolveWait, 50))
      }
      expect(await answer.text()).toBe(String(SLOTS))
    } finally {
      await narrow.close()
    }
  })

  it("puts every query under a statement timeout, answered 503 with Retry-After naming the limit, and frees its slot", async () => {
    const hasty = await serveReadApi({ sql: api.sql, port: 0, maxStreams: 1, exportTimeoutMs: 1, pageTimeoutMs: 1, accessLog: false })
    // The marts held by a writer's lock (as a rebuild's switch or a long migration would): every query waits past its
    // timeout, whatever the machine's speed, so the test does not depend on a query being slower than 1 ms.
    const locked = await owner.reserve()
    await locked`BEGIN`
    await locked`LOCK TABLE mart_oee.oee_snapshots, mart_oee.oee_data_mart IN ACCESS EXCLUSIVE MODE`
    try {
      const count = await fetch(`${hasty.url}/odata/oee/oee_snapshots/$count?$filter=${encodeURIComponent("contains(machine_id,'1')")}`, {
        headers: headers()
      })
      expect(count.status).toBe(503)
      expect(count.headers.get("retry-after")).toBe("30")
      expect(((await count.json()) as { error: { code: string; message: string } }).error).toEqual({
        code: "query_timeout",
        message:
          "the query ran past its statement timeout of 1 ms (READ_PAGE_TIMEOUT_MS); ask for a narrower window (date_from/date_to, $filter) or retry later"
      })
      // A fetch that finds its rows slowly (a filter no index serves, a sort of the whole view) is cancelled when its time is up.
      const exported = await fetch(`${hasty.url}/api/oee/export/data-mart?format=csv&shift_id=S-2&line_id=L-3`, { headers: headers() })
      expect(exported.status).toBe(503)
      expect(((await exported.json()) as { message: string }).message).toMatch(/statement timeout of 1 ms \(READ_EXPORT_TIMEOUT_MS\)/)
      const sorted = await fetch(`${hasty.url}/odata/oee/oee_data_mart?$orderby=oee_pct desc`, { headers: headers() })
      expect(sorted.status).toBe(503)
      expect(((await sorted.json()) as { error: { message: string } }).error.message).toMatch(
        /statement timeout of 1 ms \(READ_PAGE_TIMEOUT_MS\)/
      )
      await locked`COMMIT`
      // The slot and the connection are given back as they were: the API's own limits apply again.
      await api.cursorsClosed()
      const page = await fetchPage(`${api.url}/odata/oee/oee_snapshots?$top=3`)
      expect(page.value).toHaveLength(3)
    } finally {
      await locked`ROLLBACK`.catch(() => undefined)
      locked.release()
      await hasty.close()
    }
  })

  it("times each fetch, never the time a client takes to read: an export that takes longer than the timeout to read completes", async () => {
    const patient = await serveReadApi({ sql: api.sql, port: 0, maxStreams: 1, exportTimeoutMs: 1000, accessLog: false })
    try {
      const started = Date.now()
      const read = readSlowly(`${patient.url}/api/oee/export/snapshots?format=csv`, headers(), 4 * 1024 * 1024)
      const { complete } = await read.done
      expect(Date.now() - started).toBeGreaterThan(1000)
      expect(complete).toBe(true)
    } finally {
      await patient.close()
    }
  })

  it("ends a response whose client reads slower than the minimum rate, closing its cursor and freeing its slot", async () => {
    const strict = await serveReadApi({
      sql: api.sql,
      port: 0,
      maxStreams: 1,
      streamLimits: { minBytesPerSecond: 256 * 1024, slowWindowMs: 1000 },
      accessLog: false
    })
    try {
      const slow = readSlowly(`${strict.url}/api/oee/export/snapshots?format=csv`, headers(), 16 * 1024)
      // The one long slot is the slow export's until the server ends it: ask until another export gets it.
      let next: Response
      for (next = await fetch(`${strict.url}/api/oee/export/snapshots?format=csv&limit=10`, { headers: headers() }); next.status === 503;) {
        await next.body?.cancel()
        next = await fetch(`${strict.url}/api/oee/export/snapshots?format=csv&limit=10`, { headers: headers() })
      }
      expect(next.status).toBe(200)
      expect((await next.text()).split("\r\n").filter((line) => line !== "")).toHaveLength(11)
      await api.cursorsClosed()
      // What the socket buffers still held arrives, and then the end: not the end of a complete body.
      slow.hurry()
      expect((await slow.done).complete).toBe(false)
    } finally {
      await strict.close()
    }
  })

  it("ends a response that streams past its total time limit, however fast its client reads", async () => {
    const brief = await serveReadApi({ sql: api.sql, port: 0, maxStreams: 1, streamLimits: { maxMs: 300 }, accessLog: false })
    try {
      const response = await fetch(`${brief.url}/api/oee/export/snapshots?format=json`, { headers: headers() })
      expect(response.status).toBe(200)
      await expect(response.text()).rejects.toThrow()
      await api.cursorsClosed()
    } finally {
      await brief.close()
    }
  })
})
