import { Effect } from "effect"
import { fromHex, hmacSha256, timingSafeEqual } from "./crypto.ts"
import { utf8 } from "../../platform/text.ts"
import { firstMatchingSecret, requireHeader, SignatureRejected, type SignedRequest, type Verified } from "./signed-request.ts"

/**
 * GitHub-style `X-Hub-Signature-256: sha256=<hex HMAC-SHA256 of the body>`. The scheme has no
 * timestamp, so a captured request can be replayed: inside the stream's duplicate window JetStream
 * drops it by message id, later the consumers' durable dedupe keys do. Prefer Standard Webhooks.
 */
export const verifyHubSignature256 = (request: SignedRequest, secrets: ReadonlyArray<string>): Effect.Effect<Verified, SignatureRejected> =>
  Effect.gen(function* () {
    const value = yield* requireHeader(request.headers, "X-Hub-Signature-256")
    if (!value.startsWith("sha256=")) return yield* new SignatureRejected({ reason: "X-Hub-Signature-256 must start with sha256=" })
    const given = fromHex(value.slice(7))
    if (given === undefined) return yield* new SignatureRejected({ reason: "X-Hub-Signature-256 is not hex" })
    return yield* firstMatchingSecret(
      secrets,
      async (secret) => timingSafeEqual(await hmacSha256(utf8(secret), request.body), given),
      "X-Hub-Signature-256 does not match the body with any configured secret"
    )
  })
