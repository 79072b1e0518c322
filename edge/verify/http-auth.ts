import { Effect } from "effect"
import { fromBase64, secretsEqual } from "./crypto.ts"
import { firstMatchingSecret, requireHeader, SignatureRejected, type SignedRequest, type Verified } from "./signed-request.ts"

const credential = (request: SignedRequest, kind: "Bearer" | "Basic"): Effect.Effect<string, SignatureRejected> =>
  Effect.flatMap(requireHeader(request.headers, "Authorization"), (value) => {
    const [scheme, token, ...rest] = value.split(" ")
    return scheme?.toLowerCase() === kind.toLowerCase() && token !== undefined && token !== "" && rest.length === 0
      ? Effect.succeed(token)
      : Effect.fail(new SignatureRejected({ reason: `Authorization must be "${kind} <credentials>"` }))
  })

/** `Authorization: Bearer <token>`, for senders with no signature scheme (Aloware). */
export const verifyBearer = (request: SignedRequest, secrets: ReadonlyArray<string>): Effect.Effect<Verified, SignatureRejected> =>
  Effect.flatMap(credential(request, "Bearer"), (token) =>
    firstMatchingSecret(secrets, (secret) => secretsEqual(token, secret), "the bearer token matches no configured token")
  )

/** `Authorization: Basic base64(user:password)`; each secret is `user:password`. */
export const verifyBasic = (request: SignedRequest, secrets: ReadonlyArray<string>): Effect.Effect<Verified, SignatureRejected> =>
  Effect.flatMap(credential(request, "Basic"), (token) => {
    const bytes = fromBase64(token)
    let decoded: string
    try {
      if (bytes === undefined) throw new Error("not base64")
      decoded = new TextDecoder("utf-8", { fatal: true, ignoreBOM: false }).decode(bytes)
    } catch {
      return Effect.fail(new SignatureRejected({ reason: "Authorization Basic credentials are not base64 of UTF-8 user:password" }))
    }
    return firstMatchingSecret(secrets, (secret) => secretsEqual(decoded, secret), "the basic credentials match no configured user")
  })
