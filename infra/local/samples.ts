import { defaultSources, type Scheme } from "../../contracts/sources.ts"
import { bearer, type Body, signHubSignature256, signHubSpotV3, signStandardWebhook } from "./sign.ts"

/**
 * Valid sample traffic for every default source, for the tests, the benchmark and newcomers
 * running the mesh. Deterministic from its arguments.
 */

const iso = (millis: number) => new Date(millis).toISOString()

export const hubspotBatch = (count: number, options: { firstEventId?: number; portalId?: number; occurredAt?: number } = {}) =>
  Array.from({ length: count }, (_, i) => ({
    eventId: (options.firstEventId ?? 1) + i,
    subscriptionId: 4242,
    portalId: options.portalId ?? 62515,
    appId: 54321,
    occurredAt: (options.occurredAt ?? 1_737_000_000_000) + i * 1000,
    subscriptionType: ["contact.creation", "deal.creation", "ticket.creation", "contact.propertyChange"][i % 4] as string,
    attemptNumber: 0,
    objectId: 1000 + i,
    changeSource: "CRM_UI",
    ...(i % 4 === 3 ? { propertyName: "lifecyclestage", propertyValue: "customer" } : {})
  }))

export const alowareCall = (id: number, createdAt = "2025-01-15 10:32:00") => ({
  event: "Call Disposed",
  data: {
    id,
    type: "call",
    direction: "outbound",
    user_id: 17,
    user_name: "Dana Agent",
    contact_id: 9001,
    duration: 184,
    disposition: "Connected",
    created_at: createdAt
  }
})

export const erasureEvents = (count: number, options: { firstId?: number; day?: string } = {}) =>
  Array.from({ length: count }, (_, i) => {
    const n = (options.firstId ?? 1) + i
    const outcome = (["erasure.success", "erasure.success", "erasure.failure", "erasure.connected"] as const)[i % 4] as string
    return {
      id: `era_${n}`,
      type: outcome,
      timestamp: `${options.day ?? "2025-01-15"}T${String(8 + (i % 9)).padStart(2, "0")}:${String(i % 60).padStart(2, "0")}:00Z`,
      data: {
        device_type: i % 3 === 0 ? "servers" : "laptops_desktops",
        initials: ["JD", "AK", "MR"][i % 3] as string,
        duration_seconds: 600 + i,
        job_id: `JOB-${n}`,
        ...(outcome === "erasure.failure" ? { error_type: "drive_locked" } : {})
      }
    }
  })

export const oeeEvents = (machineId = "M-01", at = Date.parse("2025-01-15T06:15:00Z")) => [
  {
    id: `mach_${machineId}`,
    type: "machine.upserted",
    timestamp: iso(at),
    data: { id: machineId, name: `Press ${machineId}`, code: machineId, line_id: "L-1" }
  },
  {
    id: `snap_${machineId}_${at}`,
    type: "snapshot.recorded",
    timestamp: iso(at),
    data: {
      machine_id: machineId,
      line_id: "L-1",
      shift_id: "S-1",
      snapshot_time: iso(at),
      oee_pct: 71.5,
      availability_pct: 90,
      performance_pct: 85,
      quality_pct: 93.5,
      total_pieces: 200,
      good_pieces: 187,
      rejected_pieces: 13,
      planned_production_time: 15,
      actual_production_time: 13.5
    }
  },
  {
    id: `down_${machineId}_${at}`,
    type: "downtime.recorded",
    timestamp: iso(at),
    data: {
      downtime_id: `D-${at}`,
      machine_id: machineId,
      start_time: iso(at - 240_000),
      end_time: iso(at - 60_000),
      duration_minutes: 3,
      is_planned: false,
      reason: "jam"
    }
  }
]

export const retailEvents = (storeId = "47", at = Date.parse("2025-01-15T12:00:00Z")) => [
  {
    id: `sale_${storeId}_${at}`,
    type: "sale.completed",
    timestamp: iso(at),
    data: { sale_id: `S-${at}`, store_id: storeId, product_id: "SKU123", quantity: 2, unit_price: 4.5, currency: "EUR" }
  },
  {
    id: `inv_${storeId}_${at}`,
    type: "inventory.updated",
    timestamp: iso(at),
    data: { store_id: storeId, product_id: "SKU123", quantity_on_hand: 13, reorder_point: 20 }
  },
  { id: `traffic_${storeId}_${at}`, type: "traffic.counted", timestamp: iso(at), data: { store_id: storeId, visitors: 31 } }
]

/** Stores' master data (seed 002's dim_store), with the regions regional managers' row scopes name. */
export const storeEvents = (at = Date.parse("2025-01-15T08:00:00Z")) =>
  [
    { store_id: "47", store_name: "Boston Downtown", city: "Boston", region: "Northeast", country: "US", store_type: "flagship" },
    { store_id: "48", store_name: "Providence Mall", city: "Providence", region: "Northeast", country: "US", store_type: "mall" },
    { store_id: "49", store_name: "Denver Union", city: "Denver", region: "West", country: "US", store_type: "street" }
  ].map((data) => ({ id: `store_${data.store_id}_${at}`, type: "store.updated", timestamp: iso(at), data }))

/** Headers that authenticate `body` for a source of `scheme`, as its sender would sign it. */
export const signFor = (
  scheme: Scheme,
  secret: string,
  url: string,
  body: Body,
  options: { now?: number; webhookId?: string } = {}
): Record<string, string> => {
  const now = options.now ?? Date.now()
  switch (scheme) {
    case "hubspot":
      return signHubSpotV3(secret, "POST", url, body, now)
    case "standard-webhooks":
      return signStandardWebhook(
        secret,
        options.webhookId ?? `msg_${now.toString(36)}${Math.random().toString(36).slice(2, 8)}`,
        Math.floor(now / 1000),
        body
      )
    case "hub-signature-256":
      return signHubSignature256(secret, body)
    case "bearer":
      return bearer(secret)
    case "basic": {
      const [user = "", ...password] = secret.split(":")
      return { Authorization: `Basic ${Buffer.from(`${user}:${password.join(":")}`).toString("base64")}` }
    }
  }
}

/**
 * POSTs `payload` (JSON of it, or a string or bytes as given) to a source of the edge, signed the
 * way its sender signs: the default source's scheme, or `scheme`.
 */
export const postSigned = async (
  edgeUrl: string,
  source: string,
  payload: unknown,
  secret: string,
  init: { headers?: Record<string, string>; now?: number; scheme?: Scheme } = {}
): Promise<Response> => {
  const scheme = init.scheme ?? defaultSources[source]?.scheme ?? "standard-webhooks"
  const url = `${edgeUrl}/v1/hooks/${source}`
  const body: Body = typeof payload === "string" || payload instanceof Uint8Array ? payload : JSON.stringify(payload)
  return fetch(url, {
    method: "POST",
    body,
    headers: {
      "content-type": "application/json",
      ...signFor(scheme, secret, url, body, init.now === undefined ? {} : { now: init.now }),
      ...init.headers
    }
  })
}

/**
 * A varied warehouse log: every event type over four weeks, engineers and device types mixed.
 * Deterministic from `count`.
 */
export const warehouseWorkload = (count: number) =>
  Array.from({ length: count }, (_, i) => {
    const day = `2025-02-${String(1 + (i % 28)).padStart(2, "0")}`
    const timestamp = `${day}T${String(6 + (i % 14)).padStart(2, "0")}:${String(i % 60).padStart(2, "0")}:00Z`
    if (i % 25 === 0) return { id: `intake_${i}`, type: "intake.booked_in", timestamp, data: { count: 1 + (i % 7) } }
    if (i % 25 === 1) return { id: `qa_${i}`, type: "qa.completed", timestamp, data: { count: 1 + (i % 5) } }
    const outcome = (["erasure.success", "erasure.success", "erasure.success", "erasure.failure", "erasure.connected"] as const)[
      i % 5
    ] as string
    return {
      id: `era_w${i}`,
      type: outcome,
      timestamp,
      data: {
        device_type: ["laptops_desktops", "servers", "mobiles"][i % 3] as string,
        initials: ["JD", "AK", "MR", "LB", "TS"][i % 5] as string,
        duration_seconds: 300 + (i % 900),
        job_id: `JOB-W${i}`,
        ...(outcome === "erasure.failure" ? { error_type: ["drive_locked", "timeout"][i % 2] as string } : {})
      }
    }
  })

/** Snapshots every 15 minutes for 50 machines, with a stop on every 10th; `count` events in all. */
export const oeeWorkload = (count: number) =>
  Array.from({ length: count }, (_, i) => {
    const machine = `M-${String(i % 50).padStart(2, "0")}`
    const slot = Math.floor(i / 50)
    const time = new Date(Date.parse("2025-03-01T00:15:00Z") + slot * 15 * 60_000).toISOString()
    if (i % 10 === 9)
      return {
        id: `down_${i}`,
        type: "downtime.recorded",
        timestamp: time,
        data: {
          downtime_id: `D${i}`,
          machine_id: machine,
          start_time: time,
          end_time: new Date(Date.parse(time) + 7 * 60_000).toISOString(),
          duration_minutes: 7,
          is_planned: i % 20 === 9
        }
      }
    return {
      id: `snap_${i}`,
      type: "snapshot.recorded",
      timestamp: time,
      data: {
        machine_id: machine,
        line_id: `L-${i % 5}`,
        shift_id: "S-1",
        snapshot_time: time,
        oee_pct: 70 + (i % 25),
        availability_pct: 90,
        performance_pct: 88,
        quality_pct: 97,
        total_pieces: 120,
        good_pieces: 116,
        rejected_pieces: 4,
        planned_production_time: 15,
        actual_production_time: 13
      }
    }
  })

/** POS traffic over a day for 20 stores and 50 products: mostly sales, some stock counts and footfall. */
export const retailWorkload = (count: number) =>
  Array.from({ length: count }, (_, i) => {
    const store = String(40 + (i % 20))
    const product = `SKU${100 + (i % 50)}`
    const timestamp = new Date(Date.parse("2025-03-01T08:00:00Z") + i * 2000).toISOString()
    if (i % 10 === 0)
      return {
        id: `inv_${i}`,
        type: "inventory.updated",
        timestamp,
        data: { store_id: store, product_id: product, quantity_on_hand: 50 - (i % 40), reorder_point: 15 }
      }
    if (i % 25 === 1) return { id: `traffic_${i}`, type: "traffic.counted", timestamp, data: { store_id: store, visitors: 10 + (i % 30) } }
    return {
      id: `sale_${i}`,
      type: "sale.completed",
      timestamp,
      data: { sale_id: `S${i}`, store_id: store, product_id: product, quantity: 1 + (i % 3), unit_price: 3.5 }
    }
  })
