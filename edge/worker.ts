import { Effect, type Result } from "effect"
import { Hono } from "hono"
import { logEvent } from "../platform/logger.ts"
import { type EdgeConfig, loadEdgeConfig } from "./config.ts"
import { describeError, type EdgeError, EventTooLarge } from "./errors.ts"
import { ingestWebhook, withDeadline } from "./ingest.ts"
import { encodeLogMessages, type LogMessage } from "./log-message.ts"
import { type ConnectOptions, type EdgeEnv, receiptsOf } from "./log-publisher.ts"

export { LogPublisher } from "./log-publisher.ts"

const configs = new WeakMap<object, Result.Result<EdgeConfig, EdgeError>>()

/** Settings are checked once per isolate and binding set, not on every request; the outcome, good or bad, is kept. */
const configOf = (env: EdgeEnv): Result.Result<EdgeConfig, EdgeError> => {
  let config = configs.get(env)
  if (config === undefined) {
    config = Effect.runSync(Effect.result(loadEdgeConfig(env)))
    configs.set(env, config)
  }
  return config
}

const connectOptions = (config: EdgeConfig): ConnectOptions => ({
  url: config.natsUrl,
  user: config.natsUser,
  password: config.natsPassword,
  connectTimeoutMs: config.connectTimeoutMs
})

const shardIds = new WeakMap<object, ReadonlyArray<DurableObjectId>>()

/** A publisher shard: one Durable Object, one NATS connection, one thread. Its ids are derived once per isolate. */
const publisher = (env: EdgeEnv, config: EdgeConfig) => {
  let ids = shardIds.get(env.LOG_PUBLISHER)
  if (ids === undefined || ids.length !== config.publisherShards) {
    ids = Array.from({ length: config.publisherShards }, (_, shard) => env.LOG_PUBLISHER.idFromName(`publisher-${shard}`))
    shardIds.set(env.LOG_PUBLISHER, ids)
  }
  return env.LOG_PUBLISHER.get(ids[Math.floor(Math.random() * ids.length)] as DurableObjectId)
}

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

const app = new Hono<{ Bindings: EdgeEnv }>()

app.get("/healthz", async (c) => {
  const program = Effect.gen(function* () {
    const config = yield* Effect.fromResult(configOf(c.env))
    const log = yield* withDeadline(() => publisher(c.env, config).ping(connectOptions(config)), config.connectTimeoutMs + 500)
    return { status: "ok", log: { connected: true, rtt_ms: log.rttMs, server_version: log.server } }
  })
  const exit = await Effect.runPromise(Effect.result(program))
  return exit._tag === "Success"
    ? c.json(exit.success)
    : c.json({ status: "unavailable", reason: describeError(exit.failure).body.message }, 503, {
        "retry-after": String(HEALTH_RETRY_AFTER_SECONDS)
      })
})

app.post("/v1/hooks/:source", async (c) => {
  const loaded = configOf(c.env)
  if (loaded._tag === "Failure") return errorResponse(loaded.failure, MISCONFIGURED_RETRY_AFTER_SECONDS)
  const config = loaded.success
  const appendToLog = (messages: ReadonlyArray<LogMessage>) =>
    Effect.flatMap(
      withDeadline(
        () =>
          publisher(c.env, config).append(encodeLogMessages(messages), {
            ...connectOptions(config),
            publishTimeoutMs: config.publishTimeoutMs
          }),
        config.connectTimeoutMs + config.publishTimeoutMs + 500
      ),
      (outcome) =>
        outcome.tooLarge === null
          ? Effect.succeed(receiptsOf(messages, outcome))
          : Effect.fail(
              new EventTooLarge({
                index: (messages[outcome.tooLarge.position] as LogMessage).index,
                bytes: outcome.tooLarge.bytes,
                limitBytes: outcome.tooLarge.limit
              })
            )
    )
  const result = await Effect.runPromise(Effect.result(ingestWebhook(config, c.req.param("source"), c.req.raw, appendToLog)))
  return result._tag === "Success"
    ? c.json(result.success, 202, { "ingest-trace-id": result.success.trace_id })
    : errorResponse(result.failure, config.retryAfterSeconds)
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

export default app
