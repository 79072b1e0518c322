/**
 * Names on the log: domains, subjects, streams, message ids and headers. Every writer and
 * reader of JetStream derives its names from here.
 */
import { Schema } from "effect"

export const DOMAINS = ["crm", "warehouse", "oee", "retail", "reports"] as const
export type Domain = (typeof DOMAINS)[number]

/** The JetStream stream that holds a domain's events. */
export const streamFor = (domain: Domain): string => `INGEST_${domain.toUpperCase()}`

/** All subjects of a domain's stream. */
export const domainSubjects = (domain: Domain): string => `ingest.${domain}.>`

/**
 * A subject token made from a sender's event type: lower case, `[a-z0-9_-]` only, so
 * `contact.creation` becomes `contact_creation` and `Call Disposed` becomes `call_disposed`.
 */
export const subjectToken = (value: string): string => {
  const token = value
    .trim()
    .toLowerCase()
    .replace(/[^a-z0-9_-]+/g, "_")
    .replace(/^_+|_+$/g, "")
  return token.length > 0 ? token : "unknown"
}

/** `ingest.<domain>.<source>.<type>` */
export const subjectFor = (domain: Domain, source: string, type: string): string =>
  `ingest.${domain}.${subjectToken(source)}.${subjectToken(type)}`

/**
 * A region of the mesh beyond one machine: one leaf nats-server with its own JetStream domain (the
 * region's name) whose streams the hub's streams source. A name is a subject token and a domain:
 * lower-case letters and digits, starting with a letter; `hub` is the hub's domain.
 */
export const REGION_NAME = /^[a-z][a-z0-9]{0,15}$/
export const HUB_DOMAIN = "hub"

/**
 * The subject an event takes in `region`: its hub subject with the region as one more token, e.g.
 * `ingest.warehouse.erasure.device_erased.eu`. Regions' subjects never overlap each other's or the
 * hub's own (`ingest.<domain>.*.*` holds exactly four tokens), so no stream of one domain stores a
 * message published in another (a leaf and the hub share one account); the consumers' filter
 * `ingest.<domain>.>` matches both, so projections read one stream on the hub.
 */
export const regionalSubject = (subject: string, region: string): string => `${subject}.${region}`

/** A domain's subjects on a region's leaf: `ingest.<domain>.*.*.<region>`. */
export const regionalDomainSubjects = (domain: Domain, region: string): string => `ingest.${domain}.*.*.${region}`

/** A domain's own subjects on the hub of a cluster (re-drives publish there); regions' events arrive sourced. */
export const hubDomainSubjects = (domain: Domain): string => `ingest.${domain}.*.*`

/** `Nats-Msg-Id` of an event: the natural key, namespaced by source so sources never collide. */
export const messageIdFor = (source: string, key: string): string => `${source}:${key}`

/** Headers every appended message carries, besides `Nats-Msg-Id`. */
export const LogHeaders = {
  source: "Ingest-Source",
  type: "Ingest-Type",
  schema: "Ingest-Schema",
  key: "Ingest-Key",
  occurredAt: "Ingest-Occurred-At",
  receivedAt: "Ingest-Received-At",
  traceId: "Ingest-Trace-Id",
  /** On a quarantined event: its `{path, message}` issues as JSON. */
  issues: "Ingest-Issues",
  /** On a quarantined event: its position in the request that carried it. */
  index: "Ingest-Index"
} as const

/** A message's headers as one value each (the first), however the NATS client holds them. */
export const headerValues = (headers: Iterable<[string, ReadonlyArray<string>]> | undefined): Record<string, string> => {
  const values: Record<string, string> = {}
  for (const [name, all] of headers ?? []) values[name] = all[0] ?? ""
  return values
}

/** Inbox prefix the edge user may subscribe to (its PubAcks), and nothing else; see infra/nats/nats.conf. */
export const EDGE_INBOX_PREFIX = "_INBOX_edge"

/** Inbox prefix of the projector user: replies to its JetStream calls and fetches, and no one else's; see infra/nats/nats.conf. */
export const PROJECTOR_INBOX_PREFIX = "_INBOX_projector"

/** Events the projections publish back to the log, e.g. `derived.retail.restock`. */
export const DERIVED_STREAM = "DERIVED"
export const DERIVED_SUBJECTS = "derived.>"
export const RESTOCK_SUBJECT = "derived.retail.restock"

/**
 * Events a source's contract refused, kept exactly as received with their issues until an
 * operator re-drives them (`mesh quarantine`): `ingest.quarantine.<source>`, and the operator's
 * outcomes of re-drives on `quarantine.outcome.<source>` (a subject the edge may not publish).
 */
export const QUARANTINE_STREAM = "QUARANTINE"
export const QUARANTINE_SUBJECTS: ReadonlyArray<string> = ["ingest.quarantine.>", "quarantine.outcome.>"]
export const quarantineSubject = (source: string): string => `ingest.quarantine.${subjectToken(source)}`
/** The quarantine's subjects on a region's leaf (`ingest.quarantine.<source>.<region>`) and on a cluster's hub. */
export const regionalQuarantineSubjects = (region: string): ReadonlyArray<string> => [`ingest.quarantine.*.${region}`]
export const HUB_QUARANTINE_SUBJECTS: ReadonlyArray<string> = ["ingest.quarantine.*", "quarantine.outcome.>"]
export const quarantineOutcomeSubject = (source: string): string => `quarantine.outcome.${subjectToken(source)}`

/**
 * Report export jobs (seed 003): a work queue, not part of the log. A job's message carries its id
 * only; the job's state lives in Postgres, so a worker that dies mid-job leaves it to be delivered
 * again, and acknowledging the message removes it from the stream.
 */
export const REPORT_EXPORTS_STREAM = "REPORT_EXPORTS"
export const REPORT_EXPORTS_SUBJECT = "reports.exports"

/** Inbox prefix of the report export service's user (registry appends, export jobs); see infra/nats/nats.conf. */
export const REPORTS_INBOX_PREFIX = "_INBOX_reports"

/**
 * What the edge answered each request of a known source, as one small core-NATS message (no stream
 * keeps them): the console tallies them per minute — accepted events, duplicates, rejections by
 * status and the last error — for as long as it listens. The edge publishes them after deciding
 * the answer, never holding it: an accepted batch's outcome rides on its append, a rejection's is
 * sent once the answer is out. `ingest.outcomes.<source>.answer`, with the region as one more token
 * on a region's leaf (within what the edge may publish there).
 */
export const OUTCOME_SUBJECTS = "ingest.outcomes.>"
export const outcomeSubject = (source: string, region?: string): string =>
  `ingest.outcomes.${subjectToken(source)}.answer${region === undefined ? "" : `.${region}`}`

export const EdgeOutcome = Schema.Struct({
  source: Schema.String,
  status: Schema.Int,
  /** Events appended to the log (quarantined ones not counted), of which `duplicates` the log already held. */
  events: Schema.Int,
  duplicates: Schema.Int,
  /** A rejection's error code and message, as the sender got them. */
  error: Schema.optionalKey(Schema.String),
  message: Schema.optionalKey(Schema.String)
})
export type EdgeOutcome = typeof EdgeOutcome.Type

/** An outcome message's body, or undefined when it is not one (a message on the subject from elsewhere). */
export const decodeOutcome = (data: Uint8Array): EdgeOutcome | undefined => {
  try {
    const value: unknown = JSON.parse(new TextDecoder().decode(data))
    return Schema.is(EdgeOutcome)(value) ? value : undefined
  } catch {
    return undefined
  }
}
