import { ConfidentialClientApplication } from "@azure/msal-node"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { type PowerBiSettings, powerBiTokens } from "./auth.ts"
import { powerBiClient, PowerBiError } from "./client.ts"
import { type PowerBiEmulator, startPowerBiEmulator } from "./emulator/server.ts"

const TENANT = "11111111-2222-3333-4444-555555555555"
const APP = { tenantId: TENANT, clientId: "mesh-pusher", clientSecret: "s3cret" }
const GROUP = "ws-shared"
const SCOPE = "https://analysis.windows.net/powerbi/api/.default"

let emulator: PowerBiEmulator

beforeAll(async () => {
  emulator = await startPowerBiEmulator({
    apps: [APP],
    workspaces: [{ id: GROUP, capacity: "shared" }],
    importDatasets: [
      { groupId: GROUP, id: "marts-import", name: "OEE marts", refreshMs: 0 },
      { groupId: GROUP, id: "slow-import", name: "Retail marts", refreshMs: 3_600_000 }
    ]
  })
})

afterAll(async () => {
  await emulator?.close()
})

const settingsFor = (secret = APP.clientSecret): PowerBiSettings => {
  const { authorityMetadata } = emulator.authorityFor(TENANT)
  return {
    tenantId: TENANT,
    clientId: APP.clientId,
    credential: { clientSecret: secret },
    authorityHost: `https://localhost:${new URL(emulator.url).port}`,
    resource: "https://analysis.windows.net/powerbi/api",
    apiBase: `${emulator.url}/v1.0/myorg`,
    authorityMetadata
  }
}

const client = () => {
  const settings = settingsFor()
  return powerBiClient(settings.apiBase, powerBiTokens(settings))
}

const refusal = async (promise: Promise<unknown>): Promise<PowerBiError> => {
  try {
    await promise
  } catch (error) {
    if (error instanceof PowerBiError) return error
    throw error
  }
  throw new Error("expected Power BI to refuse")
}

const factTable = {
  name: "FactEvent",
  columns: [
    { name: "event_id", dataType: "String" },
    { name: "date_key", dataType: "Int64" },
    { name: "value", dataType: "Double" },
    { name: "occurred_at", dataType: "DateTime" },
    { name: "counted", dataType: "bool" }
  ]
}

const createDataset = (name: string, retention: "None" | "basicFIFO" = "None", tables: ReadonlyArray<unknown> = [factTable]) =>
  client().request<{ id: string; name: string; defaultRetentionPolicy: string }>(
    "POST",
    `/groups/${GROUP}/datasets?defaultRetentionPolicy=${retention}`,
    {
      name,
      defaultMode: "Push",
      tables
    }
  )

const rowsIn = async (dataset: string, table: string): Promise<ReadonlyArray<Record<string, unknown>>> =>
  (
    (await (await fetch(`${emulator.url}/_emulator/groups/${GROUP}/datasets/${dataset}/tables/${table}/rows`)).json()) as {
      rows: Array<Record<string, unknown>>
    }
  ).rows

describe("the emulated Entra token endpoint, through msal-node unmodified", () => {
  it("issues a client-credentials token for Power BI's scope, which msal-node then serves from its cache", async () => {
    const before = emulator.stats().tokenRequests
    const { authority, knownAuthorities, authorityMetadata } = emulator.authorityFor(TENANT)
    const msal = new ConfidentialClientApplication({
      auth: {
        clientId: APP.clientId,
        clientSecret: APP.clientSecret,
        authority,
        knownAuthorities: [...knownAuthorities],
        authorityMetadata
      }
    })
    const first = await msal.acquireTokenByClientCredential({ scopes: [SCOPE] })
    const second = await msal.acquireTokenByClientCredential({ scopes: [SCOPE] })
    expect(first?.tokenType).toBe("Bearer")
    expect(second?.accessToken).toBe(first?.accessToken)
    expect(second?.fromCache).toBe(true)
    expect(emulator.stats().tokenRequests - before).toBe(1)
  })

  it("refuses a wrong secret as Entra does, and Power BI's API answers nothing without a token", async () => {
    await expect(powerBiTokens(settingsFor("wrong")).token()).rejects.toMatchObject({
      errorCode: "invalid_client",
      errorMessage: expect.stringContaining("AADSTS7000215")
    })
    const response = await fetch(`${emulator.url}/v1.0/myorg/groups/${GROUP}/datasets`)
    expect(response.status).toBe(401)
  })

  it("answers an expired token with 403 TokenExpired, after which the client renews its token once and goes on", async () => {
    const api = client()
    await api.request("GET", `/groups/${GROUP}/datasets`)
    const tokensBefore = emulator.stats().tokenRequests
    emulator.expireTokens()
    const listed = await api.request<{ value: ReadonlyArray<unknown> }>("GET", `/groups/${GROUP}/datasets`)
    expect(Array.isArray(listed.value)).toBe(true)
    expect(emulator.stats().tokenRequests - tokensBefore).toBe(1)
    const raw = await fetch(`${emulator.url}/v1.0/myorg/groups/${GROUP}/datasets`, {
      headers: { Authorization: "Bearer emulated.unknown" }
    })
    expect(raw.status).toBe(401)
  })
})

describe("the emulated push datasets API", () => {
  it("creates a push dataset with its retention policy, lists it as push and gives back its tables", async () => {
    const created = await createDataset("Mesh CRM", "basicFIFO")
    expect(created).toEqual({ id: expect.any(String), name: "Mesh CRM", defaultRetentionPolicy: "basicFIFO" })
    const listed = await client().request<{
      value: ReadonlyArray<{ id: string; addRowsAPIEnabled: boolean; defaultRetentionPolicy?: string }>
    }>("GET", `/groups/${GROUP}/datasets`)
    expect(listed.value.find((dataset) => dataset.id === created.id)).toMatchObject({
      addRowsAPIEnabled: true,
      defaultRetentionPolicy: "basicFIFO"
    })
    const tables = await client().request<{
      value: ReadonlyArray<{ name: string; columns: ReadonlyArray<{ name: string; dataType: string }> }>
    }>("GET", `/groups/${GROUP}/datasets/${created.id}/tables`)
    expect(tables.value.map((table) => [table.name, table.columns.map((column) => `${column.name}:${column.dataType}`)])).toEqual([
      ["FactEvent", ["event_id:String", "date_key:Int64", "value:Double", "occurred_at:DateTime", "counted:Boolean"]]
    ])
  })

  it("stores posted rows as sent, and empties a table on DELETE rows", async () => {
    const { id } = await createDataset("Rows")
    const rows = [
      { event_id: "a", date_key: 20250115, value: 1.5, occurred_at: "2025-01-15T10:00:00.000Z", counted: true },
      { event_id: "b", date_key: 20250116, value: null, occurred_at: "2025-01-16T10:00:00.000Z" }
    ]
    expect(await client().request("POST", `/groups/${GROUP}/datasets/${id}/tables/FactEvent/rows`, { rows })).toBeUndefined()
    expect(await rowsIn(id, "FactEvent")).toEqual(rows)
    await client().request("DELETE", `/groups/${GROUP}/datasets/${id}/tables/FactEvent/rows`)
    expect(await rowsIn(id, "FactEvent")).toEqual([])
  })

  it("refuses a value of the wrong type, a string over 4,000 characters, an unknown column and over 10,000 rows, naming each", async () => {
    const { id } = await createDataset("Checked")
    const post = (rows: ReadonlyArray<unknown>) =>
      refusal(client().request("POST", `/groups/${GROUP}/datasets/${id}/tables/FactEvent/rows`, { rows }))
    expect((await post([{ event_id: "a", date_key: 1.5 }])).detail).toBe("rows[0].date_key: expected a whole number for Int64, got 1.5")
    expect((await post([{ event_id: "a" }, { event_id: "x".repeat(4001) }])).detail).toBe(
      "rows[1].event_id: a String value may hold 4000 characters, this one holds 4001"
    )
    expect((await post([{ event_id: "a", colour: "red" }])).detail).toBe("rows[0]: table FactEvent has no column colour")
    expect((await post([{ counted: "yes" }])).detail).toBe('rows[0].counted: expected true or false for Boolean, got "yes"')
    const tooMany = await post(Array.from({ length: 10_001 }, (_, i) => ({ event_id: String(i) })))
    expect([tooMany.status, tooMany.detail]).toEqual([400, "10001 rows in one request, more than the 10000 allowed"])
    expect(await rowsIn(id, "FactEvent")).toEqual([])
  })

  it("answers an unknown workspace, dataset or table with Power BI's error bodies, and cannot add a table to a dataset", async () => {
    const { id } = await createDataset("Shapes")
    const workspace = await fetch(`${emulator.url}/v1.0/myorg/groups/nope/datasets`, {
      headers: { Authorization: `Bearer ${await powerBiTokens(settingsFor()).token()}` }
    })
    expect(workspace.status).toBe(404)
    expect(((await workspace.json()) as { error: { code: string; "pbi.error": { code: string } } }).error).toMatchObject({
      code: "PowerBIEntityNotFound",
      "pbi.error": { code: "PowerBIEntityNotFound" }
    })
    expect((await refusal(client().request("GET", `/groups/${GROUP}/datasets/not-there`))).code).toBe("PowerBIEntityNotFound")
    expect(await refusal(client().request("POST", `/groups/${GROUP}/datasets/${id}/tables/Nope/rows`, { rows: [] }))).toMatchObject({
      status: 404,
      code: "ItemNotFound"
    })
    expect(
      await refusal(
        client().request("PUT", `/groups/${GROUP}/datasets/${id}/tables/DimAgent`, {
          name: "DimAgent",
          columns: [{ name: "a", dataType: "String" }]
        })
      )
    ).toMatchObject({
      status: 404,
      detail: "Table 'DimAgent' not found in dataset"
    })
    expect(
      await refusal(client().request("POST", `/groups/${GROUP}/datasets/marts-import/tables/FactEvent/rows`, { rows: [] }))
    ).toMatchObject({
      detail: "Dataset marts-import is not Push API dataset."
    })
  })

  it("refuses a bad table name or a table over 75 columns, naming it, and creates nothing", async () => {
    const count = async () => (await client().request<{ value: ReadonlyArray<unknown> }>("GET", `/groups/${GROUP}/datasets`)).value.length
    const before = await count()
    const badName = await refusal(createDataset("Bad", "None", [{ name: "fact.event", columns: [{ name: "a", dataType: "String" }] }]))
    expect(badName.detail).toMatch(/^tables\[0\]: "fact.event" is not a valid table name/)
    const wide = await refusal(
      createDataset("Wide", "None", [
        { name: "Wide", columns: Array.from({ length: 76 }, (_, i) => ({ name: `c${i}`, dataType: "Int64" })) }
      ])
    )
    expect(wide.detail).toBe("tables[0] (Wide): 76 columns, more than the 75 a table may have")
    expect(await count()).toBe(before)
  })

  it("throttles the 121st POST of a minute with 429, Retry-After and the bare message body", async () => {
    const { id } = await createDataset("Busy")
    const api = client()
    for (let i = 0; i < 120; i++)
      await api.request("POST", `/groups/${GROUP}/datasets/${id}/tables/FactEvent/rows`, { rows: [{ event_id: String(i) }] })
    const token = await powerBiTokens(settingsFor()).token()
    const response = await fetch(`${emulator.url}/v1.0/myorg/groups/${GROUP}/datasets/${id}/tables/FactEvent/rows`, {
      method: "POST",
      headers: { Authorization: `Bearer ${token}`, "Content-Type": "application/json" },
      body: JSON.stringify({ rows: [{ event_id: "one too many" }] })
    })
    expect(response.status).toBe(429)
    expect(Number(response.headers.get("retry-after"))).toBeGreaterThanOrEqual(1)
    expect(Object.keys((await response.json()) as object)).toEqual(["message"])
    expect((await rowsIn(id, "FactEvent")).length).toBe(120)
  })
})

describe("the emulated limits over time", () => {
  it("keeps the newest 200,000 rows of a basicFIFO table and stops a dataset at 1,000,000 rows an hour", async () => {
    const { id } = await createDataset("Firehose", "basicFIFO")
    const api = client()
    for (let post = 0; post < 100; post++)
      await api.request("POST", `/groups/${GROUP}/datasets/${id}/tables/FactEvent/rows`, {
        rows: Array.from({ length: 10_000 }, (_, i) => ({ date_key: post * 10_000 + i }))
      })
    const kept = await rowsIn(id, "FactEvent")
    expect([kept.length, kept[0]?.date_key, kept.at(-1)?.date_key]).toEqual([200_000, 800_000, 999_999])
    const over = await refusal(api.request("POST", `/groups/${GROUP}/datasets/${id}/tables/FactEvent/rows`, { rows: [{ date_key: 1 }] }))
    expect([over.status, over.detail]).toEqual([429, expect.stringMatching(/^You are over your rows per hour limit for this dataset/)])
  }, 120_000)

  it("counts POSTs per hour instead of per minute once a table holds 250,000 rows, and lets them through as the hour passes", async () => {
    let at = Date.parse("2025-01-15T10:00:00Z")
    const stepped = await startPowerBiEmulator({ apps: [APP], workspaces: [{ id: GROUP, capacity: "shared" }], clock: () => at })
    try {
      const settings = {
        ...settingsFor(),
        authorityMetadata: stepped.authorityFor(TENANT).authorityMetadata,
        apiBase: `${stepped.url}/v1.0/myorg`
      }
      const api = powerBiClient(settings.apiBase, powerBiTokens(settings))
      const { id } = await api.request<{ id: string }>("POST", `/groups/${GROUP}/datasets`, { name: "Large", tables: [factTable] })
      const post = (rows: number) =>
        api.request("POST", `/groups/${GROUP}/datasets/${id}/tables/FactEvent/rows`, {
          rows: Array.from({ length: rows }, (_, i) => ({ date_key: i }))
        })
      for (let i = 0; i < 25; i++) await post(10_000)
      at += 2 * 60_000
      for (let i = 0; i < 95; i++) await post(1)
      const limited = await refusal(post(1))
      expect(limited.status).toBe(429)
      expect(limited.retryAfterSeconds).toBe(58 * 60)
      at += 58 * 60_000
      await post(1)
    } finally {
      await stepped.close()
    }
  })

  it("runs on a compressed clock: at a minute per millisecond, 200 POSTs in a row are never throttled", async () => {
    const fast = await startPowerBiEmulator({ apps: [APP], workspaces: [{ id: GROUP, capacity: "shared" }], clockSpeed: 60_000 })
    try {
      const settings = {
        ...settingsFor(),
        authorityMetadata: fast.authorityFor(TENANT).authorityMetadata,
        apiBase: `${fast.url}/v1.0/myorg`
      }
      const api = powerBiClient(settings.apiBase, powerBiTokens(settings))
      const { id } = await api.request<{ id: string }>("POST", `/groups/${GROUP}/datasets`, { name: "Fast", tables: [factTable] })
      for (let i = 0; i < 200; i++)
        await api.request("POST", `/groups/${GROUP}/datasets/${id}/tables/FactEvent/rows`, { rows: [{ date_key: i }] })
      expect(fast.stats().throttled).toBe(0)
    } finally {
      await fast.close()
    }
  })

  it("answers a sixth POST pending at once on a dataset with 429", async () => {
    const slow = await startPowerBiEmulator({ apps: [APP], workspaces: [{ id: GROUP, capacity: "shared" }], postLatencyMs: 300 })
    try {
      const settings = {
        ...settingsFor(),
        authorityMetadata: slow.authorityFor(TENANT).authorityMetadata,
        apiBase: `${slow.url}/v1.0/myorg`
      }
      const api = powerBiClient(settings.apiBase, powerBiTokens(settings))
      const { id } = await api.request<{ id: string }>("POST", `/groups/${GROUP}/datasets`, { name: "Slow", tables: [factTable] })
      const outcomes = await Promise.all(
        Array.from({ length: 6 }, (_, i) =>
          api.request("POST", `/groups/${GROUP}/datasets/${id}/tables/FactEvent/rows`, { rows: [{ event_id: String(i) }] }).then(
            () => 200,
            (error: PowerBiError) => error.status
          )
        )
      )
      expect(outcomes.filter((status) => status === 200).length).toBe(5)
      expect(outcomes.filter((status) => status === 429).length).toBe(1)
    } finally {
      await slow.close()
    }
  })
})

describe("the emulated refresh API", () => {
  it("starts a refresh with 202 and its Location, refuses a second while one runs, and lists the history", async () => {
    const token = await powerBiTokens(settingsFor()).token()
    const start = () =>
      fetch(`${emulator.url}/v1.0/myorg/groups/${GROUP}/datasets/slow-import/refreshes`, {
        method: "POST",
        headers: { Authorization: `Bearer ${token}` }
      })
    const first = await start()
    expect(first.status).toBe(202)
    expect(first.headers.get("location")).toMatch(
      new RegExp(`/groups/${GROUP}/datasets/slow-import/refreshes/${first.headers.get("x-ms-request-id")}$`)
    )
    expect((await start()).status).toBe(400)
    const history = await client().request<{ value: ReadonlyArray<{ status: string; refreshType: string }> }>(
      "GET",
      `/groups/${GROUP}/datasets/slow-import/refreshes?$top=5`
    )
    expect(history.value).toEqual([expect.objectContaining({ status: "Unknown", refreshType: "ViaApi" })])
  })

  it("allows eight refreshes a day on shared capacity and refuses the ninth as Power BI does", async () => {
    const api = client()
    for (let i = 0; i < 8; i++) await api.request("POST", `/groups/${GROUP}/datasets/marts-import/refreshes`)
    const ninth = await refusal(api.request("POST", `/groups/${GROUP}/datasets/marts-import/refreshes`))
    expect([ninth.status, ninth.code, ninth.detail]).toEqual([
      400,
      "Request Throttled",
      "Invalid dataset refresh request. Number of refresh requests in last 24 hours exceeded limit"
    ])
    const history = await api.request<{ value: ReadonlyArray<{ status: string }> }>(
      "GET",
      `/groups/${GROUP}/datasets/marts-import/refreshes`
    )
    expect(history.value.map((refresh) => refresh.status)).toEqual(Array(8).fill("Completed"))
  })
})
