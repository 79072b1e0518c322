import { jetstream } from "@nats-io/jetstream"
import { headers as natsHeaders } from "@nats-io/nats-core"
import { connect } from "@nats-io/transport-node"
import { EDGE_INBOX_PREFIX, LogHeaders } from "../contracts/log.ts"
import { hubspotBatch } from "../infra/local/samples.ts"
import { signHubSpotV3 } from "../infra/local/sign.ts"
import { startEdgeStack } from "../infra/local/stack.ts"

/**
 * `npm run bench:edge`: signed HubSpot webhooks through the Worker (workerd) to PubAck, beside
 * the same events published from Node straight to JetStream, in the same run on the same server.
 * BENCH_SECONDS (default 10) per scenario, BENCH_CONCURRENCY (default 16) requests in flight.
 */

const seconds = Number(process.env.BENCH_SECONDS ?? "10")
const concurrency = Number(process.env.BENCH_CONCURRENCY ?? "16")

interface Figures {
  readonly name: string
  readonly requests: number
  readonly events: number
  readonly perSecond: number
  readonly eventsPerSecond: number
  readonly p50: number
  readonly p99: number
}

const percentile = (sorted: ReadonlyArray<number>, p: number) =>
  sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))] ?? Number.NaN

/** Runs `operation` with `concurrency` in flight for `seconds`; every call must succeed. */
const load = async (name: string, eventsPerCall: number, operation: (n: number) => Promise<void>): Promise<Figures> => {
  const latencies: Array<number> = []
  let next = 0
  const deadline = performance.now() + seconds * 1000
  const started = performance.now()
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (performance.now() < deadline) {
        const n = next++
        const t0 = performance.now()
        await operation(n)
        latencies.push(performance.now() - t0)
      }
    })
  )
  const elapsed = (performance.now() - started) / 1000
  latencies.sort((a, b) => a - b)
  return {
    name,
    requests: latencies.length,
    events: latencies.length * eventsPerCall,
    perSecond: latencies.length / elapsed,
    eventsPerSecond: (latencies.length * eventsPerCall) / elapsed,
    p50: percentile(latencies, 50),
    p99: percentile(latencies, 99)
  }
}

const main = async () => {
  const stack = await startEdgeStack()
  const direct = await connect({
    servers: stack.nats.url,
    user: stack.nats.edge.user,
    pass: stack.nats.edge.password,
    inboxPrefix: EDGE_INBOX_PREFIX
  })
  const js = jetstream(direct)
  const url = `${stack.edge.url}/v1/hooks/hubspot`
  const secret = stack.secrets.hubspot as string
  let portal = 1

  const webhook = (events: number) => async (n: number) => {
    const body = JSON.stringify(hubspotBatch(events, { firstEventId: n * events, portalId: portal }))
    const response = await fetch(url, {
      method: "POST",
      body,
      headers: { "content-type": "application/json", ...signHubSpotV3(secret, "POST", url, body, Date.now()) }
    })
    if (response.status !== 202) throw new Error(`webhook answered ${response.status}: ${await response.text()}`)
    await response.arrayBuffer()
  }

  const publish = (events: number) => async (n: number) => {
    const batch = hubspotBatch(events, { firstEventId: n * events, portalId: portal })
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

  console.log(
    `edge benchmark: ${seconds} s per scenario, ${concurrency} requests in flight, nats-server ${stack.admin.info?.version}, Node ${process.version}, ${(await import("node:os")).cpus().length} cores`
  )
  await load("warm-up", 1, webhook(1))
  portal++
  const results: Array<Figures> = []
  for (const events of [1, 100]) {
    portal++
    results.push(await load(`webhook → Worker → PubAck (${events} event${events > 1 ? "s" : ""}/request)`, events, webhook(events)))
    portal++
    results.push(await load(`Node → JetStream publish (${events} event${events > 1 ? "s" : ""}/call)`, events, publish(events)))
  }

  const rows = results.map((r) => [
    r.name,
    String(r.requests),
    r.perSecond.toFixed(0),
    r.eventsPerSecond.toFixed(0),
    r.p50.toFixed(2),
    r.p99.toFixed(2)
  ])
  const header = ["scenario", "calls", "calls/s", "events/s", "p50 ms", "p99 ms"]
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((row) => (row[i] as string).length)))
  const line = (cells: ReadonlyArray<string>) =>
    cells.map((cell, i) => (i === 0 ? cell.padEnd(widths[i] as number) : cell.padStart(widths[i] as number))).join("  ")
  console.log(`\n${line(header)}\n${widths.map((w) => "-".repeat(w)).join("  ")}\n${rows.map(line).join("\n")}`)
  for (let i = 0; i < results.length; i += 2) {
    const edge = results[i] as Figures
    const node = results[i + 1] as Figures
    console.log(
      `ratio ${edge.name.replace(/^webhook → Worker → PubAck /, "")}: Worker reaches ${((edge.eventsPerSecond / node.eventsPerSecond) * 100).toFixed(0)}% of direct publish throughput; p50 ${(edge.p50 / node.p50).toFixed(1)}x, p99 ${(edge.p99 / node.p99).toFixed(1)}x`
    )
  }
  await direct.close()
  await stack.dispose()
}

main().catch((error: unknown) => {
  console.error(error)
  process.exitCode = 1
})
