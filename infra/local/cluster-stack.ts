import { type JetStreamManager, jetstreamManager } from "@nats-io/jetstream"
import type { NatsConnection } from "@nats-io/nats-core"
import { connect } from "@nats-io/transport-node"
import { type NatsCluster, type StartClusterOptions, startCluster } from "../nats/cluster.ts"
import { DEFAULT_TOPOLOGY, regionNames, type Topology } from "../nats/topology.ts"
import { applyTopologyStreams, type DomainStreamChange, type StreamSettings } from "../streams.ts"
import { type Edge, startEdge } from "./edge.ts"
import { generateSecrets } from "./stack.ts"

/**
 * A data centre per local region, so each region's edge sees requests arrive from "its" colo and the
 * Worker's own routing (`REGION_ROUTES`, `request.cf.colo`) picks the region, as it does on Cloudflare.
 */
const LOCAL_COLOS = ["AMS", "IAD", "SIN", "GRU", "JNB", "SYD"] as const

/** The hub's streams in a cluster: three replicas, the duplicate window as on one server. */
export const CLUSTER_STREAM_SETTINGS: StreamSettings = { duplicateWindowMs: 10 * 60 * 1000, replicas: 3 }

export interface RegionEdge {
  readonly region: string
  /** The Cloudflare data centre its requests come from (`request.cf.colo`). */
  readonly colo: string
  readonly edge: Edge
}

export interface ClusterStack {
  readonly cluster: NatsCluster
  /** An admin connection to every hub server. */
  readonly admin: NatsConnection
  /** The hub's JetStream. */
  readonly jsm: JetStreamManager
  readonly streams: ReadonlyArray<DomainStreamChange>
  /** One edge Worker (workerd) per region, each seeing its requests from that region's colo. */
  readonly edges: ReadonlyArray<RegionEdge>
  readonly secrets: Readonly<Record<string, string>>
  /** `REGIONS` and `REGION_ROUTES` as every edge has them. */
  readonly edgeSettings: Readonly<Record<string, string>>
  readonly dispose: () => Promise<void>
}

export interface StartClusterStackOptions {
  readonly topology?: Topology
  readonly storeRoot?: string
  readonly passwords?: StartClusterOptions["passwords"]
  readonly streams?: StreamSettings
  readonly secrets?: Record<string, string>
  /** The edges' ports, one per region in the topology's order; free ports unless given. */
  readonly edgePorts?: ReadonlyArray<number>
  /** Where each region's edge keeps its Durable Objects' storage (`<dir>/<region>`): its spool survives a restart. */
  readonly edgePersistRoot?: string
  /** Further edge settings (`SPOOL`, `PUBLISH_TIMEOUT_MS`, ...). */
  readonly edgeSettings?: Readonly<Record<string, string>>
  readonly verbose?: boolean
}

/** An admin connection to every server of a cluster's hub, reconnecting for as long as it runs. */
export const connectHubAdmin = (cluster: NatsCluster): Promise<NatsConnection> =>
  connect({
    servers: [...cluster.hub.urls],
    user: cluster.hub.admin.user,
    pass: cluster.hub.admin.password,
    name: "ingest-admin",
    maxReconnectAttempts: -1
  })

/**
 * The mesh beyond one machine, on loopback: the hub cluster and a leaf per region (infra/nats/cluster.ts),
 * every region's streams and the hub's declared, and in front one edge Worker per region whose
 * requests come from that region's data centre, every edge configured with every region
 * (`REGIONS`) and the routes to them. The harness of `mesh cluster up`, the cluster tests and the
 * cluster scenario of the edge benchmark.
 */
export const startClusterStack = async (options: StartClusterStackOptions = {}): Promise<ClusterStack> => {
  const topology = options.topology ?? DEFAULT_TOPOLOGY
  const regions = regionNames(topology)
  if (regions.length > LOCAL_COLOS.length) throw new Error(`a local cluster runs at most ${LOCAL_COLOS.length} regions`)
  const cluster = await startCluster({
    topology,
    ...(options.storeRoot === undefined ? {} : { storeRoot: options.storeRoot }),
    ...(options.passwords === undefined ? {} : { passwords: options.passwords })
  })
  const started: Array<RegionEdge> = []
  let admin: NatsConnection | undefined
  try {
    admin = await connectHubAdmin(cluster)
    const streams = await applyTopologyStreams(admin, topology, options.streams ?? CLUSTER_STREAM_SETTINGS)
    const jsm = await jetstreamManager(admin)
    const secrets = options.secrets ?? generateSecrets()
    const edgeSettings = {
      REGIONS: JSON.stringify(Object.fromEntries(cluster.regions.map((region) => [region.name, { url: region.wsUrl, shards: 2 }]))),
      REGION_ROUTES: JSON.stringify(Object.fromEntries(regions.map((region, i) => [`colo:${LOCAL_COLOS[i]}`, region]))),
      DEFAULT_REGION: regions[0] as string,
      ...options.edgeSettings
    }
    for (const [i, region] of regions.entries()) {
      const colo = LOCAL_COLOS[i] as string
      const port = options.edgePorts?.[i]
      const edge = await startEdge({
        natsWsUrl: cluster.regions[i]?.wsUrl as string,
        natsPassword: cluster.hub.edge.password,
        secrets: Object.fromEntries(Object.entries(secrets).map(([name, secret]) => [name, [secret]])),
        settings: edgeSettings,
        cf: { colo },
        ...(port === undefined ? {} : { port }),
        ...(options.edgePersistRoot === undefined ? {} : { persistDir: `${options.edgePersistRoot}/${region}` }),
        ...(options.verbose === undefined ? {} : { verbose: options.verbose })
      })
      started.push({ region, colo, edge })
    }
    const connection = admin
    return {
      cluster,
      admin: connection,
      jsm,
      streams,
      edges: started,
      secrets,
      edgeSettings,
      dispose: async () => {
        for (const { edge } of started) await edge.dispose()
        if (!connection.isClosed()) await connection.close()
        await cluster.dispose()
      }
    }
  } catch (error) {
    for (const { edge } of started) await edge.dispose().catch(() => undefined)
    await admin?.close().catch(() => undefined)
    await cluster.dispose()
    throw error
  }
}
