import { Effect, Schema } from "effect"
import { issuesOf } from "../contracts/issues.ts"
import { contractNames, defaultSources, SCHEMES, type SourceDefinition } from "../contracts/sources.ts"
import { EdgeMisconfigured } from "./errors.ts"

const HubSpotVersion = Schema.Literals(["v1", "v2", "v3"])

const SourceName = Schema.String.check(
  Schema.isPattern(/^[a-z0-9][a-z0-9_-]{0,62}$/, { message: "Expected a source name of lower-case letters, digits, - and _, e.g. erasure-east" })
)

const SourceSetting = Schema.Struct({
  contract: Schema.Literals(contractNames),
  scheme: Schema.Literals(SCHEMES),
  hubspotVersions: Schema.optionalKey(Schema.Array(HubSpotVersion))
})

const IntFromString = (minimum: number) => Schema.FiniteFromString.check(Schema.isInt(), Schema.isGreaterThanOrEqualTo(minimum))

/** The Worker's settings (wrangler `[vars]` and secrets), all strings as Cloudflare passes them. */
const EdgeSettings = Schema.Struct({
  NATS_WS_URL: Schema.String.check(Schema.isPattern(/^wss?:\/\/\S+$/, { message: "Expected a ws:// or wss:// URL of the NATS websocket listener" })),
  NATS_USER: Schema.optionalKey(Schema.String),
  NATS_PASSWORD: Schema.optionalKey(Schema.String),
  WEBHOOK_SECRETS: Schema.optionalKey(Schema.fromJsonString(Schema.Record(SourceName, Schema.Array(Schema.NonEmptyString)))),
  SOURCES: Schema.optionalKey(Schema.fromJsonString(Schema.Record(SourceName, SourceSetting))),
  MAX_BODY_BYTES: Schema.optionalKey(IntFromString(1)),
  TIMESTAMP_TOLERANCE_SECONDS: Schema.optionalKey(IntFromString(1)),
  HUBSPOT_SIGNATURE_VERSIONS: Schema.optionalKey(Schema.String),
  CONNECT_TIMEOUT_MS: Schema.optionalKey(IntFromString(1)),
  PUBLISH_TIMEOUT_MS: Schema.optionalKey(IntFromString(1)),
  RETRY_AFTER_SECONDS: Schema.optionalKey(IntFromString(1)),
  PUBLISHER_SHARDS: Schema.optionalKey(IntFromString(1)),
  PUBLIC_BASE_URL: Schema.optionalKey(Schema.String.check(Schema.isPattern(/^https?:\/\/[^/\s]+$/, { message: "Expected an origin like https://hooks.example.com, no path" })))
})

export interface EdgeSource extends SourceDefinition {
  readonly name: string
  readonly secrets: ReadonlyArray<string>
  readonly hubspotVersions: ReadonlyArray<"v1" | "v2" | "v3">
}

export interface EdgeConfig {
  readonly natsUrl: string
  readonly natsUser: string
  readonly natsPassword: string | undefined
  readonly sources: ReadonlyMap<string, EdgeSource>
  readonly maxBodyBytes: number
  readonly toleranceMs: number
  readonly connectTimeoutMs: number
  readonly publishTimeoutMs: number
  readonly retryAfterSeconds: number
  readonly publisherShards: number
  readonly publicBaseUrl: string | undefined
}

export const DEFAULTS = {
  maxBodyBytes: 1024 * 1024,
  toleranceSeconds: 300,
  connectTimeoutMs: 1500,
  publishTimeoutMs: 2500,
  retryAfterSeconds: 10,
  publisherShards: 4,
  hubspotVersions: ["v3"] as ReadonlyArray<"v1" | "v2" | "v3">
}

const parseVersions = (value: string | undefined): Effect.Effect<ReadonlyArray<"v1" | "v2" | "v3">, EdgeMisconfigured> => {
  if (value === undefined) return Effect.succeed(DEFAULTS.hubspotVersions)
  const versions = value.split(",").map((v) => v.trim()).filter((v) => v !== "")
  const bad = versions.filter((v) => v !== "v1" && v !== "v2" && v !== "v3")
  return bad.length > 0 || versions.length === 0
    ? Effect.fail(new EdgeMisconfigured({ reason: `HUBSPOT_SIGNATURE_VERSIONS must list v1, v2 and/or v3 separated by commas, got ${JSON.stringify(value)}` }))
    : Effect.succeed(versions as ReadonlyArray<"v1" | "v2" | "v3">)
}

/** Reads and checks the Worker's settings; any mistake names the setting and the accepted form. */
export const loadEdgeConfig = (env: Record<string, unknown>): Effect.Effect<EdgeConfig, EdgeMisconfigured> =>
  Effect.gen(function* () {
    const input = Object.fromEntries(Object.entries(env).filter(([, value]) => typeof value === "string"))
    const settings = yield* Effect.mapError(
      Schema.decodeUnknownEffect(EdgeSettings, { errors: "all", onExcessProperty: "ignore" })(input),
      (error) => new EdgeMisconfigured({ reason: `invalid settings: ${issuesOf(error, input).map((i) => `${i.path.replace(/^\$\./, "")}: ${i.message}`).join("; ")}` })
    )
    const hubspotVersions = yield* parseVersions(settings.HUBSPOT_SIGNATURE_VERSIONS)
    const secrets = settings.WEBHOOK_SECRETS ?? {}
    const definitions = { ...defaultSources, ...(settings.SOURCES ?? {}) }
    const sources = new Map<string, EdgeSource>(
      Object.entries(definitions).map(([name, definition]) => [
        name,
        {
          name,
          contract: definition.contract,
          scheme: definition.scheme,
          secrets: secrets[name] ?? [],
          hubspotVersions: ("hubspotVersions" in definition ? definition.hubspotVersions : undefined) ?? hubspotVersions
        }
      ])
    )
    return {
      natsUrl: settings.NATS_WS_URL,
      natsUser: settings.NATS_USER ?? "edge",
      natsPassword: settings.NATS_PASSWORD,
      sources,
      maxBodyBytes: settings.MAX_BODY_BYTES ?? DEFAULTS.maxBodyBytes,
      toleranceMs: (settings.TIMESTAMP_TOLERANCE_SECONDS ?? DEFAULTS.toleranceSeconds) * 1000,
      connectTimeoutMs: settings.CONNECT_TIMEOUT_MS ?? DEFAULTS.connectTimeoutMs,
      publishTimeoutMs: settings.PUBLISH_TIMEOUT_MS ?? DEFAULTS.publishTimeoutMs,
      retryAfterSeconds: settings.RETRY_AFTER_SECONDS ?? DEFAULTS.retryAfterSeconds,
      publisherShards: settings.PUBLISHER_SHARDS ?? DEFAULTS.publisherShards,
      publicBaseUrl: settings.PUBLIC_BASE_URL
    }
  })
