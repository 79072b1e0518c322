import { describe, expect, it } from "vitest"
import { clusterLines, edgeLines } from "./status.ts"

describe("mesh status beyond the projections", () => {
  it("shows per region whether the hub reaches its leaf and the summed lag of its sources, per hub stream its leader and replicas", () => {
    const lines = clusterLines({
      regions: [
        { region: "eu", reachable: true, rttMs: 0.84 },
        { region: "us", reachable: false, error: "no responders" }
      ],
      streams: [
        {
          stream: "INGEST_CRM",
          messages: 120,
          lastSeq: 120,
          leader: "hub-2",
          replicas: [
            { server: "hub-1", current: true, offline: false, lag: 0, activeMs: 10 },
            { server: "hub-3", current: false, offline: true, lag: 7, activeMs: 9000 }
          ],
          sources: [
            { stream: "INGEST_CRM", region: "eu", lag: 3, activeMs: 200 },
            { stream: "INGEST_CRM", region: "us", lag: 40, activeMs: 12_000 }
          ]
        },
        { stream: "INGEST_OEE", replicas: [], sources: [], error: "timeout" }
      ]
    })
    expect(lines).toEqual([
      "region\tleaf reached from hub\trtt ms\tsource lag (events)\tlast active",
      "eu\tyes\t0.8\t3\t200 ms ago",
      "us\tno (no responders)\t-\tunknown (40 when last reached)\t12.0 s ago",
      "",
      "hub stream\tmessages\tleader\treplicas\tsources",
      "INGEST_CRM\t120\thub-2\thub-1 current, hub-3 offline\teu lag 3, us lag 40",
      "INGEST_OEE\t-\t-\t-\tdoes not answer: timeout"
    ])
  })

  it("shows each edge shard's spool, and an edge that did not answer", () => {
    expect(
      edgeLines("http://127.0.0.1:8787", {
        status: "degraded",
        regions: {
          eu: {
            connected: false,
            shards: {
              "eu-publisher-0": { connected: false, spool: { depth: 12, oldest_age_ms: 4500, drain_failures: 3, next_drain_at: 1 } },
              "eu-publisher-1": { connected: false, spool: null }
            }
          }
        }
      })
    ).toEqual([
      "edge http://127.0.0.1:8787: degraded",
      "region\tshard\tlog\tspool depth\toldest\tdrain failures in a row",
      "eu\teu-publisher-0\tnot connected\t12\t4.5 s\t3",
      "eu\teu-publisher-1\tnot connected\t-\t-\t-"
    ])
    expect(edgeLines("http://edge", "did not answer: fetch failed")).toEqual(["edge http://edge: did not answer: fetch failed"])
  })
})
