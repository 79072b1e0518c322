import {
  DiscardPolicy,
  type JetStreamClient,
  type JetStreamManager,
  RetentionPolicy,
  StorageType,
  type StreamConfig
} from "@nats-io/jetstream"
import { nanos } from "@nats-io/nats-core"
import {
  DERIVED_STREAM,
  DERIVED_SUBJECTS,
  DOMAINS,
  domainSubjects,
  headerValues,
  QUARANTINE_STREAM,
  QUARANTINE_SUBJECTS,
  streamFor
} from "../contracts/log.ts"

export interface StreamSettings {
  /** How long JetStream remembers a `Nats-Msg-Id` to drop a resend; longer windows cost server memory. */
  readonly duplicateWindowMs: number
  /** 1 for a single server; 3 in a production cluster. */
  readonly replicas: number
}

export const DEFAULT_STREAM_SETTINGS: StreamSettings = { duplicateWindowMs: 10 * 60 * 1000, replicas: 1 }

/**
 * The log, declared as code: one stream per domain holding `ingest.<domain>.>`, one for what
 * projections derive (`derived.>`), and the quarantine of events the contracts refused. The log is
 * the truth: nothing ages out, no message can be deleted or purged, and a full stream refuses new
 * events (the edge answers 503) rather than dropping old ones.
 */
export const streamDeclarations = (
  settings: StreamSettings = DEFAULT_STREAM_SETTINGS
): ReadonlyArray<Partial<StreamConfig> & { name: string }> => [
  ...DOMAINS.map((domain) =>
    stream(streamFor(domain), `Events of the ${domain} domain as their senders sent them`, [domainSubjects(domain)], settings)
  ),
  stream(DERIVED_STREAM, "Events the projections derive and publish back, e.g. restock alerts", [DERIVED_SUBJECTS], settings),
  stream(
    QUARANTINE_STREAM,
    "Events the contracts refused, as received, with their issues; and the outcomes of their re-drives",
    QUARANTINE_SUBJECTS,
    settings
  )
]

const stream = (
  name: string,
  description: string,
  subjects: ReadonlyArray<string>,
  settings: StreamSettings
): Partial<StreamConfig> & { name: string } => ({
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

const differs = (wanted: Partial<StreamConfig>, current: StreamConfig): boolean =>
  (Object.keys(wanted) as Array<keyof StreamConfig>).some((key) => JSON.stringify(wanted[key]) !== JSON.stringify(current[key]))

/** Creates missing streams and updates changed ones; running it again changes nothing. */
export const applyStreams = async (jsm: JetStreamManager, declarations = streamDeclarations()): Promise<ReadonlyArray<StreamChange>> => {
  const changes: Array<StreamChange> = []
  for (const wanted of declarations) {
    const current = await jsm.streams.info(wanted.name).catch((error: unknown) => {
      if (error instanceof Error && /stream not found/i.test(error.message)) return undefined
      throw error
    })
    if (current === undefined) {
      await jsm.streams.add(wanted)
      changes.push({ name: wanted.name, action: "created" })
    } else if (differs(wanted, current.config)) {
      await jsm.streams.update(wanted.name, { ...current.config, ...wanted })
      changes.push({ name: wanted.name, action: "updated" })
    } else {
      changes.push({ name: wanted.name, action: "unchanged" })
    }
  }
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
