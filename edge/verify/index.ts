import type { Effect } from "effect"
import type { Scheme } from "../../contracts/sources.ts"
import { verifyBasic, verifyBearer } from "./http-auth.ts"
import { verifyHubSignature256 } from "./hub-signature.ts"
import { verifyHubSpot } from "./hubspot.ts"
import type { SignatureRejected, SignedRequest, Verified, VerifyOptions } from "./signed-request.ts"
import { verifyStandardWebhook } from "./standard-webhooks.ts"

export * from "./hubspot.ts"
export * from "./http-auth.ts"
export * from "./hub-signature.ts"
export * from "./signed-request.ts"
export * from "./standard-webhooks.ts"

export type Verifier = (
  request: SignedRequest,
  secrets: ReadonlyArray<string>,
  options: VerifyOptions
) => Effect.Effect<Verified, SignatureRejected>

/** The verifier of each scheme a source can be configured with. */
export const verifiers: Readonly<Record<Scheme, Verifier>> = {
  hubspot: verifyHubSpot,
  "standard-webhooks": verifyStandardWebhook,
  "hub-signature-256": verifyHubSignature256,
  bearer: verifyBearer,
  basic: verifyBasic
}
