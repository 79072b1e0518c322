import { execFileSync } from "node:child_process"
import { mkdtempSync, readdirSync, rmSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { jetstream, jetstreamManager } from "@nats-io/jetstream"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { QUARANTINE_STREAM } from "../contracts/log.ts"
import { readStream } from "../infra/streams.ts"
import { alowareCall, hubspotBatch, postSigned } from "../infra/local/samples.ts"
import { connectAdmin, type EdgeStack, startEdgeStack } from "../infra/local/stack.ts"

/**
 * The edge spool against a real nats-server and workerd: events of a sender that never retries
 * (Aloware) are kept while the log is down, survive a restart of workerd, and are appended each once
 * and in order when it is back, whatever happened to the drain's alarm meanwhile.
 */

/** HubSpot and Shopify give up on a delivery after about 5 s; a spooled answer must come well within it. */
const SENDER_TIMEOUT_MS = 5000

/** One shard, so the whole spool is one order; a tiny drain backoff, so a drain fails many times in a second. */
const SPOOL_MAX_EVENTS = 1000
const SETTINGS = {
  PUBLISHER_SHARDS: "1",
  SPOOL_DRAIN_BACKOFF_MS: "20",
  SPOOL_DRAIN_BACKOFF_MAX_MS: "100",
  SPOOL_MAX_EVENTS: String(SPOOL_MAX_EVENTS)
}

const SHARD = "publisher-0"

/** The watchdog's test edits workerd's stored alarms with the sqlite3 shell, which infra/scripts/install-deps.sh installs. */
const requireSqlite3 = () => {
  try {
    execFileSync("sqlite3", ["-version"])
  } catch {
    throw new Error("the sqlite3 shell is missing: run `bash infra/scripts/install-deps.sh` (Debian: apt-get install sqlite3)")
  }
}

let stack: EdgeStack
let persistDir: string

beforeAll(async () => {
  persistDir = mkdtempSync(join(tmpdir(), "ingest-edge-do-"))
  stack = await startEdgeStack({ settings: SETTINGS, edgePersistDir: persistDir })
  // The tests stop and start nats-server; each connects an admin of its own while the server is up.
  await stack.admin.close()
})

afterAll(async () => {
  await stack?.dispose()
  rmSync(persistDir, { recursive: true, force: true })
})

interface Health {
  readonly status: string
  readonly regions: Record<
    string,
    {
      readonly connected: boolean
      readonly shards: Record<
        string,
        {
          readonly spool: {
            readonly depth: number
            readonly oldest_age_ms: number | null
            readonly drain_failures: number
            readonly next_drain_at: string | null
          }
        }
      >
    }
  >
}

const health = async (): Promise<{ readonly status: number; readonly body: Health }> => {
  const response = await fetch(`${stack.edge.url}/healthz`)
  return { status: response.status, body: (await response.json()) as Health }
}

const spoolOf = async () => (await health()).body.regions.default?.shards[SHARD]?.spool

/** Asks `probe` until it returns something `accept` takes, or fails naming `what` after `deadlineMs`; each ask is a real request. */
const until = async <T>(what: string, probe: () => Promise<T>, accept: (value: T) => boolean, deadlineMs = 30_000): Promise<T> => {
  const deadline = Date.now() + deadlineMs
  let last: T | undefined
  while (Date.now() < deadline) {
    last = await probe()
    if (accept(last)) return last
    await new Promise((resolve) => setTimeout(resolve, 25))
  }
  throw new Error(`${what}: not within ${deadlineMs} ms; last seen ${JSON.stringify(last)}`)
}

interface Sent {
  readonly id: number
  readonly msgId: string
  readonly sentAt: number
  readonly answeredAt: number
  readonly status: number
  readonly body: { spooled?: number; events?: ReadonlyArray<{ id: string; spooled?: boolean; seq?: number }> }
}

/** Posts Aloware calls `ids`, at most `concurrency` in flight, recording when each was sent and answered. */
const sendCalls = async (ids: ReadonlyArray<number>, concurrency = 8): Promise<ReadonlyArray<Sent>> => {
  const results: Array<Sent> = []
  let next = 0
  const worker = async () => {
    while (next < ids.length) {
      const id = ids[next++] as number
      const sentAt = performance.now()
      const response = await postSigned(stack.edge.url, "aloware", alowareCall(id), stack.secrets.aloware as string)
      const body = (await response.json()) as Sent["body"]
      results.push({ id, msgId: body.events?.[0]?.id ?? "", sentAt, answeredAt: performance.now(), status: response.status, body })
    }
  }
  await Promise.all(Array.from({ length: concurrency }, worker))
  return results
}

const range = (first: number, count: number) => Array.from({ length: count }, (_, i) => first + i)

/** Every message of `stream` whose `Nats-Msg-Id` is one of `ids`, in stream order. */
const storedIds = async (stream: string, ids: ReadonlySet<string>): Promise<ReadonlyArray<string>> => {
  const admin = await connectAdmin(stack.nats)
  try {
    const messages = await readStream(jetstream(admin), await jetstreamManager(admin), stream)
    return messages.map((message) => message.headers["Nats-Msg-Id"] ?? "").filter((id) => ids.has(id))
  } finally {
    await admin.close()
  }
}

/**
 * The order the spool promises: an event answered before another was sent stands before it in the
 * stream. (Requests in flight together have no order between them; the spool keeps the one the
 * shard took them in.)
 */
const outOfOrder = (sent: ReadonlyArray<Sent>, positions: ReadonlyMap<string, number>): ReadonlyArray<string> => {
  const byAnswer = [...sent].sort((a, b) => a.answeredAt - b.answeredAt)
  const bySending = [...sent].sort((a, b) => a.sentAt - b.sentAt)
  const problems: Array<string> = []
  let answered = 0
  let latest = -1
  let latestId = ""
  for (const later of bySending) {
    while (answered < byAnswer.length && (byAnswer[answered] as Sent).answeredAt < later.sentAt) {
      const position = positions.get((byAnswer[answered] as Sent).msgId) ?? -1
      if (position > latest) {
        latest = position
        latestId = (byAnswer[answered] as Sent).msgId
      }
      answered++
    }
    const position = positions.get(later.msgId) ?? -1
    if (position < latest) problems.push(`${later.msgId} (sent after ${latestId} was answered) stands before it`)
  }
  return problems
}

describe("the edge spool", () => {
  it("keeps 1,000 events of a sender that never retries through an outage and a restart, and appends each once, in order", async () => {
    await stack.nats.stop()

    const started = performance.now()
    const sent = [...(await sendCalls(range(100_000, SPOOL_MAX_EVENTS - 1)))]
    const seconds = (performance.now() - started) / 1000

    // The edge still takes events, so /healthz keeps it in service, and shows the spool.
    const down = await health()
    expect(down.status).toBe(200)
    expect(down.body).toMatchObject({ status: "degraded", regions: { default: { connected: false } } })
    expect(down.body.regions.default?.shards[SHARD]?.spool).toMatchObject({ depth: SPOOL_MAX_EVENTS - 1 })
    expect(down.body.regions.default?.shards[SHARD]?.spool.oldest_age_ms).toBeGreaterThanOrEqual(0)
    sent.push(...(await sendCalls([100_000 + SPOOL_MAX_EVENTS - 1], 1)))

    expect(sent.filter((result) => result.status !== 202)).toEqual([])
    for (const result of sent) {
      expect(result.body.spooled).toBe(1)
      expect(result.body.events?.[0]).toMatchObject({ spooled: true })
      expect(result.body.events?.[0]).not.toHaveProperty("seq")
    }
    const latencies = sent.map((result) => result.answeredAt - result.sentAt).sort((a, b) => a - b)
    const p99 = latencies[Math.floor(latencies.length * 0.99)] as number
    console.log(`spooled path: ${Math.round(sent.length / seconds)} requests/s, p99 ${p99.toFixed(1)} ms (8 in flight)`)
    expect(p99).toBeLessThan(SENDER_TIMEOUT_MS)

    // The spool holds its bound: one more is refused whole, retryably, naming the bound, and /healthz says the edge takes nothing.
    const refused = await postSigned(stack.edge.url, "aloware", alowareCall(99_999), stack.secrets.aloware as string)
    expect(refused.status).toBe(503)
    expect(Number(refused.headers.get("retry-after"))).toBeGreaterThan(0)
    expect(await refused.json()).toMatchObject({ error: "spool_full", message: expect.stringContaining(`${SPOOL_MAX_EVENTS} events`) })
    const full = await health()
    expect(full.status).toBe(503)
    expect(full.body).toMatchObject({ status: "unavailable", regions: { default: { connected: false } } })

    await stack.edge.restart()
    expect(await spoolOf()).toMatchObject({ depth: SPOOL_MAX_EVENTS })

    await stack.nats.start()
    await until("the spool drains", spoolOf, (spool) => spool?.depth === 0)
    expect(await spoolOf()).toMatchObject({ depth: 0, oldest_age_ms: null, drain_failures: 0, next_drain_at: null })
    expect((await health()).body.status).toBe("ok")

    const ids = new Set(sent.map((result) => result.msgId))
    expect(ids.size).toBe(SPOOL_MAX_EVENTS)
    const stored = await storedIds("INGEST_CRM", ids)
    expect(stored).toHaveLength(SPOOL_MAX_EVENTS)
    expect(new Set(stored).size).toBe(SPOOL_MAX_EVENTS)
    expect(outOfOrder(sent, new Map(stored.map((id, position) => [id, position])))).toEqual([])
  }, 120_000)

  it("spools within the sender's timeout when the log hangs without an error, and an event that reached the log anyway is kept once", async () => {
    // The connection is up first: then the hang is a publish with no PubAck, as for an R3 stream that lost its quorum.
    const warm = await sendCalls([250_000], 1)
    expect(warm[0]).toMatchObject({ status: 202, body: { events: [{ seq: expect.any(Number) }] } })
    stack.nats.freeze(true)
    let sent: ReadonlyArray<Sent>
    try {
      sent = await sendCalls(range(250_001, 20), 4)
    } finally {
      stack.nats.freeze(false)
    }
    expect(sent.map((result) => result.status)).toEqual(sent.map(() => 202))
    expect(sent.every((result) => result.body.spooled === 1)).toBe(true)
    for (const result of sent) expect(result.answeredAt - result.sentAt).toBeLessThan(SENDER_TIMEOUT_MS)
    await until("the spool drains", spoolOf, (spool) => spool?.depth === 0)
    // The first publishes reached the frozen server's socket and were stored once it went on: the
    // drain's resend carries the same Nats-Msg-Id, and the stream keeps one copy.
    const ids = new Set(sent.map((result) => result.msgId))
    const stored = await storedIds("INGEST_CRM", ids)
    expect([...stored].sort()).toEqual([...ids].sort())
  }, 60_000)

  it("drains after more than six failed drains in a row, each event once, quarantined ones too; a sender that retries gets 503", async () => {
    await stack.nats.stop()
    const calls = range(200_000, 10)
    const sent = await sendCalls(calls, 2)
    expect(sent.map((result) => result.status)).toEqual(calls.map(() => 202))
    const invalid = { ...alowareCall(200_100), data: { ...alowareCall(200_100).data, id: undefined } }
    const quarantined = await postSigned(stack.edge.url, "aloware", invalid, stack.secrets.aloware as string)
    expect(quarantined.status).toBe(202)
    const quarantinedAnswer = (await quarantined.json()) as { spooled: number; quarantined: Array<Record<string, unknown>> }
    expect(quarantinedAnswer).toMatchObject({ accepted: 0, spooled: 1, quarantined: [{ index: 0, spooled: true, duplicate: false }] })
    expect(quarantinedAnswer.quarantined[0]).not.toHaveProperty("id")

    // HubSpot retries for a day: its events are not spooled, it gets today's 503 and resends.
    const started = Date.now()
    const hubspot = await postSigned(stack.edge.url, "hubspot", hubspotBatch(2, { firstEventId: 77_000 }), stack.secrets.hubspot as string)
    expect(Date.now() - started).toBeLessThan(SENDER_TIMEOUT_MS)
    expect(hubspot.status).toBe(503)
    expect(Number(hubspot.headers.get("retry-after"))).toBeGreaterThan(0)
    expect(await hubspot.json()).toMatchObject({ error: "log_unavailable" })

    // The platform drops an alarm that threw six times; this drain never throws and keeps its own schedule.
    const failing = await until("seven drains fail", spoolOf, (spool) => (spool?.drain_failures ?? 0) >= 7)
    expect(failing).toMatchObject({ depth: 11 })
    expect(failing?.next_drain_at).not.toBeNull()

    await stack.nats.start()
    await until("the spool drains", spoolOf, (spool) => spool?.depth === 0)
    expect(await spoolOf()).toMatchObject({ drain_failures: 0, next_drain_at: null })
    const ids = new Set(sent.map((result) => result.msgId))
    const stored = await storedIds("INGEST_CRM", ids)
    expect([...stored].sort()).toEqual([...ids].sort())
    const admin = await connectAdmin(stack.nats)
    try {
      const inQuarantine = (await readStream(jetstream(admin), await jetstreamManager(admin), QUARANTINE_STREAM)).filter(
        (message) => message.subject === "ingest.quarantine.aloware"
      )
      expect(inQuarantine).toHaveLength(1)
    } finally {
      await admin.close()
    }
  }, 60_000)

  /**
   * A lost alarm, made honestly: with workerd stopped, its record is deleted from the two places
   * workerd 2026-04-26 keeps it (the namespace's `metadata.sqlite`, table `_cf_ALARM`, and the
   * object's own file, `_cf_METADATA` key 1), and nothing else is touched: the spool's rows stay, as
   * when the platform lost an alarm in the field (one that never fired). No production code knows
   * of it. No request arrives afterwards (any would re-arm the drain): only the cron trigger can.
   */
  it("re-arms a spool whose alarm was lost from the cron trigger, which then drains", async () => {
    requireSqlite3()
    await stack.nats.stop()
    const sent = await sendCalls(range(300_000, 20), 4)
    expect(sent.every((result) => result.status === 202)).toBe(true)
    expect(await spoolOf()).toMatchObject({ depth: 20, next_drain_at: expect.any(String) })

    await stack.edge.restart(async () => {
      const namespace = join(persistDir, readdirSync(persistDir).find((name) => name.endsWith("LogPublisher")) ?? "")
      const sqlite = (file: string, statement: string) => execFileSync("sqlite3", [join(namespace, file), statement], { encoding: "utf8" })
      expect(sqlite("metadata.sqlite", "SELECT count(*) FROM _cf_ALARM").trim()).toBe("1")
      sqlite("metadata.sqlite", "DELETE FROM _cf_ALARM")
      for (const file of readdirSync(namespace).filter((name) => /^[0-9a-f]{64}\.sqlite$/.test(name)))
        sqlite(file, "DELETE FROM _cf_METADATA WHERE key = 1")
      await stack.nats.start()
    })
    // The rows survived, the alarm did not: nothing is set to drain them.
    expect(await spoolOf()).toMatchObject({ depth: 20, next_drain_at: null })

    await stack.edge.triggerScheduled()
    await until("the spool drains", spoolOf, (spool) => spool?.depth === 0)
    const ids = new Set(sent.map((result) => result.msgId))
    expect([...(await storedIds("INGEST_CRM", ids))].sort()).toEqual([...ids].sort())
  }, 60_000)
})
