import { Effect, Schema } from "effect"
import { asBatch, type Contract, decodeOrViolation, violation } from "./contract.ts"
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

export const HubSpotBatch = Schema.Array(HubSpotEvent)

/** HubSpot's documented retry identity: `portalId:subscriptionId:eventId` (`eventId` alone is not promised unique). */
export const hubSpotKey = (event: HubSpotEvent): string => `${event.portalId}:${event.subscriptionId}:${event.eventId}`

export const hubspotContract: Contract = {
  name: "hubspot",
  domain: "crm",
  schemaVersion: "hubspot/v1",
  split: (body) =>
    Effect.gen(function* () {
      if (!Array.isArray(body)) {
        return yield* violation({ path: "$", message: `Expected a JSON array of HubSpot events, got ${body === null ? "null" : typeof body}` })
      }
      const items = yield* asBatch(body)
      const events = yield* decodeOrViolation(HubSpotBatch, items)
      return events.map((event, index) => ({
        key: hubSpotKey(event),
        type: event.subscriptionType,
        occurredAt: isoFromMillis(event.occurredAt),
        payload: items[index]
      }))
    })
}
