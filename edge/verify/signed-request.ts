import { Effect, Schema } from "effect"

/** What a verifier sees of a request: the raw bytes exactly as received. */
export interface SignedRequest {
  readonly method: string
  /** The public URL the sender used, `https://host/path?query`. */
  readonly url: string
  readonly headers: Headers
  readonly body: Uint8Array<ArrayBuffer>
}

/** How every verifier is tuned. */
export interface VerifyOptions {
  /** Accepted clock difference for timestamped schemes, both directions. */
  readonly toleranceMs: number
  /** The verifier's clock, epoch ms. */
  readonly now: number
  /** HubSpot signature versions accepted; v1 and v2 carry no timestamp and so no replay protection. */
  readonly hubspotVersions: ReadonlyArray<"v1" | "v2" | "v3">
}

/** A request the verifier refused; answered 401 with the reason. */
export class SignatureRejected extends Schema.TaggedError<SignatureRejected>()("SignatureRejected", {
  reason: Schema.String
}) {}

/** Which secret matched (its position in the source's list), for rotation metrics. */
export interface Verified {
  readonly secretIndex: number
}

/** The header's value, trimmed; refused, naming it, when it is missing or blank. */
export const requireHeader = (headers: Headers, name: string): Effect.Effect<string, SignatureRejected> => {
  const value = headers.get(name)
  return value === null || value.trim() === ""
    ? Effect.fail(new SignatureRejected({ reason: `missing ${name} header` }))
    : Effect.succeed(value.trim())
}

/** Runs `matches` for each secret; succeeds with the index of the first that matches. */
export const firstMatchingSecret = (
  secrets: ReadonlyArray<string>,
  matches: (secret: string) => Promise<boolean>,
  reason: string
): Effect.Effect<{ secretIndex: number }, SignatureRejected> =>
  Effect.flatMap(
    Effect.promise(async () => {
      let found = -1
      for (let i = 0; i < secrets.length; i++) if ((await matches(secrets[i] as string)) && found < 0) found = i
      return found
    }),
    (index) => (index < 0 ? Effect.fail(new SignatureRejected({ reason })) : Effect.succeed({ secretIndex: index }))
  )
