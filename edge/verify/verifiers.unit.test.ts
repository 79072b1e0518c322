import { Effect } from "effect"
import { describe, expect, it } from "vitest"
import { basic, bearer, signHubSignature256, signHubSpotLegacy, signHubSpotV3, signStandardWebhook } from "../../infra/local/sign.ts"
import { utf8 } from "../../platform/text.ts"
import { hubSpotV3Uri, verifyBasic, verifyBearer, verifyHubSignature256, verifyHubSpot, verifyStandardWebhook } from "./index.ts"
import type { SignedRequest, VerifyOptions } from "./signed-request.ts"

const NOW = 1_737_000_000_000
const options: VerifyOptions = { toleranceMs: 300_000, now: NOW, hubspotVersions: ["v3", "v2", "v1"] }

const request = (
  headers: Record<string, string>,
  body: string,
  url = "https://hooks.example.com/v1/hooks/hubspot",
  method = "POST"
): SignedRequest => ({
  method,
  url,
  headers: new Headers(headers),
  body: utf8(body)
})

const outcome = <A, E extends { readonly reason: string }>(effect: Effect.Effect<A, E>) =>
  Effect.runPromise(
    effect.pipe(
      Effect.map(() => "verified"),
      Effect.catch((error) => Effect.succeed(`rejected: ${error.reason}`))
    )
  )

describe("HubSpot v1 and v2, against HubSpot's published examples", () => {
  const secret = "yyyyyyyy-yyyy-yyyy-yyyy-yyyyyyyyyyyy"
  const v1Body =
    '[{"eventId":1,"subscriptionId":12345,"portalId":62515,"occurredAt":1564113600000,"subscriptionType":"contact.creation","attemptNumber":0,"objectId":123,"changeSource":"CRM","changeFlag":"NEW","appId":54321}]'

  it("accepts the documented v1 signature 232db261…17de of the documented body", async () => {
    const headers = {
      "X-HubSpot-Signature": "232db2615f3d666fe21a8ec971ac7b5402d33b9a925784df3ca654d05f4817de",
      "X-HubSpot-Signature-Version": "v1"
    }
    expect(await outcome(verifyHubSpot(request(headers, v1Body), [secret], options))).toBe("verified")
  })

  it("accepts the documented v2 signature eee2dddc…200e of a GET to https://www.example.com/webhook_uri", async () => {
    const headers = {
      "X-HubSpot-Signature": "eee2dddcc73c94d699f5e395f4b9d454a069a6855fbfa152e91e88823087200e",
      "X-HubSpot-Signature-Version": "v2"
    }
    expect(await outcome(verifyHubSpot(request(headers, "", "https://www.example.com/webhook_uri", "GET"), [secret], options))).toBe(
      "verified"
    )
  })

  it("rejects the documented v1 signature when one byte of the body changed", async () => {
    const headers = {
      "X-HubSpot-Signature": "232db2615f3d666fe21a8ec971ac7b5402d33b9a925784df3ca654d05f4817de",
      "X-HubSpot-Signature-Version": "v1"
    }
    expect(await outcome(verifyHubSpot(request(headers, v1Body.replace('"objectId":123', '"objectId":124')), [secret], options))).toMatch(
      /does not match/
    )
  })

  it("accepts the v1 and v2 signatures of HubSpot's SDK test vectors (69fc6631…, 4fe4e3a7…)", async () => {
    const body = "{'example_field':'example_value'}"
    const v1 = {
      "X-HubSpot-Signature": "69fc6631a867edd4f9e9e627fc5c1148e3fbdd8b21837b6d2b8901c1fa57f750",
      "X-HubSpot-Signature-Version": "v1"
    }
    const v2 = {
      "X-HubSpot-Signature": "4fe4e3a7d3cf09db53be39d0a58130e2aaba074ec123a9e355b876a689a1c383",
      "X-HubSpot-Signature-Version": "v2"
    }
    expect(await outcome(verifyHubSpot(request(v1, body, "https://www.example.com/webhook_uri"), [secret], options))).toBe("verified")
    expect(await outcome(verifyHubSpot(request(v2, body, "https://www.example.com/webhook_uri"), [secret], options))).toBe("verified")
  })

  it("refuses v1 and v2 where the source accepts only v3, saying why", async () => {
    const headers = signHubSpotLegacy(secret, "v1", "POST", "", v1Body)
    expect(await outcome(verifyHubSpot(request(headers, v1Body), [secret], { ...options, hubspotVersions: ["v3"] }))).toMatch(
      /carry no timestamp and are not accepted/
    )
  })
})

describe("HubSpot v3", () => {
  it("accepts the v3 signature of HubSpot's SDK test vector (HPW73RUt…), signed at 15000000 ms", async () => {
    const headers = { "X-HubSpot-Signature-v3": "HPW73RUtKmcYoEDADG0s6MmGFWUzWJKAW07r8RDgcQw=", "X-HubSpot-Request-Timestamp": "15000000" }
    const vector = request(headers, "{'example_field':'example_value'}", "https://www.example.com/webhook_uri")
    expect(await outcome(verifyHubSpot(vector, ["yyyyyyyy-yyyy-yyyy-yyyy-yyyyyyyyyyyy"], { ...options, now: 15_000_000 + 60_000 }))).toBe(
      "verified"
    )
    expect(
      await outcome(verifyHubSpot(vector, ["yyyyyyyy-yyyy-yyyy-yyyy-yyyyyyyyyyyy"], { ...options, now: 15_000_000 + 300_001 }))
    ).toMatch(/s old/)
  })

  const secret = "client-secret-1"
  const url = "https://hooks.example.com/v1/hooks/hubspot?portal=62515"
  const body =
    '[{"eventId":7,"subscriptionId":1,"portalId":62515,"occurredAt":1737000000000,"subscriptionType":"deal.creation","attemptNumber":0}]'
  const signed = (overrides: { secret?: string; timestamp?: number; body?: string; url?: string } = {}) =>
    signHubSpotV3(overrides.secret ?? secret, "POST", overrides.url ?? url, overrides.body ?? body, overrides.timestamp ?? NOW)

  it("accepts an HMAC-SHA256 of method + URI + body + millisecond timestamp", async () => {
    expect(await outcome(verifyHubSpot(request(signed(), body, url), [secret], options))).toBe("verified")
  })

  it("rejects a signature made with another secret", async () => {
    expect(await outcome(verifyHubSpot(request(signed({ secret: "wrong" }), body, url), [secret], options))).toMatch(/does not match/)
  })

  it("rejects a tampered body", async () => {
    expect(await outcome(verifyHubSpot(request(signed(), body.replace("deal.creation", "deal.deletion"), url), [secret], options))).toMatch(
      /does not match/
    )
  })

  it("rejects a timestamp older than the tolerance", async () => {
    const stale = NOW - 300_001
    expect(await outcome(verifyHubSpot(request(signed({ timestamp: stale }), body, url), [secret], options))).toMatch(
      /s old, more than the 300 s tolerance/
    )
  })

  it("rejects a timestamp further in the future than the tolerance", async () => {
    const future = NOW + 300_001
    expect(await outcome(verifyHubSpot(request(signed({ timestamp: future }), body, url), [secret], options))).toMatch(/in the future/)
  })

  it("accepts a timestamp just inside the tolerance", async () => {
    expect(await outcome(verifyHubSpot(request(signed({ timestamp: NOW - 299_000 }), body, url), [secret], options))).toBe("verified")
  })

  it("accepts a request signed with a rotated secret while both are configured", async () => {
    expect(
      await outcome(verifyHubSpot(request(signed({ secret: "client-secret-2" }), body, url), [secret, "client-secret-2"], options))
    ).toBe("verified")
  })

  it("rejects a request without the timestamp header", async () => {
    const headers: Record<string, string> = { ...signed() }
    delete headers["X-HubSpot-Request-Timestamp"]
    expect(await outcome(verifyHubSpot(request(headers, body, url), [secret], options))).toBe(
      "rejected: missing X-HubSpot-Request-Timestamp header"
    )
  })

  it("rejects a request with no HubSpot signature at all", async () => {
    expect(await outcome(verifyHubSpot(request({}, body, url), [secret], options))).toBe("rejected: missing X-HubSpot-Signature-v3 header")
  })

  it("does not fall back to v1 when the v3 signature is wrong", async () => {
    const headers = { ...signed({ secret: "wrong" }), ...signHubSpotLegacy(secret, "v1", "POST", url, body) }
    expect(await outcome(verifyHubSpot(request(headers, body, url), [secret], options))).toMatch(/X-HubSpot-Signature-v3 does not match/)
  })

  it("signs the URI with HubSpot's listed characters decoded", async () => {
    expect(hubSpotV3Uri("https://h.example/p?a=%3A%2F%3F%40%21%24%27%28%29%2A%2C%3B&b=%20%2b")).toBe(
      "https://h.example/p?a=:/?@!$'()*,;&b=%20%2b"
    )
    const encoded = "https://hooks.example.com/v1/hooks/hubspot?tag=a%3Ab"
    const headers = signHubSpotV3(secret, "POST", "https://hooks.example.com/v1/hooks/hubspot?tag=a:b", body, NOW)
    expect(await outcome(verifyHubSpot(request(headers, body, encoded), [secret], options))).toBe("verified")
  })
})

describe("Standard Webhooks v1", () => {
  const secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
  const id = "msg_p5jXN8AQM9LWM0D4loKWxJek"
  const body = '{"test": 2432232314}'
  const specNow = 1614265330 * 1000

  it("accepts the specification's example signature g0hM9SsE…1OE=", async () => {
    const headers = {
      "webhook-id": id,
      "webhook-timestamp": "1614265330",
      "webhook-signature": "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
    }
    expect(await outcome(verifyStandardWebhook(request(headers, body), [secret], { ...options, now: specNow }))).toBe("verified")
  })

  it("accepts the example among several signatures in one header, as during key rotation", async () => {
    const headers = {
      "webhook-id": id,
      "webhook-timestamp": "1614265330",
      "webhook-signature": "v1,Ceo5qEr07ixe2NLpvHk3FH9bwy/WavXrAFQ/9tdO6mc= v1a,abc v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
    }
    expect(await outcome(verifyStandardWebhook(request(headers, body), [secret], { ...options, now: specNow }))).toBe("verified")
  })

  it("accepts the svix- header names", async () => {
    const headers = { "svix-id": id, "svix-timestamp": "1614265330", "svix-signature": "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=" }
    expect(await outcome(verifyStandardWebhook(request(headers, body), [secret], { ...options, now: specNow }))).toBe("verified")
  })

  it("rejects the example with a wrong secret", async () => {
    const headers = signStandardWebhook(secret, id, NOW / 1000, body)
    expect(
      await outcome(
        verifyStandardWebhook(request(headers, body), ["whsec_" + Buffer.from("another key of 24 bytes!").toString("base64")], options)
      )
    ).toMatch(/does not match/)
  })

  it("rejects a tampered body", async () => {
    const headers = signStandardWebhook(secret, id, NOW / 1000, body)
    expect(await outcome(verifyStandardWebhook(request(headers, '{"test": 2432232315}'), [secret], options))).toMatch(/does not match/)
  })

  it("rejects stale and future timestamps", async () => {
    const stale = signStandardWebhook(secret, id, NOW / 1000 - 301, body)
    const future = signStandardWebhook(secret, id, NOW / 1000 + 301, body)
    expect(await outcome(verifyStandardWebhook(request(stale, body), [secret], options))).toMatch(/s old/)
    expect(await outcome(verifyStandardWebhook(request(future, body), [secret], options))).toMatch(/in the future/)
  })

  it("accepts a rotated secret while the old one is still configured", async () => {
    const rotated = "whsec_" + Buffer.from("a brand new 32 byte signing key!").toString("base64")
    const headers = signStandardWebhook(rotated, id, NOW / 1000, body)
    expect(await outcome(verifyStandardWebhook(request(headers, body), [secret, rotated], options))).toBe("verified")
  })

  it("names each missing header", async () => {
    const headers = signStandardWebhook(secret, id, NOW / 1000, body)
    for (const name of ["webhook-id", "webhook-timestamp", "webhook-signature"]) {
      const without: Record<string, string> = { ...headers }
      delete without[name]
      expect(await outcome(verifyStandardWebhook(request(without, body), [secret], options))).toBe(`rejected: missing ${name} header`)
    }
  })

  it("rejects a truncated signature", async () => {
    const headers = { ...signStandardWebhook(secret, id, NOW / 1000, body) }
    headers["webhook-signature"] = (headers["webhook-signature"] as string).slice(0, 11)
    expect(await outcome(verifyStandardWebhook(request(headers, body), [secret], options))).toBe(
      "rejected: webhook-signature does not match the body with any configured secret"
    )
    headers["webhook-signature"] = "v1,"
    expect(await outcome(verifyStandardWebhook(request(headers, body), [secret], options))).toBe(
      "rejected: webhook-signature does not match the body with any configured secret"
    )
  })
})

describe("X-Hub-Signature-256", () => {
  const secret = "It's a Secret to Everybody"

  it("accepts GitHub's documented example: sha256=757107ea…6c17 of 'Hello, World!'", async () => {
    const headers = { "X-Hub-Signature-256": "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17" }
    expect(await outcome(verifyHubSignature256(request(headers, "Hello, World!"), [secret]))).toBe("verified")
  })

  it("rejects a wrong secret, a tampered body and a missing header", async () => {
    const body = '{"a":1}'
    expect(await outcome(verifyHubSignature256(request(signHubSignature256("other", body), body), [secret]))).toMatch(/does not match/)
    expect(await outcome(verifyHubSignature256(request(signHubSignature256(secret, body), '{"a":2}'), [secret]))).toMatch(/does not match/)
    expect(await outcome(verifyHubSignature256(request({}, body), [secret]))).toBe("rejected: missing X-Hub-Signature-256 header")
  })

  it("accepts the second of two configured secrets", async () => {
    const body = '{"a":1}'
    expect(await outcome(verifyHubSignature256(request(signHubSignature256("next", body), body), [secret, "next"]))).toBe("verified")
  })
})

describe("Bearer and Basic", () => {
  it("accepts a configured bearer token, and a rotated one", async () => {
    expect(await outcome(verifyBearer(request(bearer("t0k3n"), "{}"), ["t0k3n"]))).toBe("verified")
    expect(await outcome(verifyBearer(request(bearer("n3w"), "{}"), ["t0k3n", "n3w"]))).toBe("verified")
  })

  it("rejects a wrong token, a missing header and the wrong scheme", async () => {
    expect(await outcome(verifyBearer(request(bearer("nope"), "{}"), ["t0k3n"]))).toMatch(/matches no configured token/)
    expect(await outcome(verifyBearer(request({}, "{}"), ["t0k3n"]))).toBe("rejected: missing Authorization header")
    expect(await outcome(verifyBearer(request(basic("a", "t0k3n"), "{}"), ["t0k3n"]))).toMatch(/must be "Bearer <credentials>"/)
  })

  it("accepts configured basic credentials and rejects others", async () => {
    expect(await outcome(verifyBasic(request(basic("aloware", "pw"), "{}"), ["aloware:pw"]))).toBe("verified")
    expect(await outcome(verifyBasic(request(basic("aloware", "pässwörd"), "{}"), ["aloware:pässwörd"]))).toBe("verified")
    expect(await outcome(verifyBasic(request(basic("aloware", "px"), "{}"), ["aloware:pw"]))).toMatch(/match no configured user/)
  })
})
