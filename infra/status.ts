import type { EdgeHealth } from "../consumers/status.ts"
import type { ClusterStatus } from "./nats/cluster-status.ts"

export type { EdgeHealth } from "../consumers/status.ts"

/**
 * What `mesh status` prints beyond the projections: per region, whether the hub reaches its leaf and
 * how far the hub's sources lag; per hub stream, its leader and replicas; per edge shard, its spool.
 * Pure text from plain data, so the same figures read the same wherever they are shown.
 */

const ago = (ms: number | undefined) => (ms === undefined ? "never" : ms < 1000 ? `${ms} ms ago` : `${(ms / 1000).toFixed(1)} s ago`)

/** Lines for the cluster: a region table (reach and summed source lag) and a hub stream table. */
export const clusterLines = (status: ClusterStatus): ReadonlyArray<string> => {
  const lines = [["region", "leaf reached from hub", "rtt ms", "source lag (events)", "last active"].join("\t")]
  for (const region of status.regions) {
    const sources = status.streams.flatMap((stream) => stream.sources.filter((source) => source.region === region.region))
    const lag = sources.reduce((sum, source) => sum + source.lag, 0)
    const active = sources.flatMap((source) => (source.activeMs === undefined ? [] : [source.activeMs]))
    lines.push(
      [
        region.region,
        region.reachable ? "yes" : `no (${region.error ?? "no answer"})`,
        region.rttMs === undefined ? "-" : region.rttMs.toFixed(1),
        // What the hub last heard from an unreachable region says nothing of what waits there now.
        sources.length === 0 ? "-" : region.reachable ? String(lag) : `unknown (${lag} when last reached)`,
        active.length === 0 ? "-" : ago(Math.max(...active))
      ].join("\t")
    )
  }
  lines.push("", ["hub stream", "messages", "leader", "replicas", "sources"].join("\t"))
  for (const stream of status.streams) {
    if (stream.error !== undefined) {
      lines.push([stream.stream, "-", "-", "-", `does not answer: ${stream.error}`].join("\t"))
      continue
    }
    lines.push(
      [
        stream.stream,
        String(stream.messages ?? "-"),
        stream.leader ?? "none",
        stream.replicas
          .map((replica) => `${replica.server} ${replica.offline ? "offline" : replica.current ? "current" : `behind ${replica.lag}`}`)
          .join(", ") || "-",
        // By region: the hub lists a stream's sources in no fixed order (it changes with the stream's leader).
        stream.sources
          .map((source) => `${source.region ?? source.stream} lag ${source.lag}`)
          .sort()
          .join(", ") || "-"
      ].join("\t")
    )
  }
  return lines
}

/** Lines for one edge: each shard of each region, connected or not, and its spool. */
export const edgeLines = (edgeUrl: string, health: EdgeHealth | string): ReadonlyArray<string> => {
  if (typeof health === "string") return [`edge ${edgeUrl}: ${health}`]
  const lines = [
    `edge ${edgeUrl}: ${health.status ?? "unknown"}`,
    ["region", "shard", "log", "spool depth", "oldest", "drain failures in a row"].join("\t")
  ]
  for (const [region, body] of Object.entries(health.regions ?? {}))
    for (const [shard, status] of Object.entries(body.shards ?? {}))
      lines.push(
        [
          region,
          shard,
          status.connected === true ? "connected" : "not connected",
          String(status.spool?.depth ?? "-"),
          status.spool?.oldest_age_ms == null ? "-" : `${(status.spool.oldest_age_ms / 1000).toFixed(1)} s`,
          String(status.spool?.drain_failures ?? "-")
        ].join("\t")
      )
  return lines
}
