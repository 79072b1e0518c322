import { headers as natsHeaders, type MsgHdrs } from "@nats-io/nats-core"
import type { Contract } from "../contracts/contract.ts"
import type { ContractEvent } from "../contracts/event.ts"
import { LogHeaders, messageIdFor, streamFor, subjectFor } from "../contracts/log.ts"
import { concatBytes, utf8 } from "../platform/text.ts"

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

/**
 * What became of one message: JetStream acknowledged it (its stream sequence, and whether the
 * stream had it already), or it waits in the edge's spool for the log (`duplicate`: it was waiting
 * there already; it has no sequence until the spool drains).
 */
export type LogReceipt =
  | { readonly msgId: string; readonly subject: string; readonly spooled: false; readonly seq: number; readonly duplicate: boolean }
  | { readonly msgId: string; readonly subject: string; readonly spooled: true; readonly duplicate: boolean }

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

/**
 * A request's log messages as they go on the wire: each message's NATS header block (as
 * {@link natsHeadersFor} makes it) and its data, UTF-8, back to back in one buffer, and the
 * subjects. This is what crosses to the Durable Object: one buffer copies in a fraction of the time
 * the messages' objects and strings take, and the Durable Object — one per shard, where a shard's
 * requests queue — is left only to measure and send.
 */
export interface EncodedMessages {
  readonly subjects: ReadonlyArray<string>
  readonly bytes: Uint8Array<ArrayBuffer>
  /** Where each part ends: message i's header block ends at `ends[2i]`, its data at `ends[2i + 1]`. */
  readonly ends: ReadonlyArray<number>
}

export const encodeLogMessages = (messages: ReadonlyArray<LogMessage>): EncodedMessages => {
  const parts: Array<Uint8Array> = []
  const ends: Array<number> = []
  let end = 0
  for (const message of messages) {
    for (const part of [utf8(String(natsHeadersFor(message))), utf8(message.data)]) {
      parts.push(part)
      end += part.byteLength
      ends.push(end)
    }
  }
  return { subjects: messages.map((message) => message.subject), bytes: concatBytes(...parts), ends }
}

/** One encoded message: its subject, its NATS header block and its data (views into the batch's buffer). */
export interface EncodedMessage {
  readonly subject: string
  readonly headers: Uint8Array
  readonly data: Uint8Array
}

/** The messages of an encoded batch, in order. */
export const encodedMessages = (encoded: EncodedMessages): ReadonlyArray<EncodedMessage> =>
  encoded.subjects.map((subject, i) => {
    const start = i === 0 ? 0 : (encoded.ends[2 * i - 1] as number)
    const headersEnd = encoded.ends[2 * i] as number
    return {
      subject,
      headers: encoded.bytes.subarray(start, headersEnd),
      data: encoded.bytes.subarray(headersEnd, encoded.ends[2 * i + 1] as number)
    }
  })
