import {
  DiscardPolicy,
  type JetStreamClient,
  type JetStreamManager,
  jetstreamManager,
  RetentionPolicy,
  StorageType,
  type StreamConfig,
  type StreamSource
} from "@nats-io/jetstream"
import { nanos, type NatsConnection } from "@nats-io/nats-core"
import {
  DERIVED_STREAM,
  DERIVED_SUBJECTS,
  DOMAINS,
  domainSubjects,
  headerValues,
  HUB_DOMAIN,
  HUB_QUARANTINE_SUBJECTS,
  hubDomainSubjects,
  QUARANTINE_STREAM,
  QUARANTINE_SUBJECTS,
  regionalDomainSubjects,
  regionalQuarantineSubjects,
  REPORT_EXPORTS_STREAM,
  REPORT_EXPORTS_SUBJECT,
  streamFor
} from "../contracts/log.ts"
import { jetStreamApiPrefix, regionNames, type Topology, validateTopology } from "./nats/topology.ts"

export interface StreamSettings {
  /** How long JetStream remembers a `Nats-Msg-Id` to drop a resend; longer windows cost server memory. */
  readonly duplicateWindowMs: number
  /** 1 for a single server; 3 in a production cluster. */
  readonly replicas: number
}

export const DEFAULT_STREAM_SETTINGS: StreamSettings = { duplicateWindowMs: 10 * 60 * 1000, replicas: 1 }

/** A stream as declared: the keys we own; anything else the server defaults. */
export type StreamDeclaration = Partial<StreamConfig> & { name: string }

/**
 * The log, declared as code: one stream per domain holding `ingest.<domain>.>`, one for what
 * projections derive (`derived.>`), and the quarantine of events the contracts refused. The log is
 * the truth: nothing ages out, no message can be deleted or purged, and a full stream refuses new
 * events (the edge answers 503) rather than dropping old ones.
 */
export const streamDeclarations = (settings: StreamSettings = DEFAULT_STREAM_SETTINGS): ReadonlyArray<StreamDeclaration> => [
  ...DOMAINS.map((domain) =>
    stream(streamFor(domain), `Events of the ${domain} domain as their senders sent them`, [domainSubjects(domain)], settings)
  ),
  stream(DERIVED_STREAM, "Events the projections derive and publish back, e.g. restock alerts", [DERIVED_SUBJECTS], settings),
  stream(
    QUARANTINE_STREAM,
    "Events the contracts refused, as received, with their issues; and the outcomes of their re-drives",
    QUARANTINE_SUBJECTS,
    settings
  ),
  reportExportQueue(settings)
]

/**
 * The report export jobs' work queue: a job's message is removed once a worker acknowledges it, and
 * one not acknowledged within the consumer's ack wait (a worker killed mid-job) is delivered again.
 * Unlike the log it may be purged by an operator; a week-old job nobody took ages out.
 */
export const reportExportQueue = (settings: StreamSettings): StreamDeclaration => ({
  ...stream(REPORT_EXPORTS_STREAM, "Report export jobs (ids only; their state is in Postgres)", [REPORT_EXPORTS_SUBJECT], settings),
  retention: RetentionPolicy.Workqueue,
  max_age: nanos(7 * 24 * 3600 * 1000),
  deny_delete: false,
  deny_purge: false
})

/** The streams of a topology: the hub's, and each region's leaf's (in the region's JetStream domain). */
export interface TopologyStreams {
  readonly hub: ReadonlyArray<StreamDeclaration>
  readonly regions: Readonly<Record<string, ReadonlyArray<StreamDeclaration>>>
}

/**
 * The log of a multi-region mesh. Each region's leaf holds what its edge appends, under the same
 * stream names as one server (`INGEST_<DOMAIN>` on `ingest.<domain>.*.*.<region>`, `QUARANTINE` on
 * `ingest.quarantine.*.<region>`), R1: the leaf is one server, and the region's copy is the buffer
 * that survives the hub being away. The hub's streams (R = `settings.replicas`) hold their own
 * four-token subjects (re-drives publish there) and *source* every region's stream of the same name,
 * so projections read one stream on the hub with the filter `ingest.<domain>.>`; sourcing keeps
 * `Nats-Msg-Id`, so the hub's duplicate window also drops a resend that arrived in another region.
 * DERIVED lives on the hub only: the projections that publish it run there. No subject of one
 * domain overlaps another's (contracts/log.ts), which matters because the leafs and the hub share one
 * account: a stream in any domain stores every message on its subjects.
 */
export const streamDeclarationsFor = (topology: Topology, settings: StreamSettings = DEFAULT_STREAM_SETTINGS): TopologyStreams => {
  validateTopology(topology)
  if (settings.replicas > topology.hub.servers)
    throw new Error(`streams of ${settings.replicas} replicas need as many hub servers; the topology's hub has ${topology.hub.servers}`)
  const regions = regionNames(topology)
  const sourcedFromRegions = (name: string) => ({
    sources: regions.map((region) => ({ name, domain: region }))
  })
  const hub: ReadonlyArray<StreamDeclaration> = [
    ...DOMAINS.map((domain) => ({
      ...stream(
        streamFor(domain),
        `Events of the ${domain} domain: re-drives published on the hub, and every region's, sourced`,
        [hubDomainSubjects(domain)],
        settings
      ),
      ...sourcedFromRegions(streamFor(domain))
    })),
    stream(DERIVED_STREAM, "Events the projections derive and publish back, e.g. restock alerts", [DERIVED_SUBJECTS], settings),
    {
      ...stream(
        QUARANTINE_STREAM,
        "Events the contracts refused, as received, with their issues (every region's, sourced); and the outcomes of their re-drives",
        HUB_QUARANTINE_SUBJECTS,
        settings
      ),
      ...sourcedFromRegions(QUARANTINE_STREAM)
    },
    reportExportQueue(settings)
  ]
  const leaf = { ...settings, replicas: 1 }
  return {
    hub,
    regions: Object.fromEntries(
      regions.map((region) => [
        region,
        [
          ...DOMAINS.map((domain) =>
            stream(
              streamFor(domain),
              `Events of the ${domain} domain appended in region ${region}; the hub's ${streamFor(domain)} sources them`,
              [regionalDomainSubjects(domain, region)],
              leaf
            )
          ),
          stream(
            QUARANTINE_STREAM,
            `Events the contracts refused in region ${region}, as received, with their issues; the hub's ${QUARANTINE_STREAM} sources them`,
            regionalQuarantineSubjects(region),
            leaf
          )
        ]
      ])
    )
  }
}

/** {@link streamDeclarationsFor}, under the name the cluster tooling's callers use. */
export const topologyStreamDeclarations = (topology: Topology, settings: StreamSettings = DEFAULT_STREAM_SETTINGS): TopologyStreams =>
  streamDeclarationsFor(topology, settings)

const stream = (name: string, description: string, subjects: ReadonlyArray<string>, settings: StreamSettings): StreamDeclaration => ({
  name,
  description,
  subjects: [...subjects],
  storage: StorageType.File,
  retention: RetentionPolicy.Limits,
  discard: DiscardPolicy.New,
  max_age: 0,
  max_msgs: -1,
  max_bytes: -1,
  duplicate_window: nanos(settings.duplicateWindowMs),
  num_replicas: settings.replicas,
  allow_direct: true,
  deny_delete: true,
  deny_purge: true
})

export type StreamChange = { readonly name: string; readonly action: "created" | "updated" | "unchanged" }

/**
 * A stream source as the server keeps it. A declaration names a region's stream by `domain`, which
 * nats.js turns into `external: { api: "$JS.<domain>.API" }` before sending it (and the server
 * adds `deliver: ""`), so both forms are brought to one before comparing.
 */
const comparableSources = (sources: ReadonlyArray<StreamSource & { domain?: string }> | undefined) =>
  (sources ?? []).map((source) => ({
    name: source.name,
    api: source.external?.api ?? (source.domain === undefined || source.domain === "" ? "" : jetStreamApiPrefix(source.domain)),
    deliver: source.external?.deliver ?? "",
    filter: source.filter_subject ?? "",
    startSeq: source.opt_start_seq ?? 0,
    startTime: source.opt_start_time ?? ""
  }))

const comparable = (key: keyof StreamConfig, config: Partial<StreamConfig>): string =>
  JSON.stringify(key === "sources" ? comparableSources(config.sources) : config[key])

const differs = (wanted: Partial<StreamConfig>, current: StreamConfig): boolean =>
  (Object.keys(wanted) as Array<keyof StreamConfig>).some((key) => comparable(key, wanted) !== comparable(key, current))

export interface ApplyOptions {
  /**
   * How long, in all, the apply may keep retrying JetStream API calls that fail for a reason that
   * passes (no meta leader yet, a leaf not yet connected, a request timing out) before it gives up;
   * 0 tries each call once. {@link applyStreams}: 0 unless told (a single server answers at once);
   * {@link applyTopologyStreams}: 30 s.
   */
  readonly retryForMs?: number
  /**
   * Each JetStream request's timeout in {@link applyTopologyStreams} (the jetstreamManager's own
   * for {@link applyStreams}); 5 s unless told. Shorter notices a meta leader sooner after a boot.
   */
  readonly requestTimeoutMs?: number
}

/** Creates missing streams and updates changed ones; running it again changes nothing. */
export const applyStreams = async (
  jsm: JetStreamManager,
  declarations = streamDeclarations(),
  options: ApplyOptions = {}
): Promise<ReadonlyArray<StreamChange>> => {
  const retryForMs = options.retryForMs ?? 0
  const deadline = Date.now() + retryForMs
  const where = jsm.getOptions().apiPrefix ?? "$JS.API"
  // One deadline for the whole apply, so retries of one call use up the time of the next ones.
  const call = <A>(what: string, run: () => Promise<A>) =>
    retryJetStream(`${what} (${where})`, run, retryForMs <= 0 ? 0 : Math.max(1, deadline - Date.now()))
  const changes: Array<StreamChange> = []
  for (const wanted of declarations) {
    const current = await call(`stream ${wanted.name}'s info`, () =>
      jsm.streams.info(wanted.name).catch((error: unknown) => {
        if (error instanceof Error && /stream not found/i.test(error.message)) return undefined
        throw error
      })
    )
    if (current === undefined) {
      await call(`stream ${wanted.name} to be created`, () => jsm.streams.add({ ...wanted }))
      changes.push({ name: wanted.name, action: "created" })
    } else if (differs(wanted, current.config)) {
      await call(`stream ${wanted.name} to be updated`, () => jsm.streams.update(wanted.name, { ...current.config, ...wanted }))
      changes.push({ name: wanted.name, action: "updated" })
    } else {
      changes.push({ name: wanted.name, action: "unchanged" })
    }
  }
  return changes
}

/**
 * Whether a JetStream API failure passes by itself: a cluster electing its meta leader (the API
 * times out, or answers "temporarily unavailable"), a leaf not connected yet (no responders for its
 * domain's prefix), placement before the hub's peers know each other. Anything else (a bad config,
 * a permission) is the caller's to see at once.
 */
export const isTransientJetStreamError = (error: unknown): boolean => {
  if (!(error instanceof Error)) return false
  if (["TimeoutError", "NoRespondersError", "RequestError", "ConnectionError"].includes(error.name)) return true
  return /timeout|no responders|temporarily unavailable|no suitable peers|insufficient resources|not current|leader|jetstream not enabled/i.test(
    error.message
  )
}

const pause = (ms: number) => new Promise((resolveLater) => setTimeout(resolveLater, ms))

/**
 * `run()`, again after 100 ms, 200 ms, … (at most 2 s apart) while it fails transiently
 * ({@link isTransientJetStreamError}) and `retryForMs` has not passed; then its last error, saying
 * what was being waited for.
 */
export const retryJetStream = async <A>(what: string, run: () => Promise<A>, retryForMs: number): Promise<A> => {
  const deadline = Date.now() + retryForMs
  for (let delay = 100, attempt = 1; ; attempt++, delay = Math.min(delay * 2, 2000)) {
    try {
      return await run()
    } catch (error) {
      if (!isTransientJetStreamError(error)) throw error
      if (Date.now() + delay > deadline) {
        if (retryForMs <= 0) throw error
        throw new Error(
          `gave up waiting for ${what} after ${attempt} attempts: ${error instanceof Error ? error.message : String(error)}`,
          {
            cause: error
          }
        )
      }
      await pause(delay)
    }
  }
}

/** A change of {@link applyTopologyStreams}: which domain's stream it was. */
export type DomainStreamChange = StreamChange & { readonly domain: string }

/**
 * Declares a topology's streams through one admin connection to the hub: each region's in its
 * domain (`$JS.<region>.API` reaches the leaf through its leafnode connection), then the hub's,
 * whose sources need the regions' streams. API calls are retried while they fail transiently, for
 * `retryForMs` in all (30 s unless told): a hub answers only once it has elected its meta leader
 * (on 2.9.10 about 1 s after a fresh cluster's first boot, but 10–15 s after all its servers
 * restart; meanwhile requests time out or answer "temporarily unavailable"), and a region only once
 * its leaf has connected (no responders until then). Running it again changes nothing.
 */
export const applyTopologyStreams = async (
  nc: NatsConnection,
  topology: Topology,
  settings: StreamSettings = DEFAULT_STREAM_SETTINGS,
  options: ApplyOptions = {}
): Promise<ReadonlyArray<DomainStreamChange>> => {
  const declarations = streamDeclarationsFor(topology, settings)
  const retryForMs = options.retryForMs ?? 30_000
  const deadline = Date.now() + retryForMs
  const remaining = () => (retryForMs <= 0 ? 0 : Math.max(1, deadline - Date.now()))
  const changes: Array<DomainStreamChange> = []
  const apply = async (domain: string, wanted: ReadonlyArray<StreamDeclaration>) => {
    const jsm = await retryJetStream(
      `JetStream in domain ${domain} to answer`,
      () => jetstreamManager(nc, { timeout: options.requestTimeoutMs ?? 5000, ...(domain === HUB_DOMAIN ? {} : { domain }) }),
      remaining()
    )
    for (const change of await applyStreams(jsm, wanted, { retryForMs: remaining() })) changes.push({ ...change, domain })
  }
  for (const region of regionNames(topology)) await apply(region, declarations.regions[region] ?? [])
  await apply(HUB_DOMAIN, declarations.hub)
  return changes
}

/** A message of a stream as read back: where it stands, its subject, its headers (one value each) and its data. */
export interface StoredMessage {
  readonly seq: number
  readonly subject: string
  readonly headers: Readonly<Record<string, string>>
  readonly data: string
}

/** Every message of `stream` up to its head when called, oldest first, through an ordered consumer. */
export const readStream = async (js: JetStreamClient, jsm: JetStreamManager, stream: string): Promise<ReadonlyArray<StoredMessage>> => {
  const last = (await jsm.streams.info(stream)).state.last_seq
  const messages: Array<StoredMessage> = []
  if (last === 0) return messages
  const consumer = await js.consumers.get(stream)
  for (let seq = 0; seq < last;) {
    let got = 0
    for await (const message of await consumer.fetch({ max_messages: 1000, expires: 2000 })) {
      got++
      seq = message.seq
      messages.push({ seq: message.seq, subject: message.subject, headers: headerValues(message.headers), data: message.string() })
      if (message.seq >= last) break
    }
    if (got === 0) break
  }
  return messages
}
