import { describe, expect, it } from "vitest"
import { utf8 } from "../platform/text.ts"
import { readPubAck } from "./pub-acks.ts"

const subject = "ingest.crm.hubspot.contact_creation"

describe("reading JetStream's reply to a publish", () => {
  it("is stored with its stream sequence, a resend within the duplicate window flagged as a duplicate", () => {
    expect(readPubAck(subject, utf8('{"stream":"INGEST_CRM","seq":7}'), undefined)).toEqual({
      _tag: "Stored",
      stream: "INGEST_CRM",
      seq: 7,
      duplicate: false
    })
    expect(readPubAck(subject, utf8('{"stream":"INGEST_CRM","seq":7,"duplicate":true}'), undefined)).toMatchObject({ duplicate: true })
  })

  it("is refused, naming the subject and JetStream's reason, when JetStream answers with an error", () => {
    const reply = readPubAck(subject, utf8('{"error":{"code":503,"err_code":10077,"description":"maximum messages exceeded"}}'), undefined)
    expect(reply).toEqual({ _tag: "Refused", reason: `JetStream refused the publish to ${subject}: maximum messages exceeded (503)` })
  })

  it("is refused when no stream answered (an empty reply with a status) or the reply is not a PubAck", () => {
    expect(readPubAck(subject, new Uint8Array(0), 503)).toMatchObject({ _tag: "Refused", reason: expect.stringContaining("status 503") })
    expect(readPubAck(subject, utf8("not json"), undefined)).toMatchObject({ _tag: "Refused" })
    expect(readPubAck(subject, utf8('{"stream":"","seq":1}'), undefined)).toMatchObject({ _tag: "Refused" })
  })
})
