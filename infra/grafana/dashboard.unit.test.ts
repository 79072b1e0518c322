import { readFileSync } from "node:fs"
import { dirname, join } from "node:path"
import { fileURLToPath } from "node:url"
import type { JetStreamManager } from "@nats-io/jetstream"
import { describe, expect, it } from "vitest"
import { projectionMetrics } from "../../consumers/metrics.ts"
import { projectionsFor } from "../../projections/index.ts"

const HERE = dirname(fileURLToPath(import.meta.url))
const dashboard = JSON.parse(readFileSync(join(HERE, "ingest-mesh.json"), "utf8")) as {
  panels: ReadonlyArray<{ title: string; targets: ReadonlyArray<{ expr: string }> }>
  templating: { list: ReadonlyArray<{ definition?: string }> }
}

/** Every metric name a query of the dashboard reads (its panels' and its variables'). */
const queriedNames = (): ReadonlySet<string> => {
  const queries = [
    ...dashboard.panels.flatMap((panel) => panel.targets.map((target) => target.expr)),
    ...dashboard.templating.list.flatMap((variable) => (variable.definition === undefined ? [] : [variable.definition]))
  ]
  return new Set(queries.flatMap((query) => [...query.matchAll(/\bingest_[a-z0-9_]+\b/g)].map((match) => match[0])))
}

/** The series names a registry exposes: a histogram's `_bucket`, `_sum` and `_count` beside its name. */
const seriesNames = (metrics: ReadonlyArray<{ name: string; type: unknown }>): ReadonlySet<string> =>
  new Set(metrics.flatMap(({ name, type }) => (type === "histogram" ? [name, `${name}_bucket`, `${name}_sum`, `${name}_count`] : [name])))

/** A stream manager that knows no stream: the lag gauge then reports nothing, and nothing is asked of a server. */
const noStreams = { streams: { info: () => Promise.reject(new Error("no server in a unit test")) } } as unknown as JetStreamManager

/**
 * The Power BI pusher's gauges, by name, from its source: its registry is made inside `mesh powerbi
 * push` and not exported, so the names are read where they are declared.
 */
const powerBiNames = (): ReadonlySet<string> => {
  const source = readFileSync(join(HERE, "..", "..", "powerbi", "cli.ts"), "utf8")
  return new Set([...source.matchAll(/(?:gauge\(|name: )"(ingest_powerbi_[a-z0-9_]+)"/g)].map((match) => match[1] as string))
}

describe("the Grafana dashboard", () => {
  it("queries only metrics the code registers", async () => {
    const registry = projectionMetrics(noStreams, Object.values(projectionsFor({ env: {} }))).registry
    const known = new Set([...seriesNames(await registry.getMetricsAsJSON()), ...powerBiNames()])
    const queried = [...queriedNames()]
    expect(queried.length).toBeGreaterThan(5)
    expect(queried.filter((name) => !known.has(name))).toEqual([])
  })

  it("shows every metric of the projection runtime somewhere", async () => {
    const registry = projectionMetrics(noStreams, Object.values(projectionsFor({ env: {} }))).registry
    const queried = queriedNames()
    const names = (await registry.getMetricsAsJSON()).map((metric) => metric.name)
    expect(names.filter((name) => ![...queried].some((query) => query === name || query.startsWith(`${name}_`)))).toEqual([])
  })
})
