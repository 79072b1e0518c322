import { readdir } from "node:fs/promises"
import { describe, expect, it } from "vitest"
import { STATS_ASSETS, STATS_PAGE_FOLDER, statsAssetType } from "./stats.ts"

describe("the stats page's assets", () => {
  it("serves its script and stylesheet by name, with their media types", () => {
    expect(statsAssetType("stats.js")).toBe("text/javascript; charset=utf-8")
    expect(statsAssetType("stats-view.js")).toBe("text/javascript; charset=utf-8")
    expect(statsAssetType("stats.css")).toBe("text/css; charset=utf-8")
  })

  it("serves nothing else: no other file of the folder, no path, no inherited name", () => {
    for (const name of [
      "stats.html",
      "stats-view.d.ts",
      "stats-view.unit.test.ts",
      "../stats.ts",
      "..",
      "pages/stats.js",
      "constructor",
      ""
    ])
      expect(statsAssetType(name), name).toBeUndefined()
  })

  it("names only files the folder has", async () => {
    const files = await readdir(STATS_PAGE_FOLDER)
    for (const name of Object.keys(STATS_ASSETS)) expect(files, name).toContain(name)
    expect(files).toContain("stats.html")
  })
})
