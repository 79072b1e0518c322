import { ConfidentialClientApplication } from "@azure/msal-node"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { emulatorSettings } from "../infra/local/powerbi.ts"
import { type PowerBiSettings, powerBiTokens } from "./auth.ts"
import { powerBiClient, PowerBiError } from "./client.ts"
import { DAX_SUBSET } from "./emulator/dax.ts"
import { type EmulatorFaultKind, type EmulatorOptions, type PowerBiEmulator, startPowerBiEmulator } from "./emulator/server.ts"

const TENANT = "11111111-2222-3333-4444-555555555555"
const APP = { tenantId: TENANT, clientId: "mesh-pusher", clientSecret: "s3cret" }
const APP2 = { tenantId: TENANT, clientId: "mesh-reader", clientSecret: "r3ader" }
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

const settingsFor = (secret = APP.clientSecret): PowerBiSettings => emulatorSettings(emulator, { ...APP, clientSecret: secret })

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

/** A REST client and a raw sender (for statuses, headers and bodies) against `on`, authenticated as `app`. */
const connect = (on: PowerBiEmulator, app = APP) => {
  const settings = emulatorSettings(on, { ...app, tenantId: TENANT })
  const tokens = powerBiTokens(settings)
  return {
    api: powerBiClient(settings.apiBase, tokens),
    send: async (method: "GET" | "POST", path: string, body?: unknown) =>
      fetch(`${settings.apiBase}${path}`, {
        method,
        headers: { Authorization: `Bearer ${await tokens.token()}`, "Content-Type": "application/json" },
        ...(body === undefined ? {} : { body: JSON.stringify(body) })
      })
  }
}

/** Runs `test` against an emulator of its own (both apps, the shared workspace), closed afterwards. */
const withEmulator = async (
  options: Omit<EmulatorOptions, "apps" | "workspaces">,
  test: (on: PowerBiEmulator) => Promise<void>
): Promise<void> => {
  const own = await startPowerBiEmulator({ apps: [APP, APP2], workspaces: [{ id: GROUP, capacity: "shared" }], ...options })
  try {
    await test(own)
  } finally {
    await own.close()
  }
}

/** An executeQueries request body with one query. */
const queryBody = (query: string, includeNulls?: boolean) => ({
  queries: [{ query }],
  ...(includeNulls === undefined ? {} : { serializerSettings: { includeNulls } })
})

/** The message of executeQueries' error body, after checking the body has the service's shape. */
const queryErrorOf = async (response: Response): Promise<string> => {
  expect(response.status).toBe(400)
  const body = (await response.json()) as { error: { "pbi.error": { details: ReadonlyArray<{ detail: { value: string } }> } } }
  expect(body).toEqual({
    error: {
      code: "DatasetExecuteQueriesError",
      "pbi.error": {
        code: "DatasetExecuteQueriesError",
        parameters: {},
        details: [{ code: "DetailsMessage", detail: { type: 1, value: expect.any(String) } }]
      }
    }
  })
  return body.error["pbi.error"].details[0]?.detail.value ?? ""
}

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

describe("the emulated refresh API, failing", () => {
  it("reports a refresh of a dataset set to fail as Unknown while it runs, then Failed with its serviceExceptionJson", async () => {
    let at = Date.parse("2025-01-15T10:00:00Z")
    await withEmulator(
      {
        clock: () => at,
        importDatasets: [{ groupId: GROUP, id: "broken-import", name: "Broken", refreshMs: 60_000, failRefreshes: true }]
      },
      async (on) => {
        const { api } = connect(on)
        await api.request("POST", `/groups/${GROUP}/datasets/broken-import/refreshes`)
        const history = () =>
          api.request<{ value: ReadonlyArray<Record<string, unknown>> }>("GET", `/groups/${GROUP}/datasets/broken-import/refreshes`)
        const running = (await history()).value
        expect(running).toEqual([expect.objectContaining({ status: "Unknown" })])
        expect(Object.keys(running[0] ?? {})).not.toContain("endTime")
        expect(Object.keys(running[0] ?? {})).not.toContain("serviceExceptionJson")
        at += 60_000
        expect((await history()).value).toEqual([
          {
            requestId: expect.any(String),
            id: expect.any(Number),
            refreshType: "ViaApi",
            startTime: "2025-01-15T10:00:00.000Z",
            endTime: "2025-01-15T10:01:00.000Z",
            status: "Failed",
            serviceExceptionJson: '{"errorCode":"ModelRefreshFailed_CredentialsNotSpecified"}'
          }
        ])
      }
    )
  })
})

describe("the emulated executeQueries", () => {
  const dimAgent = { name: "Dim Agent", columns: [{ name: "agent_id", dataType: "String" }] }

  it("answers EVALUATE ROW over a push dataset's rows, each column in square brackets, a blank one only with includeNulls", async () => {
    const { id } = await createDataset("Queried", "None", [factTable, dimAgent])
    await client().request("POST", `/groups/${GROUP}/datasets/${id}/tables/FactEvent/rows`, {
      rows: [
        { event_id: "a", date_key: 20250115, value: 1.5 },
        { event_id: "b", date_key: 20250117, value: 2.25 },
        { event_id: "b", date_key: 20250116 },
        { date_key: 20250114, value: -1 }
      ]
    })
    const dax = `EVALUATE ROW("rows", COUNTROWS('FactEvent'), "max", MAX('FactEvent'[date_key]), "min", MIN(FactEvent[value]),
      "sum", SUM('FactEvent'[value]), "events", DISTINCTCOUNT('FactEvent'[event_id]), "agents", COUNTROWS('Dim Agent'))`
    const { send } = connect(emulator)
    const withNulls = await send("POST", `/groups/${GROUP}/datasets/${id}/executeQueries`, queryBody(dax, true))
    expect(withNulls.status).toBe(200)
    // DISTINCTCOUNT counts the blank event_id as one value, as DAX does: "a", "b" and blank.
    const expected = { "[rows]": 4, "[max]": 20250117, "[min]": -1, "[sum]": 2.75, "[events]": 3 }
    expect(await withNulls.json()).toEqual({ results: [{ tables: [{ rows: [{ ...expected, "[agents]": null }] }] }] })
    const withoutNulls = await send("POST", `/groups/${GROUP}/datasets/${id}/executeQueries`, queryBody(dax))
    expect(await withoutNulls.json()).toEqual({ results: [{ tables: [{ rows: [expected] }] }] })
    const explicitlyWithout = await send("POST", `/groups/${GROUP}/datasets/${id}/executeQueries`, queryBody(dax, false))
    expect(await explicitlyWithout.json()).toEqual({ results: [{ tables: [{ rows: [expected] }] }] })
  })

  it("refuses a DAX error with 400 DatasetExecuteQueriesError naming what is wrong, and anything but one query with 400", async () => {
    const { id } = await createDataset("Refused queries")
    const { send } = connect(emulator)
    const run = (body: unknown) => send("POST", `/groups/${GROUP}/datasets/${id}/executeQueries`, body)
    expect(await queryErrorOf(await run(queryBody(`EVALUATE ROW("n", COUNTROWS('Nope'))`)))).toBe("Query (1, 29) Cannot find table 'Nope'.")
    expect(await queryErrorOf(await run(queryBody(`EVALUATE ROW("n", MAX('FactEvent'[colour]))`)))).toBe(
      "Query (1, 34) Column 'colour' in table 'FactEvent' cannot be found or may not be used in this expression."
    )
    const outside = await queryErrorOf(await run(queryBody("EVALUATE TOPN(10, 'FactEvent')")))
    expect(outside).toContain("The emulator supports only this DAX subset")
    expect(outside).toContain(DAX_SUBSET)
    expect(outside).toContain("found 'TOPN'")
    const two = await run({
      queries: [{ query: `EVALUATE ROW("n", COUNTROWS(FactEvent))` }, { query: `EVALUATE ROW("m", COUNTROWS(FactEvent))` }]
    })
    expect(two.status).toBe(400)
    expect(((await two.json()) as { error: { message: string } }).error.message).toBe(
      "2 queries in the request; executeQueries takes exactly one query per call"
    )
    expect((await run({ queries: [] })).status).toBe(400)
    expect((await run({ query: "EVALUATE ROW()" })).status).toBe(400)
  })

  it("answers an unknown workspace or dataset with the 404 bodies of the other routes", async () => {
    const { send } = connect(emulator)
    const body = queryBody(`EVALUATE ROW("n", COUNTROWS(FactEvent))`)
    const dataset = await send("POST", `/groups/${GROUP}/datasets/not-there/executeQueries`, body)
    expect(dataset.status).toBe(404)
    expect(await dataset.json()).toMatchObject({
      error: { code: "PowerBIEntityNotFound", message: `Dataset not-there not found in workspace ${GROUP}.` }
    })
    const workspace = await send("POST", `/groups/nope/datasets/not-there/executeQueries`, body)
    expect(workspace.status).toBe(404)
    expect(await workspace.json()).toMatchObject({
      error: { code: "PowerBIEntityNotFound", "pbi.error": { code: "PowerBIEntityNotFound" } }
    })
  })

  it("limits executeQueries to 120 requests a minute per client id with 429 and Retry-After, other apps unaffected", async () => {
    let at = Date.parse("2025-01-15T10:00:00Z")
    await withEmulator({ clock: () => at }, async (on) => {
      const pusher = connect(on)
      const reader = connect(on, APP2)
      const { id } = await pusher.api.request<{ id: string }>("POST", `/groups/${GROUP}/datasets`, { name: "Polled", tables: [factTable] })
      const ask = (as: ReturnType<typeof connect>) =>
        as.send("POST", `/groups/${GROUP}/datasets/${id}/executeQueries`, queryBody(`EVALUATE ROW("n", COUNTROWS(FactEvent))`))
      for (let i = 0; i < 60; i++) expect((await ask(pusher)).status).toBe(200)
      at += 30_000
      for (let i = 0; i < 60; i++) expect((await ask(pusher)).status).toBe(200)
      const limited = await ask(pusher)
      expect(limited.status).toBe(429)
      // The first 60 leave the minute 30 s from now.
      expect(limited.headers.get("retry-after")).toBe("30")
      expect(Object.keys((await limited.json()) as object)).toEqual(["message"])
      expect((await ask(reader)).status).toBe(200)
      at += 30_000
      expect((await ask(pusher)).status).toBe(200)
      expect(on.stats()).toMatchObject({ throttled: 1, queries: 122 })
    })
  })
})

describe("faults injected into rows POSTs", () => {
  const post = (on: PowerBiEmulator, id: string, rows: ReadonlyArray<unknown>) =>
    connect(on).send("POST", `/groups/${GROUP}/datasets/${id}/tables/FactEvent/rows`, { rows })

  it("answers each kind as Power BI would, stores the rows only for 500-after, and counts faults apart from throttled", async () => {
    const bodies = new Map<EmulatorFaultKind, unknown>()
    for (const kind of ["429", "500-before", "500-after", "503"] as const)
      await withEmulator({ faults: { rate: 1, kinds: [kind] } }, async (on) => {
        const { id } = await connect(on).api.request<{ id: string }>("POST", `/groups/${GROUP}/datasets`, {
          name: kind,
          tables: [factTable]
        })
        const response = await post(on, id, [{ event_id: "x" }])
        const body: unknown = await response.json()
        bodies.set(kind, body)
        expect(response.status, kind).toBe(kind === "429" ? 429 : kind === "503" ? 503 : 500)
        if (kind === "429" || kind === "503") expect(response.headers.get("retry-after"), kind).toBe("1")
        expect(on.tableRows(GROUP, id, "FactEvent"), kind).toEqual(kind === "500-after" ? [{ event_id: "x" }] : [])
        expect(on.datasetStats(GROUP, id)?.postsAccepted, kind).toBe(kind === "500-after" ? 1 : 0)
        expect(on.stats().throttled, kind).toBe(0)
        expect(on.stats().injected, kind).toEqual({ "429": 0, "500-before": 0, "500-after": 0, "503": 0, [kind]: 1 })
      })
    expect(Object.keys(bodies.get("429") as object)).toEqual(["message"])
    expect(bodies.get("500-before")).toEqual({
      error: {
        code: "UnknownError",
        message: expect.any(String),
        "pbi.error": { code: "UnknownError", parameters: {}, details: [], exceptionCulprit: 1 }
      }
    })
    // A client cannot tell a 500 that stored the rows from one that did not.
    expect(bodies.get("500-after")).toEqual(bodies.get("500-before"))
    expect(bodies.get("503")).toMatchObject({ error: { code: "ServiceUnavailable" } })
  })

  it("draws them from a seeded PRNG, the same POSTs failing for the same seed, and faults that store nothing count against no limit", async () => {
    const at = Date.parse("2025-01-15T10:00:00Z")
    const run = async (seed: number) => {
      let outcome: { statuses: ReadonlyArray<number>; stored: number; stats: ReturnType<PowerBiEmulator["stats"]> } | undefined
      await withEmulator({ clock: () => at, faults: { rate: 0.3, seed } }, async (on) => {
        const { id } = await connect(on).api.request<{ id: string }>("POST", `/groups/${GROUP}/datasets`, {
          name: "Flaky",
          tables: [factTable]
        })
        const statuses: Array<number> = []
        for (let i = 0; i < 180; i++) {
          const response = await post(on, id, [{ event_id: String(i) }])
          await response.body?.cancel()
          statuses.push(response.status)
        }
        expect(on.datasetStats(GROUP, id)).toMatchObject({ postsAccepted: 120, rowsAdded: 120, peakPostsPerMinute: 120 })
        outcome = { statuses, stored: on.tableRows(GROUP, id, "FactEvent")?.length ?? -1, stats: on.stats() }
      })
      return outcome as NonNullable<typeof outcome>
    }
    const first = await run(7)
    const again = await run(7)
    expect(again.statuses).toEqual(first.statuses)
    expect((await run(8)).statuses).not.toEqual(first.statuses)
    const { injected, throttled } = first.stats
    for (const kind of ["429", "500-before", "500-after", "503"] as const) expect(injected[kind], kind).toBeGreaterThan(0)
    // All 120 POSTs the minute allows stored their rows (500-after ones included); faults that stored nothing took none of them.
    expect(first.stored).toBe(120)
    expect(first.statuses.filter((status) => status === 200).length).toBe(120 - injected["500-after"])
    expect(throttled).toBe(180 - 120 - injected["429"] - injected["500-before"] - injected["503"])
    expect(first.statuses.filter((status) => status === 429).length).toBe(throttled + injected["429"])
  })

  it("refuses a rate outside 0 to 1 or an unknown kind when starting", async () => {
    await expect(startPowerBiEmulator({ apps: [APP], workspaces: [], faults: { rate: 1.5 } })).rejects.toThrow(
      "faults.rate must be between 0 and 1, got 1.5"
    )
    await expect(
      startPowerBiEmulator({ apps: [APP], workspaces: [], faults: { rate: 0.1, kinds: ["418" as EmulatorFaultKind] } })
    ).rejects.toThrow(/faults.kinds must be some of 429, 500-before, 500-after, 503/)
  })
})

describe("the emulator's own view, for tests and benches", () => {
  it("reports per dataset the rows and POSTs taken in and their peaks over rolling windows, by method and by route", async () => {
    let at = Date.parse("2025-01-15T10:00:00Z")
    await withEmulator({ clock: () => at }, async (on) => {
      const { api } = connect(on)
      const { id } = await api.request<{ id: string }>("POST", `/groups/${GROUP}/datasets`, { name: "Watched", tables: [factTable] })
      const post = (rows: number) =>
        api.request("POST", `/groups/${GROUP}/datasets/${id}/tables/FactEvent/rows`, {
          rows: Array.from({ length: rows }, (_, i) => ({ date_key: i }))
        })
      for (let i = 0; i < 3; i++) await post(10)
      at += 59_000
      for (let i = 0; i < 2; i++) await post(5)
      at += 2_000
      // The first three are out of this minute (10:00:01–10:01:01]: three in it now, five at most.
      await post(1)
      at += 2 * 3_600_000
      await post(2)
      const expected = { rowsAdded: 43, postsAccepted: 7, peakRowsPerHour: 41, peakPostsPerMinute: 5, peakPostsPerHour: 6 }
      expect(on.datasetStats(GROUP, id)).toEqual(expected)
      expect(await (await fetch(`${on.url}/_emulator/groups/${GROUP}/datasets/${id}/stats`)).json()).toEqual(expected)
      expect(on.datasetStats(GROUP, "not-there")).toBeUndefined()
      expect((await fetch(`${on.url}/_emulator/groups/${GROUP}/datasets/not-there/stats`)).status).toBe(404)
      expect(await (await fetch(`${on.url}/_emulator/stats`)).json()).toEqual(on.stats())
      expect(on.stats().injected).toEqual({ "429": 0, "500-before": 0, "500-after": 0, "503": 0 })
    })
  })

  it("gives back a table's stored rows and a workspace's datasets with their tables, columns, measures and relationships", async () => {
    const measured = { ...factTable, measures: [{ name: "Events", expression: "COUNTROWS(FactEvent)" }] }
    const dimDate = { name: "DimDate", columns: [{ name: "date_key", dataType: "Int64" }] }
    const relationship = { name: "fact_date", fromTable: "FactEvent", fromColumn: "date_key", toTable: "DimDate", toColumn: "date_key" }
    const { id } = await client().request<{ id: string }>("POST", `/groups/${GROUP}/datasets?defaultRetentionPolicy=basicFIFO`, {
      name: "Modelled",
      tables: [measured, dimDate],
      relationships: [relationship]
    })
    await client().request("POST", `/groups/${GROUP}/datasets/${id}/tables/DimDate/rows`, { rows: [{ date_key: 20250115 }] })
    expect(emulator.tableRows(GROUP, id, "DimDate")).toEqual([{ date_key: 20250115 }])
    expect(emulator.tableRows(GROUP, id, "dimdate")).toBeUndefined()
    const view = emulator.datasets(GROUP)?.find((dataset) => dataset.id === id)
    expect(view).toEqual({
      id,
      name: "Modelled",
      push: true,
      defaultRetentionPolicy: "basicFIFO",
      tables: [
        {
          name: "FactEvent",
          columns: factTable.columns.map((column) => ({ ...column, dataType: column.dataType === "bool" ? "Boolean" : column.dataType })),
          measures: [{ name: "Events", expression: "COUNTROWS(FactEvent)" }],
          rowCount: 0
        },
        { name: "DimDate", columns: [{ name: "date_key", dataType: "Int64" }], measures: [], rowCount: 1 }
      ],
      relationships: [relationship]
    })
    expect(emulator.datasets(GROUP)?.find((dataset) => dataset.id === "marts-import")).toMatchObject({ push: false, tables: [] })
    expect(emulator.datasets("nope")).toBeUndefined()
    const listed = (await (await fetch(`${emulator.url}/_emulator/groups/${GROUP}/datasets`)).json()) as {
      value: ReadonlyArray<{ id: string }>
    }
    expect(listed.value.find((dataset) => dataset.id === id)).toEqual(view)
  })
})
