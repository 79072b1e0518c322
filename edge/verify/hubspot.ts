import { Effect } from "effect"
import { fromBase64, fromHex, hmacSha256, sha256, timingSafeEqual } from "./crypto.ts"
import { concatBytes, utf8 } from "../../platform/text.ts"
import {
  firstMatchingSecret,
  requireHeader,
  SignatureRejected,
  type SignedRequest,
  type Verified,
  type VerifyOptions
} from "./signed-request.ts"
import { checkTimestamp } from "./timestamp.ts"

/** Characters HubSpot decodes in the request URI before signing v3. */
const V3_DECODED: Readonly<Record<string, string>> = {
  "%3A": ":",
  "%2F": "/",
  "%3F": "?",
  "%40": "@",
  "%21": "!",
  "%24": "$",
  "%27": "'",
  "%28": "(",
  "%29": ")",
  "%2A": "*",
  "%2C": ",",
  "%3B": ";"
}

/** The request URI as HubSpot signs it for v3. */
export const hubSpotV3Uri = (url: string): string => url.replace(/%[0-9A-Fa-f]{2}/g, (escape) => V3_DECODED[escape.toUpperCase()] ?? escape)

/**
 * HubSpot v3: base64 HMAC-SHA256, keyed with the app's client secret, of
 * `method + uri + body + timestamp`; `X-HubSpot-Request-Timestamp` is epoch milliseconds.
 */
export const verifyHubSpotV3 = (
  request: SignedRequest,
  secrets: ReadonlyArray<string>,
  options: VerifyOptions
): Effect.Effect<Verified, SignatureRejected> =>
  Effect.gen(function* () {
    const signature = yield* requireHeader(request.headers, "X-HubSpot-Signature-v3")
    const timestamp = yield* requireHeader(request.headers, "X-HubSpot-Request-Timestamp")
    if (!/^\d{1,16}$/.test(timestamp))
      return yield* new SignatureRejected({
        reason: `X-HubSpot-Request-Timestamp must be epoch milliseconds, got ${JSON.stringify(timestamp.slice(0, 40))}`
      })
    yield* checkTimestamp("X-HubSpot-Request-Timestamp", Number(timestamp), options.now, options.toleranceMs)
    const given = fromBase64(signature)
    if (given === undefined) return yield* new SignatureRejected({ reason: "X-HubSpot-Signature-v3 is not base64" })
    const signed = concatBytes(utf8(`${request.method}${hubSpotV3Uri(request.url)}`), request.body, utf8(timestamp))
    return yield* firstMatchingSecret(
      secrets,
      async (secret) => timingSafeEqual(await hmacSha256(utf8(secret), signed), given),
      "X-HubSpot-Signature-v3 does not match the body with any configured client secret"
    )
  })

/**
 * HubSpot v1 (`clientSecret + body`) and v2 (`clientSecret + method + uri + body`): hex SHA-256
 * in `X-HubSpot-Signature`, the version in `X-HubSpot-Signature-Version`. No timestamp.
 */
export const verifyHubSpotLegacy = (
  request: SignedRequest,
  secrets: ReadonlyArray<string>,
  version: "v1" | "v2"
): Effect.Effect<Verified, SignatureRejected> =>
  Effect.gen(function* () {
    const signature = yield* requireHeader(request.headers, "X-HubSpot-Signature")
    const given = fromHex(signature)
    if (given === undefined) return yield* new SignatureRejected({ reason: "X-HubSpot-Signature is not hex" })
    const prefix = version === "v1" ? "" : `${request.method}${request.url}`
    return yield* firstMatchingSecret(
      secrets,
      async (secret) => timingSafeEqual(await sha256(concatBytes(utf8(`${secret}${prefix}`), request.body)), given),
      `X-HubSpot-Signature (${version}) does not match the body with any configured client secret`
    )
  })

/**
 * Verifies whichever HubSpot signature the request carries, preferring v3. A request that
 * carries v3 is judged by v3 alone; v1/v2 are accepted only where the source allows them.
 */
export const verifyHubSpot = (
  request: SignedRequest,
  secrets: ReadonlyArray<string>,
  options: VerifyOptions
): Effect.Effect<Verified, SignatureRejected> => {
  if (request.headers.has("X-HubSpot-Signature-v3")) {
    return options.hubspotVersions.includes("v3")
      ? verifyHubSpotV3(request, secrets, options)
      : Effect.fail(new SignatureRejected({ reason: "HubSpot v3 signatures are not enabled for this source" }))
  }
  const version = request.headers.get("X-HubSpot-Signature-Version")?.trim()
  if (version === "v1" || version === "v2") {
    return options.hubspotVersions.includes(version)
      ? verifyHubSpotLegacy(request, secrets, version)
      : Effect.fail(
          new SignatureRejected({
            reason: `HubSpot ${version} signatures carry no timestamp and are not accepted by this source; send X-HubSpot-Signature-v3`
          })
        )
  }
  return Effect.fail(new SignatureRejected({ reason: "missing X-HubSpot-Signature-v3 header" }))
}
