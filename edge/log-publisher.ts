import { DurableObject } from "cloudflare:workers"
import { jetstream } from "@nats-io/jetstream"
import { type NatsConnection, wsconnect } from "@nats-io/nats-core"
import { EDGE_INBOX_PREFIX } from "../contracts/log.ts"
import { type LogMessage, type LogReceipt, natsHeadersFor } from "./log-message.ts"
import { utf8 } from "../platform/text.ts"

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
 * What an append did: every message acknowledged (`receipts` in order), or nothing sent because the
 * message of the request's event `tooLarge.index` is larger than the server takes. (One object
 * rather than a union, which the Durable Object's RPC types do not carry.)
 */
export interface AppendOutcome {
  readonly receipts: ReadonlyArray<LogReceipt>
  readonly tooLarge: { readonly index: number; readonly bytes: number; readonly limit: number } | null
}

const describe = (error: unknown): string => (error instanceof Error ? `${error.name}: ${error.message}` : String(error))

/**
 * Holds one NATS connection across requests (a plain Worker cannot) and appends to JetStream.
 * The connection is opened lazily and dropped on any failure, so the next call reconnects:
 * Durable Objects are evicted when idle and nats-server may restart at any time.
 */
export class LogPublisher extends DurableObject<EdgeEnv> {
  private connection: Promise<NatsConnection> | undefined

  private openConnection(options: ConnectOptions): Promise<NatsConnection> {
    if (this.connection !== undefined) return this.connection
    const pending = wsconnect({
      servers: options.url,
      user: options.user,
      ...(options.password === undefined ? {} : { pass: options.password }),
      name: "ingest-edge",
      inboxPrefix: EDGE_INBOX_PREFIX,
      reconnect: false,
      timeout: options.connectTimeoutMs
    })
    this.connection = pending
    pending.then(
      (nc) => nc.closed().then(() => this.drop(pending)),
      () => this.drop(pending)
    )
    return pending
  }

  private drop(connection: Promise<NatsConnection>): void {
    if (this.connection !== connection) return
    this.connection = undefined
    connection.then((nc) => nc.close()).catch(() => undefined)
  }

  /**
   * Appends every message and resolves once JetStream acknowledged all of them. Each message is
   * built and measured before anything is sent: one larger than the server's `max_payload` (data
   * and headers) is the sender's fault, answered without publishing anything and without touching
   * the connection other requests share.
   */
  async append(
    messages: ReadonlyArray<LogMessage>,
    options: ConnectOptions & { readonly publishTimeoutMs: number }
  ): Promise<AppendOutcome> {
    const connection = this.openConnection(options)
    try {
      const nc = await connection
      const limit = nc.info?.max_payload ?? DEFAULT_MAX_PAYLOAD
      const prepared = messages.map((message) => {
        const headers = natsHeadersFor(message)
        return { message, headers, bytes: utf8(String(headers)).byteLength + utf8(message.data).byteLength }
      })
      const oversized = prepared.find((item) => item.bytes > limit)
      if (oversized !== undefined) return { receipts: [], tooLarge: { index: oversized.message.index, bytes: oversized.bytes, limit } }
      const js = jetstream(nc, { timeout: options.publishTimeoutMs })
      const receipts = await Promise.all(
        prepared.map(async ({ message, headers }) => {
          const ack = await js.publish(message.subject, message.data, { headers, timeout: options.publishTimeoutMs })
          return { msgId: message.msgId, subject: message.subject, seq: ack.seq, duplicate: ack.duplicate }
        })
      )
      return { receipts, tooLarge: null }
    } catch (error) {
      this.drop(connection)
      throw new Error(describe(error))
    }
  }

  /** Round trip to nats-server, for health checks. */
  async ping(options: ConnectOptions): Promise<{ readonly rttMs: number; readonly server: string }> {
    const connection = this.openConnection(options)
    try {
      const nc = await connection
      const rttMs = await nc.rtt()
      return { rttMs, server: nc.info?.version ?? "unknown" }
    } catch (error) {
      this.drop(connection)
      throw new Error(describe(error))
    }
  }
}
