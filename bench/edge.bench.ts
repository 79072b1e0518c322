import { fork } from "node:child_process"
import { mkdtempSync, readdirSync, readFileSync, realpathSync, rmSync } from "node:fs"
import { createServer, type IncomingMessage, type ServerResponse } from "node:http"
import { cpus, tmpdir } from "node:os"
import { dirname, join, resolve } from "node:path"
import { fileURLToPath } from "node:url"
import { type JetStreamManager, jetstream } from "@nats-io/jetstream"
import { headers as natsHeaders } from "@nats-io/nats-core"
import { connect } from "@nats-io/transport-node"
import { Effect } from "effect"
import { requireAllValid } from "../contracts/contract.ts"
import { EDGE_INBOX_PREFIX, LogHeaders } from "../contracts/log.ts"
import { contracts } from "../contracts/sources.ts"
import { traceIdOf } from "../edge/ingest.ts"
import { encodedMessages, encodeLogMessages, toLogMessages } from "../edge/log-message.ts"
import { createAckInbox } from "../edge/pub-acks.ts"
import { verifyHubSpotV3 } from "../edge/verify/hubspot.ts"
import { hubspotBatch } from "../infra/local/samples.ts"
import { signHubSpotV3 } from "../infra/local/sign.ts"
import { startClusterStack } from "../infra/local/cluster-stack.ts"
import { waitForEmptySpools } from "../infra/local/edge.ts"
import { startEdgeStack } from "../infra/local/stack.ts"
import { topologyOf } from "../infra/nats/topology.ts"
import { stopChild, stopWithParent } from "../infra/processes.ts"
import { readStream } from "../infra/streams.ts"

/**
 * `npm run bench:edge`: signed HubSpot webhooks through the Worker (workerd) to PubAck, beside the
 * receiver a user would otherwise write — a plain `node:http` server that verifies the same HubSpot
 * v3 signature, validates with the same contract, publishes every event with the same subject,
 * headers and `Nats-Msg-Id`, and answers 202 after the PubAcks — at the same concurrency, in the same
 * run, against the same nats-server. Raw JetStream publishes from Node (no HTTP, no checks) are
 * printed as a reference.
 *
 * The Worker and the plain receiver are timed in alternating slices (A B B A ...), so a burst of
 * other work on the machine weighs on both alike; beside each figure, the CPU milliseconds per call
 * of the receiving process (workerd, or the plain receiver's node), nats-server and the load
 * generator, read from /proc: on a busy machine that is the steadier comparison.
 *
 * Then two scenarios of the mesh's faults and scale, each beside the same run's 1-event figure: the
 * log away (nats-server stopped, `SPOOL=on`: every webhook answered 202 from the Durable Objects'
 * SQLite spools, which then drain into the restarted log, each event once), and a region of a
 * cluster (the Worker appends to the region's leaf server, the R3 hub of three sources it; the time
 * until the hub holds every event is printed too).
 *
 * BENCH_SECONDS (default 10) per scenario and target, BENCH_CONCURRENCY (default 16) requests in
 * flight, BENCH_DIRECT=0 leaves out the raw publishes, BENCH_PROFILE=<dir> writes a `--cpu-prof` of
 * the plain receiver there, EDGE_INSPECTOR_PORT=<port> opens workerd's inspector for DevTools to
 * profile the Worker. PUBLISHER_SHARDS and PUBLISH_TIMEOUT_MS are passed to the Worker.
 */

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), "..")
const PLAIN_RECEIVER_FLAG = "--plain-receiver"
const HUBSPOT_PATH = "/v1/hooks/hubspot"

export interface Figures {
  readonly name: string
  readonly requests: number
  readonly events: number
  readonly perSecond: number
  readonly eventsPerSecond: number
  readonly p50: number
  readonly p99: number
  /** CPU milliseconds per call of the receiving process, nats-server and the load generator (0 where /proc is missing). */
  readonly cpuMs: { readonly receiver: number; readonly nats: number; readonly load: number }
}

const percentile = (sorted: ReadonlyArray<number>, p: number) =>
  sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))] ?? Number.NaN

/** Latencies, wall time and CPU seconds of one or more timed slices of the same target. */
interface Sample {
  readonly latencies: Array<number>
  seconds: number
  /** CPU seconds of the receiving process (workerd, or the plain receiver), nats-server, and this process (the load). */
  readonly cpu: { receiver: number; nats: number; load: number }
}

const emptySample = (): Sample => ({ latencies: [], seconds: 0, cpu: { receiver: 0, nats: 0, load: 0 } })

/** Runs `operation` with `concurrency` in flight for `seconds`, adding to `sample`; every call must succeed. */
const load = async (sample: Sample, seconds: number, concurrency: number, operation: (n: number) => Promise<void>): Promise<number> => {
  let next = 0
  const started = performance.now()
  const deadline = started + seconds * 1000
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (performance.now() < deadline) {
        const n = next++
        const t0 = performance.now()
        await operation(n)
        sample.latencies.push(performance.now() - t0)
      }
    })
  )
  sample.seconds += (performance.now() - started) / 1000
  return next
}

const figuresOf = (name: string, sample: Sample, eventsPerCall: number): Figures => {
  const sorted = [...sample.latencies].sort((a, b) => a - b)
  return {
    name,
    requests: sorted.length,
    events: sorted.length * eventsPerCall,
    perSecond: sorted.length / sample.seconds,
    eventsPerSecond: (sorted.length * eventsPerCall) / sample.seconds,
    p50: percentile(sorted, 50),
    p99: percentile(sorted, 99),
    cpuMs: {
      receiver: (sample.cpu.receiver * 1000) / sorted.length,
      nats: (sample.cpu.nats * 1000) / sorted.length,
      load: (sample.cpu.load * 1000) / sorted.length
    }
  }
}

/** Processes of this run by name (workerd, nats-server, the plain receiver's node): every descendant of this process. */
const descendants = (): ReadonlyArray<{ readonly pid: number; readonly name: string }> => {
  const all: Array<{ pid: number; ppid: number; name: string }> = []
  for (const entry of readdirSync("/proc")) {
    if (!/^\d+$/.test(entry)) continue
    try {
      const stat = readFileSync(`/proc/${entry}/stat`, "utf8")
      const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ")
      all.push({ pid: Number(entry), ppid: Number(fields[1]), name: stat.slice(stat.indexOf("(") + 1, stat.lastIndexOf(")")) })
    } catch {
      // gone meanwhile
    }
  }
  const mine = new Set([process.pid])
  for (let grown = true; grown;) {
    grown = false
    for (const p of all)
      if (!mine.has(p.pid) && mine.has(p.ppid)) {
        mine.add(p.pid)
        grown = true
      }
  }
  return all.filter((p) => p.pid !== process.pid && mine.has(p.pid))
}

/** CPU seconds a process has used (user and system), from /proc; 0 where there is no /proc. */
const cpuSecondsOf = (pid: number | undefined): number => {
  if (pid === undefined) return 0
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8")
    const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ")
    return (Number(fields[11]) + Number(fields[12])) / 100
  } catch {
    return 0
  }
}

/** What the plain receiver needs to know, passed to its process in the environment. */
interface PlainReceiverSettings {
  readonly natsUrl: string
  readonly user: string
  readonly password: string
  readonly secret: string
}

const readRequestBody = async (request: IncomingMessage, limit: number): Promise<Uint8Array<ArrayBuffer> | undefined> => {
  const chunks: Array<Buffer> = []
  let total = 0
  for await (const chunk of request as AsyncIterable<Buffer>) {
    total += chunk.byteLength
    if (total > limit) return undefined
    chunks.push(chunk)
  }
  const body = Buffer.concat(chunks)
  return new Uint8Array(body.buffer, body.byteOffset, body.byteLength) as Uint8Array<ArrayBuffer>
}

const answer = (response: ServerResponse, status: number, body: unknown) => {
  response.writeHead(status, { "content-type": "application/json" })
  response.end(JSON.stringify(body))
}

/**
 * The baseline: the HubSpot receiver a user would write on `node:http` instead of the edge, doing the
 * same work with the project's own functions (the edge's v3 verifier, the HubSpot contract, the edge's
 * subjects, headers and message ids, and the edge's JetStream publishing with one PubAck subscription),
 * over one TCP connection, answering 202 only after every PubAck. It gets every speed-up the edge's
 * own publishing has, so the ratio is what the Worker's shape costs (workerd, the hop to the Durable
 * Object, the websocket), not a difference in NATS client code. Events that break the contract
 * refuse the request (422) instead of being quarantined: the bench sends none.
 */
const plainReceiver = async (settings: PlainReceiverSettings): Promise<void> => {
  const nc = await connect({
    servers: settings.natsUrl,
    user: settings.user,
    pass: settings.password,
    inboxPrefix: EDGE_INBOX_PREFIX,
    name: "plain-receiver",
    noAsyncTraces: true
  })
  const acks = createAckInbox(nc)
  const contract = contracts.hubspot
  const secrets = [settings.secret]
  const receive = async (request: IncomingMessage, response: ServerResponse) => {
    if (request.method !== "POST" || request.url !== HUBSPOT_PATH) return answer(response, 404, { error: "not_found" })
    if (request.headers["content-type"]?.split(";")[0]?.trim() !== "application/json")
      return answer(response, 415, { error: "unsupported_media_type" })
    const body = await readRequestBody(request, 1024 * 1024)
    if (body === undefined) return answer(response, 413, { error: "payload_too_large" })
    const headers = new Headers()
    for (const [name, value] of Object.entries(request.headers)) if (typeof value === "string") headers.set(name, value)
    const url = `http://${request.headers.host}${request.url}`
    const now = Date.now()
    const verified = await Effect.runPromise(
      Effect.result(
        verifyHubSpotV3({ method: "POST", url, headers, body }, secrets, { toleranceMs: 300_000, now, hubspotVersions: ["v3"] })
      )
    )
    if (verified._tag === "Failure") return answer(response, 401, { error: "unauthorized", message: verified.failure.reason })
    let json: unknown
    try {
      json = JSON.parse(new TextDecoder("utf-8", { fatal: true, ignoreBOM: false }).decode(body))
    } catch {
      return answer(response, 400, { error: "malformed_body" })
    }
    const valid = Effect.runSync(Effect.result(Effect.flatMap(contract.split(json), requireAllValid)))
    if (valid._tag === "Failure") return answer(response, 422, { error: "contract_violation", issues: valid.failure.issues })
    const traceId = traceIdOf(headers)
    const messages = toLogMessages("hubspot", contract, valid.success, { receivedAt: new Date(now).toISOString(), traceId })
    try {
      const stored = await acks.publishAll(encodedMessages(encodeLogMessages(messages)), 2500)
      answer(response, 202, {
        accepted: stored.length,
        duplicates: stored.filter((ack) => ack.duplicate).length,
        quarantined: [],
        trace_id: traceId,
        events: stored.map((ack, i) => ({ id: messages[i]?.msgId, subject: messages[i]?.subject, seq: ack.seq, duplicate: ack.duplicate }))
      })
    } catch (error) {
      response.setHeader("retry-after", "10")
      answer(response, 503, { error: "log_unavailable", message: String(error) })
    }
  }
  const server = createServer({ keepAliveTimeout: 60_000 }, (request, response) => {
    receive(request, response).catch((error: unknown) => {
      if (!response.headersSent) answer(response, 503, { error: "internal", message: String(error) })
    })
  })
  server.listen(0, "127.0.0.1", () => {
    const address = server.address()
    process.send?.({ port: typeof address === "object" && address !== null ? address.port : 0 })
  })
  // Ends on its own, so a --cpu-prof is written.
  const stop = () => server.close(() => void nc.close().finally(() => process.exit(0)))
  process.once("SIGTERM", stop)
  process.once("disconnect", stop)
}

/**
 * The plain receiver in a child process of its own: workerd is a process of its own too, so each
 * receiver gets the cores the scheduler gives a process, and neither shares an event loop with the
 * load generator (which would slow the receiver that shares it, and the load it is measured under).
 */
const startPlainReceiver = async (settings: PlainReceiverSettings, profileDir: string | undefined) => {
  const child = fork(fileURLToPath(import.meta.url), [PLAIN_RECEIVER_FLAG], {
    cwd: ROOT,
    execArgv: ["--import", "tsx", ...(profileDir === undefined ? [] : ["--cpu-prof", `--cpu-prof-dir=${profileDir}`])],
    env: { ...process.env, PLAIN_RECEIVER: JSON.stringify(settings) },
    stdio: ["ignore", "inherit", "inherit", "ipc"]
  })
  stopWithParent(child)
  const port = await new Promise<number>((resolvePort, reject) => {
    child.once("message", (message: { port: number }) => resolvePort(message.port))
    child.once("exit", (code) => reject(new Error(`the plain receiver exited with code ${code} before it listened`)))
  })
  return { url: `http://127.0.0.1:${port}`, pid: child.pid, dispose: () => stopChild(child) }
}

export interface EdgeBenchOptions {
  /** Seconds per scenario and target (default 10). */
  readonly seconds?: number
  /** Requests in flight (default 16). */
  readonly concurrency?: number
  /** Events per request, one scenario each (default 1 and 100). */
  readonly eventsPerRequest?: ReadonlyArray<number>
  /** Also time raw JetStream publishes from Node (default true). */
  readonly direct?: boolean
  /** Further edge settings, e.g. PUBLISHER_SHARDS. */
  readonly settings?: Readonly<Record<string, string>>
  /** Reads the stream back afterwards and counts how often each event the bench sent is there. */
  readonly checkStored?: boolean
  /** Also time 1-event webhooks while nats-server is stopped and the spool takes them, then drain it (default true). */
  readonly spool?: boolean
  /** Also time 1-event webhooks through a region of a cluster (leaf server, R3 hub sourcing it) (default true). */
  readonly cluster?: boolean
  readonly profileDir?: string
  readonly log?: (line: string) => void
}

export interface EdgeBenchScenario {
  readonly events: number
  readonly edge: Figures
  readonly plain: Figures
  readonly direct: Figures | undefined
}

/** 1-event webhooks with the log away (`spooled`) and through a cluster's region, beside the same run's 1-event figure on one server. */
export interface EdgeFaultScenarios {
  readonly spooled: Figures | undefined
  /** Seconds from nats-server's restart until every spool was empty. */
  readonly drainSeconds: number | undefined
  readonly cluster: Figures | undefined
  /** Seconds from the cluster scenario's last 202 until the hub held every event of it. */
  readonly hubCatchUpSeconds: number | undefined
}

export interface EdgeBenchReport {
  readonly scenarios: ReadonlyArray<EdgeBenchScenario>
  readonly faults: EdgeFaultScenarios
  readonly lines: ReadonlyArray<string>
  /** Requests sent to the Worker and to the plain receiver, every one answered 202 (any other answer fails the run). */
  readonly requests: number
  /** Events in those requests, each with its own key. */
  readonly events: number
  /** Events the answers called duplicates. */
  readonly duplicates: number
  /** With `checkStored`: of the events sent, how many are in the stream once, how many are missing, how many more than once. */
  readonly stored: { readonly once: number; readonly missing: number; readonly repeated: number } | undefined
}

const pause = (ms: number) => new Promise((resolveLater) => setTimeout(resolveLater, ms))

/** Polls the hub's `stream` until it holds `messages`; fails after `timeoutMs`. */
const untilHubHolds = async (jsm: JetStreamManager, stream: string, messages: number, timeoutMs: number): Promise<void> => {
  const deadline = Date.now() + timeoutMs
  for (;;) {
    const held = (await jsm.streams.info(stream)).state.messages
    if (held >= messages) return
    if (Date.now() > deadline) throw new Error(`the hub's ${stream} held ${held} of ${messages} messages after ${timeoutMs} ms`)
    await pause(100)
  }
}

const formatted = (value: number, digits = 0) =>
  value.toLocaleString("en-US", { minimumFractionDigits: digits, maximumFractionDigits: digits })

const scenarioName = (events: number) => (events === 1 ? "1-event" : `${events}-events`)

/** Runs the edge benchmark and reports its figures; the printed lines are in `lines`. */
export const runEdgeBench = async (options: EdgeBenchOptions = {}): Promise<EdgeBenchReport> => {
  const seconds = options.seconds ?? 10
  const concurrency = options.concurrency ?? 16
  const log = options.log ?? console.log
  const lines: Array<string> = []
  const print = (line: string) => {
    lines.push(line)
    log(line)
  }
  const spoolScenario = options.spool ?? true
  const persistDir = mkdtempSync(join(tmpdir(), "ingest-bench-edge-"))
  // SPOOL=on: every source spools while the log is away, so the HubSpot traffic of the scenarios can be timed spooled too.
  const stack = await startEdgeStack({
    settings: { ...(spoolScenario ? { SPOOL: "on" } : {}), ...options.settings },
    edgePersistDir: persistDir
  })
  const secret = stack.secrets.hubspot as string
  const plain = await startPlainReceiver(
    { natsUrl: stack.nats.url, user: stack.nats.edge.user, password: stack.nats.edge.password, secret },
    options.profileDir
  )
  const direct = await connect({
    servers: stack.nats.url,
    user: stack.nats.edge.user,
    pass: stack.nats.edge.password,
    inboxPrefix: EDGE_INBOX_PREFIX
  })
  const js = jetstream(direct)
  const firstSeq = (await stack.jsm.streams.info("INGEST_CRM")).state.last_seq + 1
  try {
    let portal = 1
    /** Every batch sent through HTTP: its portal, how many requests, events per request. */
    const sent: Array<{ portal: number; requests: number; events: number }> = []
    let requests = 0
    let duplicates = 0

    /** What a 202 answered: how many of its events were duplicates, how many were spooled. */
    type Answer = { readonly duplicates: number; readonly spooled?: number }
    const webhook = (base: string, events: number, portalId: number, check?: (answer: Answer) => void) => async (n: number) => {
      const url = `${base}${HUBSPOT_PATH}`
      const body = JSON.stringify(hubspotBatch(events, { firstEventId: n * events, portalId }))
      const response = await fetch(url, {
        method: "POST",
        body,
        headers: { "content-type": "application/json", ...signHubSpotV3(secret, "POST", url, body, Date.now()) }
      })
      if (response.status !== 202) throw new Error(`${base} answered ${response.status}: ${await response.text()}`)
      const answer = (await response.json()) as Answer
      check?.(answer)
      duplicates += answer.duplicates
    }
    const processes = descendants()
    const workerd = processes.find((p) => p.name === "workerd")?.pid
    const natsServer = processes.find((p) => p.name === "nats-server")?.pid
    const ownCpu = () => {
      const usage = process.cpuUsage()
      return (usage.user + usage.system) / 1e6
    }
    /** `load`, with the CPU the receiving process (if any), nats-server and this process spent meanwhile. */
    const loadMeasured = async (
      sample: Sample,
      receiverPid: number | undefined,
      slice: number,
      operation: (n: number) => Promise<void>,
      natsPid: number | undefined = natsServer
    ) => {
      const before = { receiver: cpuSecondsOf(receiverPid), nats: cpuSecondsOf(natsPid), load: ownCpu() }
      const calls = await load(sample, slice, concurrency, operation)
      sample.cpu.receiver += cpuSecondsOf(receiverPid) - before.receiver
      sample.cpu.nats += cpuSecondsOf(natsPid) - before.nats
      sample.cpu.load += ownCpu() - before.load
      return calls
    }
    const timeWebhooks = async (
      sample: Sample,
      base: string,
      events: number,
      slice: number,
      check?: (answer: Answer) => void,
      into: {
        batches: Array<{ portal: number; requests: number; events: number }>
        receiver: number | undefined
        nats: number | undefined
      } = {
        batches: sent,
        receiver: base === plain.url ? plain.pid : workerd,
        nats: natsServer
      }
    ) => {
      const portalId = portal++
      const calls = await loadMeasured(sample, into.receiver, slice, webhook(base, events, portalId, check), into.nats)
      into.batches.push({ portal: portalId, requests: calls, events })
      requests += calls
    }

    const publish = (events: number, portalId: number) => async (n: number) => {
      const batch = hubspotBatch(events, { firstEventId: n * events, portalId })
      await Promise.all(
        batch.map((event) => {
          const h = natsHeaders()
          h.set(LogHeaders.source, "hubspot")
          h.set(LogHeaders.type, event.subscriptionType)
          const key = `${event.portalId}:${event.subscriptionId}:${event.eventId}`
          return js.publish(`ingest.crm.hubspot.${event.subscriptionType.replace(".", "_").toLowerCase()}`, JSON.stringify(event), {
            msgID: `bench:${key}`,
            headers: h,
            expect: { streamName: "INGEST_CRM" }
          })
        })
      )
    }

    const shards = options.settings?.PUBLISHER_SHARDS ?? "4"
    print(
      `edge benchmark: ${seconds} s per scenario and target, ${concurrency} requests in flight, ${shards} publisher shards, nats-server ${stack.admin.info?.version}, Node ${process.version}, ${cpus().length} cores`
    )
    const warmUp = Math.min(seconds / 2, 2)
    for (const events of options.eventsPerRequest ?? [1, 100]) {
      await timeWebhooks(emptySample(), stack.edge.url, events, warmUp)
      await timeWebhooks(emptySample(), plain.url, events, warmUp)
    }

    const scenarios: Array<EdgeBenchScenario> = []
    for (const events of options.eventsPerRequest ?? [1, 100]) {
      const edge = emptySample()
      const receiver = emptySample()
      // Short slices in A B B A order: a burst or drift in what else the machine does weighs on both alike.
      const pairs = Math.max(1, Math.round(seconds / 2))
      for (let pair = 0; pair < pairs; pair++) {
        const [first, second] = pair % 2 === 0 ? [edge, receiver] : [receiver, edge]
        for (const sample of [first, second])
          await timeWebhooks(sample, sample === edge ? stack.edge.url : plain.url, events, seconds / pairs)
      }
      let raw: Figures | undefined
      if (options.direct ?? true) {
        const sample = emptySample()
        await loadMeasured(sample, undefined, seconds, publish(events, portal++))
        raw = figuresOf(`Node → JetStream publish, no HTTP (${events}/call)`, sample, events)
      }
      scenarios.push({
        events,
        edge: figuresOf(`webhook → Worker → PubAck (${events}/request)`, edge, events),
        plain: figuresOf(`webhook → plain node:http receiver → PubAck (${events}/request)`, receiver, events),
        direct: raw
      })
    }

    // The log away: nats-server stopped, every webhook answered 202 from the Durable Objects' SQLite spools.
    let spooled: Figures | undefined
    let drainSeconds: number | undefined
    if (spoolScenario) {
      await stack.nats.stop()
      const sample = emptySample()
      await timeWebhooks(
        sample,
        stack.edge.url,
        1,
        seconds,
        (answer) => {
          if (answer.spooled !== 1)
            throw new Error(`with the log stopped the edge answered 202 without spooling: ${JSON.stringify(answer)}`)
        },
        { batches: sent, receiver: workerd, nats: undefined }
      )
      spooled = figuresOf("webhook → Worker → spool, log stopped (1/request)", sample, 1)
      await stack.nats.start()
      const restarted = performance.now()
      await waitForEmptySpools(stack.edge.url, 120_000)
      drainSeconds = (performance.now() - restarted) / 1000
    }

    // A region of a cluster: the Worker appends to the region's leaf, the R3 hub sources it.
    let clustered: Figures | undefined
    let hubCatchUpSeconds: number | undefined
    if (options.cluster ?? true) {
      const cluster = await startClusterStack({
        topology: topologyOf(["eu"]),
        secrets: stack.secrets as Record<string, string>,
        ...(options.settings === undefined ? {} : { edgeSettings: options.settings })
      })
      try {
        const edgeUrl = cluster.edges[0]?.edge.url as string
        const theirs = descendants().find((p) => p.name === "workerd" && p.pid !== workerd)?.pid
        const batches: Array<{ portal: number; requests: number; events: number }> = []
        const into = { batches, receiver: theirs, nats: undefined }
        await timeWebhooks(emptySample(), edgeUrl, 1, warmUp, undefined, into)
        const sample = emptySample()
        await timeWebhooks(sample, edgeUrl, 1, seconds, undefined, into)
        const lastAnswer = performance.now()
        await untilHubHolds(
          cluster.jsm,
          "INGEST_CRM",
          batches.reduce((sum, batch) => sum + batch.requests * batch.events, 0),
          120_000
        )
        hubCatchUpSeconds = (performance.now() - lastAnswer) / 1000
        clustered = figuresOf("webhook → Worker → region leaf → PubAck, R3 hub sourcing (1/request)", sample, 1)
      } finally {
        await cluster.dispose()
      }
    }

    const rows = scenarios
      .flatMap((s) => [s.edge, s.plain, ...(s.direct === undefined ? [] : [s.direct])])
      .concat(spooled === undefined ? [] : [spooled], clustered === undefined ? [] : [clustered])
      .map((r) => [
        r.name,
        String(r.requests),
        formatted(r.perSecond),
        formatted(r.eventsPerSecond),
        r.p50.toFixed(2),
        r.p99.toFixed(2),
        r.cpuMs.receiver > 0 ? r.cpuMs.receiver.toFixed(2) : "-",
        r.cpuMs.nats > 0 ? r.cpuMs.nats.toFixed(2) : "-",
        r.cpuMs.load.toFixed(2)
      ])
    const header = ["scenario", "calls", "calls/s", "events/s", "p50 ms", "p99 ms", "CPU ms/call: receiver", "nats", "load"]
    const widths = header.map((h, i) => Math.max(h.length, ...rows.map((row) => (row[i] as string).length)))
    const line = (cells: ReadonlyArray<string>) =>
      cells.map((cell, i) => (i === 0 ? cell.padEnd(widths[i] as number) : cell.padStart(widths[i] as number))).join("  ")
    print("")
    for (const row of [line(header), widths.map((w) => "-".repeat(w)).join("  "), ...rows.map(line)]) print(row)
    print("")
    const describe = (f: Figures) => `${formatted(f.perSecond)} req/s, p50 ${f.p50.toFixed(1)} ms, p99 ${f.p99.toFixed(1)} ms`
    for (const s of scenarios) {
      const name = `edge/${scenarioName(s.events)}`
      print(`${name}: ${describe(s.edge)}; plain receiver: ${describe(s.plain)}`)
      print(`ratio ${name}: ${((s.edge.perSecond / s.plain.perSecond) * 100).toFixed(0)}% of plain receiver`)
      const over = s.edge.p99 - s.plain.p99
      print(`ratio ${name} p99: ${over >= 0 ? "+" : "-"}${Math.abs(over).toFixed(1)} ms over plain receiver`)
      if (s.direct !== undefined)
        print(
          `reference ${name}: raw JetStream publish from Node ${formatted(s.direct.eventsPerSecond)} events/s; the Worker reaches ${((s.edge.eventsPerSecond / s.direct.eventsPerSecond) * 100).toFixed(0)}% of it`
        )
    }

    const single = scenarios.find((s) => s.events === 1)?.edge
    if (spooled !== undefined && single !== undefined) {
      print(
        `edge/1-event spooled (log stopped): ${describe(spooled)}; log up: ${describe(single)}; drained in ${drainSeconds?.toFixed(1)} s`
      )
      print(`ratio edge/1-event spooled: ${((spooled.perSecond / single.perSecond) * 100).toFixed(0)}% of log up`)
    }
    if (clustered !== undefined && single !== undefined) {
      print(
        `edge/1-event cluster (region leaf, R3 hub): ${describe(clustered)}; one server: ${describe(single)}; hub caught up ${hubCatchUpSeconds?.toFixed(1)} s after the last 202`
      )
      print(`ratio edge/1-event cluster: ${((clustered.perSecond / single.perSecond) * 100).toFixed(0)}% of one server`)
    }

    let stored: EdgeBenchReport["stored"]
    if (options.checkStored === true) {
      const wanted = new Map<string, number>()
      for (const batch of sent)
        for (let eventId = 0; eventId < batch.requests * batch.events; eventId++) wanted.set(`hubspot:${batch.portal}:4242:${eventId}`, 0)
      for (const message of await readStream(jetstream(stack.admin), stack.jsm, "INGEST_CRM")) {
        const id = message.headers["Nats-Msg-Id"] ?? ""
        const seen = message.seq >= firstSeq ? wanted.get(id) : undefined
        if (seen !== undefined) wanted.set(id, seen + 1)
      }
      const counts = [...wanted.values()]
      stored = {
        once: counts.filter((c) => c === 1).length,
        missing: counts.filter((c) => c === 0).length,
        repeated: counts.filter((c) => c > 1).length
      }
    }
    return {
      scenarios,
      faults: { spooled, drainSeconds, cluster: clustered, hubCatchUpSeconds },
      lines,
      requests,
      events: sent.reduce((sum, batch) => sum + batch.requests * batch.events, 0),
      duplicates,
      stored
    }
  } finally {
    await direct.close()
    await plain.dispose()
    await stack.dispose()
    rmSync(persistDir, { recursive: true, force: true })
  }
}

const settingsFromEnvironment = (): Record<string, string> =>
  Object.fromEntries(
    ["PUBLISHER_SHARDS", "PUBLISH_TIMEOUT_MS"].flatMap((name) => (process.env[name] === undefined ? [] : [[name, process.env[name]]]))
  )

const isEntry = process.argv[1] !== undefined && realpathSync(process.argv[1]) === fileURLToPath(import.meta.url)
if (isEntry && process.argv.includes(PLAIN_RECEIVER_FLAG)) {
  plainReceiver(JSON.parse(process.env.PLAIN_RECEIVER ?? "{}") as PlainReceiverSettings).catch((error: unknown) => {
    console.error(error)
    process.exit(1)
  })
} else if (isEntry) {
  runEdgeBench({
    seconds: Number(process.env.BENCH_SECONDS ?? "10"),
    concurrency: Number(process.env.BENCH_CONCURRENCY ?? "16"),
    direct: process.env.BENCH_DIRECT !== "0",
    settings: settingsFromEnvironment(),
    ...(process.env.BENCH_PROFILE === undefined ? {} : { profileDir: resolve(process.env.BENCH_PROFILE) })
  }).catch((error: unknown) => {
    console.error(error)
    process.exitCode = 1
  })
}
