import { describe, expect, it } from "vitest"
import { nanos } from "@nats-io/nats-core"
import { isTransientJetStreamError, retryJetStream, streamDeclarationsFor, topologyStreamDeclarations } from "../streams.ts"
import {
  DEFAULT_TOPOLOGY,
  renderTopology,
  type RenderOptions,
  type Topology,
  TopologyError,
  topologyOf,
  topologyProblems,
  validateTopology
} from "./topology.ts"

describe("validating a topology", () => {
  it("accepts the default hub of three with regions eu and us", () => {
    expect(topologyProblems(DEFAULT_TOPOLOGY)).toEqual([])
    expect(validateTopology(DEFAULT_TOPOLOGY)).toBe(DEFAULT_TOPOLOGY)
  })

  it("names a region whose name is not a subject token and a JetStream domain", () => {
    for (const name of ["EU", "eu-west", "1eu", "", "eu.west", "a234567890123456x"])
      expect(topologyProblems(topologyOf([name]))).toEqual([expect.stringContaining(`region ${JSON.stringify(name)} is not a valid name`)])
  })

  it("refuses `hub` as a region: it is the hub's own domain", () => {
    expect(topologyProblems(topologyOf(["eu", "hub"]))).toEqual([expect.stringContaining(`"hub" cannot be a region`)])
  })

  it("refuses a region declared twice", () => {
    expect(topologyProblems(topologyOf(["eu", "us", "eu"]))).toEqual([expect.stringContaining(`region "eu" is declared twice`)])
  })

  it("needs at least one region", () => {
    expect(topologyProblems(topologyOf([]))).toEqual([expect.stringContaining("at least one region")])
  })

  it("needs an odd number of hub servers, at least one", () => {
    for (const servers of [0, 2, 4, -1, 1.5])
      expect(topologyProblems(topologyOf(["eu"], servers))).toEqual([expect.stringContaining("odd number of servers")])
    for (const servers of [1, 3, 5]) expect(topologyProblems(topologyOf(["eu"], servers))).toEqual([])
  })

  it("names every mistake at once, and throws them all", () => {
    const topology: Topology = { hub: { servers: 2 }, regions: [{ name: "hub" }, { name: "Eu" }, { name: "Eu" }] }
    expect(topologyProblems(topology)).toHaveLength(4)
    expect(() => validateTopology(topology)).toThrow(TopologyError)
    expect(() => validateTopology(topology)).toThrow(/odd number[\s\S]*"hub" cannot[\s\S]*"Eu" is not a valid[\s\S]*declared twice/)
  })
})

describe("rendering a topology's servers", () => {
  const options = (topology: Topology): RenderOptions => ({
    host: "127.0.0.1",
    ports: {
      hub: Array.from({ length: topology.hub.servers }, (_, index) => ({
        client: 4000 + index,
        cluster: 5000 + index,
        leaf: 6000 + index,
        ...(index === 0 ? { leafAdvertise: 6500 } : {}),
        ws: 7000 + index,
        monitor: 8000 + index
      })),
      regions: Object.fromEntries(
        topology.regions.map(({ name }, index) => [
          name,
          {
            client: 4100 + index,
            ws: 7100 + index,
            monitor: 8100 + index,
            remotes: [9000 + 10 * index, 9001 + 10 * index, 9002 + 10 * index]
          }
        ])
      )
    },
    passwords: { admin: "padmin", edge: "pedge", projector: "pprojector", reports: "preports", leaf: "pleaf" },
    storeRoot: "/stores",
    version: "2.9.10",
    templates: { hub: "hub template\n  # sync_interval: always\n", leaf: "leaf template\n" }
  })

  it("routes every hub server to all of them, in domain hub, with the leaf login", () => {
    const plan = renderTopology(DEFAULT_TOPOLOGY, options(DEFAULT_TOPOLOGY))
    expect(plan.hub.map((server) => server.name)).toEqual(["hub-1", "hub-2", "hub-3"])
    for (const [index, server] of plan.hub.entries()) {
      expect(server).toMatchObject({
        role: "hub",
        domain: "hub",
        storeDir: `/stores/hub-${index + 1}`,
        url: `nats://127.0.0.1:${4000 + index}`
      })
      expect(server.env).toMatchObject({
        NATS_SERVER_NAME: `hub-${index + 1}`,
        NATS_JS_DOMAIN: "hub",
        NATS_PORT: String(4000 + index),
        NATS_CLUSTER_PORT: String(5000 + index),
        NATS_LEAF_PORT: String(6000 + index),
        NATS_LEAF_PASSWORD: "pleaf",
        NATS_ADMIN_PASSWORD: "padmin",
        NATS_EDGE_PASSWORD: "pedge",
        NATS_PROJECTOR_PASSWORD: "pprojector"
      })
      expect(JSON.parse(server.env.NATS_ROUTES ?? "")).toEqual(["nats://127.0.0.1:5000", "nats://127.0.0.1:5001", "nats://127.0.0.1:5002"])
    }
    // What a server tells leafs to dial: the forwarder in front of it when there is one, else its own listener.
    expect(plan.hub.map((server) => server.env.NATS_LEAF_ADVERTISE)).toEqual(["127.0.0.1:6500", "127.0.0.1:6001", "127.0.0.1:6002"])
  })

  it("gives each region a leaf in its own domain that dials every hub port it is given", () => {
    const plan = renderTopology(DEFAULT_TOPOLOGY, options(DEFAULT_TOPOLOGY))
    expect(plan.regions.map((server) => [server.name, server.region, server.domain])).toEqual([
      ["leaf-eu", "eu", "eu"],
      ["leaf-us", "us", "us"]
    ])
    const us = plan.regions[1]
    expect(us?.env).toMatchObject({ NATS_JS_DOMAIN: "us", NATS_SERVER_NAME: "leaf-us", NATS_PORT: "4101", NATS_WS_PORT: "7101" })
    expect(JSON.parse(us?.env.NATS_HUB_URLS ?? "")).toEqual([
      "nats-leaf://leaf:pleaf@127.0.0.1:9010",
      "nats-leaf://leaf:pleaf@127.0.0.1:9011",
      "nats-leaf://leaf:pleaf@127.0.0.1:9012"
    ])
    expect(us?.wsUrl).toBe("ws://127.0.0.1:7101")
  })

  it("turns on the lines for newer servers only where the version has them", () => {
    expect(renderTopology(DEFAULT_TOPOLOGY, options(DEFAULT_TOPOLOGY)).hub[0]?.config).toContain("# sync_interval: always")
    expect(renderTopology(DEFAULT_TOPOLOGY, { ...options(DEFAULT_TOPOLOGY), version: "2.10.4" }).hub[0]?.config).toMatch(
      /^ {2}sync_interval: always$/m
    )
  })

  it("refuses an invalid topology and ports that do not fit it", () => {
    expect(() => renderTopology(topologyOf(["hub"]), options(DEFAULT_TOPOLOGY))).toThrow(TopologyError)
    expect(() => renderTopology(topologyOf(["eu"], 1), options(DEFAULT_TOPOLOGY))).toThrow(/ports for 3 hub servers/)
    expect(() => renderTopology(topologyOf(["eu", "ap"]), options(DEFAULT_TOPOLOGY))).toThrow(/no ports given for region ap/)
  })
})

describe("a topology's streams", () => {
  const settings = { duplicateWindowMs: 120_000, replicas: 3 }
  const streams = streamDeclarationsFor(DEFAULT_TOPOLOGY, settings)

  it("puts the same stream names on every leaf, on the region's own five-token subjects, R1", () => {
    expect(Object.keys(streams.regions)).toEqual(["eu", "us"])
    const eu = streams.regions.eu ?? []
    expect(eu.map((stream) => [stream.name, stream.subjects, stream.num_replicas])).toEqual([
      ["INGEST_CRM", ["ingest.crm.*.*.eu"], 1],
      ["INGEST_WAREHOUSE", ["ingest.warehouse.*.*.eu"], 1],
      ["INGEST_OEE", ["ingest.oee.*.*.eu"], 1],
      ["INGEST_RETAIL", ["ingest.retail.*.*.eu"], 1],
      ["INGEST_REPORTS", ["ingest.reports.*.*.eu"], 1],
      ["QUARANTINE", ["ingest.quarantine.*.eu"], 1]
    ])
    for (const stream of eu) {
      expect(stream).toMatchObject({ deny_delete: true, deny_purge: true, max_age: 0, duplicate_window: nanos(120_000) })
      expect(stream.sources).toBeUndefined()
    }
  })

  it("has the hub hold its own four-token subjects and source every region's stream of the same name, at the settings' replicas", () => {
    expect(streams.hub.map((stream) => [stream.name, stream.subjects, stream.num_replicas, stream.sources])).toEqual([
      ...["crm", "warehouse", "oee", "retail", "reports"].map((domain) => [
        `INGEST_${domain.toUpperCase()}`,
        [`ingest.${domain}.*.*`],
        3,
        [
          { name: `INGEST_${domain.toUpperCase()}`, domain: "eu" },
          { name: `INGEST_${domain.toUpperCase()}`, domain: "us" }
        ]
      ]),
      ["DERIVED", ["derived.>"], 3, undefined],
      [
        "QUARANTINE",
        ["ingest.quarantine.*", "quarantine.outcome.>"],
        3,
        [
          { name: "QUARANTINE", domain: "eu" },
          { name: "QUARANTINE", domain: "us" }
        ]
      ],
      ["REPORT_EXPORTS", ["reports.exports"], 3, undefined]
    ])
  })

  it("is the same under its other name, topologyStreamDeclarations", () => {
    expect(topologyStreamDeclarations(DEFAULT_TOPOLOGY, settings)).toEqual(streams)
  })

  it("refuses more replicas than the hub has servers, and an invalid topology", () => {
    expect(() => streamDeclarationsFor(topologyOf(["eu"], 1), settings)).toThrow(/3 replicas need as many hub servers/)
    expect(() => streamDeclarationsFor(topologyOf(["eu", "eu"]), settings)).toThrow(TopologyError)
  })
})

describe("retrying JetStream calls while a cluster boots", () => {
  const timeout = () => Object.assign(new Error("timeout"), { name: "TimeoutError" })

  it("tells a passing failure from one that will not pass", () => {
    expect(isTransientJetStreamError(timeout())).toBe(true)
    expect(isTransientJetStreamError(new Error("JetStream system temporarily unavailable"))).toBe(true)
    expect(isTransientJetStreamError(Object.assign(new Error("no responders: '$JS.eu.API.INFO'"), { name: "RequestError" }))).toBe(true)
    expect(isTransientJetStreamError(new Error("subjects overlap with an existing stream"))).toBe(false)
  })

  it("tries again until the call answers", async () => {
    let calls = 0
    const answer = await retryJetStream("a test", async () => (++calls < 3 ? Promise.reject(timeout()) : "answered"), 5_000)
    expect([answer, calls]).toEqual(["answered", 3])
  })

  it("gives up after its deadline, saying what it was waiting for", async () => {
    await expect(retryJetStream("JetStream in domain eu to answer", () => Promise.reject(timeout()), 250)).rejects.toThrow(
      /gave up waiting for JetStream in domain eu to answer after \d+ attempts: timeout/
    )
  })

  it("passes on a failure that will not pass at once", async () => {
    let calls = 0
    const refused = retryJetStream(
      "a test",
      async () => {
        calls++
        throw new Error("subjects overlap with an existing stream")
      },
      5_000
    )
    await expect(refused).rejects.toThrow(/subjects overlap/)
    expect(calls).toBe(1)
  })
})
