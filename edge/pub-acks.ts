import { createInbox, MsgHdrsImpl, type NatsConnection } from "@nats-io/nats-core"
import { EDGE_INBOX_PREFIX } from "../contracts/log.ts"
import type { EncodedMessage } from "./log-message.ts"

/** What JetStream answered to one publish: the message is stored (or was already), or it was refused and why. */
export type PubAckReply =
  | { readonly _tag: "Stored"; readonly stream: string; readonly seq: number; readonly duplicate: boolean }
  | { readonly _tag: "Refused"; readonly reason: string }

const decoder = new TextDecoder()

/**
 * Reads JetStream's reply to a publish to `subject`: `{stream, seq, duplicate?}`, `{error: {code,
 * description}}`, or an empty message with a status when no stream takes the subject (no responders).
 */
export const readPubAck = (subject: string, data: Uint8Array, status: number | undefined): PubAckReply => {
  if (data.length === 0)
    return { _tag: "Refused", reason: `no stream answered the publish to ${subject} (status ${status ?? "none"}): is its stream declared?` }
  let reply: { stream?: unknown; seq?: unknown; duplicate?: unknown; error?: { code?: unknown; description?: unknown } }
  try {
    reply = JSON.parse(decoder.decode(data)) as typeof reply
  } catch {
    return { _tag: "Refused", reason: `JetStream answered the publish to ${subject} with something that is not JSON` }
  }
  if (reply.error !== undefined)
    return {
      _tag: "Refused",
      reason: `JetStream refused the publish to ${subject}: ${String(reply.error.description)} (${String(reply.error.code)})`
    }
  if (typeof reply.stream !== "string" || reply.stream === "" || typeof reply.seq !== "number")
    return { _tag: "Refused", reason: `JetStream answered the publish to ${subject} with an invalid PubAck` }
  return { _tag: "Stored", stream: reply.stream, seq: reply.seq, duplicate: reply.duplicate === true }
}

/**
 * A header block encoded already (by {@link encodeLogMessages} in the Worker): nats-core takes a
 * message's headers as an object and reads them only through `encode()`, which here returns the
 * bytes as they are rather than building them again. Handed to `publish` and nothing else.
 */
class EncodedHeaders extends MsgHdrsImpl {
  constructor(private readonly bytes: Uint8Array) {
    super()
  }

  override encode(): Uint8Array {
    return this.bytes
  }
}

/** Publishes to JetStream on one connection, reading every PubAck from one subscription. */
export interface AckInbox {
  /** Publishes every message at once; resolves with their PubAcks in order, or rejects on the first refusal or after `timeoutMs`. */
  readonly publishAll: (
    messages: ReadonlyArray<EncodedMessage>,
    timeoutMs: number
  ) => Promise<ReadonlyArray<{ seq: number; duplicate: boolean }>>
}

/**
 * One subscription on the connection's own inbox receives the PubAck of every publish, each told
 * apart by its reply subject, and one timer bounds each batch: the same JetStream publishes as
 * `jetstream(nc).publish`, without a request object, a timer and a captured stack per message
 * (the per-message cost that dominated the Durable Object's profile).
 */
export const createAckInbox = (nc: NatsConnection): AckInbox => {
  const prefix = `${createInbox(EDGE_INBOX_PREFIX)}.`
  const waiting = new Map<string, (reply: PubAckReply) => void>()
  let next = 0
  nc.subscribe(`${prefix}*`, {
    callback: (error, msg) => {
      if (error !== null) {
        for (const settle of [...waiting.values()]) settle({ _tag: "Refused", reason: `the PubAck subscription failed: ${error.message}` })
        return
      }
      const settle = waiting.get(msg.subject.slice(prefix.length))
      settle?.(readPubAck(msg.subject, msg.data, msg.headers?.code))
    }
  })
  nc.closed().then(
    () => {
      for (const settle of [...waiting.values()])
        settle({ _tag: "Refused", reason: "the NATS connection closed before every PubAck arrived" })
    },
    () => undefined
  )
  return {
    publishAll: (messages, timeoutMs) =>
      new Promise((resolve, reject) => {
        const acks = new Array<{ seq: number; duplicate: boolean }>(messages.length)
        const tokens: Array<string> = []
        let left = messages.length
        let done = false
        const finish = (error: Error | undefined) => {
          if (done) return
          done = true
          clearTimeout(timer)
          for (const token of tokens) waiting.delete(token)
          if (error === undefined) resolve(acks)
          else reject(error)
        }
        const timer = setTimeout(() => finish(new Error(`no PubAck within ${timeoutMs} ms`)), timeoutMs)
        try {
          for (const [i, message] of messages.entries()) {
            const token = String(next++)
            tokens.push(token)
            waiting.set(token, (reply) => {
              if (reply._tag === "Refused") return finish(new Error(reply.reason))
              acks[i] = { seq: reply.seq, duplicate: reply.duplicate }
              if (--left === 0) finish(undefined)
            })
            nc.publish(message.subject, message.data, { reply: `${prefix}${token}`, headers: new EncodedHeaders(message.headers) })
          }
          if (left === 0) finish(undefined)
        } catch (error) {
          finish(error instanceof Error ? error : new Error(String(error)))
        }
      })
  }
}
