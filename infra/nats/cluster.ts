import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs"
import { createServer } from "node:net"
import { tmpdir } from "node:os"
import { join } from "node:path"
import type { NatsConnection } from "@nats-io/nats-core"
import { connect } from "@nats-io/transport-node"
import { jetStreamAnswers } from "./cluster-status.ts"
import { stopLeftover } from "../processes.ts"
import { openLink } from "./link.ts"
import { type NatsCredentials, natsProcess, type NatsProcess, natsServerBinary, natsServerVersion, randomNatsPassword } from "./server.ts"
import {
  DEFAULT_TOPOLOGY,
  HUB_CONFIG,
  jetStreamApiPrefix,
  LEAF_CONFIG,
  type LeafPorts,
  renderTopology,
  type ServerPlan,
  type Topology,
  validateTopology
} from "./topology.ts"

/** A region of a running cluster: its leaf server's addresses. */
export interface ClusterRegion {
  readonly name: string
  /** The leaf's `server_name`, what {@link NatsCluster.kill} and friends take. */
  readonly server: string
  /** `nats://` for Node clients (the edge user appends here in tests). */
  readonly url: string
  /** `ws://` for the edge Worker. */
  readonly wsUrl: string
  readonly monitorUrl: string
}

export interface NatsCluster {
  readonly topology: Topology
  /** The servers' version, e.g. `2.9.10`. */
  readonly version: string
  readonly hub: {
    /** `server_name` of each hub server, in order: `hub-1`, `hub-2`, `hub-3`. */
    readonly servers: ReadonlyArray<string>
    /** `nats://` of every hub server: give clients all of them, so they survive one going away. */
    readonly urls: ReadonlyArray<string>
    readonly wsUrls: ReadonlyArray<string>
    readonly monitorUrls: ReadonlyArray<string>
    readonly admin: NatsCredentials
    readonly edge: NatsCredentials
    readonly projector: NatsCredentials
    readonly reports: NatsCredentials
  }
  readonly regions: ReadonlyArray<ClusterRegion>
  /** Where each server keeps its store (`<storeRoot>/<server>`), config (`.conf`) and output (`.log`). */
  readonly storeRoot: string
  /** SIGKILL: a crash. Resolves once it has exited. */
  readonly kill: (server: string) => Promise<void>
  /** SIGTERM, and waits for it to exit; its store is kept. */
  readonly stop: (server: string) => Promise<void>
  /**
   * Starts a stopped or killed server again on the same ports and store; resolves once it logs that
   * it is ready (its JetStream may still be catching up: {@link NatsCluster.ready} waits for that).
   */
  readonly start: (server: string) => Promise<void>
  readonly running: (server: string) => boolean
  /**
   * Severs `region`'s leaf from the hub without stopping it: the region keeps acknowledging locally.
   * Resolves once the hub no longer reaches the region's JetStream.
   */
  readonly cut: (region: string) => Promise<void>
  /** Lets `region`'s leaf dial the hub again; resolves once the hub reaches the region's JetStream again. */
  readonly heal: (region: string) => Promise<void>
  /**
   * Resolves once the hub's JetStream answers (its meta leader is elected) and, through it, every
   * region's that is not cut (its leaf has connected); rejects after `timeoutMs` (30 s) naming what
   * did not answer.
   */
  readonly ready: (timeoutMs?: number) => Promise<void>
  /** Stops every server and link, and deletes the stores when the cluster created them. */
  readonly dispose: () => Promise<void>
}

export interface StartClusterOptions {
  /** Hub of 3 and regions `eu` and `us` unless told. */
  readonly topology?: Topology
  readonly host?: string
  /** Defaults to a fresh temporary directory, removed by `dispose`. */
  readonly storeRoot?: string
  readonly passwords?: Partial<Record<"admin" | "edge" | "projector" | "reports" | "leaf", string>>
}

const pause = (ms: number) => new Promise((resolveLater) => setTimeout(resolveLater, ms))

/** The first port the system hands out for outgoing connections (Linux: `ip_local_port_range`). */
const ephemeralFloor = (): number => {
  try {
    const floor = Number(readFileSync("/proc/sys/net/ipv4/ip_local_port_range", "utf8").trim().split(/\s+/)[0])
    return Number.isInteger(floor) && floor > 2048 ? floor : 32768
  } catch {
    return 32768
  }
}

const canListen = (host: string, port: number): Promise<boolean> =>
  new Promise((answer) => {
    const server = createServer()
    server.once("error", () => answer(false))
    server.listen(port, host, () => server.close(() => answer(true)))
  })

/**
 * Picks free ports below the ephemeral range. A cluster binds some twenty ports in turn while its
 * servers already dial each other (routes, leafs, the link forwarders), and every outgoing
 * connection takes an ephemeral port: a port that `listen(0)` found free a moment ago (which is
 * where infra/ports.ts `freePort` looks) can be taken by one of them before its server binds it.
 */
const portPicker = (host: string) => {
  const floor = ephemeralFloor()
  const given = new Set<number>()
  return async (): Promise<number> => {
    for (let attempt = 0; attempt < 200; attempt++) {
      const port = 10_000 + Math.floor(Math.random() * Math.max(1, floor - 10_000))
      if (!given.has(port) && (await canListen(host, port))) {
        given.add(port)
        return port
      }
    }
    throw new Error(`no free port found on ${host} below ${floor}`)
  }
}

/** Polls until the JetStream API at `prefix` answers through `nc` (or, `answers` false, stops answering); rejects at `deadline`. */
const answering = async (nc: NatsConnection, what: string, prefix: string, answers: boolean, deadline: number) => {
  for (;;) {
    const answer = await jetStreamAnswers(nc, prefix, 1000)
    if (answer.ok === answers) return
    if (Date.now() > deadline)
      throw new Error(`gave up waiting for ${what}: ${answer.ok ? "it still answers" : `it does not answer (${answer.error})`}`)
    await pause(100)
  }
}

/**
 * A JetStream cluster on this machine, as production runs it (infra/nats/production/*.conf, minus
 * TLS and accounts): a hub of real nats-servers in one cluster and JetStream domain `hub`, and one
 * leaf server per region in its own domain, all on free loopback ports and sharing random
 * credentials. The leafs dial the hub through a link (infra/nats/link.ts) so a test can partition
 * a region while its server keeps running. Resolves once {@link NatsCluster.ready}.
 */
export const startCluster = async (options: StartClusterOptions = {}): Promise<NatsCluster> => {
  const topology = validateTopology(options.topology ?? DEFAULT_TOPOLOGY)
  const host = options.host ?? "127.0.0.1"
  const ownsStore = options.storeRoot === undefined
  const storeRoot = options.storeRoot ?? mkdtempSync(join(tmpdir(), "ingest-cluster-"))
  mkdirSync(storeRoot, { recursive: true })
  const passwords = {
    admin: options.passwords?.admin ?? randomNatsPassword(),
    edge: options.passwords?.edge ?? randomNatsPassword(),
    projector: options.passwords?.projector ?? randomNatsPassword(),
    reports: options.passwords?.reports ?? randomNatsPassword(),
    leaf: options.passwords?.leaf ?? randomNatsPassword()
  }
  const binary = natsServerBinary()
  const version = natsServerVersion(binary)

  const pickPort = portPicker(host)
  const listeners = []
  for (let index = 0; index < topology.hub.servers; index++)
    listeners.push({
      client: await pickPort(),
      cluster: await pickPort(),
      leaf: await pickPort(),
      ws: await pickPort(),
      monitor: await pickPort()
    })
  // One forwarder in front of each hub server's leafnode listener, which that server advertises to the leafs.
  const link = await openLink(
    listeners.map((server) => ({ host, port: server.leaf })),
    { host }
  )
  const hubPorts = listeners.map((server, index) => ({ ...server, leafAdvertise: link.ports[index] ?? server.leaf }))
  const regionPorts: Record<string, LeafPorts> = {}
  for (const { name } of topology.regions)
    regionPorts[name] = { client: await pickPort(), ws: await pickPort(), monitor: await pickPort(), remotes: link.ports }
  const plan = renderTopology(topology, {
    host,
    ports: { hub: hubPorts, regions: regionPorts },
    passwords,
    storeRoot,
    version,
    templates: { hub: readFileSync(HUB_CONFIG, "utf8"), leaf: readFileSync(LEAF_CONFIG, "utf8") }
  })

  const processes = new Map<string, { readonly plan: ServerPlan; readonly process: NatsProcess }>()
  for (const server of [...plan.hub, ...plan.regions]) {
    mkdirSync(server.storeDir, { recursive: true })
    const config = join(storeRoot, `${server.name}.conf`)
    writeFileSync(config, server.config)
    // A persistent store (`mesh cluster up`'s) remembers each server, so one left by a run that was killed is stopped first.
    const pidFile = ownsStore ? undefined : join(storeRoot, `${server.name}.pid`)
    if (pidFile !== undefined) await stopLeftover(pidFile, "nats-server")
    const process_ = natsProcess(
      binary,
      config,
      { ...process.env, ...server.env },
      { logFile: join(storeRoot, `${server.name}.log`), ...(pidFile === undefined ? {} : { pidFile }) }
    )
    processes.set(server.name, { plan: server, process: process_ })
  }
  const get = (server: string) => {
    const found = processes.get(server)
    if (found === undefined) throw new Error(`no server ${JSON.stringify(server)} in this cluster: ${[...processes.keys()].join(", ")}`)
    return found.process
  }
  const region = (name: string) => {
    if (!topology.regions.some((candidate) => candidate.name === name))
      throw new Error(
        `no region ${JSON.stringify(name)} in this cluster: ${topology.regions.map((candidate) => candidate.name).join(", ")}`
      )
    return name
  }

  // One admin connection of the harness's own, to watch the cluster answer.
  let watcher: NatsConnection | undefined
  const watch = async () => {
    watcher ??= await connect({
      servers: plan.hub.map((server) => server.url),
      user: "admin",
      pass: passwords.admin,
      name: "ingest-cluster-harness",
      maxReconnectAttempts: -1,
      reconnectTimeWait: 250
    })
    return watcher
  }

  const ready = async (timeoutMs = 30_000) => {
    const deadline = Date.now() + timeoutMs
    const nc = await watch()
    await answering(nc, "the hub's JetStream (no meta leader?)", "$JS.API", true, deadline)
    await Promise.all(
      topology.regions
        .filter(({ name }) => !link.isCut(name))
        .map(({ name }) =>
          answering(nc, `region ${name}'s JetStream through the hub (leaf not connected?)`, jetStreamApiPrefix(name), true, deadline)
        )
    )
  }

  const stopAll = async () => {
    await watcher?.close().catch(() => undefined)
    watcher = undefined
    await Promise.all([...processes.values()].map(({ process: server }) => server.stop()))
    await link.close()
  }

  try {
    // The hub's servers find each other through their routes whichever starts first; the leafs redial until one answers.
    await Promise.all(plan.hub.map((server) => get(server.name).start()))
    await Promise.all(plan.regions.map((server) => get(server.name).start()))
    await ready()
  } catch (error) {
    await stopAll()
    if (ownsStore) rmSync(storeRoot, { recursive: true, force: true })
    throw error
  }

  return {
    topology,
    version,
    hub: {
      servers: plan.hub.map((server) => server.name),
      urls: plan.hub.map((server) => server.url),
      wsUrls: plan.hub.map((server) => server.wsUrl),
      monitorUrls: plan.hub.map((server) => server.monitorUrl),
      admin: { user: "admin", password: passwords.admin },
      edge: { user: "edge", password: passwords.edge },
      projector: { user: "projector", password: passwords.projector },
      reports: { user: "reports", password: passwords.reports }
    },
    regions: plan.regions.map((server) => ({
      name: server.region,
      server: server.name,
      url: server.url,
      wsUrl: server.wsUrl,
      monitorUrl: server.monitorUrl
    })),
    storeRoot,
    kill: (server) => get(server).kill(),
    stop: (server) => get(server).stop(),
    start: (server) => get(server).start(),
    running: (server) => get(server).running(),
    cut: async (name) => {
      link.cut(region(name))
      await answering(await watch(), `the hub to lose region ${name}`, jetStreamApiPrefix(name), false, Date.now() + 10_000)
    },
    heal: async (name) => {
      link.heal(region(name))
      await answering(await watch(), `the hub to reach region ${name} again`, jetStreamApiPrefix(name), true, Date.now() + 30_000)
    },
    ready,
    dispose: async () => {
      await stopAll()
      if (ownsStore) rmSync(storeRoot, { recursive: true, force: true })
    }
  }
}
