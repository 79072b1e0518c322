import type { NatsConnection } from "@nats-io/nats-core"
import { connect } from "@nats-io/transport-node"
import postgres from "postgres"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { LogHeaders, PROJECTOR_INBOX_PREFIX, streamFor } from "../contracts/log.ts"
import { runLive } from "../consumers/runtime.ts"
import { warehouseProjection } from "../projections/warehouse/projection.ts"
import { type ClusterStack, startClusterStack } from "./local/cluster-stack.ts"
import { erasureEvents, postSigned } from "./local/samples.ts"
import { createDatabase, type PostgresServer, startPostgres } from "./postgres/database.ts"
import { readStream } from "./streams.ts"
import { jetstream } from "@nats-io/jetstream"
import { execFile } from "node:child_process"
import { dirname, resolve } from "node:path"
import { fileURLToPath } from "node:url"
import { promisify } from "node:util"

const run = promisify(execFile)
const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), "..")

/**
 * The mesh beyond one machine, end to end: signed webhooks into two regions' edges, each region's
 * leaf acknowledging, the R3 hub sourcing both, the warehouse projection reading the hub — through a
 * hub server's crash and a region cut off from the hub.
 */

let stack: ClusterStack
let pg: PostgresServer
let database: { url: string; drop: () => Promise<void> }
let sql: postgres.Sql
let projector: NatsConnection
const stop = new AbortController()
let projecting: Promise<void> | undefined
let checkpoint = 0

const STREAM = streamFor("warehouse")

beforeAll(async () => {
  stack = await startClusterStack({ edgeSettings: { PUBLISH_TIMEOUT_MS: "2000" } })
  pg = await startPostgres()
  database = await createDatabase(pg.url)
  sql = postgres(database.url, { onnotice: () => {}, max: 4 })
  projector = await connect({
    servers: [...stack.cluster.hub.urls],
    user: stack.cluster.hub.projector.user,
    pass: stack.cluster.hub.projector.password,
    inboxPrefix: PROJECTOR_INBOX_PREFIX,
    maxReconnectAttempts: -1
  })
  projecting = runLive({
    sql,
    nc: projector,
    projection: warehouseProjection,
    batchSize: 200,
    fetchWaitMs: 500,
    signal: stop.signal,
    onBatch: (batch) => {
      checkpoint = batch.checkpoint
    },
    onIdle: (at) => {
      checkpoint = at
    }
  })
}, 120_000)

afterAll(async () => {
  stop.abort()
  await projecting?.catch(() => undefined)
  await projector?.close()
  await sql?.end({ timeout: 5 })
  await database?.drop()
  await pg?.dispose()
  await stack?.dispose()
}, 60_000)

/**
 * Polls `condition` until it holds. A JetStream request that times out or finds no leader counts as
 * "not yet": while a stream elects a new leader its API does not answer for a few seconds.
 */
const until = async (what: string, condition: () => Promise<boolean>, timeoutMs = 60_000) => {
  const deadline = Date.now() + timeoutMs
  let lastError: unknown
  for (;;) {
    const holds = await condition().catch((error: unknown) => {
      lastError = error
      return false
    })
    if (holds) return
    if (Date.now() > deadline)
      throw new Error(`gave up waiting for ${what}${lastError === undefined ? "" : ` (last: ${String(lastError)})`}`)
    await new Promise((resolve) => setTimeout(resolve, 100))
  }
}

const edgeOf = (region: string) => {
  const found = stack.edges.find((edge) => edge.region === region)
  if (found === undefined) throw new Error(`no edge for region ${region}`)
  return found.edge.url
}

/** Sends `events` to `region`'s edge, ten a request; every answer's status and the slowest answer's time. */
const send = async (region: string, events: ReturnType<typeof erasureEvents>) => {
  const statuses: Array<number> = []
  let slowestMs = 0
  for (let i = 0; i < events.length; i += 10) {
    const started = performance.now()
    const response = await postSigned(edgeOf(region), "erasure", events.slice(i, i + 10), stack.secrets.erasure as string)
    slowestMs = Math.max(slowestMs, performance.now() - started)
    statuses.push(response.status)
    await response.body?.cancel()
  }
  return { statuses, slowestMs }
}

const hubMessages = async () => stack.jsm.streams.info(STREAM).then((info) => info.state.messages)

/** Every `Nats-Msg-Id` of the hub's warehouse stream, with how often it is there. */
const hubIds = async () => {
  const counts = new Map<string, number>()
  for (const message of await readStream(jetstream(stack.admin), stack.jsm, STREAM)) {
    const id = message.headers["Nats-Msg-Id"] ?? ""
    counts.set(id, (counts.get(id) ?? 0) + 1)
  }
  return counts
}

describe("three hub servers and two regions", () => {
  /** Every distinct event sent, by id, with its type. */
  const sent = new Map<string, string>()
  const remember = (events: ReturnType<typeof erasureEvents>) => {
    for (const event of events) sent.set(event.id, event.type)
    return events
  }

  it("routes each edge's requests to its own region: signed events land once in the hub, whichever region they came through", async () => {
    const eu = remember(erasureEvents(100, { firstId: 1 }))
    const us = remember(erasureEvents(100, { firstId: 1001 }))
    expect((await send("eu", eu)).statuses.every((status) => status === 202)).toBe(true)
    expect((await send("us", us)).statuses.every((status) => status === 202)).toBe(true)
    // A sender's retry that arrives in the other region: the hub's duplicate window drops it.
    expect((await send("us", eu.slice(0, 20))).statuses.every((status) => status === 202)).toBe(true)
    await until("the hub to hold both regions' events", async () => (await hubMessages()) >= sent.size)
    const ids = await hubIds()
    expect(ids.size).toBe(sent.size)
    expect([...ids.values()].every((count) => count === 1)).toBe(true)
    const subjects = (await readStream(jetstream(stack.admin), stack.jsm, STREAM)).map((message) => message.subject.split(".").at(-1))
    expect(new Set(subjects)).toEqual(new Set(["eu", "us"]))
    const first = (await readStream(jetstream(stack.admin), stack.jsm, STREAM))[0]
    expect(first?.headers[LogHeaders.source]).toBe("erasure")
  })

  it("goes on answering 202 within the publish timeout while a hub server is SIGKILLed, and loses nothing", async () => {
    // The warehouse stream's leader: its replicas elect another while the projection reads on.
    const victim = (await stack.jsm.streams.info(STREAM)).cluster?.leader ?? (stack.cluster.hub.servers[0] as string)
    const before = remember(erasureEvents(50, { firstId: 2001 }))
    const sending = Promise.all([send("eu", before), send("us", remember(erasureEvents(50, { firstId: 3001 })))])
    await stack.cluster.kill(victim)
    const after = [await send("eu", remember(erasureEvents(50, { firstId: 4001 }))), ...(await sending)]
    for (const { statuses, slowestMs } of after) {
      expect(statuses.every((status) => status === 202)).toBe(true)
      expect(slowestMs).toBeLessThan(2000 + 1500)
    }
    await until("the hub, two servers of three, to hold every event", async () => (await hubMessages()) >= sent.size)
    let leader: string | undefined
    await until("a new leader", async () => {
      leader = (await stack.jsm.streams.info(STREAM)).cluster?.leader
      return leader !== undefined
    })
    expect(leader).not.toBe(victim)
    await stack.cluster.start(victim)
    await stack.cluster.ready()
  })

  it("keeps a region answering 202 while its leaf is cut from the hub, and the hub catches up once it is back", async () => {
    await stack.cluster.cut("eu")
    const held = await hubMessages()
    const cut = remember(erasureEvents(100, { firstId: 5001 }))
    expect((await send("eu", cut)).statuses.every((status) => status === 202)).toBe(true)
    expect((await send("us", remember(erasureEvents(20, { firstId: 6001 })))).statuses.every((status) => status === 202)).toBe(true)
    await until("the us events to reach the hub", async () => (await hubMessages()) >= held + 20)
    expect(await hubMessages()).toBe(held + 20)
    await stack.cluster.heal("eu")
    await until("the hub to catch up with eu", async () => (await hubMessages()) >= sent.size)
    const ids = await hubIds()
    expect(ids.size).toBe(sent.size)
    expect([...ids.values()].every((count) => count === 1)).toBe(true)
  })

  it("shows an operator, with `mesh status` as a deployment runs it, each region's leaf and source lag and each edge shard's spool", async () => {
    const { stdout } = await run("npx", ["tsx", "infra/cli.ts", "status"], {
      cwd: ROOT,
      env: {
        ...process.env,
        DATABASE_URL: database.url,
        NATS_URL: stack.cluster.hub.urls.join(","),
        NATS_USER: stack.cluster.hub.projector.user,
        NATS_PASSWORD: stack.cluster.hub.projector.password,
        MESH_REGIONS: "eu,us",
        EDGE_URL: stack.edges.map((edge) => edge.edge.url).join(",")
      }
    })
    expect(stdout).toMatch(/^warehouse\t1\t1\t\d+\t\d+\t\d+\t[\d.-]+\t0\t-$/m)
    for (const region of ["eu", "us"]) expect(stdout).toMatch(new RegExp(`^${region}\tyes\t[\\d.]+\t\\d+\t`, "m"))
    expect(stdout).toMatch(/^INGEST_WAREHOUSE\t\d+\thub-\d\t.*current.*\teu lag \d+, us lag \d+$/m)
    for (const edge of stack.edges) expect(stdout).toContain(`edge ${edge.edge.url}: ok`)
    expect(stdout).toMatch(/^eu\teu-publisher-0\tconnected\t0\t-\t0$/m)
    expect(stdout).toMatch(/^us\tus-publisher-1\tconnected\t0\t-\t0$/m)
  }, 60_000)

  it("projects every event once into the marts, reading the hub through the crash and the cut", async () => {
    const head = (await stack.jsm.streams.info(STREAM)).state.last_seq
    await until("the warehouse projection to reach the hub's head", async () => checkpoint >= head, 90_000)
    const [marts] = await sql`SELECT count(*)::int AS rows, count(DISTINCT event_id)::int AS ids FROM mart_warehouse.erasures`
    expect(marts).toEqual({ rows: sent.size, ids: sent.size })
    const successes = [...sent.values()].filter((type) => type === "erasure.success").length
    const [erased] = await sql`SELECT sum(erased)::int AS n FROM mart_warehouse.daily_stats`
    expect(erased?.n).toBe(successes)
  }, 120_000)
})
