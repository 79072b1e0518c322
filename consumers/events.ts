import { LogHeaders, messageIdFor } from "../contracts/log.ts"
import type { LogEvent } from "../projections/projection.ts"

/** A message as read from the log, with what the runtime needs to dead-letter it. */
export interface ReadEvent extends LogEvent {
  readonly headers: Readonly<Record<string, string>>
  readonly data: string
}

const parse = (text: string): unknown => {
  try {
    return JSON.parse(text) as unknown
  } catch {
    return undefined
  }
}

/** An event as the projection sees it, from a log message's parts (live, rebuild, or a stored dead letter). */
export const readEventOf = (message: {
  seq: number
  subject: string
  headers: Readonly<Record<string, string>>
  data: string
  /** When the log stored it, for messages without the edge's time headers. */
  appendedAt?: string | (() => string)
}): ReadEvent => {
  const { headers } = message
  const appended = () => (typeof message.appendedAt === "function" ? message.appendedAt() : message.appendedAt)
  const source = headers[LogHeaders.source] ?? message.subject.split(".")[2] ?? "unknown"
  const key = headers[LogHeaders.key]
  return {
    seq: message.seq,
    subject: message.subject,
    source,
    type: headers[LogHeaders.type] ?? message.subject.split(".")[3] ?? "unknown",
    dedupeKey: key !== undefined && key !== "" ? messageIdFor(source, key) : (headers["Nats-Msg-Id"] ?? `seq:${message.seq}`),
    occurredAt: headers[LogHeaders.occurredAt] ?? appended() ?? new Date(0).toISOString(),
    receivedAt: headers[LogHeaders.receivedAt] ?? appended() ?? new Date(0).toISOString(),
    schema: headers[LogHeaders.schema] ?? "unknown",
    payload: parse(message.data),
    headers,
    data: message.data
  }
}
