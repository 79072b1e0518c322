import { type JetStreamClient, type JetStreamManager, jetstream } from "@nats-io/jetstream"
import postgres from "postgres"
import { DERIVED_STREAM, DOMAINS, type Domain, QUARANTINE_STREAM, streamFor } from "../../contracts/log.ts"
import { projectionsFor } from "../../projections/index.ts"
import { createDatabase, startPostgres } from "../postgres/database.ts"
import { readStream } from "../streams.ts"
import { projectUntil } from "./log-stack.ts"
import { martSnapshot } from "./marts.ts"
import { type ProjectorProcess, spawnProjector } from "./projector-process.ts"
import { connectProjector } from "./projector.ts"
import { alowareCall, hubspotBatch, oeeWorkload, postSigned, retailWorkload, warehouseWorkload } from "./samples.ts"
import { waitForEmptySpools } from "./edge.ts"
import { startEdgeStack } from "./stack.ts"

/**
 * The chaos run: signed events for every source sent through the Worker while the projection
 * process is SIGKILLed every few seconds, nats-server is restarted once and Postgres once; valid
 * events, resends after the duplicate window, events that are quarantined and events whose rows
 * Postgres refuses. The marts it leaves are compared with a clean run over the same log.
 */
export interface ChaosOptions {
  /** Events to send in all (default 50,000). */
  readonly events: number
  /** Events per request of the batching senders. */
  readonly batch?: number
  /** Requests in flight at once. */
  readonly senders?: number
  /** Longest time between two SIGKILLs of the projection process, ms; each waits half to all of it. */
  readonly killEveryMs?: number
  /** Kills at least this many times, going on after the last request if sending ended sooner (default 0). */
  readonly minKills?: number
  /** Progress lines; silent when absent. */
  readonly log?: (line: string) => void
}

export interface ChaosReport {
  /** Events sent, each until the edge answered 202 (resends after the window not counted again). */
  readonly sent: number
  /** Events the edge appended to the log. */
  readonly accepted: number
  /** Events the edge quarantined. */
  readonly quarantined: number
  /** Events the projections dead-lettered (Postgres refused their rows), the same in both runs. */
  readonly deadLettered: number
  /** Events answered 202 that the log lacks, and mart rows (or restock alerts) of the clean run the chaos run lacks. */
  readonly lost: number
  /** Mart rows (or restock alerts) of the chaos run the clean run lacks: counted twice. */
  readonly doubled: number
  readonly kills: number
  readonly natsRestarts: number
  readonly postgresRestarts: number
  readonly seconds: number
}

export const chaosLine = (report: ChaosReport): string =>
  `chaos: sent ${report.sent}, accepted ${report.accepted}, quarantined ${report.quarantined}, dead-lettered ${report.deadLettered}, lost ${report.lost}, doubled ${report.doubled}`

/** One request of the plan: a source, its body, and what it carries. */
interface Request {
  readonly source: string
  readonly body: unknown
  readonly events: number
  /** Sent again after the stream's duplicate window: the log stores it twice, the marts count it once. */
  readonly resend: boolean
}

/** How long JetStream drops a resend by its message id in the chaos run: short, so resends come after it. */
const DUPLICATE_WINDOW_MS = 3000

/** Two intake counts of 2,000,000,000 on one day: the second one's rows Postgres refuses (integer out of range). */
const overflowPair = (n: number) =>
  [0, 1].map((k) => ({
    id: `intake_chaos_${n}_${k}`,
    type: "intake.booked_in",
    timestamp: `2026-0${1 + (n % 9)}-1${n % 10}T09:0${k}:00Z`,
    data: { count: 2_000_000_000 }
  }))

/** The plan of a chaos run: about `total` events over every source, in requests of `batch`. */
export const chaosPlan = (total: number, batch: number): ReadonlyArray<Request> => {
  const requests: Array<Request> = []
  const share = (fraction: number) => Math.max(batch, Math.round(total * fraction))
  const chunks = <T>(items: ReadonlyArray<T>) =>
    Array.from({ length: Math.ceil(items.length / batch) }, (_, i) => items.slice(i * batch, (i + 1) * batch))
  const warehouse = warehouseWorkload(share(0.4))
  chunks(warehouse).forEach((events, i) => requests.push({ source: "erasure", body: events, events: events.length, resend: i % 17 === 5 }))
  chunks(oeeWorkload(share(0.2))).forEach((events, i) =>
    requests.push({ source: "oee", body: events, events: events.length, resend: i % 19 === 3 })
  )
  chunks(retailWorkload(share(0.2))).forEach((events, i) =>
    requests.push({ source: "pos", body: events, events: events.length, resend: i % 13 === 7 })
  )
  const hubspotBatches = Math.ceil(share(0.15) / batch)
  for (let i = 0; i < hubspotBatches; i++) {
    // Every fifth HubSpot batch carries one event that breaks the contract: it is quarantined, the rest appended.
    const events = hubspotBatch(batch, {
      firstEventId: 1_000_000 + i * batch,
      occurredAt: Date.parse("2025-02-01T08:00:00Z") + i * 60_000
    }).map((event, k) => (i % 5 === 2 && k === 3 ? { ...event, propertyValue: 42 } : event))
    requests.push({ source: "hubspot", body: events, events: events.length, resend: i % 11 === 4 })
  }
  const calls = share(0.05)
  for (let i = 0; i < calls; i++) {
    const call = alowareCall(500_000 + i, `2025-02-0${1 + (i % 9)} 1${i % 10}:00:00`)
    // One call in twenty has no communication id: quarantined.
    const body = i % 20 === 7 ? { ...call, data: { ...call.data, id: undefined } } : call
    requests.push({ source: "aloware", body, events: 1, resend: i % 23 === 9 })
  }
  const pairs = Math.max(2, Math.floor(total / 5000))
  for (let n = 0; n < pairs; n++) requests.push({ source: "erasure", body: overflowPair(n), events: 2, resend: false })
  // Interleave the sources as real traffic does, the same way every run.
  return requests
    .map((request, i) => ({ request, order: (i * 7919) % requests.length }))
    .sort((a, b) => a.order - b.order)
    .map(({ request }) => request)
}

/** A 202: each event's place in the log, or (`spooled`) no place yet: it waits in the edge's spool. */
interface Answer {
  readonly quarantined?: ReadonlyArray<{ readonly id?: number; readonly duplicate: boolean; readonly spooled?: boolean }>
  readonly events?: ReadonlyArray<{
    readonly id: string
    readonly subject: string
    readonly seq?: number
    readonly duplicate: boolean
    readonly spooled?: boolean
  }>
}

const pause = (ms: number) => new Promise((resolveLater) => setTimeout(resolveLater, ms))

/** Every message id of `stream`, by sequence. */
const messageIds = async (js: JetStreamClient, jsm: JetStreamManager, stream: string): Promise<Map<number, string>> =>
  new Map((await readStream(js, jsm, stream)).map((message) => [message.seq, message.headers["Nats-Msg-Id"] ?? ""]))

/** Rows of `a` that `b` lacks, as a multiset difference of serialised rows. */
const missing = (a: ReadonlyArray<string>, b: ReadonlyArray<string>): number => {
  const left = new Map<string, number>()
  for (const row of b) left.set(row, (left.get(row) ?? 0) + 1)
  let count = 0
  for (const row of a) {
    const n = left.get(row) ?? 0
    if (n > 0) left.set(row, n - 1)
    else count++
  }
  return count
}

export const runChaos = async (options: ChaosOptions): Promise<ChaosReport> => {
  const log = options.log ?? (() => {})
  const batch = options.batch ?? 50
  const started = performance.now()
  const stack = await startEdgeStack({ streams: { duplicateWindowMs: DUPLICATE_WINDOW_MS, replicas: 1 } })
  const pg = await startPostgres({ forceEmbedded: true })
  const chaosDb = await createDatabase(pg.url, "ingest_chaos")
  const cleanDb = await createDatabase(pg.url, "ingest_clean")
  // As the `mesh project` processes it kills configure them: from the environment.
  const all = Object.values(projectionsFor({ env: process.env }))
  let kills = 0
  let natsRestarts = 0
  let postgresRestarts = 0
  let projector: ProjectorProcess | undefined
  let sending = true
  try {
    const plan = chaosPlan(options.events, batch)
    const total = plan.reduce((sum, request) => sum + request.events, 0)
    log(`chaos: ${total} events in ${plan.length} requests over ${Object.keys(stack.secrets).join(", ")}`)
    const startProjector = () =>
      (projector = spawnProjector({
        nats: stack.nats,
        databaseUrl: chaosDb.url,
        names: all.map((projection) => projection.name),
        batchSize: 200
      }))
    startProjector()
    // The projection process dies at random moments, as a host does: mid-batch, between commit and ack, at start.
    const killer = (async () => {
      const every = options.killEveryMs ?? 3000
      // At least `minKills`, also after the last request: then the log is being caught up, which is chaos too.
      const more = () => sending || kills < (options.minKills ?? 0)
      while (more()) {
        await pause(every / 2 + Math.random() * (every / 2))
        if (!more()) break
        projector?.child.kill("SIGKILL")
        await projector?.exited
        kills++
        startProjector()
      }
    })()

    /** Where each event answered 202 is in the log; `seq` undefined for one answered from the spool, which must arrive too. */
    const receipts: Array<{ stream: string; seq: number | undefined; id: string }> = []
    const quarantinedIds = new Set<number>()
    /** Events quarantined by first deliveries: a resend after the window is quarantined again, but is the same event. */
    let quarantined = 0
    let gaveUp = 0
    /** Sends until the edge answers 202, as webhook senders retry a 5xx or a dropped connection. */
    const deliver = async (request: Request, first: boolean) => {
      for (let attempt = 0; attempt < 600; attempt++) {
        const response = await postSigned(stack.edge.url, request.source, request.body, stack.secrets[request.source] as string).catch(
          () => undefined
        )
        if (response?.status === 202) {
          const answer = (await response.json()) as Answer
          for (const event of answer.events ?? [])
            receipts.push({ stream: streamFor(event.subject.split(".")[1] as Domain), seq: event.seq, id: event.id })
          for (const entry of answer.quarantined ?? []) if (entry.id !== undefined) quarantinedIds.add(entry.id)
          if (first) quarantined += answer.quarantined?.length ?? 0
          return
        }
        if (response !== undefined && response.status < 500)
          throw new Error(`the edge refused a chaos request with ${response.status}: ${await response.text()}`)
        await response?.body?.cancel()
        await pause(100)
      }
      gaveUp += request.events
    }
    const resends: Array<{ request: Request; due: number }> = []
    let next = 0
    const checkpoints = [Math.floor(plan.length / 3), Math.floor((2 * plan.length) / 3)]
    const outages: Array<Promise<void>> = []
    const worker = async () => {
      for (;;) {
        const index = next++
        if (index >= plan.length) return
        if (index === checkpoints[0]) {
          outages.push(
            (async () => {
              log("chaos: restarting nats-server")
              await stack.nats.stop()
              await pause(1500)
              await stack.nats.start()
              natsRestarts++
            })()
          )
        }
        if (index === checkpoints[1]) {
          outages.push(
            (async () => {
              log("chaos: restarting Postgres")
              await pg.stop()
              await pause(1500)
              await pg.start()
              postgresRestarts++
            })()
          )
        }
        const request = plan[index] as Request
        await deliver(request, true)
        if (request.resend) resends.push({ request, due: Date.now() + DUPLICATE_WINDOW_MS + 500 })
        if (index % 200 === 0) log(`chaos: ${index}/${plan.length} requests, ${kills} kills`)
      }
    }
    await Promise.all(Array.from({ length: options.senders ?? 6 }, worker))
    await Promise.all(outages)
    // Resends after the duplicate window: the log stores them again under the same key.
    for (const { request, due } of resends) {
      await pause(Math.max(0, due - Date.now()))
      await deliver(request, false)
    }
    sending = false
    await killer
    log(`chaos: sent; ${kills} kills; waiting for the projections to reach the head of the log`)

    // Events answered from the edge's spool (Aloware's, while nats-server restarted) reach the log once it drains.
    await waitForEmptySpools(stack.edge.url, 180_000)
    // The last projection process runs until every projection has committed its stream's head.
    const heads = Object.fromEntries(
      await Promise.all(DOMAINS.map(async (domain) => [domain, (await stack.jsm.streams.info(streamFor(domain))).state.last_seq] as const))
    )
    const chaosSql = postgres(chaosDb.url, { onnotice: () => {}, max: 2 })
    try {
      for (;;) {
        const rows = await chaosSql`SELECT name, checkpoint FROM ingest.projections WHERE status = 'active'`.catch(() => [])
        const at = new Map(rows.map((row) => [row.name as string, Number(row.checkpoint)]))
        if (all.every((projection) => (at.get(projection.name) ?? -1) >= (heads[projection.domain] ?? 0))) break
        await pause(200)
      }
      // Side effects are published after their commit: give the process a moment with nothing left to do, then stop it.
      const pending = async () =>
        Number((await chaosSql`SELECT count(*)::int AS n FROM ingest.outbox WHERE published_at IS NULL`)[0]?.n ?? 0)
      while ((await pending()) > 0) await pause(200)
      projector?.child.kill("SIGTERM")
      await projector?.exited

      // The clean run: the same log projected once, in one process, into a fresh database.
      const cleanSql = postgres(cleanDb.url, { onnotice: () => {}, max: 4 })
      const nc = await connectProjector(stack.nats)
      try {
        // Side effects recorded, not published: the chaos run's are the ones counted in DERIVED.
        await Promise.all(
          all.map((projection) =>
            projectUntil(cleanSql, nc, projection, heads[projection.domain] ?? 0, { batchSize: 1000, publishEffects: false })
          )
        )
        let lost = gaveUp
        let doubled = 0
        // Every event answered 202 is in the log under its message id.
        const ids = Object.fromEntries(
          await Promise.all(
            [...DOMAINS.map(streamFor), QUARANTINE_STREAM].map(
              async (stream) => [stream, await messageIds(jetstream(stack.admin), stack.jsm, stream)] as const
            )
          )
        )
        const stored = Object.fromEntries(Object.entries(ids).map(([stream, bySeq]) => [stream, new Set(bySeq.values())]))
        for (const receipt of receipts)
          if (
            receipt.seq === undefined
              ? !(stored[receipt.stream]?.has(receipt.id) ?? false)
              : ids[receipt.stream]?.get(receipt.seq) !== receipt.id
          )
            lost++
        for (const id of quarantinedIds) if (!(ids[QUARANTINE_STREAM]?.has(id) ?? false)) lost++
        for (const projection of all) {
          const [chaos, clean] = [await martSnapshot(chaosSql, projection), await martSnapshot(cleanSql, projection)]
          for (const name of Object.keys(clean)) {
            lost += missing(clean[name] as Array<string>, (chaos[name] ?? []) as Array<string>)
            doubled += missing((chaos[name] ?? []) as Array<string>, clean[name] as Array<string>)
          }
        }
        // Restock alerts: each crossing published once by the chaos run, as many as the clean run decided.
        const alerts = new Set((await messageIds(jetstream(stack.admin), stack.jsm, DERIVED_STREAM)).values()).size
        const decided = Number((await cleanSql`SELECT count(*)::int AS n FROM ingest.outbox`)[0]?.n ?? 0)
        lost += Math.max(0, decided - alerts)
        doubled += Math.max(0, alerts - decided)
        const letters = async (sql: postgres.Sql) =>
          (await sql`SELECT projection, seq FROM ingest.dead_letters ORDER BY projection, seq`).map((row) => `${row.projection}:${row.seq}`)
        const [chaosLetters, cleanLetters] = [await letters(chaosSql), await letters(cleanSql)]
        lost += missing(cleanLetters, chaosLetters)
        doubled += missing(chaosLetters, cleanLetters)
        const accepted = new Set(receipts.map((receipt) => receipt.id)).size
        return {
          sent: total,
          accepted,
          quarantined,
          deadLettered: cleanLetters.length,
          lost,
          doubled,
          kills,
          natsRestarts,
          postgresRestarts,
          seconds: (performance.now() - started) / 1000
        }
      } finally {
        await nc.close()
        await cleanSql.end({ timeout: 5 })
      }
    } finally {
      await chaosSql.end({ timeout: 5 })
    }
  } finally {
    sending = false
    projector?.child.kill("SIGKILL")
    await projector?.exited
    await chaosDb.drop().catch(() => undefined)
    await cleanDb.drop().catch(() => undefined)
    await pg.dispose()
    await stack.dispose()
  }
}
