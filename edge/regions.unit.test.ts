import { describe, expect, it } from "vitest"
import { IMPLICIT_REGION, parseRegions, regionFor, shardName } from "./regions.ts"

const settings = {
  natsUrl: undefined,
  publisherShards: 4,
  regions: {
    eu: { url: "wss://nats-eu.example.com", shards: 2, locationHint: "weur" },
    us: { url: "wss://nats-us.example.com", locationHint: "enam" },
    apac: { url: "wss://nats-apac.example.com", jurisdiction: "eu" }
  },
  routes: { "continent:EU": "eu", "continent:AS": "apac", "colo:SIN": "us", "country:GB": "us" },
  defaultRegion: "us"
}

const problems = (changes: Partial<Parameters<typeof parseRegions>[0]>) => parseRegions({ ...settings, ...changes }).problems.join("; ")

describe("the region of a request", () => {
  const { regions } = parseRegions(settings)

  it("is its colo's route first, then its country's, then its continent's, then the default", () => {
    expect(regionFor(regions, { colo: "SIN", country: "SG", continent: "AS" }).name).toBe("us")
    expect(regionFor(regions, { colo: "LHR", country: "GB", continent: "EU" }).name).toBe("us")
    expect(regionFor(regions, { colo: "FRA", country: "DE", continent: "EU" }).name).toBe("eu")
    expect(regionFor(regions, { colo: "NRT", country: "JP", continent: "AS" }).name).toBe("apac")
    expect(regionFor(regions, { colo: "IAD", country: "US", continent: "NA" }).name).toBe("us")
    expect(regionFor(regions, undefined).name).toBe("us")
    expect(regionFor(regions, { colo: 42, continent: null }).name).toBe("us")
  })

  it("carries its shards, placement and ids", () => {
    expect(regions.regions.get("eu")).toMatchObject({ explicit: true, shards: 2, locationHint: "weur", jurisdiction: undefined })
    expect(regions.regions.get("us")).toMatchObject({ shards: 4 })
    expect(regions.regions.get("apac")).toMatchObject({ jurisdiction: "eu" })
    expect(shardName(regions.regions.get("eu")!, 1)).toBe("eu-publisher-1")
  })
})

describe("a deployment without REGIONS", () => {
  it("has one implicit region with today's URL, shard count, subjects and Durable Object ids", () => {
    const { problems: found, regions } = parseRegions({
      natsUrl: "wss://nats.example.com",
      publisherShards: 3,
      regions: undefined,
      routes: undefined,
      defaultRegion: undefined
    })
    expect(found).toEqual([])
    const region = regionFor(regions, { colo: "SIN", continent: "AS" })
    expect(region).toMatchObject({ name: IMPLICIT_REGION, explicit: false, url: "wss://nats.example.com", shards: 3 })
    expect(shardName(region, 2)).toBe("publisher-2")
  })

  it("names routes or a default region that route to nothing, and a missing URL", () => {
    const found = parseRegions({
      natsUrl: undefined,
      publisherShards: 4,
      regions: undefined,
      routes: { "continent:EU": "eu" },
      defaultRegion: "eu"
    })
    expect(found.problems.join("; ")).toMatch(/NATS_WS_URL is required unless REGIONS/)
    expect(found.problems.join("; ")).toMatch(/REGION_ROUTES routes to regions, but REGIONS declares none/)
    expect(found.problems.join("; ")).toMatch(/DEFAULT_REGION names a region, but REGIONS declares none/)
  })
})

describe("mistakes in the region settings", () => {
  it("are each named, with the accepted form and a near match", () => {
    expect(problems({})).toBe("")
    expect(problems({ regions: { ...settings.regions, "EU-West": { url: "wss://x" } } })).toMatch(
      /REGIONS names "EU-West", which is not a region name/
    )
    expect(problems({ regions: { eu: { url: "wss://x", locationHint: "WEUR" } }, defaultRegion: "eu", routes: {} })).toMatch(
      /REGIONS\.eu\.locationHint is "WEUR", not one of wnam, .*; did you mean "weur"\?/
    )
    expect(problems({ regions: { eu: { url: "wss://x", jurisdiction: "europe" } }, defaultRegion: "eu", routes: {} })).toMatch(
      /REGIONS\.eu\.jurisdiction is "europe", not one of eu, fedramp, fedramp-high/
    )
    expect(problems({ routes: { "continent:EU": "europe" } })).toMatch(
      /REGION_ROUTES\.continent:EU names region "europe", which REGIONS does not declare \(eu, us, apac\)/
    )
    expect(problems({ routes: { "colo:sin": "us" } })).toMatch(
      /REGION_ROUTES key "colo:sin": expected a data centre's IATA code .*did you mean "colo:SIN"\?/
    )
    expect(problems({ routes: { "continent:XX": "us" } })).toMatch(
      /REGION_ROUTES key "continent:XX": expected one of AF, AN, AS, EU, NA, OC, SA/
    )
    expect(problems({ routes: { "city:Paris": "eu" } })).toMatch(
      /REGION_ROUTES key "city:Paris" is not colo:<IATA>, country:<ISO code> or continent:<code>/
    )
    expect(problems({ defaultRegion: undefined })).toMatch(/DEFAULT_REGION is required when REGIONS declares more than one region/)
    expect(problems({ defaultRegion: "Us" })).toMatch(/DEFAULT_REGION names region "Us", .*did you mean "us"\?/)
    expect(problems({ regions: {}, routes: {}, defaultRegion: undefined })).toMatch(/REGIONS declares no region/)
  })

  it("need no DEFAULT_REGION when there is one region", () => {
    const { problems: found, regions } = parseRegions({
      ...settings,
      regions: { eu: { url: "wss://x" } },
      routes: {},
      defaultRegion: undefined
    })
    expect(found).toEqual([])
    expect(regions.defaultRegion).toBe("eu")
  })
})
