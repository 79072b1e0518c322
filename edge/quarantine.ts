import { type Contract, eventIdentity } from "../contracts/contract.ts"
import type { ContractIssue } from "../contracts/event.ts"
import { LogHeaders, QUARANTINE_STREAM, quarantineSubject } from "../contracts/log.ts"
import { type LogMessage, type RequestContext, toLogMessages } from "./log-message.ts"
import { toHex } from "./verify/crypto.ts"
import { utf8 } from "../platform/text.ts"

/** An event of a request that broke its source's contract, as received, with why. */
export interface InvalidEvent {
  readonly index: number
  readonly payload: unknown
  readonly key: string | undefined
  readonly issues: ReadonlyArray<ContractIssue>
}

/** The most bytes of issues a quarantined event's header carries; the event itself is kept whole. */
export const MAX_ISSUES_HEADER_BYTES = 4096

const ascii = (text: string): string => text.replace(/[^\x20-\x7e]/g, (char) => `\\u${char.charCodeAt(0).toString(16).padStart(4, "0")}`)

/**
 * The issues as one header value: JSON, non-ASCII escaped (a header is one line of bytes), cut to
 * {@link MAX_ISSUES_HEADER_BYTES} with a last entry saying how many were left out.
 */
export const issuesHeader = (issues: ReadonlyArray<ContractIssue>): string => {
  const kept: Array<ContractIssue> = []
  for (const [i, issue] of issues.entries()) {
    const rest = issues.length - i
    const candidate = ascii(JSON.stringify([...kept, issue]))
    const withNote = ascii(JSON.stringify([...kept, issue, { path: "$", message: `and ${rest - 1} more issues` }]))
    if ((rest === 1 ? candidate : withNote).length > MAX_ISSUES_HEADER_BYTES) {
      return ascii(JSON.stringify([...kept, { path: "$", message: `and ${rest} more issues` }]))
    }
    kept.push(issue)
  }
  return ascii(JSON.stringify(kept))
}

/**
 * The quarantine message of each invalid event: the event as received on
 * `ingest.quarantine.<source>`, its issues in a header, and a message id from its content (delivery
 * fields aside), so a sender's resend of the same request is stored once.
 */
export const quarantineMessages = async (
  source: string,
  contract: Contract,
  events: ReadonlyArray<InvalidEvent>,
  request: RequestContext
): Promise<ReadonlyArray<LogMessage>> =>
  Promise.all(
    events.map(async (event) => {
      const digest = new Uint8Array(await crypto.subtle.digest("SHA-256", utf8(eventIdentity(event.payload, contract.deliveryFields))))
      return {
        stream: QUARANTINE_STREAM,
        subject: quarantineSubject(source),
        msgId: `${source}:quarantine:${toHex(digest)}`,
        headers: {
          [LogHeaders.source]: source,
          [LogHeaders.schema]: contract.schemaVersion,
          ...(event.key === undefined ? {} : { [LogHeaders.key]: event.key }),
          [LogHeaders.index]: String(event.index),
          [LogHeaders.issues]: issuesHeader(event.issues),
          [LogHeaders.receivedAt]: request.receivedAt,
          [LogHeaders.traceId]: request.traceId
        },
        data: JSON.stringify(event.payload),
        index: event.index
      }
    })
  )

/** A quarantined event as the operator sees it: the event as received, why it was refused, and what re-drives made of it. */
export interface QuarantineRecord {
  /** Its sequence in the QUARANTINE stream. */
  readonly id: number
  readonly source: string
  readonly schema: string
  readonly key: string | undefined
  readonly index: number
  readonly receivedAt: string
  readonly traceId: string
  readonly data: string
  /** Why it is in the quarantine: the edge's issues, or those of the last re-drive that still found it invalid. */
  readonly issues: ReadonlyArray<ContractIssue>
  /** Set once a re-drive appended it to the log: where it landed. */
  readonly redriven: { readonly at: string; readonly subject: string; readonly seq: number } | undefined
}

/** What a re-drive made of one quarantined event; published on `quarantine.outcome.<source>`. */
export type RedriveOutcome =
  | { readonly id: number; readonly at: string; readonly outcome: "redriven"; readonly subject: string; readonly seq: number }
  | { readonly id: number; readonly at: string; readonly outcome: "invalid"; readonly issues: ReadonlyArray<ContractIssue> }

const parseIssues = (text: string | undefined): ReadonlyArray<ContractIssue> => {
  try {
    const parsed = JSON.parse(text ?? "[]") as unknown
    return Array.isArray(parsed) ? (parsed as ReadonlyArray<ContractIssue>) : []
  } catch {
    return [{ path: "$", message: `unreadable issues header: ${String(text).slice(0, 80)}` }]
  }
}

/** A quarantine message back as a record (no re-drive applied yet). */
export const quarantineRecordOf = (message: {
  readonly seq: number
  readonly headers: Readonly<Record<string, string>>
  readonly data: string
}): QuarantineRecord => ({
  id: message.seq,
  source: message.headers[LogHeaders.source] ?? "unknown",
  schema: message.headers[LogHeaders.schema] ?? "unknown",
  key: message.headers[LogHeaders.key],
  index: Number(message.headers[LogHeaders.index] ?? 0),
  receivedAt: message.headers[LogHeaders.receivedAt] ?? "",
  traceId: message.headers[LogHeaders.traceId] ?? "",
  data: message.data,
  issues: parseIssues(message.headers[LogHeaders.issues]),
  redriven: undefined
})

/** Applies re-drive outcomes, in stream order, to the records they name. */
export const applyOutcomes = (
  records: ReadonlyArray<QuarantineRecord>,
  outcomes: ReadonlyArray<RedriveOutcome>
): ReadonlyArray<QuarantineRecord> => {
  const byId = new Map(records.map((record) => [record.id, record]))
  for (const outcome of outcomes) {
    const record = byId.get(outcome.id)
    if (record === undefined) continue
    byId.set(
      outcome.id,
      outcome.outcome === "redriven"
        ? { ...record, redriven: { at: outcome.at, subject: outcome.subject, seq: outcome.seq } }
        : { ...record, issues: outcome.issues }
    )
  }
  return records.map((record) => byId.get(record.id) as QuarantineRecord)
}

/**
 * What re-driving a record means now, judged by the current contract: the log message to append
 * under the event's natural key (the same key, so a second re-drive is a duplicate), or the issues
 * that still keep it out.
 */
export const redrive = (
  record: QuarantineRecord,
  contract: Contract
):
  | { readonly _tag: "Append"; readonly message: LogMessage }
  | { readonly _tag: "StillInvalid"; readonly issues: ReadonlyArray<ContractIssue> } => {
  let payload: unknown
  try {
    payload = JSON.parse(record.data) as unknown
  } catch (error) {
    return {
      _tag: "StillInvalid",
      issues: [{ path: "$", message: `the stored event is not JSON: ${error instanceof Error ? error.message : String(error)}` }]
    }
  }
  const judged = contract.judge(payload)
  if (judged._tag === "Invalid") return { _tag: "StillInvalid", issues: judged.issues }
  const [message] = toLogMessages(record.source, contract, [{ index: record.index, event: judged.event }], {
    receivedAt: record.receivedAt,
    traceId: record.traceId
  })
  return { _tag: "Append", message: message as LogMessage }
}
