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

export const retailEventTypes = {
  "sale.completed": SaleCompleted,
  "return.processed": ReturnProcessed,
  "inventory.updated": InventoryUpdated,
  "price.changed": PriceChanged,
  "traffic.counted": TrafficCounted,
  "shipment.received": ShipmentReceived
}

export const retailContract = envelopeContract({ name: "retail", domain: "retail", schemaVersion: "retail/v1", types: retailEventTypes })
