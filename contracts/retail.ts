import { Schema } from "effect"
import { envelopeContract } from "./sender-envelope.ts"
import { Identifier, Count, NonNegativeNumber, PositiveCount } from "./primitives.ts"

/** Store POS systems (seed 002): the six event streams of the retail pipeline. */
const StoreProduct = { store_id: Identifier, product_id: Identifier.annotate({ description: "SKU, e.g. SKU123" }) }

export const SaleCompleted = Schema.Struct({
  sale_id: Identifier,
  ...StoreProduct,
  quantity: PositiveCount,
  unit_price: NonNegativeNumber,
  revenue: Schema.optionalKey(NonNegativeNumber),
  cost: Schema.optionalKey(NonNegativeNumber),
  currency: Schema.optionalKey(
    Schema.String.check(Schema.isPattern(/^[A-Z]{3}$/, { message: "Expected an ISO 4217 currency code, e.g. EUR" }))
  )
})

export const ReturnProcessed = Schema.Struct({
  return_id: Identifier,
  sale_id: Schema.optionalKey(Identifier),
  ...StoreProduct,
  quantity: PositiveCount,
  amount: NonNegativeNumber,
  reason: Schema.optionalKey(Schema.String)
})

export const InventoryUpdated = Schema.Struct({
  ...StoreProduct,
  quantity_on_hand: Count,
  reorder_point: Schema.optionalKey(Count),
  safety_stock: Schema.optionalKey(Count)
})

export const PriceChanged = Schema.Struct({
  ...StoreProduct,
  old_price: Schema.optionalKey(NonNegativeNumber),
  new_price: NonNegativeNumber
})

export const TrafficCounted = Schema.Struct({
  store_id: Identifier,
  visitors: Count,
  basket_size: Schema.optionalKey(NonNegativeNumber)
})

export const ShipmentReceived = Schema.Struct({
  shipment_id: Identifier,
  supplier: Identifier,
  ...StoreProduct,
  quantity: PositiveCount
})

/** Short free text (a name, a city, a region): non-empty, at most 200 characters. */
const Label = Schema.String.check(
  Schema.makeFilter((value: string) => value.trim().length > 0 && value.length <= 200, {
    message: "Expected a non-empty text of at most 200 characters"
  })
)

/**
 * A store's master data (seed 002's `dim_store`), sent when a store opens or changes: the region
 * is what regional managers' row-level security reads. The newest by event time wins.
 */
export const StoreUpdated = Schema.Struct({
  store_id: Identifier,
  store_name: Schema.optionalKey(Label),
  city: Schema.optionalKey(Label),
  region: Schema.optionalKey(Label.annotate({ description: "e.g. Northeast: a regional manager's scope" })),
  country: Schema.optionalKey(Label),
  square_footage: Schema.optionalKey(Count),
  store_type: Schema.optionalKey(Label)
})

export const retailEventTypes = {
  "sale.completed": SaleCompleted,
  "return.processed": ReturnProcessed,
  "inventory.updated": InventoryUpdated,
  "price.changed": PriceChanged,
  "traffic.counted": TrafficCounted,
  "shipment.received": ShipmentReceived,
  "store.updated": StoreUpdated
}

export const retailContract = envelopeContract({ name: "retail", domain: "retail", schemaVersion: "retail/v1", types: retailEventTypes })
