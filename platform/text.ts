/** Text and bytes every component handles the same way: UTF-8, byte concatenation, XML and HTML escaping. */

const encoder = new TextEncoder()

/** `text` as UTF-8 bytes. */
export const utf8 = (text: string): Uint8Array<ArrayBuffer> => encoder.encode(text) as Uint8Array<ArrayBuffer>

/** The parts, one after another, in one new array. */
export const concatBytes = (...parts: ReadonlyArray<Uint8Array>): Uint8Array<ArrayBuffer> => {
  const out = new Uint8Array(parts.reduce((n, part) => n + part.length, 0))
  let offset = 0
  for (const part of parts) {
    out.set(part, offset)
    offset += part.length
  }
  return out
}

// XML 1.0 forbids most control characters even when escaped.
// eslint-disable-next-line no-control-regex
const INVALID_XML = /[\u0000-\u0008\u000B\u000C\u000E-\u001F\uFFFE\uFFFF]/g

/**
 * Text made safe inside an XML or HTML element or a double-quoted attribute: `& < > "` escaped,
 * and the characters XML 1.0 cannot carry at all replaced by U+FFFD.
 */
export const escapeXml = (text: string): string =>
  text.replaceAll("&", "&amp;").replaceAll("<", "&lt;").replaceAll(">", "&gt;").replaceAll('"', "&quot;").replace(INVALID_XML, "\uFFFD")
