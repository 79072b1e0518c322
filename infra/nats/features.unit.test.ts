import { readFileSync } from "node:fs"
import { describe, expect, it } from "vitest"
import { atLeast, serverSupports } from "./features.ts"
import { NATS_CONFIG, renderNatsConfig } from "./server.ts"

describe("server feature gates", () => {
  it("compare versions numerically, with or without a leading v", () => {
    expect(atLeast("2.9.10", "2.10.0")).toBe(false)
    expect(atLeast("v2.10.0", "2.10.0")).toBe(true)
    expect(atLeast("2.11.3", "2.10.0")).toBe(true)
    expect(atLeast("3.0.0", "2.10.0")).toBe(true)
    expect(atLeast("2.9.99", "2.10.0")).toBe(false)
    expect(() => atLeast("latest", "2.10.0")).toThrow(/not a nats-server version/)
  })

  it("turn sync_interval: always on only for servers that have it (2.10+), leaving 2.9's config as written", () => {
    const template = readFileSync(NATS_CONFIG, "utf8")
    expect(serverSupports("2.9.10", "syncIntervalAlways")).toBe(false)
    expect(renderNatsConfig(template, "2.9.10")).toBe(template)
    const modern = renderNatsConfig(template, "2.10.4")
    expect(modern).toMatch(/^\s+sync_interval: always$/m)
    expect(modern.replace(/^(\s+)sync_interval: always$/m, "$1# sync_interval: always")).toBe(template)
  })
})
