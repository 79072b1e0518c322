import { REGION_NAME } from "../contracts/log.ts"

/**
 * Regions of the edge: which leaf nats-server a request's events go to, and through which
 * Durable Objects. A deployment without `REGIONS` has one implicit region built from today's
 * `NATS_WS_URL` and `PUBLISHER_SHARDS`, which keeps today's subjects and Durable Object ids.
 */

/** Where Cloudflare may place a Durable Object (`namespace.get(id, { locationHint })`); a hint, not a promise. */
export const LOCATION_HINTS = ["wnam", "enam", "sam", "weur", "eeur", "apac", "apac-ne", "apac-se", "oc", "afr", "me"] as const
export type LocationHint = (typeof LOCATION_HINTS)[number]

/** Where a Durable Object must run and keep its data (`namespace.jurisdiction(j)`): a promise, and part of its id. */
export const JURISDICTIONS = ["eu", "fedramp", "fedramp-high"] as const
export type Jurisdiction = (typeof JURISDICTIONS)[number]

/** Cloudflare's `request.cf.continent` codes. */
export const CONTINENTS = ["AF", "AN", "AS", "EU", "NA", "OC", "SA"] as const

/** The name the implicit region is reported under (`/healthz`, logs); it never appears in a subject or an id. */
export const IMPLICIT_REGION = "default"

export interface EdgeRegion {
  readonly name: string
  /**
   * False for the implicit region of a deployment without `REGIONS`: its events keep the hub's
   * four-token subjects and its shards today's ids, so existing Durable Objects (and their spools)
   * are found again.
   */
  readonly explicit: boolean
  readonly url: string
  readonly shards: number
  readonly locationHint: LocationHint | undefined
  readonly jurisdiction: Jurisdiction | undefined
}

/** `REGION_ROUTES` by kind of key; the most specific kind that matches wins (colo, then country, then continent). */
export interface RegionRoutes {
  readonly colo: ReadonlyMap<string, string>
  readonly country: ReadonlyMap<string, string>
  readonly continent: ReadonlyMap<string, string>
}

export const NO_ROUTES: RegionRoutes = { colo: new Map(), country: new Map(), continent: new Map() }

/** What the routing reads of `request.cf`; everything optional, as `cf` is absent in tests and in some runtimes. */
export interface RequestLocation {
  readonly colo?: unknown
  readonly country?: unknown
  readonly continent?: unknown
}

export interface Regions {
  readonly regions: ReadonlyMap<string, EdgeRegion>
  readonly routes: RegionRoutes
  readonly defaultRegion: string
}

/** The region whose publishers take a request from `cf`: its colo's route, else its country's, else its continent's, else the default. */
export const regionFor = (config: Regions, cf: RequestLocation | undefined): EdgeRegion => {
  const pick = (routes: ReadonlyMap<string, string>, value: unknown) => (typeof value === "string" ? routes.get(value) : undefined)
  const name =
    pick(config.routes.colo, cf?.colo) ??
    pick(config.routes.country, cf?.country) ??
    pick(config.routes.continent, cf?.continent) ??
    config.defaultRegion
  return (config.regions.get(name) ?? config.regions.get(config.defaultRegion)) as EdgeRegion
}

/** The Durable Object name of a region's shard `n`: `publisher-<n>` in the implicit region (today's ids), else `<region>-publisher-<n>`. */
export const shardName = (region: EdgeRegion, shard: number): string =>
  region.explicit ? `${region.name}-publisher-${shard}` : `publisher-${shard}`

/** A region as the `REGIONS` setting gives it, after its JSON shape is checked. */
export interface RegionSetting {
  readonly url: string
  readonly shards?: number
  readonly locationHint?: string
  readonly jurisdiction?: string
}

const near = <T extends string>(value: string, known: ReadonlyArray<T>): string => {
  const match = known.find((candidate) => candidate.toLowerCase() === value.toLowerCase().trim())
  return match === undefined ? "" : `; did you mean ${JSON.stringify(match)}?`
}

const ROUTE_KEY = /^(colo|country|continent):(.*)$/
const ROUTE_VALUE: Readonly<Record<"colo" | "country" | "continent", { readonly pattern: RegExp; readonly form: string }>> = {
  colo: { pattern: /^[A-Z]{3}$/, form: "a data centre's IATA code in capitals, e.g. colo:SIN" },
  country: { pattern: /^[A-Z][A-Z0-9]$/, form: "an ISO 3166-1 alpha-2 code in capitals, e.g. country:DE" },
  continent: { pattern: new RegExp(`^(${CONTINENTS.join("|")})$`), form: `one of ${CONTINENTS.join(", ")}, e.g. continent:EU` }
}

/**
 * The regions, routes and default region of the settings, or every mistake in them. Without
 * `REGIONS` there is one implicit region (and `REGION_ROUTES` or `DEFAULT_REGION` is a mistake: they
 * would route to nothing); with it, every route and the default must name one of its regions.
 */
export const parseRegions = (settings: {
  readonly natsUrl: string | undefined
  readonly publisherShards: number
  readonly regions: Readonly<Record<string, RegionSetting>> | undefined
  readonly routes: Readonly<Record<string, string>> | undefined
  readonly defaultRegion: string | undefined
}): { readonly problems: ReadonlyArray<string>; readonly regions: Regions } => {
  const problems: Array<string> = []
  if (settings.regions === undefined) {
    if (settings.natsUrl === undefined) problems.push("NATS_WS_URL is required unless REGIONS names each region's URL")
    if (settings.routes !== undefined) problems.push("REGION_ROUTES routes to regions, but REGIONS declares none")
    if (settings.defaultRegion !== undefined) problems.push("DEFAULT_REGION names a region, but REGIONS declares none")
    const implicit: EdgeRegion = {
      name: IMPLICIT_REGION,
      explicit: false,
      url: settings.natsUrl ?? "",
      shards: settings.publisherShards,
      locationHint: undefined,
      jurisdiction: undefined
    }
    return { problems, regions: { regions: new Map([[IMPLICIT_REGION, implicit]]), routes: NO_ROUTES, defaultRegion: IMPLICIT_REGION } }
  }
  const regions = new Map<string, EdgeRegion>()
  for (const [name, setting] of Object.entries(settings.regions)) {
    if (!REGION_NAME.test(name)) {
      problems.push(
        `REGIONS names ${JSON.stringify(name)}, which is not a region name (a lower-case letter, then up to 15 lower-case letters or digits, e.g. eu)`
      )
      continue
    }
    const hint = setting.locationHint
    if (hint !== undefined && !(LOCATION_HINTS as ReadonlyArray<string>).includes(hint))
      problems.push(
        `REGIONS.${name}.locationHint is ${JSON.stringify(hint)}, not one of ${LOCATION_HINTS.join(", ")}${near(hint, LOCATION_HINTS)}`
      )
    const jurisdiction = setting.jurisdiction
    if (jurisdiction !== undefined && !(JURISDICTIONS as ReadonlyArray<string>).includes(jurisdiction))
      problems.push(
        `REGIONS.${name}.jurisdiction is ${JSON.stringify(jurisdiction)}, not one of ${JURISDICTIONS.join(", ")}${near(jurisdiction, JURISDICTIONS)}`
      )
    regions.set(name, {
      name,
      explicit: true,
      url: setting.url,
      shards: setting.shards ?? settings.publisherShards,
      locationHint: hint as LocationHint | undefined,
      jurisdiction: jurisdiction as Jurisdiction | undefined
    })
  }
  if (Object.keys(settings.regions).length === 0) problems.push("REGIONS declares no region; leave it out for a single-server deployment")
  const known = [...regions.keys()]
  const unknownRegion = (setting: string, region: string) =>
    `${setting} names region ${JSON.stringify(region)}, which REGIONS does not declare (${known.join(", ")})${near(region, known)}`
  const routes = { colo: new Map<string, string>(), country: new Map<string, string>(), continent: new Map<string, string>() }
  for (const [key, region] of Object.entries(settings.routes ?? {})) {
    const match = ROUTE_KEY.exec(key)
    const kind = match?.[1] as "colo" | "country" | "continent" | undefined
    const value = match?.[2] ?? ""
    if (kind === undefined) {
      problems.push(`REGION_ROUTES key ${JSON.stringify(key)} is not colo:<IATA>, country:<ISO code> or continent:<code>`)
      continue
    }
    if (!ROUTE_VALUE[kind].pattern.test(value)) {
      const upper = value.toUpperCase()
      const hint = ROUTE_VALUE[kind].pattern.test(upper) ? `; did you mean ${JSON.stringify(`${kind}:${upper}`)}?` : ""
      problems.push(`REGION_ROUTES key ${JSON.stringify(key)}: expected ${ROUTE_VALUE[kind].form}${hint}`)
      continue
    }
    if (!regions.has(region)) {
      problems.push(unknownRegion(`REGION_ROUTES.${key}`, region))
      continue
    }
    routes[kind].set(value, region)
  }
  let defaultRegion = settings.defaultRegion
  if (defaultRegion === undefined) {
    if (known.length === 1) defaultRegion = known[0]
    else if (known.length > 1)
      problems.push(
        `DEFAULT_REGION is required when REGIONS declares more than one region (${known.join(", ")}): requests no route names go there`
      )
  } else if (!regions.has(defaultRegion)) {
    problems.push(unknownRegion("DEFAULT_REGION", defaultRegion))
  }
  return { problems, regions: { regions, routes, defaultRegion: defaultRegion ?? known[0] ?? IMPLICIT_REGION } }
}
