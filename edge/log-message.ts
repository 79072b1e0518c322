import { headers as natsHeaders, type MsgHdrs } from "@nats-io/nats-core"
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
  /** The event's position in the request that carried it, to name it in an answer. */
  readonly index: number
}

/** What JetStream acknowledged for one message. */
export interface LogReceipt {
  readonly msgId: string
  readonly subject: string
  readonly seq: number
  readonly duplicate: boolean
}

/** What the edge knows of the request an event came in. */
export interface RequestContext {
  readonly receivedAt: string
  readonly traceId: string
}

/** The log message of each valid event of a request, in request order. */
export const toLogMessages = (
  source: string,
  contract: Contract,
  events: ReadonlyArray<{ readonly index: number; readonly event: ContractEvent }>,
  request: RequestContext
): ReadonlyArray<LogMessage> =>
  events.map(({ index, event }) => ({
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
    data: JSON.stringify(event.payload),
    index
  }))

/**
 * The NATS headers a log message is published with: its own, `Nats-Msg-Id` (the natural key, for
 * JetStream's dedupe) and `Nats-Expected-Stream` (refused if the subject lands in another stream).
 */
export const natsHeadersFor = (message: LogMessage): MsgHdrs => {
  const headers = natsHeaders()
  for (const [name, value] of Object.entries(message.headers)) headers.set(name, value)
  headers.set("Nats-Msg-Id", message.msgId)
  headers.set("Nats-Expected-Stream", message.stream)
  return headers
}
