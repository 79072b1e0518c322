import { execFile } from "node:child_process"
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { promisify } from "node:util"
import { jetstream, type JetStreamManager, jetstreamManager, type PubAck } from "@nats-io/jetstream"
import type { NatsConnection } from "@nats-io/nats-core"
import { connect } from "@nats-io/transport-node"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { EDGE_INBOX_PREFIX, headerValues, regionalSubject, subjectFor } from "../../contracts/log.ts"
import { applyTopologyStreams } from "../streams.ts"
import { type NatsCluster, startCluster } from "./cluster.ts"
import { clusterStatus } from "./cluster-status.ts"
import { natsServerBinary, natsServerVersion } from "./server.ts"
import { DEFAULT_TOPOLOGY, HUB_CONFIG, LEAF_CONFIG, renderTopology, topologyOf } from "./topology.ts"

const run = promisify(execFile)
const STREAM = "INGEST_WAREHOUSE"
const settings = { duplicateWindowMs: 2 * 60_000, replicas: 3 }
/** What the edge in `region` appends, and a subject of our own for barriers. */
const subject = (region: string, type = "device_erased") => regionalSubject(subjectFor("warehouse", "erasure", type), region)

let cluster: NatsCluster
let admin: NatsConnection
let hub: JetStreamManager
const edges = new Map<string, NatsConnection>()
const timings: Record<string, number> = {}

beforeAll(async () => {
  const booting = Date.now()
  cluster = await startCluster()
  timings.bootMs = Date.now() - booting
  // Every hub server, and reconnecting for ever: the tests kill the one it may be talking to.
  admin = await connect({
    servers: [...cluster.hub.urls],
    user: cluster.hub.admin.user,
    pass: cluster.hub.admin.password,
    name: "cluster-test-admin",
    maxReconnectAttempts: -1,
    reconnectTimeWait: 250
  })
  hub = await jetstreamManager(admin)
  for (const region of cluster.regions)
    edges.set(
      region.name,
      await connect({ servers: region.url, user: cluster.hub.edge.user, pass: cluster.hub.edge.password, inboxPrefix: EDGE_INBOX_PREFIX })
    )
}, 60_000)

afterAll(async () => {
  for (const edge of edges.values()) await edge.close()
  await admin?.close()
  await cluster?.dispose()
  console.info(`cluster timings (ms): ${JSON.stringify(timings)}`)
})

const edgeOf = (region: string) => {
  const edge = edges.get(region)
  if (edge === undefined) throw new Error(`no edge connection to ${region}`)
  return edge
}

/** Appends one event per id in `region`, as the edge does, and returns the leaf's PubAcks. */
const append = async (region: string, ids: ReadonlyArray<string>, type?: string): Promise<ReadonlyArray<PubAck>> => {
  const js = jetstream(edgeOf(region), { timeout: 5000 })
  const acks: Array<PubAck> = []
  for (const id of ids) acks.push(await js.publish(subject(region, type), JSON.stringify({ id }), { msgID: id }))
  return acks
}

const ids = (prefix: string, count: number) => Array.from({ length: count }, (_, index) => `${prefix}-${index}`)

/** Polls `check` until it returns a value that is not undefined; failures meanwhile (a hub server away) are tried again. */
const until = async <A>(what: string, check: () => Promise<A | undefined>, timeoutMs = 30_000): Promise<A> => {
  const deadline = Date.now() + timeoutMs
  let last: unknown
  for (;;) {
    try {
      const value = await check()
      if (value !== undefined) return value
      last = "not yet"
    } catch (error) {
      last = error
    }
    if (Date.now() > deadline) throw new Error(`${what}: still not after ${timeoutMs / 1000} s (${String(last)})`)
    await new Promise((resolveLater) => setTimeout(resolveLater, 100))
  }
}

/**
 * The hub's stream as read back, message by message from its leader (`STREAM.MSG.GET`). Not through
 * a consumer: creating one needs the meta leader, which a test may just have killed; tried again
 * while the stream itself is electing.
 */
const hubMessages = () =>
  until("reading the hub's stream", async () => {
    const last = (await hub.streams.info(STREAM)).state.last_seq
    const messages: Array<{ seq: number; subject: string; headers: Record<string, string>; data: string }> = []
    for (let from = 1; from <= last; from += 50) {
      const batch = Array.from({ length: Math.min(50, last - from + 1) }, (_, index) => from + index)
      for (const message of await Promise.all(batch.map((seq) => hub.streams.getMessage(STREAM, { seq }))))
        if (message !== null)
          messages.push({ seq: message.seq, subject: message.subject, headers: headerValues(message.header), data: message.string() })
    }
    return messages
  })

/** How many times each `Nats-Msg-Id` is stored in the hub's stream. */
const hubIdCounts = async (): Promise<Map<string, number>> => {
  const counts = new Map<string, number>()
  for (const message of await hubMessages()) {
    const id = message.headers["Nats-Msg-Id"] ?? ""
    counts.set(id, (counts.get(id) ?? 0) + 1)
  }
  return counts
}

/** Resolves once the hub's stream holds `count` messages; a poll of its state, read again afterwards to check. */
const hubHolds = (count: number, what: string) =>
  until(what, async () => {
    const messages = (await hub.streams.info(STREAM)).state.messages
    return messages >= count ? messages : undefined
  })

const expectOnce = (counts: ReadonlyMap<string, number>, wanted: ReadonlyArray<string>) => {
  expect(wanted.filter((id) => counts.get(id) !== 1).map((id) => [id, counts.get(id) ?? 0])).toEqual([])
}

describe("the rendered configurations", () => {
  it.each(["hub", "leaf"] as const)("the %s's is accepted by this machine's nats-server", async (role) => {
    const dir = mkdtempSync(join(tmpdir(), "ingest-topology-"))
    try {
      const port = (offset: number) => 30000 + offset
      const plan = renderTopology(DEFAULT_TOPOLOGY, {
        host: "127.0.0.1",
        ports: {
          hub: [0, 1, 2].map((index) => ({
            client: port(index),
            cluster: port(10 + index),
            leaf: port(20 + index),
            ws: port(30 + index),
            monitor: port(40 + index)
          })),
          regions: {
            eu: { client: port(50), ws: port(51), monitor: port(52), remotes: [port(20), port(21), port(22)] },
            us: { client: port(60), ws: port(61), monitor: port(62), remotes: [port(20), port(21), port(22)] }
          }
        },
        passwords: { admin: "padmin", edge: "pedge", projector: "pprojector", reports: "preports", leaf: "pleaf" },
        storeRoot: dir,
        version: natsServerVersion(natsServerBinary()),
        templates: { hub: readFileSync(HUB_CONFIG, "utf8"), leaf: readFileSync(LEAF_CONFIG, "utf8") }
      })
      const server = role === "hub" ? plan.hub[0] : plan.regions[0]
      const file = join(dir, `${role}.conf`)
      writeFileSync(file, server?.config ?? "")
      const { stdout, stderr } = await run(natsServerBinary(), ["-t", "-c", file], { env: { ...process.env, ...server?.env } })
      expect(`${stdout}${stderr}`).toContain("is valid")
    } finally {
      rmSync(dir, { recursive: true, force: true })
    }
  })
})

describe("a hub of three and two regions on real nats-servers", () => {
  it("comes up with every region's leaf connected, and declares every stream once: a second apply changes nothing", async () => {
    expect(cluster.hub.urls).toHaveLength(3)
    // Each leaf listens for the edge's websockets where the cluster says.
    for (const region of cluster.regions) {
      const varz = (await (await fetch(`${region.monitorUrl}/varz`)).json()) as { websocket?: { port?: number }; server_name?: string }
      expect([varz.server_name, `ws://127.0.0.1:${varz.websocket?.port}`]).toEqual([region.server, region.wsUrl])
    }
    const names = ["INGEST_CRM", "INGEST_WAREHOUSE", "INGEST_OEE", "INGEST_RETAIL", "INGEST_REPORTS"]
    const sourced = [...names, "QUARANTINE"]
    const onHub = [...names, "DERIVED", "QUARANTINE", "REPORT_EXPORTS"]
    const hubOnly = ["DERIVED", "REPORT_EXPORTS"]
    // First the mesh with eu only, then us joins: the hub's streams gain a source each.
    const applying = Date.now()
    const first = await applyTopologyStreams(admin, topologyOf(["eu"]), settings)
    timings.firstApplyMs = Date.now() - applying
    expect(first).toEqual([
      ...sourced.map((name) => ({ name, domain: "eu", action: "created" })),
      ...onHub.map((name) => ({ name, domain: "hub", action: "created" }))
    ])
    const joined = await applyTopologyStreams(admin, cluster.topology, settings)
    expect(joined).toEqual([
      ...sourced.map((name) => ({ name, domain: "eu", action: "unchanged" })),
      ...sourced.map((name) => ({ name, domain: "us", action: "created" })),
      ...onHub.map((name) => ({ name, domain: "hub", action: hubOnly.includes(name) ? "unchanged" : "updated" }))
    ])
    // The server keeps each source as `external: {api: "$JS.<region>.API"}`, the declaration names its `domain`: the same.
    const again = await applyTopologyStreams(admin, cluster.topology, settings)
    expect(again.filter((change) => change.action !== "unchanged")).toEqual([])
    expect(again).toHaveLength(2 * sourced.length + onHub.length)

    const info = await hub.streams.info(STREAM)
    expect(info.config).toMatchObject({ subjects: ["ingest.warehouse.*.*"], num_replicas: 3 })
    expect(info.config.sources?.map((source) => [source.name, source.external?.api])).toEqual([
      [STREAM, "$JS.eu.API"],
      [STREAM, "$JS.us.API"]
    ])
    expect(info.cluster?.replicas).toHaveLength(2)
    const eu = await (await jetstreamManager(admin, { domain: "eu" })).streams.info(STREAM)
    expect(eu.config).toMatchObject({ subjects: ["ingest.warehouse.*.*.eu"], num_replicas: 1 })
  })

  it("stores every region's events on the hub once each, with their Nats-Msg-Id, and one id appended in both regions once", async () => {
    const eu = ids("b-eu", 5)
    const us = ids("b-us", 5)
    const acks = [...(await append("eu", eu)), ...(await append("us", us))]
    expect(acks.map((ack) => [ack.stream, ack.duplicate])).toEqual(Array(10).fill([STREAM, false]))
    expect(new Set(acks.map((ack) => ack.domain))).toEqual(new Set(["eu", "us"]))
    // A webhook retried into the other region: each leaf takes it, the hub's duplicate window keeps one.
    const [first] = await append("eu", ["b-both"])
    const [second] = await append("us", ["b-both"])
    expect([first?.duplicate, second?.duplicate]).toEqual([false, false])
    // us is sourced in order, so once this one is on the hub the second b-both has been seen (and dropped).
    await append("us", ["b-us-after"])
    await hubHolds(12, "the hub to hold both regions' events")

    const stored = await hubMessages()
    const counts = await hubIdCounts()
    expectOnce(counts, [...eu, ...us, "b-both", "b-us-after"])
    expect(stored).toHaveLength(12)
    // The hub stores sourced messages on their regional subjects, which its own subjects do not match.
    expect(stored.find((message) => message.headers["Nats-Msg-Id"] === "b-eu-0")).toMatchObject({
      subject: "ingest.warehouse.erasure.device_erased.eu",
      headers: { "Nats-Msg-Id": "b-eu-0", "Nats-Stream-Source": expect.stringMatching(/^INGEST_WAREHOUSE:\S+ 1$/) },
      data: JSON.stringify({ id: "b-eu-0" })
    })
    // The first copy to reach the hub is kept: each region is sourced on its own, so either may be first.
    expect([subject("eu"), subject("us")]).toContain(stored.find((message) => message.headers["Nats-Msg-Id"] === "b-both")?.subject)

    // Neither leaf stores the other's events: their subjects do not overlap.
    for (const [region, other] of [
      ["eu", "us"],
      ["us", "eu"]
    ] as const) {
      const leaf = await (await jetstreamManager(admin, { domain: region })).streams.info(STREAM, { subjects_filter: ">" })
      expect(Object.keys(leaf.state.subjects ?? {}).filter((name) => name.endsWith(`.${other}`))).toEqual([])
      expect(leaf.state.messages).toBe(region === "eu" ? 6 : 7)
    }
  })

  it("lets a region's edge publish its own region's subjects only: a hub subject or another region's is refused", async () => {
    const errors: Array<string> = []
    const nc = await connect({
      servers: cluster.regions[0]?.url as string,
      user: cluster.hub.edge.user,
      pass: cluster.hub.edge.password,
      inboxPrefix: EDGE_INBOX_PREFIX
    })
    try {
      ;(async () => {
        for await (const status of nc.status()) if (status.type === "error") errors.push(String(status.error))
      })().catch(() => undefined)
      const js = jetstream(nc, { timeout: 1000 })
      for (const refused of [
        subjectFor("warehouse", "erasure", "device_erased"),
        regionalSubject(subjectFor("warehouse", "erasure", "device_erased"), "us")
      ])
        await expect(js.publish(refused, "{}", { msgID: `perm-${refused}` })).rejects.toThrow()
      await expect(
        js.publish(regionalSubject(subjectFor("oee", "oee", "snapshot_recorded"), "eu"), "{}", { msgID: "perm-own" })
      ).resolves.toMatchObject({ domain: "eu" })
      expect(errors.join("\n")).toMatch(/Permissions Violation for Publish to "ingest\.warehouse\.erasure\.device_erased"/)
    } finally {
      await nc.close()
    }
  })

  it("keeps every event exactly once when a hub server is killed while the regions append, and takes direct appends with 2 of 3 up", async () => {
    const before = (await hub.streams.info(STREAM)).state.messages
    const leader = (await hub.streams.info(STREAM)).cluster?.leader
    expect(leader).toBeDefined()
    const victim = leader ?? "hub-1"
    const eu = ids("c-eu", 150)
    const us = ids("c-us", 150)
    // Kill the stream's leader (the server doing the sourcing) a third of the way through eu's appends, while us appends.
    const euAcks = (async () => {
      const acks = [...(await append("eu", eu.slice(0, 50)))]
      await cluster.kill(victim)
      acks.push(...(await append("eu", eu.slice(50))))
      return acks
    })()
    const usAcks = append("us", us)
    const acks = [...(await euAcks), ...(await usAcks)]
    expect(acks.filter((ack) => ack.duplicate || ack.stream !== STREAM)).toEqual([])
    expect(acks).toHaveLength(300)
    expect(cluster.running(victim)).toBe(false)

    const catchingUp = Date.now()
    await hubHolds(before + 300, "the hub, without its killed server, to hold every region's events")
    timings.catchUpAfterKillMs = Date.now() - catchingUp
    expectOnce(await hubIdCounts(), [...eu, ...us])
    timings.readAfterKillMs = Date.now() - catchingUp
    expect((await hub.streams.info(STREAM)).state.messages).toBe(before + 300)

    const appending = Date.now()
    const direct = await until("the hub's R3 stream to take a direct append with 2 of 3 servers", () =>
      jetstream(admin, { timeout: 2000 }).publish(subjectFor("warehouse", "erasure", "device_erased"), "{}", { msgID: "c-hub-direct" })
    )
    timings.directAppendWith2Of3Ms = Date.now() - appending
    expect(direct).toMatchObject({ stream: STREAM, domain: "hub" })
    expect((await hub.streams.info(STREAM)).cluster?.leader).not.toBe(victim)
    expectOnce(await hubIdCounts(), ["c-hub-direct"])

    const restarting = Date.now()
    await cluster.start(victim)
    await cluster.ready()
    timings.killedServerReadyMs = Date.now() - restarting
    await until("the restarted server to be current", async () => {
      const replicas = (await hub.streams.info(STREAM)).cluster?.replicas ?? []
      return replicas.length === 2 && replicas.every((replica) => replica.current && !replica.offline) ? true : undefined
    })
    timings.killedServerCurrentMs = Date.now() - restarting
  })

  it("keeps acknowledging in a region cut off from the hub, and the hub catches up exactly once when it heals", async () => {
    const before = (await hub.streams.info(STREAM)).state.messages
    await cluster.cut("eu")
    const cut = ids("d-eu", 20)
    const acks = await append("eu", cut)
    expect(acks.map((ack) => [ack.domain, ack.duplicate])).toEqual(Array(20).fill(["eu", false]))
    // A barrier through the other region: once it is on the hub, the hub has been sourcing meanwhile, and took nothing from eu.
    await append("us", ["d-us-barrier"], "barrier")
    await until("the barrier from us to reach the hub", () =>
      hub.streams.getMessage(STREAM, { last_by_subj: subject("us", "barrier") }).then((message) => message ?? undefined)
    )
    const whileCut = await hubIdCounts()
    expect(cut.filter((id) => whileCut.has(id))).toEqual([])
    expect((await hub.streams.info(STREAM)).state.messages).toBe(before + 1)

    const healing = Date.now()
    await cluster.heal("eu")
    timings.leafReconnectAfterHealMs = Date.now() - healing
    await hubHolds(before + 21, "the hub to catch up with eu after the heal")
    timings.catchUpAfterHealMs = Date.now() - healing
    expectOnce(await hubIdCounts(), [...cut, "d-us-barrier"])
    expect((await hub.streams.info(STREAM)).state.messages).toBe(before + 21)
  })

  it("reports a cut region unreachable, and after the heal reachable with every source caught up", async () => {
    await cluster.cut("eu")
    await append("eu", ["e-eu-0"])
    const asking = Date.now()
    // By region names alone, as `mesh status` may know no more of the cluster.
    const status = await clusterStatus(admin, ["eu", "us"])
    timings.statusWhileCutMs = Date.now() - asking
    expect(timings.statusWhileCutMs).toBeLessThan(2500)
    expect(status.regions).toEqual([
      { region: "eu", reachable: false, error: expect.stringMatching(/no responders|timeout/i) },
      { region: "us", reachable: true, rttMs: expect.any(Number) }
    ])
    expect(status.streams.map((stream) => stream.stream)).toEqual([
      "INGEST_CRM",
      "INGEST_WAREHOUSE",
      "INGEST_OEE",
      "INGEST_RETAIL",
      "INGEST_REPORTS",
      "DERIVED",
      "QUARANTINE",
      "REPORT_EXPORTS"
    ])
    for (const stream of status.streams) {
      expect(stream.error).toBeUndefined()
      expect(cluster.hub.servers).toContain(stream.leader)
      expect(stream.replicas.map((replica) => replica.server).sort()).toEqual(
        cluster.hub.servers.filter((server) => server !== stream.leader)
      )
      expect(stream.sources.map((source) => source.region).sort()).toEqual(
        ["DERIVED", "REPORT_EXPORTS"].includes(stream.stream) ? [] : ["eu", "us"]
      )
    }

    await cluster.heal("eu")
    const healed = await until("the status to show eu reachable and every source caught up", async () => {
      const now = await clusterStatus(admin, cluster.topology)
      const caughtUp =
        now.regions.every((region) => region.reachable) &&
        now.streams.every((stream) => stream.sources.every((source) => source.lag === 0 && source.error === undefined))
      return caughtUp && (await hubIdCounts()).get("e-eu-0") === 1 ? now : undefined
    })
    expect(healed.regions.map((region) => [region.region, region.reachable])).toEqual([
      ["eu", true],
      ["us", true]
    ])
    const warehouse = healed.streams.find((stream) => stream.stream === STREAM)
    expect(warehouse?.sources.map((source) => [source.region, source.lag])).toEqual(
      expect.arrayContaining([
        ["eu", 0],
        ["us", 0]
      ])
    )
  })

  it("keeps acknowledging in every region while the whole hub is down, and after a full restart the apply waits for the meta leader", async () => {
    const before = (await hub.streams.info(STREAM)).state.messages
    await Promise.all(cluster.hub.servers.map((server) => cluster.stop(server)))
    const eu = await append("eu", ids("f-eu", 10))
    const us = await append("us", ids("f-us", 10))
    expect([...eu, ...us].filter((ack) => ack.duplicate || ack.stream !== STREAM)).toHaveLength(0)

    const restarting = Date.now()
    await Promise.all(cluster.hub.servers.map((server) => cluster.start(server)))
    // Straight after the restart: the JetStream API answers only once the meta leader is elected.
    const changes = await applyTopologyStreams(admin, cluster.topology, settings, { requestTimeoutMs: 2000 })
    timings.applyAfterFullRestartMs = Date.now() - restarting
    expect(changes.filter((change) => change.action !== "unchanged")).toEqual([])
    await hubHolds(before + 20, "the restarted hub to catch up with both regions")
    timings.catchUpAfterFullRestartMs = Date.now() - restarting
    expectOnce(await hubIdCounts(), [...ids("f-eu", 10), ...ids("f-us", 10)])
    expect((await hub.streams.info(STREAM)).state.messages).toBe(before + 20)
  })
})
