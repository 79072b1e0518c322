import { Schema, SchemaIssue } from "effect"
import { SenderEnvelope } from "../contracts/sender-envelope.ts"

const formatter = SchemaIssue.makeFormatterDefault()

/** Decodes with a contract schema; `undefined` plus the reason when the event does not match. */
export const decodeWith = <S extends Schema.Decoder<unknown>>(schema: S, input: unknown): { ok: true; value: S["Type"] } | { ok: false; reason: string } => {
  const result = Schema.decodeUnknownResult(schema, { onExcessProperty: "ignore" })(input)
  return result._tag === "Success" ? { ok: true, value: result.success } : { ok: false, reason: formatter(result.failure.issue).replaceAll("\n", " ") }
}

/** An own-sender envelope with its `data` decoded by the schema of its type. */
export const decodeEnvelope = <Types extends Readonly<Record<string, Schema.Decoder<unknown>>>>(types: Types, payload: unknown) => {
  const envelope = decodeWith(SenderEnvelope, payload)
  if (!envelope.ok) return envelope
  const schema = types[envelope.value.type]
  if (schema === undefined) return { ok: false as const, reason: `unknown event type ${JSON.stringify(envelope.value.type)}` }
  const data = decodeWith(schema, envelope.value.data)
  return data.ok ? { ok: true as const, value: { ...envelope.value, data: data.value } } : data
}
