import { jetstreamManager, type StreamInfo } from "@nats-io/jetstream"
import { millis, type NatsConnection } from "@nats-io/nats-core"
import { DEFAULT_STREAM_SETTINGS, streamDeclarationsFor } from "../streams.ts"
import { jetStreamApiPrefix, regionNames, type Topology, topologyOf } from "./topology.ts"

/** Whether the hub reaches a region's JetStream (its leaf is connected and answering). */
export interface RegionReach {
  readonly region: string
  readonly reachable: boolean
  /** Round trip of a `$JS.<region>.API.INFO` request through the hub, when it answered. */
  readonly rttMs?: number
  /** Why not, when it did not: no responders (the leaf is not connected), a timeout, or JetStream's own error. */
  readonly error?: string
}

/** One source of a hub stream, as the stream's leader sees it. */
export interface SourceStatus {
  /** The sourced stream's name. */
  readonly stream: string
  /** The region it comes from (from its `$JS.<region>.API` prefix); undefined for a source in the hub's own domain. */
  readonly region?: string
  /** Messages in the source the hub has not yet stored, as of the last time it heard from it. */
  readonly lag: number
  /** Milliseconds since the source was last active; undefined when it never was. */
  readonly activeMs?: number
  readonly error?: string
}

/** One replica of a hub stream other than its leader. */
export interface ReplicaStatus {
  readonly server: string
  /** Whether it is caught up with the leader. */
  readonly current: boolean
  readonly offline: boolean
  /** Operations it is behind the leader. */
  readonly lag: number
  /** Milliseconds since the leader last heard from it. */
  readonly activeMs: number
}

export interface HubStreamStatus {
  readonly stream: string
  /** Undefined when the stream did not answer (see `error`): no leader, or the hub is away. */
  readonly messages?: number
  readonly lastSeq?: number
  readonly leader?: string
  readonly replicas: ReadonlyArray<ReplicaStatus>
  readonly sources: ReadonlyArray<SourceStatus>
  readonly error?: string
}

export interface ClusterStatus {
  readonly regions: ReadonlyArray<RegionReach>
  readonly streams: ReadonlyArray<HubStreamStatus>
}

export interface ClusterStatusOptions {
  /** Each request's timeout; every request runs at once, so this bounds the whole status. Default 1.5 s, at most 2 s. */
  readonly timeoutMs?: number
}

/**
 * Whether the JetStream API at `prefix` answers an account-info request without an error within
 * `timeoutMs`: for the hub, its meta leader is elected; for `$JS.<region>.API`, the region's leaf is
 * connected to the hub and its JetStream is up. The answer's round trip in ms, or why not.
 */
export const jetStreamAnswers = async (
  nc: NatsConnection,
  prefix: string,
  timeoutMs: number
): Promise<{ readonly ok: true; readonly rttMs: number } | { readonly ok: false; readonly error: string }> => {
  const started = performance.now()
  try {
    const reply = await nc.request(`${prefix}.INFO`, "", { timeout: timeoutMs })
    const rttMs = performance.now() - started
    const body = reply.json<{ error?: { description?: string; code?: number } }>()
    if (body.error !== undefined) return { ok: false, error: body.error.description ?? `error ${String(body.error.code)}` }
    return { ok: true, rttMs }
  } catch (error) {
    return { ok: false, error: error instanceof Error ? `${error.name}: ${error.message}` : String(error) }
  }
}

const regionOfApi = (api: string | undefined): string | undefined => /^\$JS\.([^.]+)\.API$/.exec(api ?? "")?.[1]

const errorText = (error: unknown) => (error instanceof Error ? error.message : String(error))

/** The source info as the server sends it: with its `external`, which nats.js's type leaves out. */
type SourceInfo = NonNullable<StreamInfo["sources"]>[number] & { readonly external?: { readonly api?: string } }

const streamStatus = (stream: string, info: StreamInfo): HubStreamStatus => ({
  stream,
  messages: info.state.messages,
  lastSeq: info.state.last_seq,
  ...(info.cluster?.leader === undefined ? {} : { leader: info.cluster.leader }),
  replicas: (info.cluster?.replicas ?? []).map((replica) => ({
    server: replica.name,
    current: replica.current,
    offline: replica.offline ?? false,
    lag: replica.lag ?? 0,
    activeMs: millis(replica.active)
  })),
  sources: ((info.sources ?? []) as ReadonlyArray<SourceInfo>).map((source) => {
    const region = regionOfApi(source.external?.api)
    return {
      stream: source.name,
      ...(region === undefined ? {} : { region }),
      lag: source.lag,
      ...(source.active < 0 ? {} : { activeMs: millis(source.active) }),
      ...(source.error === undefined ? {} : { error: source.error.description })
    }
  })
})

const isRegionList = (value: Topology | ReadonlyArray<string>): value is ReadonlyArray<string> => Array.isArray(value)

/**
 * What an operator sees of a cluster (`mesh status`), through an admin connection to the hub,
 * given the topology or only its region names: for each region whether the hub reaches its leaf's
 * JetStream, and for each of the hub's streams its leader, its replicas and how far behind each
 * region's source is. Plain data, never a throw: a
 * part that does not answer within the timeout says so, so the status of a broken cluster is still
 * a status.
 */
export const clusterStatus = async (
  nc: NatsConnection,
  regionsOf: Topology | ReadonlyArray<string>,
  options: ClusterStatusOptions = {}
): Promise<ClusterStatus> => {
  // The hub's stream names do not depend on its size: the region names are all a status needs.
  const topology = isRegionList(regionsOf) ? topologyOf(regionsOf) : regionsOf
  const timeoutMs = Math.min(options.timeoutMs ?? 1500, 2000)
  const regions = Promise.all(
    regionNames(topology).map(async (region): Promise<RegionReach> => {
      const answer = await jetStreamAnswers(nc, jetStreamApiPrefix(region), timeoutMs)
      return answer.ok ? { region, reachable: true, rttMs: answer.rttMs } : { region, reachable: false, error: answer.error }
    })
  )
  // No API check on creation: that is one more request that could wait.
  const jsm = await jetstreamManager(nc, { timeout: timeoutMs, checkAPI: false })
  const streams = Promise.all(
    streamDeclarationsFor(topology, DEFAULT_STREAM_SETTINGS).hub.map(({ name }) =>
      jsm.streams.info(name).then(
        (info) => streamStatus(name, info),
        (error: unknown): HubStreamStatus => ({ stream: name, replicas: [], sources: [], error: errorText(error) })
      )
    )
  )
  return { regions: await regions, streams: await streams }
}
