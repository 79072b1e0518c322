import { createHash, createHmac } from "node:crypto"

/**
 * Signing as each sender does it, written with Node's crypto so it is an independent check of
 * the edge's WebCrypto verifiers. Used by the tests, the benchmark and the sample sender.
 */

export const signHubSpotV3 = (secret: string, method: string, uri: string, body: string, timestampMs: number): Record<string, string> => ({
  "X-HubSpot-Signature-v3": createHmac("sha256", secret).update(`${method}${uri}${body}${timestampMs}`, "utf8").digest("base64"),
  "X-HubSpot-Request-Timestamp": String(timestampMs)
})

export const signHubSpotLegacy = (secret: string, version: "v1" | "v2", method: string, uri: string, body: string): Record<string, string> => ({
  "X-HubSpot-Signature": createHash("sha256")
    .update(version === "v1" ? `${secret}${body}` : `${secret}${method}${uri}${body}`, "utf8")
    .digest("hex"),
  "X-HubSpot-Signature-Version": version
})

export const signStandardWebhook = (secret: string, id: string, timestampSeconds: number, body: string): Record<string, string> => ({
  "webhook-id": id,
  "webhook-timestamp": String(timestampSeconds),
  "webhook-signature": `v1,${createHmac("sha256", Buffer.from(secret.replace(/^whsec_/, ""), "base64")).update(`${id}.${timestampSeconds}.${body}`, "utf8").digest("base64")}`
})

export const signHubSignature256 = (secret: string, body: string): Record<string, string> => ({
  "X-Hub-Signature-256": `sha256=${createHmac("sha256", secret).update(body, "utf8").digest("hex")}`
})

export const bearer = (token: string): Record<string, string> => ({ Authorization: `Bearer ${token}` })

export const basic = (user: string, password: string): Record<string, string> => ({
  Authorization: `Basic ${Buffer.from(`${user}:${password}`).toString("base64")}`
})
