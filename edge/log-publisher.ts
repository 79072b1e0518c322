import { DurableObject } from "cloudflare:workers"
import { type NatsConnection, wsconnect } from "@nats-io/nats-core"
import { EDGE_INBOX_PREFIX, type EdgeOutcome } from "../contracts/log.ts"
import { logEvent } from "../platform/logger.ts"
import { type EdgeConfig, edgeConfigOf } from "./config.ts"
import { type EncodedMessage, type EncodedMessages, encodedMessages, type LogMessage, type LogReceipt } from "./log-message.ts"
import { type AckInbox, createAckInbox } from "./pub-acks.ts"
import type { EdgeRegion } from "./regions.ts"
import { chunked, drainBackoffMs, msgIdOf, needsRearm, SPOOL_ROWS_PER_INSERT, spoolInsert, spoolRefusal, spoolRowBytes } from "./spool.ts"

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

/** Which shard a call is for: its region (whose log it publishes to) and its Durable Object name, for the drain and the logs. */
export interface ShardRef {
  readonly region: string
  readonly name: string
}

/**
 * What an append did: every message acknowledged (the stream sequence of each message and whether
 * it was a duplicate, in order), or nothing sent because message `tooLarge.position` of the batch is
 * larger than the server takes. Numbers and flags only, as the caller has the rest: copying each
 * receipt's strings back across the Durable Object hop cost as much as reading its PubAck.
 * (One object rather than a union, which the Durable Object's RPC types do not carry.)
 *
 * With the spool on: `spooled` when every message waits in the spool instead (no seqs; `duplicates`
 * says which were waiting there already), or nothing kept because the spool holds its bound
 * (`spoolFull`) or a message's row would pass the row limit (`rowTooLarge`).
 */
export interface AppendOutcome {
  readonly seqs: ReadonlyArray<number>
  readonly duplicates: ReadonlyArray<boolean>
  readonly tooLarge: { readonly position: number; readonly bytes: number; readonly limit: number } | null
  readonly spooled: boolean
  readonly spoolFull: { readonly depth: number; readonly limit: number } | null
  readonly rowTooLarge: { readonly position: number; readonly bytes: number; readonly limit: number } | null
}

const NOTHING: AppendOutcome = { seqs: [], duplicates: [], tooLarge: null, spooled: false, spoolFull: null, rowTooLarge: null }

/** The receipts of `messages` from the outcome of their append. */
export const receiptsOf = (messages: ReadonlyArray<LogMessage>, outcome: AppendOutcome): ReadonlyArray<LogReceipt> =>
  messages.map((message, i) =>
    outcome.spooled
      ? { msgId: message.msgId, subject: message.subject, spooled: true, duplicate: outcome.duplicates[i] as boolean }
      : {
          msgId: message.msgId,
          subject: message.subject,
          spooled: false,
          seq: outcome.seqs[i] as number,
          duplicate: outcome.duplicates[i] as boolean
        }
  )

/** A shard's spool, as `/healthz` and `mesh status` show it. */
export interface SpoolStatus {
  readonly depth: number
  /** Since the oldest waiting event was spooled; null when the spool is empty. */
  readonly oldest_age_ms: number | null
  /** Drains that failed in a row since the last one that emptied the spool. */
  readonly drain_failures: number
  /** When the alarm that drains it next is set for (ISO 8601); null when none is set. */
  readonly next_drain_at: string | null
  /** Why the last drain failed, while `drain_failures` > 0 (may name internals: not for unauthenticated callers). */
  readonly last_error: string | null
}

/** A shard: whether it reaches its region's log (when asked to try) and its spool. */
export interface ShardStatus {
  readonly shard: string
  readonly connected: boolean | null
  readonly rtt_ms: number | null
  readonly server_version: string | null
  /** Why it could not reach the log (may name internals). */
  readonly error: string | null
  readonly spool: SpoolStatus
}

const describe = (error: unknown): string => (error instanceof Error ? `${error.name}: ${error.message}` : String(error))

/** Spooled events the drain publishes per round: one `publishAll`, one delete after its PubAcks. */
const DRAIN_BATCH = 100

/** Longest one alarm drains before it hands over to the next (set for now), so one run never nears the platform's 15-minute bound. */
const DRAIN_BUDGET_MS = 30_000

/** The most often a shard logs that it spooled events while the log stays down. */
const SPOOL_LOG_INTERVAL_MS = 10_000

const SCHEMA = `
CREATE TABLE IF NOT EXISTS spool (
  seq INTEGER PRIMARY KEY AUTOINCREMENT,
  msg_id TEXT NOT NULL UNIQUE,
  subject TEXT NOT NULL,
  headers BLOB NOT NULL,
  data BLOB NOT NULL,
  bytes INTEGER NOT NULL,
  spooled_at INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS spool_meta (key TEXT PRIMARY KEY, value)`

/** A copy with a buffer of its own: SQLite binds an ArrayBuffer, whole, not a view into the batch's buffer. */
const ownBuffer = (bytes: Uint8Array): ArrayBuffer => bytes.slice().buffer

/**
 * Holds one NATS connection across requests (a plain Worker cannot) and appends to JetStream.
 * The connection is opened lazily and dropped on any failure, so the next call reconnects:
 * Durable Objects are evicted when idle and nats-server may restart at any time.
 *
 * It also holds the shard's spool (its SQLite storage): events of spooling sources the log did not
 * acknowledge in time, kept until `alarm()` appends them, in order, with their own `Nats-Msg-Id`.
 * The output gate holds each 202 until its rows are on disk; nothing here opts out of it.
 */
/** Where an accepted batch's outcome goes ({@link outcomeSubject}), and its source's name. */
export interface OutcomeNote {
  readonly subject: string
  readonly source: string
}

/** A core publish: buffered on the connection, flushed with the next write; nothing waits for it. */
const publishOutcome = (nc: NatsConnection, subject: string, outcome: EdgeOutcome) => nc.publish(subject, JSON.stringify(outcome))

export class LogPublisher extends DurableObject<EdgeEnv> {
  private connection: Promise<{ readonly nc: NatsConnection; readonly acks: AckInbox }> | undefined
  /** Rows in the spool, counted once per instance and kept up to date by every insert and delete. */
  private depthCache: number | undefined
  /** The server's `max_payload` last seen, kept in storage so a spool written while the log is down measures as the log would. */
  private maxPayloadCache: number | undefined
  private lastSpoolLog = 0
  private spooledSinceLog = 0

  constructor(ctx: DurableObjectState, env: EdgeEnv) {
    super(ctx, env)
    ctx.storage.sql.exec(SCHEMA)
  }

  private config(): EdgeConfig {
    const config = edgeConfigOf(this.env)
    if (config._tag === "Failure") throw new Error(config.failure.reason)
    return config.success
  }

  private region(config: EdgeConfig, name: string): EdgeRegion {
    const region = config.regions.get(name)
    if (region === undefined) throw new Error(`region ${JSON.stringify(name)} is not in REGIONS any more; its spool cannot drain`)
    return region
  }

  private openConnection(region: EdgeRegion, config: EdgeConfig): Promise<{ readonly nc: NatsConnection; readonly acks: AckInbox }> {
    if (this.connection !== undefined) return this.connection
    const pending = wsconnect({
      servers: region.url,
      user: config.natsUser,
      ...(config.natsPassword === undefined ? {} : { pass: config.natsPassword }),
      name: "ingest-edge",
      inboxPrefix: EDGE_INBOX_PREFIX,
      reconnect: false,
      timeout: config.connectTimeoutMs,
      // A stack captured for every request's error that never happens was a tenth of the Worker's CPU.
      noAsyncTraces: true
    }).then((nc) => {
      this.rememberMaxPayload(nc.info?.max_payload)
      return { nc, acks: createAckInbox(nc) }
    })
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

  private meta(key: string): string | number | null {
    const row = this.ctx.storage.sql.exec<{ value: string | number | null }>("SELECT value FROM spool_meta WHERE key = ?", key).toArray()[0]
    return row?.value ?? null
  }

  private setMeta(key: string, value: string | number): void {
    this.ctx.storage.sql.exec(
      "INSERT INTO spool_meta (key, value) VALUES (?, ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value",
      key,
      value
    )
  }

  private maxPayload(): number {
    this.maxPayloadCache ??= Number(this.meta("max_payload") ?? DEFAULT_MAX_PAYLOAD)
    return this.maxPayloadCache
  }

  /** Written only when it changes (once per server, in practice): a write holds the answer of the request that made it. */
  private rememberMaxPayload(value: number | undefined): void {
    if (value === undefined || value === this.maxPayload()) return
    this.maxPayloadCache = value
    this.setMeta("max_payload", value)
  }

  private depth(): number {
    this.depthCache ??= Number(this.ctx.storage.sql.exec<{ n: number }>("SELECT COUNT(*) AS n FROM spool").one().n)
    return this.depthCache
  }

  /** The first message of `messages` larger than the log takes, measured as the server said it measures. */
  private oversized(messages: ReadonlyArray<EncodedMessage>): AppendOutcome | undefined {
    const limit = this.maxPayload()
    const position = messages.findIndex((message) => message.headers.byteLength + message.data.byteLength > limit)
    if (position < 0) return undefined
    const message = messages[position] as EncodedMessage
    return {
      ...NOTHING,
      tooLarge: { position, bytes: message.headers.byteLength + message.data.byteLength, limit }
    }
  }

  /**
   * Appends every message and resolves once JetStream acknowledged all of them. Each message is
   * measured before anything is sent: one larger than the server's `max_payload` (data and headers)
   * is the sender's fault, answered without publishing anything and without touching the connection
   * other requests share.
   *
   * With `spool` (the source spools): when the log does not acknowledge in time, or while the spool
   * holds events (so new ones never overtake them), the messages are written to the spool instead.
   * Without it a failure rejects, as it always did, and the sender gets 503.
   */
  async append(encoded: EncodedMessages, shard: ShardRef, spool: boolean, note?: OutcomeNote): Promise<AppendOutcome> {
    const config = this.config()
    const messages = encodedMessages(encoded)
    const waiting = this.depth() > 0
    if (waiting) {
      await this.armIfIdle()
      if (spool) return this.spoolMessages(messages, shard, config)
    }
    const connection = this.openConnection(this.region(config, shard.region), config)
    try {
      await connection
      const tooLarge = this.oversized(messages)
      if (tooLarge !== undefined) return tooLarge
      const { acks } = await connection
      const stored = await acks.publishAll(messages, config.publishTimeoutMs)
      if (note !== undefined) {
        const events = messages.flatMap((message, i) => (message.subject.startsWith("ingest.quarantine.") ? [] : [stored[i]]))
        const { nc } = await connection
        publishOutcome(nc, note.subject, {
          source: note.source,
          status: 202,
          events: events.length,
          duplicates: events.filter((ack) => ack?.duplicate === true).length
        })
      }
      // The log is back while events wait: drain them now, not at the end of a backoff.
      if (waiting) await this.drainNow()
      return { ...NOTHING, seqs: stored.map((ack) => ack.seq), duplicates: stored.map((ack) => ack.duplicate) }
    } catch (error) {
      this.drop(connection)
      if (!spool) throw new Error(describe(error))
      return this.spoolMessages(messages, shard, config, describe(error))
    }
  }

  /**
   * Tells the console what a request of a known source was answered when nothing was appended (a
   * rejection): called after the answer is out. Best effort: with the log unreachable it is lost.
   */
  async noteOutcome(shard: ShardRef, subject: string, outcome: EdgeOutcome): Promise<void> {
    const config = this.config()
    const connection = this.openConnection(this.region(config, shard.region), config)
    try {
      publishOutcome((await connection).nc, subject, outcome)
    } catch {
      // The log does not answer: the connection is dropped for the next request to open again.
      this.drop(connection)
    }
  }

  /**
   * Writes the messages to the spool in one transaction, all or none: refused whole when one is
   * larger than the log takes (413, as it would be online), larger than a row holds, or when the
   * spool would pass `SPOOL_MAX_EVENTS` (both 503). A message whose id waits already keeps its row.
   */
  private async spoolMessages(
    messages: ReadonlyArray<EncodedMessage>,
    shard: ShardRef,
    config: EdgeConfig,
    why?: string
  ): Promise<AppendOutcome> {
    const tooLarge = this.oversized(messages)
    if (tooLarge !== undefined) return tooLarge
    const rows = messages.map((message) => {
      const msgId = msgIdOf(message.headers) ?? crypto.randomUUID()
      return { ...message, msgId, bytes: spoolRowBytes({ ...message, msgId }) }
    })
    const depthBefore = this.depth()
    const refusal = spoolRefusal(
      depthBefore,
      rows.map((row) => row.bytes),
      config.spool.maxEvents
    )
    if (refusal?._tag === "Full") {
      logEvent("error", "spool full", { region: shard.region, shard: shard.name, depth: refusal.depth, limit: refusal.limit })
      // The log may be back while the drain waits out its backoff: try it now, so the sender's retry finds room.
      await this.drainNow()
      return { ...NOTHING, spoolFull: { depth: refusal.depth, limit: refusal.limit } }
    }
    if (refusal?._tag === "RowTooLarge")
      return { ...NOTHING, rowTooLarge: { position: refusal.position, bytes: refusal.bytes, limit: refusal.limit } }
    const now = Date.now()
    const sql = this.ctx.storage.sql
    const fresh = this.ctx.storage.transactionSync(() => {
      const inserted = new Set<string>()
      for (const chunk of chunked(rows, SPOOL_ROWS_PER_INSERT)) {
        const cursor = sql.exec<{ msg_id: string }>(
          spoolInsert(chunk.length),
          ...chunk.flatMap((row) => [row.msgId, row.subject, ownBuffer(row.headers), ownBuffer(row.data), row.bytes, now])
        )
        for (const row of cursor) inserted.add(row.msg_id)
      }
      this.setMeta("region", shard.region)
      this.setMeta("shard", shard.name)
      return inserted
    })
    this.depthCache = depthBefore + fresh.size
    await this.armIfIdle(now + config.spool.drainBackoffMs)
    this.spooledSinceLog = depthBefore === 0 ? fresh.size : this.spooledSinceLog + fresh.size
    if (depthBefore === 0 || now - this.lastSpoolLog >= SPOOL_LOG_INTERVAL_MS) {
      logEvent("warn", "events spooled", {
        region: shard.region,
        shard: shard.name,
        events: this.spooledSinceLog,
        depth: this.depthCache,
        reason: why ?? "the spool is not empty: new events wait behind it"
      })
      this.lastSpoolLog = now
      this.spooledSinceLog = 0
    }
    return { ...NOTHING, spooled: true, duplicates: rows.map((row) => !fresh.has(row.msgId)) }
  }

  /** Sets the drain's alarm (for `at`, by default now) when the spool holds events and none is set. */
  private async armIfIdle(at = Date.now()): Promise<void> {
    if (this.depth() === 0) return
    if ((await this.ctx.storage.getAlarm()) === null) await this.ctx.storage.setAlarm(at)
  }

  /** Brings the drain forward to now, unless it is due within a second anyway. */
  private async drainNow(): Promise<void> {
    const at = await this.ctx.storage.getAlarm()
    const now = Date.now()
    if (at === null || at > now + 1000) await this.ctx.storage.setAlarm(now)
  }

  /**
   * Drains the spool. Never throws: the platform would retry a thrown alarm six times and then drop
   * it, leaving the spool with nothing to drain it. It keeps its own capped backoff instead, and
   * re-arms itself as its last statement (an alarm set earlier in a handler that then failed would
   * suppress the platform's own retries).
   */
  override async alarm(): Promise<void> {
    let next: number | null
    try {
      next = await this.drain()
    } catch (error) {
      next = this.drainFailed(error)
    }
    if (next !== null) await this.ctx.storage.setAlarm(next)
  }

  /**
   * Publishes the spool in seq order, `DRAIN_BATCH` at a time through the same PubAck inbox as
   * requests, deleting each batch only once every one of its PubAcks is in (a batch cut short is
   * published again; JetStream's dedupe and the consumers' ledger count it once). Resolves with when
   * to run again: null once the spool is empty, now when the budget of one run is spent.
   */
  private async drain(): Promise<number | null> {
    if (this.depth() === 0) {
      if (Number(this.meta("drain_failures") ?? 0) > 0) this.setMeta("drain_failures", 0)
      return null
    }
    const config = this.config()
    const regionName = String(this.meta("region") ?? "")
    const shard = String(this.meta("shard") ?? "")
    const connection = this.openConnection(this.region(config, regionName), config)
    const started = Date.now()
    let drained = 0
    try {
      const { acks } = await connection
      const sql = this.ctx.storage.sql
      for (;;) {
        const rows = sql
          .exec<{ seq: number; subject: string; headers: ArrayBuffer; data: ArrayBuffer }>(
            "SELECT seq, subject, headers, data FROM spool ORDER BY seq LIMIT ?",
            DRAIN_BATCH
          )
          .toArray()
        const last = rows.at(-1)
        if (last === undefined) break
        const batch = rows.map((row) => ({ subject: row.subject, headers: new Uint8Array(row.headers), data: new Uint8Array(row.data) }))
        // The server's limit may have shrunk since the event was spooled: say which event blocks the spool, and why.
        const tooLarge = this.oversized(batch)?.tooLarge
        if (tooLarge != null)
          throw new Error(
            `spooled event seq ${rows[tooLarge.position]?.seq} is ${tooLarge.bytes} bytes, more than the log's max_payload of ${tooLarge.limit}`
          )
        await acks.publishAll(batch, config.publishTimeoutMs)
        sql.exec("DELETE FROM spool WHERE seq <= ?", last.seq)
        this.depthCache = Math.max(0, this.depth() - rows.length)
        drained += rows.length
        if (Date.now() - started > DRAIN_BUDGET_MS) {
          this.setMeta("drain_failures", 0)
          logEvent("info", "spool draining", { region: regionName, shard, events: drained, depth: this.depth() })
          return Date.now()
        }
      }
    } catch (error) {
      this.drop(connection)
      if (drained > 0) logEvent("info", "spool partly drained", { region: regionName, shard, events: drained, depth: this.depth() })
      throw error
    }
    this.depthCache = 0
    this.setMeta("drain_failures", 0)
    logEvent("info", "spool drained", { region: regionName, shard, events: drained, took_ms: Date.now() - started })
    return null
  }

  /** Counts a failed drain and says when to try again. */
  private drainFailed(error: unknown): number {
    const config = edgeConfigOf(this.env)
    const spool = config._tag === "Success" ? config.success.spool : { drainBackoffMs: 1000, drainBackoffMaxMs: 60_000 }
    const failures = Number(this.meta("drain_failures") ?? 0) + 1
    const waitMs = drainBackoffMs(failures, spool.drainBackoffMs, spool.drainBackoffMaxMs)
    this.setMeta("drain_failures", failures)
    this.setMeta("last_error", describe(error))
    logEvent("warn", "spool drain failed", {
      region: this.meta("region"),
      shard: this.meta("shard"),
      depth: this.depth(),
      failures,
      retry_in_ms: waitMs,
      reason: describe(error)
    })
    return Date.now() + waitMs
  }

  /** The spool's depth, age and drain schedule. Reads only: asking never re-arms anything. */
  async spoolStatus(): Promise<SpoolStatus> {
    const depth = this.depth()
    const oldest = this.ctx.storage.sql
      .exec<{ spooled_at: number }>("SELECT spooled_at FROM spool ORDER BY seq LIMIT 1")
      .toArray()[0]?.spooled_at
    const failures = Number(this.meta("drain_failures") ?? 0)
    const alarm = await this.ctx.storage.getAlarm()
    return {
      depth,
      oldest_age_ms: oldest === undefined ? null : Math.max(0, Date.now() - oldest),
      drain_failures: failures,
      next_drain_at: alarm === null ? null : new Date(alarm).toISOString(),
      last_error: failures > 0 ? String(this.meta("last_error") ?? "") : null
    }
  }

  /**
   * The shard's state for `/healthz` and `mesh status`: its spool, and with `ping` whether it reaches
   * its region's log and the round trip. The ping is bounded by `CONNECT_TIMEOUT_MS`, so the spool's
   * state is reported even when the log is unreachable.
   */
  async status(shard: ShardRef, ping: boolean): Promise<ShardStatus> {
    const spool = await this.spoolStatus()
    const base = { shard: shard.name, spool }
    if (!ping) return { ...base, connected: null, rtt_ms: null, server_version: null, error: null }
    const config = this.config()
    const connection = this.openConnection(this.region(config, shard.region), config)
    let timer: ReturnType<typeof setTimeout> | undefined
    try {
      const { nc, rttMs } = await Promise.race([
        connection.then(async ({ nc }) => ({ nc, rttMs: await nc.rtt() })),
        new Promise<never>((_, reject) => {
          timer = setTimeout(() => reject(new Error(`no answer within ${config.connectTimeoutMs} ms`)), config.connectTimeoutMs)
        })
      ])
      return { ...base, connected: true, rtt_ms: rttMs, server_version: nc.info?.version ?? "unknown", error: null }
    } catch (error) {
      // Not dropped here: a connection that fails or closes drops itself (openConnection), and a slow
      // round trip must not cut off the appends and the drain that share it (they have their own timeouts).
      return { ...base, connected: false, rtt_ms: null, server_version: null, error: describe(error) }
    } finally {
      clearTimeout(timer)
    }
  }

  /**
   * The cron watchdog's call: re-arms the drain of a spool that holds events but has no alarm, or
   * one more than a minute overdue (alarms are at-least-once, yet one has been seen never to fire).
   */
  async watchdog(shard: ShardRef): Promise<{ readonly depth: number; readonly rearmed: boolean }> {
    const depth = this.depth()
    const alarm = await this.ctx.storage.getAlarm()
    if (!needsRearm(depth, alarm, Date.now())) return { depth, rearmed: false }
    await this.ctx.storage.setAlarm(Date.now())
    logEvent("warn", "spool drain re-armed by the watchdog", {
      region: shard.region,
      shard: shard.name,
      depth,
      alarm_was: alarm === null ? null : new Date(alarm).toISOString()
    })
    return { depth, rearmed: true }
  }
}
