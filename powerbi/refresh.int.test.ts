import { emulatorSettings } from "../infra/local/powerbi.ts"
import postgres from "postgres"
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from "vitest"
import { createDatabase, type PostgresServer, startPostgres } from "../infra/postgres/database.ts"
import { setLogLevel } from "../platform/logger.ts"
import { powerBiTokens } from "./auth.ts"
import { type PowerBiClient, powerBiClient, PowerBiError } from "./client.ts"
import { type PowerBiEmulator, startPowerBiEmulator } from "./emulator/server.ts"
import { type Position, type Refresher, type RefresherOptions, type RefreshTarget, refreshStatus, startRefresher } from "./refresh.ts"

const TENANT = "11111111-2222-3333-4444-555555555555"
const APP = { tenantId: TENANT, clientId: "mesh-refresher", clientSecret: "s3cret" }
const GROUP = "ws-shared"
const MINUTE = 60_000
const HOUR = 3_600_000
const DAY = 86_400_000

/** The one clock of the emulator and the refresher, stepped by the tests. */
let at = Date.parse("2025-01-15T10:00:00Z")
let emulator: PowerBiEmulator
let pg: PostgresServer
let database: { url: string; drop: () => Promise<void> }
let sql: postgres.Sql
let api: PowerBiClient
const refreshers: Array<Refresher> = []

beforeAll(async () => {
  setLogLevel("warn")
  emulator = await startPowerBiEmulator({
    apps: [APP],
    workspaces: [{ id: GROUP, capacity: "shared" }],
    clock: () => at,
    importDatasets: [
      { groupId: GROUP, id: "crm-import", name: "CRM marts", refreshMs: MINUTE },
      { groupId: GROUP, id: "oee-import", name: "OEE marts", refreshMs: MINUTE },
      { groupId: GROUP, id: "retail-import", name: "Retail marts", refreshMs: HOUR },
      { groupId: GROUP, id: "broken-import", name: "Marts without credentials", refreshMs: MINUTE, failRefreshes: true },
      { groupId: GROUP, id: "raced-import", name: "Marts on a schedule", refreshMs: 10 * MINUTE },
      { groupId: GROUP, id: "capped-import", name: "Marts refreshed too often", refreshMs: 0 },
      { groupId: GROUP, id: "throttled-import", name: "Marts behind a 429", refreshMs: 0 }
    ]
  })
  const settings = emulatorSettings(emulator, APP)
  api = powerBiClient(settings.apiBase, powerBiTokens(settings))
  pg = await startPostgres()
  database = await createDatabase(pg.url)
  sql = postgres(database.url, { onnotice: () => {} })
}, 120_000)

afterEach(async () => {
  for (const refresher of refreshers.splice(0)) await refresher.stop()
  vi.restoreAllMocks()
})

afterAll(async () => {
  await sql?.end({ timeout: 5 })
  await database?.drop()
  await pg?.dispose()
  await emulator?.close()
})

/** A projection whose position the test sets: no NATS needed. */
const fakePosition = () => {
  const positions = new Map<string, Position>()
  return {
    set: (projection: string, checkpoint: number, head = checkpoint) => positions.set(projection, { checkpoint, head }),
    position: async (projection: string) => positions.get(projection) ?? { checkpoint: 0, head: 0 }
  }
}

/** The client, with every request counted and a hook before each one (to race or refuse it as the service might). */
const watched = (before: (method: string, path: string) => Promise<void> = async () => {}) => {
  const requests: Array<string> = []
  const client: PowerBiClient = {
    request: async <A>(method: "GET" | "POST" | "PUT" | "DELETE", path: string, body?: unknown) => {
      requests.push(`${method} ${path}`)
      await before(method, path)
      return api.request<A>(method, path, body)
    },
    response: (method, path, body, signal) => api.response(method, path, body, signal)
  }
  return { client, posts: () => requests.filter((request) => request.startsWith("POST")).length, requests }
}

const target = (projection: string, datasetId: string): RefreshTarget => ({ projection, groupId: GROUP, datasetId })

const start = async (options: Partial<RefresherOptions> & Pick<RefresherOptions, "targets" | "position">) => {
  const refresher = await startRefresher({
    sql,
    client: api,
    minIntervalMs: 15 * MINUTE,
    dailyCap: 8,
    now: () => at,
    pollMs: 0,
    ...options
  })
  refreshers.push(refresher)
  return refresher
}

/** A refresh started on the dataset directly, as a scheduled one or one from the portal is. */
const startOutside = (datasetId: string) => api.request("POST", `/groups/${GROUP}/datasets/${datasetId}/refreshes`)

const historyOf = async (datasetId: string) =>
  (
    await api.request<{ value: ReadonlyArray<{ requestId: string; startTime: string; status: string; serviceExceptionJson?: string }> }>(
      "GET",
      `/groups/${GROUP}/datasets/${datasetId}/refreshes`
    )
  ).value

const rowsOf = async (datasetId: string) =>
  (
    await sql`SELECT projection, request_id, covers_checkpoint::int AS covers, triggered_at, status, finished_at, error
      FROM ingest.powerbi_refreshes WHERE dataset_id = ${datasetId} ORDER BY triggered_at, id`
  ).map((row): Record<string, unknown> => ({ ...row, triggered_at: (row.triggered_at as Date).toISOString() }))

/** The JSON lines logEvent wrote to stderr. */
const stderrLines = () => {
  const lines: Array<Record<string, unknown>> = []
  vi.spyOn(console, "error").mockImplementation((line: unknown) => {
    lines.push(JSON.parse(String(line)) as Record<string, unknown>)
  })
  return lines
}

describe("the refresher against the emulated refresh API", () => {
  it("refreshes once after the projection catches up, coalesces the catch-ups of the interval into one refresh at its end, and records each Completed", async () => {
    const t0 = at
    const crm = fakePosition()
    const refresher = await start({ targets: [target("crm", "crm-import")], position: crm.position })
    crm.set("crm", 5, 10)
    const [behind] = await refresher.tick()
    expect(behind?.decision).toMatchObject({ action: "wait", reason: "not-caught-up" })
    expect(await historyOf("crm-import")).toEqual([])

    crm.set("crm", 10)
    const [first] = await refresher.tick()
    expect(first?.decision).toEqual({ action: "trigger", covers: 10 })
    const [started] = await historyOf("crm-import")
    expect(first?.trigger).toEqual({ outcome: "started", requestId: started?.requestId })

    at += MINUTE
    const [done] = await refresher.tick()
    expect(done?.finished).toEqual([{ requestId: started?.requestId, status: "completed", error: null }])
    expect(done?.decision).toMatchObject({ reason: "nothing-new" })

    for (const [minutes, checkpoint] of [
      [2, 20],
      [5, 30],
      [14, 40]
    ] as const) {
      at = t0 + minutes * MINUTE
      crm.set("crm", checkpoint)
      const [waiting] = await refresher.tick()
      expect(waiting?.decision).toMatchObject({ action: "wait", reason: "min-interval", until: t0 + 15 * MINUTE })
    }
    expect((await historyOf("crm-import")).length).toBe(1)

    at = t0 + 15 * MINUTE
    const [second] = await refresher.tick()
    expect(second?.decision).toEqual({ action: "trigger", covers: 40 })
    at += MINUTE
    await refresher.tick()

    const history = await historyOf("crm-import")
    expect(history.map((refresh) => refresh.status)).toEqual(["Completed", "Completed"])
    expect(await rowsOf("crm-import")).toEqual([
      {
        projection: "crm",
        request_id: history[1]?.requestId,
        covers: 10,
        triggered_at: new Date(t0).toISOString(),
        status: "completed",
        finished_at: new Date(t0 + MINUTE),
        error: null
      },
      {
        projection: "crm",
        request_id: history[0]?.requestId,
        covers: 40,
        triggered_at: new Date(t0 + 15 * MINUTE).toISOString(),
        status: "completed",
        finished_at: new Date(t0 + 16 * MINUTE),
        error: null
      }
    ])
    expect((await refreshStatus(sql, at)).find((status) => status.datasetId === "crm-import")).toEqual({
      projection: "crm",
      groupId: GROUP,
      datasetId: "crm-import",
      lastTrigger: {
        at: new Date(t0 + 15 * MINUTE).toISOString(),
        requestId: history[0]?.requestId,
        coversCheckpoint: 40,
        status: "completed",
        finishedAt: new Date(t0 + 16 * MINUTE).toISOString(),
        error: null
      },
      nextAllowedAt: new Date(t0 + 30 * MINUTE).toISOString(),
      startedLast24h: 2
    })
  })

  it("never starts more than the daily cap in any 24 h, counting a refresh started outside the mesh, so the service never has to refuse one", async () => {
    const t0 = at
    const oee = fakePosition()
    const { client, posts } = watched()
    const refresher = await start({ client, targets: [target("oee", "oee-import")], position: oee.position })
    await startOutside("oee-import")
    const decisions: Array<string> = []
    for (let step = 1; step <= 30 * 4; step++) {
      at = t0 + step * 15 * MINUTE
      oee.set("oee", step)
      const [outcome] = await refresher.tick()
      expect(outcome?.trigger?.outcome ?? "none").not.toMatch(/refused|error/)
      decisions.push(outcome?.decision.action === "trigger" ? "trigger" : (outcome?.decision.reason ?? "none"))
      if (step === 8)
        expect(outcome?.decision).toMatchObject({
          reason: "daily-cap",
          message: `daily cap: 8 of 8 in the last 24 h, next at ${new Date(t0 + DAY).toISOString()}`
        })
    }
    const starts = (await historyOf("oee-import")).map((refresh) => Date.parse(refresh.startTime))
    for (const start of starts) expect(starts.filter((other) => other > start - DAY && other <= start).length).toBeLessThanOrEqual(8)
    expect(starts.filter((start) => start < t0 + DAY).length).toBe(8)
    expect(decisions.slice(0, 7)).toEqual(Array(7).fill("trigger"))
    expect(decisions.slice(7, 95)).toEqual(Array(88).fill("daily-cap"))
    expect(decisions.slice(95)).toContain("trigger")
    expect(posts()).toBe(starts.length - 1)
    expect((await rowsOf("oee-import")).every((row) => row.status === "completed")).toBe(true)
  })

  it("waits for a refresh started outside the mesh instead of doubling it, and refreshes once it has finished", async () => {
    const t0 = at
    const retail = fakePosition()
    const { client, posts } = watched()
    const refresher = await start({ client, targets: [target("retail", "retail-import")], position: retail.position })
    await startOutside("retail-import")
    retail.set("retail", 7)
    for (const minutes of [0, 30, 59]) {
      at = t0 + minutes * MINUTE
      const [outcome] = await refresher.tick()
      expect(outcome?.decision).toEqual({ action: "wait", reason: "running", message: "a refresh is running: waiting for it to finish" })
    }
    expect(posts()).toBe(0)
    expect(await rowsOf("retail-import")).toEqual([])

    at = t0 + HOUR
    const [after] = await refresher.tick()
    expect(after?.decision).toEqual({ action: "trigger", covers: 7 })
    expect(posts()).toBe(1)
    const history = await historyOf("retail-import")
    expect(history.map((refresh) => refresh.status)).toEqual(["Unknown", "Completed"])
    expect(await rowsOf("retail-import")).toMatchObject([{ request_id: history[0]?.requestId, covers: 7, status: "running" }])
  })

  it("records a refresh that fails with the service's exception, logs it with the dataset named, and tries again at the next interval", async () => {
    const t0 = at
    const stderr = stderrLines()
    const crm = fakePosition()
    const refresher = await start({ targets: [target("crm", "broken-import")], position: crm.position })
    crm.set("crm", 3)
    expect((await refresher.tick())[0]?.decision).toEqual({ action: "trigger", covers: 3 })
    at += MINUTE
    const [failed] = await refresher.tick()
    const exception = JSON.stringify({ errorCode: "ModelRefreshFailed_CredentialsNotSpecified" })
    expect(failed?.finished).toEqual([{ requestId: expect.any(String), status: "failed", error: exception }])
    expect(failed?.decision).toMatchObject({ reason: "min-interval", until: t0 + 15 * MINUTE })
    expect(await rowsOf("broken-import")).toMatchObject([
      { covers: 3, status: "failed", finished_at: new Date(t0 + MINUTE), error: exception }
    ])
    expect(stderr).toContainEqual(
      expect.objectContaining({ level: "warn", msg: "powerbi refresh failed", dataset: `${GROUP}/broken-import`, error: exception })
    )
    at = t0 + 15 * MINUTE
    expect((await refresher.tick())[0]?.decision).toEqual({ action: "trigger", covers: 3 })
  })

  it("records Power BI's 400 for a refresh already executing and waits it out, never retrying it tick after tick", async () => {
    const t0 = at
    let raced = false
    const { client, posts } = watched(async (method, path) => {
      // A scheduled refresh starts between the refresher's read of the history and its POST.
      if (method === "POST" && path.includes("raced-import") && !raced) {
        raced = true
        await startOutside("raced-import")
      }
    })
    const stderr = stderrLines()
    const crm = fakePosition()
    const refresher = await start({ client, targets: [target("crm", "raced-import")], position: crm.position })
    crm.set("crm", 9)
    const [refused] = await refresher.tick()
    expect(refused?.trigger).toMatchObject({
      outcome: "refused",
      error: expect.stringContaining("already executing"),
      until: t0 + 15 * MINUTE
    })
    expect(await rowsOf("raced-import")).toMatchObject([{ request_id: null, covers: 9, status: "refused" }])
    expect(stderr).toContainEqual(
      expect.objectContaining({ level: "warn", msg: "powerbi refresh refused", dataset: `${GROUP}/raced-import` })
    )
    for (const minutes of [0, 1, 5, 11, 14]) {
      at = t0 + minutes * MINUTE
      const [outcome] = await refresher.tick()
      // While the scheduled refresh runs, then until the interval since it (and the refusal) is over.
      expect(outcome?.decision).toMatchObject(minutes < 10 ? { reason: "running" } : { action: "wait", until: t0 + 15 * MINUTE })
    }
    expect(posts()).toBe(1)
    at = t0 + 15 * MINUTE
    const [after] = await refresher.tick()
    expect(after?.trigger).toMatchObject({ outcome: "started" })
    expect(posts()).toBe(2)
    expect((await historyOf("raced-import")).length).toBe(2)
  })

  it("records the service's refusal at its daily limit and waits until a refresh leaves its 24 h window", async () => {
    const t0 = at
    const { client, posts } = watched()
    const warehouse = fakePosition()
    // Configured for more than the workspace's capacity allows: the service's own limit is what holds.
    const refresher = await start({
      client,
      targets: [target("warehouse", "capped-import")],
      position: warehouse.position,
      minIntervalMs: 0,
      dailyCap: 20
    })
    for (let step = 0; step < 9; step++) {
      at = t0 + step * MINUTE
      warehouse.set("warehouse", step + 1)
      await refresher.tick()
    }
    const rows = await rowsOf("capped-import")
    expect(rows.map((row) => row.status)).toEqual([...Array(8).fill("completed"), "refused"])
    expect(rows[8]?.error).toMatch(/daily refresh limit/)
    for (let step = 9; step < 30; step++) {
      at = t0 + step * MINUTE
      warehouse.set("warehouse", step + 1)
      const [outcome] = await refresher.tick()
      expect(outcome?.decision).toMatchObject({ action: "wait", reason: "held", until: t0 + DAY })
    }
    expect(posts()).toBe(9)
    at = t0 + DAY
    expect((await refresher.tick())[0]?.trigger).toMatchObject({ outcome: "started" })
    expect(posts()).toBe(10)
    expect((await refreshStatus(sql, at)).find((status) => status.datasetId === "capped-import")?.lastTrigger.status).toBe("completed")
  })

  it("honours a 429's Retry-After before asking again", async () => {
    const t0 = at
    let throttled = false
    const { client, posts } = watched(async (method) => {
      if (method === "POST" && !throttled) {
        throttled = true
        throw new PowerBiError({
          method,
          path: "/refreshes",
          status: 429,
          code: "HTTP429",
          detail: "Retry in 120 seconds.",
          retryAfterSeconds: 120
        })
      }
    })
    const crm = fakePosition()
    const refresher = await start({ client, targets: [target("crm", "throttled-import")], position: crm.position })
    crm.set("crm", 4)
    const [refused] = await refresher.tick()
    expect(refused?.trigger).toMatchObject({ outcome: "refused", until: t0 + 120_000 })
    at = t0 + 119_000
    expect((await refresher.tick())[0]?.decision).toMatchObject({ reason: "held", until: t0 + 120_000 })
    at = t0 + 120_000
    expect((await refresher.tick())[0]?.trigger).toMatchObject({ outcome: "started" })
    expect(posts()).toBe(2)
    expect((await historyOf("throttled-import")).length).toBe(1)
  })

  it("logs a dataset Power BI does not know, naming it, and asks for it again at the next interval only", async () => {
    const t0 = at
    const stderr = stderrLines()
    const { client, requests } = watched()
    const crm = fakePosition()
    crm.set("crm", 1)
    const refresher = await start({ client, targets: [target("crm", "deleted-import")], position: crm.position })
    const [first] = await refresher.tick()
    expect(first?.decision).toMatchObject({ action: "wait", reason: "held", until: t0 + 15 * MINUTE })
    expect(stderr).toContainEqual(
      expect.objectContaining({
        level: "error",
        msg: "powerbi refresh history unreadable",
        dataset: `${GROUP}/deleted-import`,
        error: expect.stringContaining("404 PowerBIEntityNotFound")
      })
    )
    at = t0 + 5 * MINUTE
    await refresher.tick()
    expect(requests.length).toBe(1)
    at = t0 + 15 * MINUTE
    await refresher.tick()
    expect(requests.length).toBe(2)
  })

  it("lets two refreshers of one dataset take turns, so a catch-up seen by both is refreshed once", async () => {
    const oee = fakePosition()
    oee.set("oee", 500)
    const { client, posts } = watched()
    const targets = [target("oee", "oee-import")]
    at += DAY
    const [one, other] = await Promise.all([
      start({ client, targets, position: oee.position }),
      start({ client, targets, position: oee.position })
    ])
    const outcomes = (await Promise.all([one?.tick(), other?.tick()])).map((ticks) => ticks?.[0]?.decision)
    expect(outcomes).toContainEqual({ action: "trigger", covers: 500 })
    // The second to take the dataset's lock sees the first one's trigger, committed.
    expect(outcomes).toContainEqual(expect.objectContaining({ action: "wait", reason: "nothing-new" }))
    expect(posts()).toBe(1)
  })

  it("logs a projection whose position cannot be read, triggers nothing, and once stopped ticks no more", async () => {
    const stderr = stderrLines()
    const { client, posts } = watched()
    const refresher = await start({
      client,
      targets: [target("crm", "crm-import")],
      position: async () => {
        throw new Error("nats: connection closed")
      }
    })
    const [outcome] = await refresher.tick()
    expect(outcome?.decision).toEqual({
      action: "wait",
      reason: "position-unknown",
      message: "projection position unknown: nats: connection closed"
    })
    expect(stderr).toContainEqual(
      expect.objectContaining({ msg: "powerbi refresh: projection position unknown", projection: "crm", dataset: `${GROUP}/crm-import` })
    )
    expect(posts()).toBe(0)
    await refresher.stop()
    await expect(refresher.tick()).rejects.toThrow("the refresher is stopped")
  })
})
