import { dirname, join, resolve } from "node:path"
import { fileURLToPath } from "node:url"
import { HUB_DOMAIN, REGION_NAME, regionalQuarantineSubjects } from "../../contracts/log.ts"
import { renderNatsConfig } from "./server.ts"

/**
 * The mesh beyond one machine, declared once: a hub (an odd number of nats-servers forming one
 * JetStream cluster in domain `hub`) and the regions, each one leaf nats-server with its own
 * JetStream domain named after the region. Everything else (server configs, streams, status) is
 * derived from this; nothing here touches a process or the network.
 */
export interface Topology {
  readonly hub: { readonly servers: number }
  readonly regions: ReadonlyArray<{ readonly name: string }>
}

export const DEFAULT_TOPOLOGY: Topology = { hub: { servers: 3 }, regions: [{ name: "eu" }, { name: "us" }] }

/** A topology of `regions` and a hub of `hubServers` (3 unless told). */
export const topologyOf = (regions: ReadonlyArray<string>, hubServers = 3): Topology => ({
  hub: { servers: hubServers },
  regions: regions.map((name) => ({ name }))
})

/** What is wrong with `topology`, one sentence a mistake; empty when it can be run. */
export const topologyProblems = (topology: Topology): ReadonlyArray<string> => {
  const problems: Array<string> = []
  const servers = topology.hub.servers
  if (!Number.isInteger(servers) || servers < 1 || servers % 2 === 0)
    problems.push(
      `the hub needs an odd number of servers (1, 3, 5…) so a majority survives a failure: got ${String(servers)}; JetStream's RAFT needs ⌊n/2⌋+1 up`
    )
  if (topology.regions.length < 1) problems.push("a topology needs at least one region: each region is a leaf server the edge appends to")
  const seen = new Set<string>()
  for (const { name } of topology.regions) {
    // A name given twice is one mistake, not one per time it is wrong.
    if (seen.has(name)) {
      problems.push(`region ${JSON.stringify(name)} is declared twice: each region is one JetStream domain`)
      continue
    }
    seen.add(name)
    if (name === HUB_DOMAIN)
      problems.push(`"${HUB_DOMAIN}" cannot be a region: it is the hub's JetStream domain, and a region's name is its domain`)
    else if (!REGION_NAME.test(name))
      problems.push(
        `region ${JSON.stringify(name)} is not a valid name: lower-case letters and digits, starting with a letter, at most 16 (it is a subject token and a JetStream domain)`
      )
  }
  return problems
}

export class TopologyError extends Error {
  constructor(readonly problems: ReadonlyArray<string>) {
    super(`the topology cannot be run:\n${problems.map((problem) => `  - ${problem}`).join("\n")}`)
    this.name = "TopologyError"
  }
}

/** `topology` itself when it can be run; a {@link TopologyError} naming every mistake otherwise. */
export const validateTopology = (topology: Topology): Topology => {
  const problems = topologyProblems(topology)
  if (problems.length > 0) throw new TopologyError(problems)
  return topology
}

export const regionNames = (topology: Topology): ReadonlyArray<string> => topology.regions.map((region) => region.name)

/** The `server_name` of hub server `index` (0-based): `hub-1`, `hub-2`, … */
export const hubServerName = (index: number): string => `hub-${index + 1}`
/** The `server_name` of a region's leaf server: `leaf-eu`. */
export const leafServerName = (region: string): string => `leaf-${region}`

/** The JetStream API prefix through which the hub (or anyone in the shared account) reaches a domain: `$JS.<domain>.API`. */
export const jetStreamApiPrefix = (domain: string): string => `$JS.${domain}.API`

/** The configuration templates, in the $VARIABLE style of nats.conf. */
const HERE = dirname(fileURLToPath(import.meta.url))
/** What the edge user may publish on a region's leaf: that region's event and quarantine subjects, nothing else. */
export const edgePublishSubjects = (region: string): ReadonlyArray<string> => [
  `ingest.*.*.*.${region}`,
  ...regionalQuarantineSubjects(region)
]

export const HUB_CONFIG = resolve(HERE, "hub.conf")
export const LEAF_CONFIG = resolve(HERE, "leaf.conf")

export interface HubServerPorts {
  readonly client: number
  readonly cluster: number
  /** The leafnode listener. */
  readonly leaf: number
  /**
   * The port the server tells leafs to dial it at (`leafnodes.advertise`): a forwarder's in front
   * of the listener (the link of infra/nats/link.ts), the listener's own unless given.
   */
  readonly leafAdvertise?: number
  readonly ws: number
  readonly monitor: number
}

export interface LeafPorts {
  readonly client: number
  readonly ws: number
  readonly monitor: number
  /**
   * The ports the leaf dials, one per hub server in order: the hub servers' leafnode ports, or
   * (locally) the link forwarders in front of them that let a test sever a region.
   */
  readonly remotes: ReadonlyArray<number>
}

export interface TopologyPorts {
  readonly hub: ReadonlyArray<HubServerPorts>
  readonly regions: Readonly<Record<string, LeafPorts>>
}

/** Passwords shared by every server of the topology; `leaf` is what the regions log in to the hub with. */
export interface TopologyPasswords {
  readonly admin: string
  readonly edge: string
  readonly projector: string
  readonly reports: string
  readonly leaf: string
}

/** One nats-server to run: `nats-server -c <file holding config>` with `env` added to the environment. */
export interface ServerPlan {
  readonly name: string
  readonly role: "hub" | "leaf"
  /** Its JetStream domain: `hub`, or the region's name. */
  readonly domain: string
  /** The configuration file's text: the role's template, with the lines for newer servers turned on where `version` has them. */
  readonly config: string
  /** The template's $VARIABLES for this server. */
  readonly env: Readonly<Record<string, string>>
  readonly storeDir: string
  readonly url: string
  readonly wsUrl: string
  readonly monitorUrl: string
}

export interface TopologyPlan {
  readonly hub: ReadonlyArray<ServerPlan>
  readonly regions: ReadonlyArray<ServerPlan & { readonly region: string }>
}

export interface RenderOptions {
  readonly host: string
  readonly ports: TopologyPorts
  readonly passwords: TopologyPasswords
  /** Each server's store is `<storeRoot>/<server name>`. */
  readonly storeRoot: string
  /** The nats-server version the configs are for, e.g. `2.9.10`. */
  readonly version: string
  /** The texts of {@link HUB_CONFIG} and {@link LEAF_CONFIG}. */
  readonly templates: { readonly hub: string; readonly leaf: string }
  /** The hub's cluster name; `ingest-hub` unless told. */
  readonly clusterName?: string
}

/**
 * Every server of `topology`, ready to run: its configuration and the values of the template's
 * $VARIABLES. Lists (the routes, a leaf's hub URLs) go in as JSON arrays, which nats-server parses
 * as arrays when it substitutes a variable.
 */
export const renderTopology = (topology: Topology, options: RenderOptions): TopologyPlan => {
  validateTopology(topology)
  const { host, ports, passwords, version } = options
  if (ports.hub.length !== topology.hub.servers)
    throw new Error(`ports for ${ports.hub.length} hub servers given, the topology has ${topology.hub.servers}`)
  const common = {
    NATS_HOST: host,
    NATS_WS_NO_TLS: "true",
    NATS_ADMIN_PASSWORD: passwords.admin,
    NATS_EDGE_PASSWORD: passwords.edge,
    NATS_PROJECTOR_PASSWORD: passwords.projector,
    NATS_REPORTS_PASSWORD: passwords.reports
  }
  const routes = JSON.stringify(ports.hub.map((server) => `nats://${host}:${server.cluster}`))
  const urls = (client: number, ws: number, monitor: number) => ({
    url: `nats://${host}:${client}`,
    wsUrl: `ws://${host}:${ws}`,
    monitorUrl: `http://${host}:${monitor}`
  })
  const hub = ports.hub.map((server, index): ServerPlan => {
    const name = hubServerName(index)
    const storeDir = join(options.storeRoot, name)
    return {
      name,
      role: "hub",
      domain: HUB_DOMAIN,
      config: renderNatsConfig(options.templates.hub, version),
      env: {
        ...common,
        NATS_SERVER_NAME: name,
        NATS_PORT: String(server.client),
        NATS_CLUSTER_PORT: String(server.cluster),
        NATS_LEAF_PORT: String(server.leaf),
        NATS_LEAF_ADVERTISE: `${host}:${server.leafAdvertise ?? server.leaf}`,
        NATS_WS_PORT: String(server.ws),
        NATS_MONITOR_PORT: String(server.monitor),
        NATS_STORE_DIR: storeDir,
        NATS_JS_DOMAIN: HUB_DOMAIN,
        NATS_CLUSTER_NAME: options.clusterName ?? "ingest-hub",
        NATS_ROUTES: routes,
        NATS_LEAF_PASSWORD: passwords.leaf
      },
      storeDir,
      ...urls(server.client, server.ws, server.monitor)
    }
  })
  const regions = topology.regions.map(({ name: region }) => {
    const leaf = ports.regions[region]
    if (leaf === undefined) throw new Error(`no ports given for region ${region}`)
    if (leaf.remotes.length !== topology.hub.servers)
      throw new Error(`region ${region} dials ${leaf.remotes.length} hub ports, the hub has ${topology.hub.servers} servers`)
    const name = leafServerName(region)
    const storeDir = join(options.storeRoot, name)
    return {
      name,
      role: "leaf" as const,
      region,
      domain: region,
      config: renderNatsConfig(options.templates.leaf, version),
      env: {
        ...common,
        NATS_SERVER_NAME: name,
        NATS_PORT: String(leaf.client),
        NATS_WS_PORT: String(leaf.ws),
        NATS_MONITOR_PORT: String(leaf.monitor),
        NATS_STORE_DIR: storeDir,
        NATS_JS_DOMAIN: region,
        NATS_EDGE_PUBLISH: JSON.stringify(edgePublishSubjects(region)),
        NATS_HUB_URLS: JSON.stringify(leaf.remotes.map((port) => `nats-leaf://leaf:${passwords.leaf}@${host}:${port}`))
      },
      storeDir,
      ...urls(leaf.client, leaf.ws, leaf.monitor)
    }
  })
  return { hub, regions }
}
