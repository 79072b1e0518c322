import { Effect } from "effect"
import { describe, expect, it } from "vitest"
import { loadEdgeConfig } from "./config.ts"
import { describeError, EdgeMisconfigured } from "./errors.ts"
import { findSource } from "./ingest.ts"

const base = { NATS_WS_URL: "ws://127.0.0.1:4223", WEBHOOK_SECRETS: JSON.stringify({ hubspot: ["hubspot-client-secret"] }) }

const failure = (env: Record<string, unknown>) =>
  Effect.runPromise(
    loadEdgeConfig(env).pipe(
      Effect.map(() => "loaded"),
      Effect.catch((error) => Effect.succeed(error.reason))
    )
  )

describe("the edge's settings", () => {
  it("apply the documented defaults", async () => {
    const config = await Effect.runPromise(loadEdgeConfig(base))
    expect(config).toMatchObject({ maxBodyBytes: 1_048_576, toleranceMs: 300_000, natsUser: "edge", retryAfterSeconds: 10 })
    expect([...config.sources.keys()].sort()).toEqual(["aloware", "erasure", "hubspot", "oee", "pos"])
    expect(config.sources.get("hubspot")?.hubspotVersions).toEqual(["v3"])
  })

  it("name the setting, the value and the accepted form when one is wrong", async () => {
    expect(await failure({ ...base, MAX_BODY_BYTES: "lots" })).toMatch(/MAX_BODY_BYTES: .*got "lots"/)
    expect(await failure({ ...base, NATS_WS_URL: "nats://x:4222" })).toMatch(/NATS_WS_URL: Expected a ws:\/\/ or wss:\/\/ URL/)
    expect(await failure({ ...base, WEBHOOK_SECRETS: "{hubspot" })).toMatch(/WEBHOOK_SECRETS/)
    expect(await failure({ ...base, HUBSPOT_SIGNATURE_VERSIONS: "v4" })).toMatch(/HUBSPOT_SIGNATURE_VERSIONS must list v1, v2 and\/or v3/)
    expect(await failure({ ...base, SOURCES: JSON.stringify({ east: { contract: "warehouse", scheme: "md5" } }) })).toMatch(/SOURCES/)
  })

  it("never repeat a secret in the error, even when its JSON is broken", async () => {
    const reason = await failure({ ...base, WEBHOOK_SECRETS: '{"hubspot":["hs-client-secret-abcdef0123"', NATS_PASSWORD: "" })
    expect(reason).toMatch(/WEBHOOK_SECRETS/)
    expect(reason).not.toMatch(/abcdef0123/)
  })

  it("check each secret against its source's scheme", async () => {
    const secrets = (value: Record<string, ReadonlyArray<string>>) => failure({ ...base, WEBHOOK_SECRETS: JSON.stringify(value) })
    expect(await secrets({ erasure: ["whsec_not-standard-base64_"] })).toMatch(
      /WEBHOOK_SECRETS.erasure\[0\] \(standard-webhooks\) must be whsec_ followed by standard base64/
    )
    expect(await secrets({ erasure: ["whsec_"] })).toMatch(/at least 16 bytes/)
    expect(await secrets({ aloware: ["short"] })).toMatch(
      /WEBHOOK_SECRETS.aloware\[0\] \(bearer\) must be a token of at least 16 characters/
    )
    expect(await secrets({ nosuch: ["a-long-enough-secret"] })).toMatch(/names "nosuch", which is not a source; declare it in SOURCES/)
    expect(await secrets({ erasure: ["whsec_" + Buffer.from("sixteen byte key").toString("base64")] })).toBe("loaded")
  })

  it("are answered 503 with Retry-After when wrong, so senders retry once an operator fixed them, telling the caller nothing of the internals", () => {
    const described = describeError(new EdgeMisconfigured({ reason: 'NATS_WS_URL: got "nats://10.0.0.7:4222"' }))
    expect(described).toMatchObject({
      status: 503,
      retryable: true,
      body: { error: "edge_misconfigured" },
      detail: 'NATS_WS_URL: got "nats://10.0.0.7:4222"'
    })
    expect(JSON.stringify(described.body)).not.toMatch(/10\.0\.0\.7|NATS_WS_URL/)
  })

  it("refuse a secret for a name that is not a source, naming the key, rather than dropping it silently", async () => {
    expect(await failure({ ...base, WEBHOOK_SECRETS: JSON.stringify({ HubSpot: ["hubspot-client-secret"] }) })).toMatch(
      /WEBHOOK_SECRETS names "HubSpot", which is not a source name .*; did you mean "hubspot"\?/
    )
    expect(
      await failure({ ...base, SOURCES: JSON.stringify({ "Erasure East": { contract: "warehouse", scheme: "hub-signature-256" } }) })
    ).toMatch(/SOURCES names "Erasure East"/)
  })

  it("quarantine invalid events for senders that never retry a 4xx and refuse them whole for our own, each changeable per source", async () => {
    const config = await Effect.runPromise(
      loadEdgeConfig({ ...base, SOURCES: JSON.stringify({ erasure: { onInvalid: "quarantine" }, hubspot: { onInvalid: "reject" } }) })
    )
    expect(Object.fromEntries([...config.sources.values()].map((source) => [source.name, source.onInvalid]))).toEqual({
      hubspot: "reject",
      aloware: "quarantine",
      erasure: "quarantine",
      oee: "reject",
      pos: "reject"
    })
    expect(config.sources.get("erasure")).toMatchObject({ contract: "warehouse", scheme: "standard-webhooks" })
    expect(await failure({ ...base, SOURCES: JSON.stringify({ east: { onInvalid: "quarantine" } }) })).toMatch(
      /SOURCES.east is a new source: give its "contract"/
    )
    expect(await failure({ ...base, SOURCES: JSON.stringify({ erasure: { onInvalid: "keep" } }) })).toMatch(/SOURCES/)
  })

  it("add operator-declared sources beside the defaults", async () => {
    const config = await Effect.runPromise(
      loadEdgeConfig({ ...base, SOURCES: JSON.stringify({ "erasure-east": { contract: "warehouse", scheme: "hub-signature-256" } }) })
    )
    expect(config.sources.get("erasure-east")).toMatchObject({ contract: "warehouse", scheme: "hub-signature-256", secrets: [] })
  })

  it("fail closed, retryably, for a source that has no secret", async () => {
    const config = await Effect.runPromise(loadEdgeConfig(base))
    const result = await Effect.runPromise(Effect.result(findSource(config, "aloware")))
    expect(result._tag === "Failure" && result.failure._tag).toBe("EdgeMisconfigured")
    const unknown = await Effect.runPromise(Effect.result(findSource(config, "nosuch")))
    expect(unknown._tag === "Failure" && unknown.failure._tag).toBe("UnknownSource")
  })

  it("spool the sources whose senders do not retry by default, and follow SPOOL and each source's own setting", async () => {
    const spooling = async (env: Record<string, unknown>) =>
      Object.fromEntries([...(await Effect.runPromise(loadEdgeConfig({ ...base, ...env }))).sources.values()].map((s) => [s.name, s.spool]))
    expect(await spooling({})).toEqual({ hubspot: false, aloware: true, erasure: false, oee: false, pos: false })
    expect(await spooling({ SPOOL: "off" })).toMatchObject({ aloware: false })
    expect(await spooling({ SPOOL: "on" })).toMatchObject({ hubspot: true, erasure: true })
    expect(await spooling({ SPOOL: "off", SOURCES: JSON.stringify({ aloware: { spool: "on" } }) })).toMatchObject({ aloware: true })
    // A new GitHub-style source does not retry: it spools unless told otherwise; a Standard Webhooks one retries.
    expect(
      await spooling({
        SOURCES: JSON.stringify({
          east: { contract: "warehouse", scheme: "hub-signature-256" },
          west: { contract: "warehouse", scheme: "standard-webhooks" },
          north: { contract: "warehouse", scheme: "hub-signature-256", retries: true }
        })
      })
    ).toMatchObject({ east: true, west: false, north: false })
    expect(await failure({ ...base, SPOOL: "sometimes" })).toMatch(/SPOOL/)
    expect(await failure({ ...base, SOURCES: JSON.stringify({ aloware: { spool: "yes" } }) })).toMatch(/SOURCES/)
  })

  it("apply the spool's documented defaults and name a cap below the base", async () => {
    const config = await Effect.runPromise(loadEdgeConfig(base))
    expect(config.spool).toEqual({ maxEvents: 100_000, drainBackoffMs: 1000, drainBackoffMaxMs: 60_000 })
    expect(await failure({ ...base, SPOOL_MAX_EVENTS: "0" })).toMatch(/SPOOL_MAX_EVENTS/)
    expect(await failure({ ...base, SPOOL_DRAIN_BACKOFF_MS: "500", SPOOL_DRAIN_BACKOFF_MAX_MS: "100" })).toMatch(
      /SPOOL_DRAIN_BACKOFF_MAX_MS \(100\) is below SPOOL_DRAIN_BACKOFF_MS \(500\)/
    )
  })

  it("read REGIONS, REGION_ROUTES and DEFAULT_REGION, naming every mistake and never a secret", async () => {
    const regions = JSON.stringify({
      eu: { url: "wss://nats-eu.example.com", shards: 2, locationHint: "weur" },
      us: { url: "wss://nats-us.example.com" }
    })
    const { NATS_WS_URL: _url, ...withoutUrl } = base
    const config = await Effect.runPromise(
      loadEdgeConfig({ ...withoutUrl, REGIONS: regions, REGION_ROUTES: JSON.stringify({ "continent:EU": "eu" }), DEFAULT_REGION: "us" })
    )
    expect([...config.regions.keys()]).toEqual(["eu", "us"])
    expect(config.defaultRegion).toBe("us")
    expect(config.regions.get("us")).toMatchObject({ shards: 4, explicit: true })
    expect(await failure({ ...withoutUrl })).toMatch(/NATS_WS_URL is required unless REGIONS/)
    expect(await failure({ ...base, REGIONS: JSON.stringify({ eu: { url: "nats://x:4222" } }) })).toMatch(/REGIONS/)
    expect(await failure({ ...base, REGIONS: JSON.stringify({ eu: { url: "wss://x", shards: 0 } }) })).toMatch(/REGIONS/)
    const reason = await failure({
      ...base,
      REGIONS: regions,
      REGION_ROUTES: JSON.stringify({ "colo:SIN": "apac" }),
      NATS_PASSWORD: "nats-password-abcdef0123"
    })
    expect(reason).toMatch(/REGION_ROUTES\.colo:SIN names region "apac"/)
    expect(reason).toMatch(/DEFAULT_REGION is required/)
    expect(reason).not.toMatch(/abcdef0123/)
  })
})
