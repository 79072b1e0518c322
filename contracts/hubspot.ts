import { Schema } from "effect"
import { type Contract, decodeIssues, makeContract } from "./contract.ts"
import { Identifier, isoFromMillis, MAX_EPOCH_MILLIS, NonNegativeInt } from "./primitives.ts"

/**
 * One element of a HubSpot webhook batch (Webhooks API v3 subscriptions). HubSpot always posts a
 * JSON array, even for a single event. Fields we do not model are kept in the log untouched.
 */
export const HubSpotEvent = Schema.Struct({
  eventId: NonNegativeInt,
  subscriptionId: NonNegativeInt,
  portalId: NonNegativeInt,
  appId: Schema.optionalKey(NonNegativeInt),
  occurredAt: NonNegativeInt.check(Schema.isLessThanOrEqualTo(MAX_EPOCH_MILLIS)).annotate({ description: "epoch milliseconds" }),
  subscriptionType: Identifier,
  attemptNumber: NonNegativeInt,
  objectId: Schema.optionalKey(NonNegativeInt),
  objectTypeId: Schema.optionalKey(Schema.String),
  changeSource: Schema.optionalKey(Schema.String),
  changeFlag: Schema.optionalKey(Schema.String),
  sourceId: Schema.optionalKey(Schema.String),
  propertyName: Schema.optionalKey(Schema.String),
  propertyValue: Schema.optionalKey(Schema.String)
})
export type HubSpotEvent = typeof HubSpotEvent.Type

/** The fields of HubSpot's retry identity: an event whose other fields are broken still has a key when these are valid. */
const HubSpotKeyFields = Schema.Struct({ eventId: NonNegativeInt, subscriptionId: NonNegativeInt, portalId: NonNegativeInt })

/** HubSpot's documented retry identity: `portalId:subscriptionId:eventId` (`eventId` alone is not promised unique). */
export const hubSpotKey = (event: typeof HubSpotKeyFields.Type): string => `${event.portalId}:${event.subscriptionId}:${event.eventId}`

/** The HubSpot contract with `schema` judging each event: the contract below, or one that grew a field's accepted values. */
export const hubspotContractFor = (
  schema: Schema.Decoder<Pick<HubSpotEvent, "eventId" | "subscriptionId" | "portalId" | "subscriptionType" | "occurredAt">>
): Contract =>
  makeContract({
    name: "hubspot",
    domain: "crm",
    schemaVersion: "hubspot/v1",
    shape: "array",
    describe: "HubSpot events",
    // HubSpot counts its deliveries of an event in attemptNumber: a retry is the same event.
    deliveryFields: ["attemptNumber"],
    judge: (payload, at) => {
      const decoded = decodeIssues(schema, payload, at)
      if (decoded.ok) {
        const event = decoded.value
        return {
          _tag: "Valid",
          event: { key: hubSpotKey(event), type: event.subscriptionType, occurredAt: isoFromMillis(event.occurredAt), payload }
        }
      }
      const key = decodeIssues(HubSpotKeyFields, payload)
      return { _tag: "Invalid", key: key.ok ? hubSpotKey(key.value) : undefined, issues: decoded.issues }
    }
  })

export const hubspotContract: Contract = hubspotContractFor(HubSpotEvent)
