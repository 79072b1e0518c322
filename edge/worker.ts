import { Effect } from "effect"
import { Hono } from "hono"
import { outcomeSubject, regionalSubject } from "../contracts/log.ts"
import { logEvent } from "../platform/logger.ts"
import { type EdgeConfig, edgeConfigOf } from "./config.ts"
import { describeError, type EdgeError, EventTooLarge, SpoolFull, SpoolRowTooLarge } from "./errors.ts"
import { ingestWebhook, withDeadline } from "./ingest.ts"
import { encodeLogMessages, type LogMessage, type LogReceipt } from "./log-message.ts"
import { type EdgeEnv, type LogPublisher, receiptsOf, type ShardRef, type ShardStatus } from "./log-publisher.ts"
import { type EdgeRegion, regionFor, type RequestLocation, shardName } from "./regions.ts"

export { LogPublisher } from "./log-publisher.ts"

const shardIds = new WeakMap<object, Map<string, ReadonlyArray<DurableObjectId>>>()

/**
 * The Durable Object ids of a region's shards, derived once per isolate. A jurisdiction is part of
 * an id (the object lives and keeps its data there); a location hint only says where to create it.
 */
const regionShardIds = (env: EdgeEnv, region: EdgeRegion): ReadonlyArray<DurableObjectId> => {
  let byRegion = shardIds.get(env.LOG_PUBLISHER)
  if (byRegion === undefined) {
    byRegion = new Map()
    shardIds.set(env.LOG_PUBLISHER, byRegion)
  }
  let ids = byRegion.get(region.name)
  if (ids === undefined || ids.length !== region.shards) {
    const namespace = region.jurisdiction === undefined ? env.LOG_PUBLISHER : env.LOG_PUBLISHER.jurisdiction(region.jurisdiction)
    ids = Array.from({ length: region.shards }, (_, shard) => namespace.idFromName(shardName(region, shard)))
    byRegion.set(region.name, ids)
  }
  return ids
}

/** Shard `n` of a region: one Durable Object, one NATS connection to the region's log, one spool, one thread. */
const shardOf = (
  env: EdgeEnv,
  region: EdgeRegion,
  shard: number
): { readonly ref: ShardRef; readonly stub: DurableObjectStub<LogPublisher> } => ({
  ref: { region: region.name, name: shardName(region, shard) },
  stub: env.LOG_PUBLISHER.get(
    regionShardIds(env, region)[shard] as DurableObjectId,
    region.locationHint === undefined ? undefined : { locationHint: region.locationHint }
  )
})

/** FNV-1a of a source's name: the same shard for the same source in every isolate. */
const sourceHash = (source: string): number => {
  let hash = 0x811c9dc5
  for (let i = 0; i < source.length; i++) hash = Math.imul(hash ^ source.charCodeAt(i), 0x01000193) >>> 0
  return hash
}

/**
 * The shard a request's events go to. A spooling source's always go to the same shard of its region
 * (by its name), so its events queue behind its own spooled ones and reach the log in the order they
 * were answered even while one shard's connection fails and another's does not; the others go to a
 * random shard, so no shard is a hot spot for a busy sender that retries anyway.
 */
const publisher = (env: EdgeEnv, region: EdgeRegion, source: string, spool: boolean) =>
  shardOf(env, region, spool ? sourceHash(source) % region.shards : Math.floor(Math.random() * region.shards))

/** A region's subject for a message: the hub's own in the implicit region, else with the region as its last token. */
const inRegion = (region: EdgeRegion, messages: ReadonlyArray<LogMessage>): ReadonlyArray<LogMessage> =>
  region.explicit ? messages.map((message) => ({ ...message, subject: regionalSubject(message.subject, region.name) })) : messages

const errorResponse = (error: EdgeError, retryAfterSeconds: number): Response => {
  const { status, retryable, body, detail } = describeError(error)
  const headers: Record<string, string> = { "content-type": "application/json" }
  if (retryable) headers["retry-after"] = String(retryAfterSeconds)
  if (error._tag === "UnknownSource" || status >= 500)
    logEvent(status >= 500 ? "error" : "warn", "webhook rejected", { status, error: body.error, reason: detail ?? body.message })
  return new Response(JSON.stringify(body), { status, headers })
}

const HEALTH_RETRY_AFTER_SECONDS = 5

/** Retry-After while the settings themselves are broken: an operator has to act first. */
const MISCONFIGURED_RETRY_AFTER_SECONDS = 60

/** A shard as `/healthz` shows it: no error text (the caller is not authenticated), no null fields. */
const shardHealth = (status: ShardStatus) => ({
  connected: status.connected === true,
  ...(status.rtt_ms === null ? {} : { rtt_ms: status.rtt_ms }),
  spool: {
    depth: status.spool.depth,
    oldest_age_ms: status.spool.oldest_age_ms,
    drain_failures: status.spool.drain_failures,
    next_drain_at: status.spool.next_drain_at
  }
})

/**
 * Every shard of every region, asked in parallel; a shard that does not answer in time counts as
 * not connected and not able to spool.
 */
const regionsHealth = async (env: EdgeEnv, config: EdgeConfig) => {
  const spools = [...config.sources.values()].some((source) => source.spool)
  const deadline = config.connectTimeoutMs + 500
  const regions = await Promise.all(
    [...config.regions.values()].map(async (region) => {
      const shards = await Promise.all(
        Array.from({ length: region.shards }, async (_, n) => {
          const { ref, stub } = shardOf(env, region, n)
          const answer = await Effect.runPromise(Effect.result(withDeadline(() => stub.status(ref, true), deadline)))
          return { name: ref.name, status: answer._tag === "Success" ? answer.success : undefined }
        })
      )
      const answered = shards.flatMap((shard) => (shard.status === undefined ? [] : [shard.status]))
      const connected = answered.length === shards.length && answered.every((status) => status.connected === true)
      const spoolRoom = answered.length === shards.length && answered.every((status) => status.spool.depth < config.spool.maxEvents)
      const rtts = answered.flatMap((status) => (status.rtt_ms === null ? [] : [status.rtt_ms]))
      return {
        name: region.name,
        connected,
        // Down but every shard can still take events: a spooling source gets 202 here and nowhere else does better.
        spooling: !connected && spools && spoolRoom,
        body: {
          connected,
          ...(rtts.length === 0 ? {} : { rtt_ms: Math.max(...rtts) }),
          ...(answered[0]?.server_version == null ? {} : { server_version: answered[0].server_version }),
          ...(config.regions.size > 1 && region.name === config.defaultRegion ? { default: true } : {}),
          shards: Object.fromEntries(
            shards.map((shard) => [shard.name, shard.status === undefined ? { connected: false, spool: null } : shardHealth(shard.status)])
          )
        }
      }
    })
  )
  return { regions, spools }
}

const app = new Hono<{ Bindings: EdgeEnv }>()

/**
 * 200 `ok` when every region's every shard reaches its log; 200 `degraded` when a region's log is
 * down but its shards can spool (some source spools and no shard is full): a load balancer must not
 * pull an edge that still takes those events, and no other edge would reach that log either. 503
 * when a region's log is down and nothing can spool there, or the settings are broken. `log` is the
 * answer every edge gave before regions (all regions at once), kept for the checks that read it.
 */
app.get("/healthz", async (c) => {
  const loaded = edgeConfigOf(c.env)
  if (loaded._tag === "Failure")
    return c.json({ status: "unavailable", reason: describeError(loaded.failure).body.message }, 503, {
      "retry-after": String(HEALTH_RETRY_AFTER_SECONDS)
    })
  const config = loaded.success
  const { regions } = await regionsHealth(c.env, config)
  const connected = regions.every((region) => region.connected)
  const usable = regions.every((region) => region.connected || region.spooling)
  const first = regions.find((region) => region.connected)?.body
  const body = {
    status: connected ? "ok" : usable ? "degraded" : "unavailable",
    ...(connected
      ? {}
      : { reason: "the event log does not answer in every region" + (usable ? "; events of spooling sources wait in the spool" : "") }),
    log: {
      connected,
      ...(first?.rtt_ms === undefined
        ? {}
        : { rtt_ms: Math.max(...regions.flatMap((region) => (region.body.rtt_ms === undefined ? [] : [region.body.rtt_ms]))) }),
      ...(first?.server_version === undefined ? {} : { server_version: first.server_version })
    },
    regions: Object.fromEntries(regions.map((region) => [region.name, region.body]))
  }
  return usable ? c.json(body) : c.json(body, 503, { "retry-after": String(HEALTH_RETRY_AFTER_SECONDS) })
})

app.post("/v1/hooks/:source", async (c) => {
  const loaded = edgeConfigOf(c.env)
  if (loaded._tag === "Failure") return errorResponse(loaded.failure, MISCONFIGURED_RETRY_AFTER_SECONDS)
  const config = loaded.success
  const region = regionFor(config, c.req.raw.cf as RequestLocation | undefined)
  const source = c.req.param("source")
  const known = config.sources.has(source)
  const spool = config.sources.get(source)?.spool === true
  const note = { subject: outcomeSubject(source, region.explicit ? region.name : undefined), source }
  const appendToLog = (logMessages: ReadonlyArray<LogMessage>) => {
    const messages = inRegion(region, logMessages)
    const { ref, stub } = publisher(c.env, region, source, spool)
    return Effect.flatMap(
      withDeadline(
        () => stub.append(encodeLogMessages(messages), ref, spool, note),
        config.connectTimeoutMs + config.publishTimeoutMs + 500
      ),
      (outcome): Effect.Effect<ReadonlyArray<LogReceipt>, EventTooLarge | SpoolFull | SpoolRowTooLarge> => {
        /** The event at `position` of the batch, its size and the limit it broke, as the errors name them. */
        const sized = (problem: { readonly position: number; readonly bytes: number; readonly limit: number }) => ({
          index: (messages[problem.position] as LogMessage).index,
          bytes: problem.bytes,
          limitBytes: problem.limit
        })
        if (outcome.tooLarge !== null) return Effect.fail(new EventTooLarge(sized(outcome.tooLarge)))
        if (outcome.spoolFull !== null) return Effect.fail(new SpoolFull(outcome.spoolFull))
        if (outcome.rowTooLarge !== null) return Effect.fail(new SpoolRowTooLarge(sized(outcome.rowTooLarge)))
        return Effect.succeed(receiptsOf(messages, outcome))
      }
    )
  }
  const result = await Effect.runPromise(Effect.result(ingestWebhook(config, source, c.req.raw, appendToLog)))
  if (result._tag === "Success") return c.json(result.success, 202, { "ingest-trace-id": result.success.trace_id })
  const response = errorResponse(result.failure, config.retryAfterSeconds)
  // A known source's rejection for its content (4xx), for the console's counts: sent after the
  // answer, never before it. A 5xx is ours (the log down, the spool full): the shard is left alone.
  const { status, body } = describeError(result.failure)
  if (known && status < 500) {
    const { ref, stub } = publisher(c.env, region, source, spool)
    c.executionCtx.waitUntil(
      stub
        .noteOutcome(ref, note.subject, { source, status, events: 0, duplicates: 0, error: body.error, message: body.message })
        .catch(() => undefined)
    )
  }
  return response
})

app.all("/v1/hooks/:source", (c) =>
  c.json({ error: "method_not_allowed", message: `${c.req.method} is not allowed here; webhooks are delivered with POST` }, 405, {
    allow: "POST"
  })
)

app.notFound((c) =>
  c.json(
    { error: "not_found", message: `no route for ${c.req.method} ${new URL(c.req.url).pathname}; webhooks go to POST /v1/hooks/:source` },
    404
  )
)

app.onError((error, c) => {
  logEvent("error", "unhandled edge failure", { error: error instanceof Error ? (error.stack ?? error.message) : String(error) })
  return c.json({ error: "internal", message: "the edge failed on its side; retry the same request later" }, 503, { "retry-after": "10" })
})

/**
 * The cron trigger (wrangler.toml `[triggers]`, every minute): the watchdog of every region's every
 * spool. A drain re-arms itself and every request re-arms an idle one, yet an alarm has been seen
 * never to fire; this sets one again for a spool that holds events and has none, or an overdue one.
 */
const scheduled = async (_controller: ScheduledController, env: EdgeEnv): Promise<void> => {
  const loaded = edgeConfigOf(env)
  if (loaded._tag === "Failure") {
    logEvent("error", "spool watchdog skipped: the settings are invalid", { reason: loaded.failure.reason })
    return
  }
  const config = loaded.success
  const checks = [...config.regions.values()].flatMap((region) =>
    Array.from({ length: region.shards }, async (_, n) => {
      const { ref, stub } = shardOf(env, region, n)
      try {
        return await stub.watchdog(ref)
      } catch (error) {
        logEvent("error", "spool watchdog failed", {
          region: ref.region,
          shard: ref.name,
          reason: error instanceof Error ? error.message : String(error)
        })
        return undefined
      }
    })
  )
  await Promise.all(checks)
}

export default { fetch: app.fetch, scheduled } satisfies ExportedHandler<EdgeEnv>
