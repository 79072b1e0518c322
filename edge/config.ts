import { Effect, type Result, Schema } from "effect"
import { issuesOf } from "../contracts/issues.ts"
import {
  contractNames,
  defaultSources,
  INVALID_EVENT_POLICIES,
  type Scheme,
  SCHEME_SENDERS_RETRY,
  SCHEMES,
  type SourceDefinition
} from "../contracts/sources.ts"
import { EdgeMisconfigured } from "./errors.ts"
import { parseRegions, type Regions } from "./regions.ts"
import { SOURCE_SPOOL_SETTINGS, SPOOL_MODES, type SourceSpoolSetting, spoolsEvents } from "./spool.ts"
import { standardWebhooksKey } from "./verify/standard-webhooks.ts"

const HubSpotVersion = Schema.Literals(["v1", "v2", "v3"])

/** Source names are URL path segments and subject tokens: lower-case letters, digits, - and _. */
const SOURCE_NAME = /^[a-z0-9][a-z0-9_-]{0,62}$/

/**
 * Every key of a JSON object setting is checked by hand rather than by a refined record key, which
 * would drop a key that does not match (a secret for "HubSpot" would vanish and the source fail
 * closed with no word of why).
 */
const badSourceName = (setting: string, name: string, known: ReadonlyArray<string>): string | undefined => {
  if (SOURCE_NAME.test(name)) return undefined
  const near = known.find((candidate) => candidate === name.toLowerCase().trim())
  const hint = near === undefined ? "" : `; did you mean ${JSON.stringify(near)}?`
  return `${setting} names ${JSON.stringify(name)}, which is not a source name (lower-case letters, digits, - and _, e.g. erasure-east)${hint}`
}

/** A source in `SOURCES`: a new one names its contract and scheme; a default one may change only what it gives. */
const SourceSetting = Schema.Struct({
  contract: Schema.optionalKey(Schema.Literals(contractNames)),
  scheme: Schema.optionalKey(Schema.Literals(SCHEMES)),
  onInvalid: Schema.optionalKey(Schema.Literals(INVALID_EVENT_POLICIES)),
  hubspotVersions: Schema.optionalKey(Schema.Array(HubSpotVersion)),
  /** Whether its sender resends after a 503; a new source's default comes from its scheme. */
  retries: Schema.optionalKey(Schema.Boolean),
  /** Its events wait in the spool during a log outage (`on`) or are refused with 503 (`off`); `SPOOL` decides when absent. */
  spool: Schema.optionalKey(Schema.Literals(SOURCE_SPOOL_SETTINGS))
})

const IntFromString = (minimum: number) => Schema.FiniteFromString.check(Schema.isInt(), Schema.isGreaterThanOrEqualTo(minimum))

const WebSocketUrl = Schema.String.check(
  Schema.isPattern(/^wss?:\/\/\S+$/, { message: "Expected a ws:// or wss:// URL of the NATS websocket listener" })
)

/** A region in `REGIONS`: its leaf's websocket listener, its shard count and where its Durable Objects should run. */
const RegionSetting = Schema.Struct({
  url: WebSocketUrl,
  shards: Schema.optionalKey(Schema.Number.check(Schema.isInt(), Schema.isGreaterThanOrEqualTo(1))),
  locationHint: Schema.optionalKey(Schema.String),
  jurisdiction: Schema.optionalKey(Schema.String)
})

/** The Worker's settings (wrangler `[vars]` and secrets), all strings as Cloudflare passes them. */
const EdgeSettings = Schema.Struct({
  NATS_WS_URL: Schema.optionalKey(WebSocketUrl),
  REGIONS: Schema.optionalKey(Schema.fromJsonString(Schema.Record(Schema.String, RegionSetting))),
  REGION_ROUTES: Schema.optionalKey(Schema.fromJsonString(Schema.Record(Schema.String, Schema.String))),
  DEFAULT_REGION: Schema.optionalKey(Schema.String),
  SPOOL: Schema.optionalKey(Schema.Literals(SPOOL_MODES)),
  SPOOL_MAX_EVENTS: Schema.optionalKey(IntFromString(1)),
  SPOOL_DRAIN_BACKOFF_MS: Schema.optionalKey(IntFromString(1)),
  SPOOL_DRAIN_BACKOFF_MAX_MS: Schema.optionalKey(IntFromString(1)),
  NATS_USER: Schema.optionalKey(Schema.String),
  NATS_PASSWORD: Schema.optionalKey(Schema.String),
  WEBHOOK_SECRETS: Schema.optionalKey(Schema.fromJsonString(Schema.Record(Schema.String, Schema.Array(Schema.NonEmptyString)))),
  SOURCES: Schema.optionalKey(Schema.fromJsonString(Schema.Record(Schema.String, SourceSetting))),
  MAX_BODY_BYTES: Schema.optionalKey(IntFromString(1)),
  TIMESTAMP_TOLERANCE_SECONDS: Schema.optionalKey(IntFromString(1)),
  HUBSPOT_SIGNATURE_VERSIONS: Schema.optionalKey(Schema.String),
  CONNECT_TIMEOUT_MS: Schema.optionalKey(IntFromString(1)),
  PUBLISH_TIMEOUT_MS: Schema.optionalKey(IntFromString(1)),
  RETRY_AFTER_SECONDS: Schema.optionalKey(IntFromString(1)),
  PUBLISHER_SHARDS: Schema.optionalKey(IntFromString(1)),
  PUBLIC_BASE_URL: Schema.optionalKey(
    Schema.String.check(Schema.isPattern(/^https?:\/\/[^/\s]+$/, { message: "Expected an origin like https://hooks.example.com, no path" }))
  )
})

export interface EdgeSource extends SourceDefinition {
  readonly name: string
  readonly secrets: ReadonlyArray<string>
  readonly hubspotVersions: ReadonlyArray<"v1" | "v2" | "v3">
  /** Whether its events wait in the spool when the log does not acknowledge them (202 `spooled`) rather than get 503. */
  readonly spool: boolean
}

/** The edge spool's bounds and the drain's schedule. */
export interface SpoolConfig {
  /** Events one shard's spool holds at most; past it, spooling sources get 503 + Retry-After too. */
  readonly maxEvents: number
  /** The wait after a drain's first failure, doubling per failure up to `drainBackoffMaxMs`. */
  readonly drainBackoffMs: number
  readonly drainBackoffMaxMs: number
}

export interface EdgeConfig extends Regions {
  readonly natsUser: string
  readonly natsPassword: string | undefined
  readonly sources: ReadonlyMap<string, EdgeSource>
  readonly maxBodyBytes: number
  readonly toleranceMs: number
  readonly connectTimeoutMs: number
  readonly publishTimeoutMs: number
  readonly retryAfterSeconds: number
  readonly publicBaseUrl: string | undefined
  readonly spool: SpoolConfig
}

export const DEFAULTS = {
  maxBodyBytes: 1024 * 1024,
  toleranceSeconds: 300,
  connectTimeoutMs: 1500,
  publishTimeoutMs: 2500,
  retryAfterSeconds: 10,
  publisherShards: 4,
  spoolMaxEvents: 100_000,
  spoolDrainBackoffMs: 1000,
  spoolDrainBackoffMaxMs: 60_000,
  hubspotVersions: ["v3"] as ReadonlyArray<"v1" | "v2" | "v3">
}

const parseVersions = (value: string | undefined): Effect.Effect<ReadonlyArray<"v1" | "v2" | "v3">, EdgeMisconfigured> => {
  if (value === undefined) return Effect.succeed(DEFAULTS.hubspotVersions)
  const versions = value
    .split(",")
    .map((v) => v.trim())
    .filter((v) => v !== "")
  const bad = versions.filter((v) => v !== "v1" && v !== "v2" && v !== "v3")
  return bad.length > 0 || versions.length === 0
    ? Effect.fail(
        new EdgeMisconfigured({
          reason: `HUBSPOT_SIGNATURE_VERSIONS must list v1, v2 and/or v3 separated by commas, got ${JSON.stringify(value)}`
        })
      )
    : Effect.succeed(versions as ReadonlyArray<"v1" | "v2" | "v3">)
}

/** Settings whose values must never appear in an answer or a log line. */
const SECRET_SETTINGS = ["WEBHOOK_SECRETS", "NATS_PASSWORD"]

/** What each scheme needs of a secret, checked at load so a bad one fails closed with 503, not 401. */
const secretProblem = (scheme: Scheme, secret: string): string | undefined => {
  switch (scheme) {
    case "standard-webhooks": {
      const key = standardWebhooksKey(secret)
      return key === undefined || key.length < 16 ? "must be whsec_ followed by standard base64 of at least 16 bytes" : undefined
    }
    case "basic":
      return secret.indexOf(":") > 0 ? undefined : "must be user:password"
    case "bearer":
      return secret.length >= 16 ? undefined : "must be a token of at least 16 characters"
    case "hubspot":
    case "hub-signature-256":
      return secret.length >= 8 ? undefined : "must be at least 8 characters"
  }
}

/** Reads and checks the Worker's settings; any mistake names the setting and the accepted form, never a secret. */
export const loadEdgeConfig = (env: Record<string, unknown>): Effect.Effect<EdgeConfig, EdgeMisconfigured> =>
  Effect.gen(function* () {
    const input = Object.fromEntries(Object.entries(env).filter(([, value]) => typeof value === "string"))
    const redacted = Object.fromEntries(
      Object.entries(input).map(([name, value]) => [name, SECRET_SETTINGS.includes(name) ? "<redacted>" : value])
    )
    const settings = yield* Effect.mapError(
      Schema.decodeUnknownEffect(EdgeSettings, { errors: "all", onExcessProperty: "ignore" })(input),
      (error) =>
        new EdgeMisconfigured({
          reason: `invalid settings: ${issuesOf(error, redacted)
            .map((i) => `${i.path.replace(/^\$\./, "")}: ${i.message}`)
            .join("; ")}`
        })
    )
    const hubspotVersions = yield* parseVersions(settings.HUBSPOT_SIGNATURE_VERSIONS)
    const secrets = settings.WEBHOOK_SECRETS ?? {}
    const definitions: Record<
      string,
      SourceDefinition & { hubspotVersions?: ReadonlyArray<"v1" | "v2" | "v3">; spool?: SourceSpoolSetting }
    > = { ...defaultSources }
    const problems: Array<string> = [
      ...Object.keys(settings.SOURCES ?? {}).flatMap((name) => badSourceName("SOURCES", name, Object.keys(defaultSources)) ?? []),
      ...Object.keys(secrets).flatMap(
        (name) => badSourceName("WEBHOOK_SECRETS", name, [...Object.keys(defaultSources), ...Object.keys(settings.SOURCES ?? {})]) ?? []
      )
    ]
    for (const [name, setting] of Object.entries(settings.SOURCES ?? {})) {
      if (!SOURCE_NAME.test(name)) continue
      const base = defaultSources[name]
      const contract = setting.contract ?? base?.contract
      const scheme = setting.scheme ?? base?.scheme
      if (contract === undefined || scheme === undefined) {
        problems.push(
          `SOURCES.${name} is a new source: give its "contract" (${contractNames.join(", ")}) and "scheme" (${SCHEMES.join(", ")})`
        )
        continue
      }
      definitions[name] = {
        contract,
        scheme,
        onInvalid: setting.onInvalid ?? base?.onInvalid ?? "reject",
        retries: setting.retries ?? base?.retries ?? SCHEME_SENDERS_RETRY[scheme],
        ...(setting.hubspotVersions === undefined ? {} : { hubspotVersions: setting.hubspotVersions }),
        ...(setting.spool === undefined ? {} : { spool: setting.spool })
      }
    }
    problems.push(
      ...Object.entries(secrets).flatMap(([name, list]) => {
        if (!SOURCE_NAME.test(name)) return []
        const definition = definitions[name]
        if (definition === undefined) return [`WEBHOOK_SECRETS names ${JSON.stringify(name)}, which is not a source; declare it in SOURCES`]
        return list.flatMap((secret, index) => {
          const problem = secretProblem(definition.scheme, secret)
          return problem === undefined ? [] : [`WEBHOOK_SECRETS.${name}[${index}] (${definition.scheme}) ${problem}`]
        })
      })
    )
    const regions = parseRegions({
      natsUrl: settings.NATS_WS_URL,
      publisherShards: settings.PUBLISHER_SHARDS ?? DEFAULTS.publisherShards,
      regions: settings.REGIONS,
      routes: settings.REGION_ROUTES,
      defaultRegion: settings.DEFAULT_REGION
    })
    problems.push(...regions.problems)
    const drainBackoffMs = settings.SPOOL_DRAIN_BACKOFF_MS ?? DEFAULTS.spoolDrainBackoffMs
    const drainBackoffMaxMs = settings.SPOOL_DRAIN_BACKOFF_MAX_MS ?? Math.max(DEFAULTS.spoolDrainBackoffMaxMs, drainBackoffMs)
    if (drainBackoffMaxMs < drainBackoffMs)
      problems.push(
        `SPOOL_DRAIN_BACKOFF_MAX_MS (${drainBackoffMaxMs}) is below SPOOL_DRAIN_BACKOFF_MS (${drainBackoffMs}); the cap must be at least the base`
      )
    const spoolMode = settings.SPOOL ?? "auto"
    if (problems.length > 0) return yield* new EdgeMisconfigured({ reason: `invalid settings: ${problems.join("; ")}` })
    const sources = new Map<string, EdgeSource>(
      Object.entries(definitions).map(([name, definition]) => [
        name,
        {
          name,
          contract: definition.contract,
          scheme: definition.scheme,
          onInvalid: definition.onInvalid,
          retries: definition.retries,
          secrets: secrets[name] ?? [],
          hubspotVersions: definition.hubspotVersions ?? hubspotVersions,
          spool: spoolsEvents(spoolMode, definition.spool, definition.retries)
        }
      ])
    )
    return {
      ...regions.regions,
      natsUser: settings.NATS_USER ?? "edge",
      natsPassword: settings.NATS_PASSWORD,
      sources,
      maxBodyBytes: settings.MAX_BODY_BYTES ?? DEFAULTS.maxBodyBytes,
      toleranceMs: (settings.TIMESTAMP_TOLERANCE_SECONDS ?? DEFAULTS.toleranceSeconds) * 1000,
      connectTimeoutMs: settings.CONNECT_TIMEOUT_MS ?? DEFAULTS.connectTimeoutMs,
      publishTimeoutMs: settings.PUBLISH_TIMEOUT_MS ?? DEFAULTS.publishTimeoutMs,
      retryAfterSeconds: settings.RETRY_AFTER_SECONDS ?? DEFAULTS.retryAfterSeconds,
      publicBaseUrl: settings.PUBLIC_BASE_URL,
      spool: { maxEvents: settings.SPOOL_MAX_EVENTS ?? DEFAULTS.spoolMaxEvents, drainBackoffMs, drainBackoffMaxMs }
    }
  })

const configs = new WeakMap<object, Result.Result<EdgeConfig, EdgeMisconfigured>>()

/**
 * The settings of a binding set, checked once per isolate rather than on every request; the outcome,
 * good or bad, is kept. The Worker and its Durable Objects (whose alarms have no caller to pass them)
 * read the same bindings.
 */
export const edgeConfigOf = (env: object): Result.Result<EdgeConfig, EdgeMisconfigured> => {
  let config = configs.get(env)
  if (config === undefined) {
    config = Effect.runSync(Effect.result(loadEdgeConfig(env as Record<string, unknown>)))
    configs.set(env, config)
  }
  return config
}
