import { Effect } from "effect"
import { fromBase64, hmacSha256, timingSafeEqual } from "./crypto.ts"
import { concatBytes, utf8 } from "../../platform/text.ts"
import { firstMatchingSecret, SignatureRejected, type SignedRequest, type Verified, type VerifyOptions } from "./signed-request.ts"
import { checkTimestamp } from "./timestamp.ts"

/** Reads a Standard Webhooks header, also under its `svix-` name. */
const header = (headers: Headers, name: "id" | "timestamp" | "signature"): string | undefined =>
  (headers.get(`webhook-${name}`) ?? headers.get(`svix-${name}`))?.trim() || undefined

/** A `whsec_<base64>` secret as HMAC key bytes. */
export const standardWebhooksKey = (secret: string): Uint8Array<ArrayBuffer> | undefined =>
  fromBase64(secret.startsWith("whsec_") ? secret.slice(6) : secret)

/**
 * Standard Webhooks v1: base64 HMAC-SHA256 of `${webhook-id}.${webhook-timestamp}.${body}`,
 * keyed with the base64-decoded `whsec_` secret; `webhook-signature` is a space-separated list
 * of `v1,<sig>` (several during key rotation); the timestamp is epoch seconds.
 */
export const verifyStandardWebhook = (
  request: SignedRequest,
  secrets: ReadonlyArray<string>,
  options: VerifyOptions
): Effect.Effect<Verified, SignatureRejected> =>
  Effect.gen(function* () {
    const id = header(request.headers, "id")
    const timestamp = header(request.headers, "timestamp")
    const signature = header(request.headers, "signature")
    if (id === undefined) return yield* new SignatureRejected({ reason: "missing webhook-id header" })
    if (timestamp === undefined) return yield* new SignatureRejected({ reason: "missing webhook-timestamp header" })
    if (signature === undefined) return yield* new SignatureRejected({ reason: "missing webhook-signature header" })
    if (id.includes(".")) return yield* new SignatureRejected({ reason: "webhook-id must not contain '.'" })
    if (!/^\d{1,12}$/.test(timestamp))
      return yield* new SignatureRejected({
        reason: `webhook-timestamp must be epoch seconds, got ${JSON.stringify(timestamp.slice(0, 40))}`
      })
    yield* checkTimestamp("webhook-timestamp", Number(timestamp) * 1000, options.now, options.toleranceMs)
    const given = signature
      .split(" ")
      .filter((entry) => entry.startsWith("v1,"))
      .flatMap((entry) => {
        const bytes = fromBase64(entry.slice(3))
        return bytes === undefined ? [] : [bytes]
      })
    if (given.length === 0) return yield* new SignatureRejected({ reason: "webhook-signature has no v1 signature" })
    const signed = concatBytes(utf8(`${id}.${timestamp}.`), request.body)
    return yield* firstMatchingSecret(
      secrets,
      async (secret) => {
        const key = standardWebhooksKey(secret)
        if (key === undefined) return false
        const expected = await hmacSha256(key, signed)
        return given.some((candidate) => timingSafeEqual(expected, candidate))
      },
      "webhook-signature does not match the body with any configured secret"
    )
  })
