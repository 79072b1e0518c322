import { createHash, createHmac } from "node:crypto"
import { concatBytes, utf8 } from "../../platform/text.ts"

/**
 * Signing as each sender does it, written with Node's crypto so it is an independent check of
 * the edge's WebCrypto verifiers. Used by the tests, the benchmark and the sample sender.
 */

/** A body as the bytes that go on the wire: a string as UTF-8, as fetch sends it. */
export type Body = string | Uint8Array

const bytes = (...parts: ReadonlyArray<Body>): Uint8Array =>
  concatBytes(...parts.map((part) => (typeof part === "string" ? utf8(part) : part)))

export const signHubSpotV3 = (secret: string, method: string, uri: string, body: Body, timestampMs: number): Record<string, string> => ({
  "X-HubSpot-Signature-v3": createHmac("sha256", secret)
    .update(bytes(`${method}${uri}`, body, String(timestampMs)))
    .digest("base64"),
  "X-HubSpot-Request-Timestamp": String(timestampMs)
})

export const signHubSpotLegacy = (
  secret: string,
  version: "v1" | "v2",
  method: string,
  uri: string,
  body: Body
): Record<string, string> => ({
  "X-HubSpot-Signature": createHash("sha256")
    .update(version === "v1" ? bytes(secret, body) : bytes(`${secret}${method}${uri}`, body))
    .digest("hex"),
  "X-HubSpot-Signature-Version": version
})

export const signStandardWebhook = (secret: string, id: string, timestampSeconds: number, body: Body): Record<string, string> => ({
  "webhook-id": id,
  "webhook-timestamp": String(timestampSeconds),
  "webhook-signature": `v1,${createHmac("sha256", Buffer.from(secret.replace(/^whsec_/, ""), "base64"))
    .update(bytes(`${id}.${timestampSeconds}.`, body))
    .digest("base64")}`
})

export const signHubSignature256 = (secret: string, body: Body): Record<string, string> => ({
  "X-Hub-Signature-256": `sha256=${createHmac("sha256", secret).update(bytes(body)).digest("hex")}`
})

export const bearer = (token: string): Record<string, string> => ({ Authorization: `Bearer ${token}` })

export const basic = (user: string, password: string): Record<string, string> => ({
  Authorization: `Basic ${Buffer.from(`${user}:${password}`).toString("base64")}`
})
