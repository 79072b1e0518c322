import type { Contract } from "../contracts/contract.ts"
import type { ContractEvent } from "../contracts/event.ts"
import { LogHeaders, messageIdFor, streamFor, subjectFor } from "../contracts/log.ts"

/** One event ready for JetStream: plain data, so it crosses the Worker → Durable Object boundary. */
export interface LogMessage {
  readonly stream: string
  readonly subject: string
  readonly msgId: string
  readonly headers: Readonly<Record<string, string>>
  readonly data: string
}

/** What JetStream acknowledged for one message. */
export interface LogReceipt {
  readonly msgId: string
  readonly subject: string
  readonly seq: number
  readonly duplicate: boolean
}

/** The log message of each event of a request, in request order. */
export const toLogMessages = (
  source: string,
  contract: Contract,
  events: ReadonlyArray<ContractEvent>,
  request: { readonly receivedAt: string; readonly traceId: string }
): ReadonlyArray<LogMessage> =>
  events.map((event) => ({
    stream: streamFor(contract.domain),
    subject: subjectFor(contract.domain, source, event.type),
    msgId: messageIdFor(source, event.key),
    headers: {
      [LogHeaders.source]: source,
      [LogHeaders.type]: event.type,
      [LogHeaders.schema]: contract.schemaVersion,
      [LogHeaders.key]: event.key,
      [LogHeaders.occurredAt]: event.occurredAt,
      [LogHeaders.receivedAt]: request.receivedAt,
      [LogHeaders.traceId]: request.traceId
    },
    data: JSON.stringify(event.payload)
  }))
