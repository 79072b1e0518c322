import { DurableObject } from "cloudflare:workers"
import { type NatsConnection, wsconnect } from "@nats-io/nats-core"
import { EDGE_INBOX_PREFIX } from "../contracts/log.ts"
import { type EncodedMessage, type EncodedMessages, encodedMessages, type LogMessage, type LogReceipt } from "./log-message.ts"
import { type AckInbox, createAckInbox } from "./pub-acks.ts"

/** The Worker's bindings and settings. */
export interface EdgeEnv {
  readonly LOG_PUBLISHER: DurableObjectNamespace<LogPublisher>
  readonly [setting: string]: unknown
}

export interface ConnectOptions {
  readonly url: string
  readonly user: string
  readonly password: string | undefined
  readonly connectTimeoutMs: number
}

/** nats-server's default `max_payload`, for a server whose INFO does not say. */
const DEFAULT_MAX_PAYLOAD = 1024 * 1024

/**
 * What an append did: every message acknowledged (the stream sequence of each message and whether
 * it was a duplicate, in order), or nothing sent because message `tooLarge.position` of the batch is
 * larger than the server takes. Numbers and flags only, as the caller has the rest: copying each
 * receipt's strings back across the Durable Object hop cost as much as reading its PubAck.
 * (One object rather than a union, which the Durable Object's RPC types do not carry.)
 */
export interface AppendOutcome {
  readonly seqs: ReadonlyArray<number>
  readonly duplicates: ReadonlyArray<boolean>
  readonly tooLarge: { readonly position: number; readonly bytes: number; readonly limit: number } | null
}

/** The receipts of `messages` from the outcome of their append. */
export const receiptsOf = (messages: ReadonlyArray<LogMessage>, outcome: AppendOutcome): ReadonlyArray<LogReceipt> =>
  messages.map((message, i) => ({
    msgId: message.msgId,
    subject: message.subject,
    seq: outcome.seqs[i] as number,
    duplicate: outcome.duplicates[i] as boolean
  }))

const describe = (error: unknown): string => (error instanceof Error ? `${error.name}: ${error.message}` : String(error))

/**
 * Holds one NATS connection across requests (a plain Worker cannot) and appends to JetStream.
 * The connection is opened lazily and dropped on any failure, so the next call reconnects:
 * Durable Objects are evicted when idle and nats-server may restart at any time.
 */
export class LogPublisher extends DurableObject<EdgeEnv> {
  private connection: Promise<{ readonly nc: NatsConnection; readonly acks: AckInbox }> | undefined

  private openConnection(options: ConnectOptions): Promise<{ readonly nc: NatsConnection; readonly acks: AckInbox }> {
    if (this.connection !== undefined) return this.connection
    const pending = wsconnect({
      servers: options.url,
      user: options.user,
      ...(options.password === undefined ? {} : { pass: options.password }),
      name: "ingest-edge",
      inboxPrefix: EDGE_INBOX_PREFIX,
      reconnect: false,
      timeout: options.connectTimeoutMs,
      // A stack captured for every request's error that never happens was a tenth of the Worker's CPU.
      noAsyncTraces: true
    }).then((nc) => ({ nc, acks: createAckInbox(nc) }))
    this.connection = pending
    pending.then(
      ({ nc }) => nc.closed().then(() => this.drop(pending)),
      () => this.drop(pending)
    )
    return pending
  }

  private drop(connection: Promise<{ readonly nc: NatsConnection }>): void {
    if (this.connection !== connection) return
    this.connection = undefined
    connection.then(({ nc }) => nc.close()).catch(() => undefined)
  }

  /**
   * Appends every message and resolves once JetStream acknowledged all of them. Each message is
   * measured before anything is sent: one larger than the server's `max_payload` (data and headers)
   * is the sender's fault, answered without publishing anything and without touching the connection
   * other requests share.
   */
  async append(encoded: EncodedMessages, options: ConnectOptions & { readonly publishTimeoutMs: number }): Promise<AppendOutcome> {
    const connection = this.openConnection(options)
    try {
      const { nc, acks } = await connection
      const limit = nc.info?.max_payload ?? DEFAULT_MAX_PAYLOAD
      const messages = encodedMessages(encoded)
      const oversized = messages.findIndex((message) => message.headers.byteLength + message.data.byteLength > limit)
      if (oversized >= 0) {
        const message = messages[oversized] as EncodedMessage
        return {
          seqs: [],
          duplicates: [],
          tooLarge: { position: oversized, bytes: message.headers.byteLength + message.data.byteLength, limit }
        }
      }
      const stored = await acks.publishAll(messages, options.publishTimeoutMs)
      return { seqs: stored.map((ack) => ack.seq), duplicates: stored.map((ack) => ack.duplicate), tooLarge: null }
    } catch (error) {
      this.drop(connection)
      throw new Error(describe(error))
    }
  }

  /** Round trip to nats-server, for health checks. */
  async ping(options: ConnectOptions): Promise<{ readonly rttMs: number; readonly server: string }> {
    const connection = this.openConnection(options)
    try {
      const { nc } = await connection
      const rttMs = await nc.rtt()
      return { rttMs, server: nc.info?.version ?? "unknown" }
    } catch (error) {
      this.drop(connection)
      throw new Error(describe(error))
    }
  }
}
