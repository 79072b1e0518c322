/** WebCrypto helpers shared by the verifiers; the same code runs in workerd and Node. */
import { utf8 } from "../../platform/text.ts"

/** Secrets are few and long-lived: keep their imported keys and digests for the isolate's life. */
const MAX_CACHED = 256
const cached = <V>(cache: Map<string, V>, id: string, make: () => V): V => {
  let value = cache.get(id)
  if (value === undefined) {
    if (cache.size >= MAX_CACHED) cache.clear()
    value = make()
    cache.set(id, value)
  }
  return value
}
const hmacKeys = new Map<string, Promise<CryptoKey>>()
const secretDigests = new Map<string, Promise<Uint8Array>>()

export const sha256 = async (data: Uint8Array<ArrayBuffer>): Promise<Uint8Array> =>
  new Uint8Array(await crypto.subtle.digest("SHA-256", data))

export const hmacSha256 = async (key: Uint8Array<ArrayBuffer>, data: Uint8Array<ArrayBuffer>): Promise<Uint8Array> => {
  const cryptoKey = await cached(hmacKeys, toHex(key), () =>
    crypto.subtle.importKey("raw", key, { name: "HMAC", hash: "SHA-256" }, false, ["sign"])
  )
  return new Uint8Array(await crypto.subtle.sign("HMAC", cryptoKey, data))
}

/** Compares in time that depends only on the length, never on where the bytes differ. */
export const timingSafeEqual = (a: Uint8Array, b: Uint8Array): boolean => {
  if (a.length !== b.length) return false
  let diff = 0
  for (let i = 0; i < a.length; i++) diff |= (a[i] as number) ^ (b[i] as number)
  return diff === 0
}

/** Compares two secrets of any length in constant time by comparing their digests. */
export const secretsEqual = async (given: string, expected: string): Promise<boolean> =>
  timingSafeEqual(await sha256(utf8(given)), await cached(secretDigests, expected, () => sha256(utf8(expected))))

export const toHex = (bytes: Uint8Array): string => Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("")

export const fromHex = (hex: string): Uint8Array | undefined => {
  if (hex.length % 2 !== 0 || !/^[0-9a-fA-F]*$/.test(hex)) return undefined
  const out = new Uint8Array(hex.length / 2)
  for (let i = 0; i < out.length; i++) out[i] = parseInt(hex.slice(i * 2, i * 2 + 2), 16)
  return out
}

export const fromBase64 = (text: string): Uint8Array<ArrayBuffer> | undefined => {
  if (!/^[A-Za-z0-9+/]*={0,2}$/.test(text) || text.length % 4 === 1) return undefined
  try {
    return Uint8Array.from(atob(text), (c) => c.charCodeAt(0))
  } catch {
    return undefined
  }
}
