import { readdir, readFile } from "node:fs/promises"
import { join } from "node:path"
import { describe, expect, it } from "vitest"
import { BI_FOLDER, biFiles, EXAMPLE_ORIGIN, odataServiceRoot, pbidsFileName, pbidsFor, withOrigin } from "./bi.ts"
import { findFeed, marts } from "./feeds.ts"

const filesOf = async (extension: string) =>
  Promise.all(
    (await readdir(BI_FOLDER))
      .filter((name) => name.endsWith(extension))
      .map(async (name) => ({ mart: name.slice(0, -extension.length), text: await readFile(join(BI_FOLDER, name), "utf8") }))
  )

/** The entity set a mart's M file loads: `Source{[Name = "…", Signature = "table"]}`. */
const loadedSet = (m: string) => /Source\{\[Name = "([a-z_0-9]+)", Signature = "table"\]\}/.exec(m)?.[1]

describe("pbids files", () => {
  it("name the mart's OData service root with one trailing slash, whatever the origin ends with", () => {
    expect(pbidsFor("https://bi.example.com/", "oee")).toEqual({
      version: "0.1",
      connections: [{ details: { protocol: "odata", address: { url: "https://bi.example.com/odata/oee/" } }, options: {}, mode: null }]
    })
    expect(odataServiceRoot("http://127.0.0.1:8788", "retail")).toBe("http://127.0.0.1:8788/odata/retail/")
    expect(odataServiceRoot("https://bi.example.com/read//", "crm")).toBe("https://bi.example.com/read/odata/crm/")
  })

  it("biFiles holds a .pbids per mart and the M and DAX files with the API's address in place of the example", async () => {
    const files = await biFiles("https://bi.example.com")
    for (const mart of marts) expect(JSON.parse(files.get(pbidsFileName(mart)) as string)).toEqual(pbidsFor("https://bi.example.com", mart))
    for (const { mart } of await filesOf(".pq")) {
      expect(files.get(`${mart}.pq`)).toContain(`OData.Feed("https://bi.example.com/odata/${mart}/"`)
      expect(files.get(`${mart}.pq`)).not.toContain(EXAMPLE_ORIGIN)
    }
    expect(withOrigin(`"${EXAMPLE_ORIGIN}/odata/oee/"`, "http://localhost:8788/")).toBe('"http://localhost:8788/odata/oee/"')
  })
})

describe("the M files", () => {
  it("there is one per mart a BI user reads", async () => {
    expect((await filesOf(".pq")).map(({ mart }) => mart).sort()).toEqual(["crm", "oee", "retail", "warehouse"])
  })

  it("each reads an entity set of its mart and filters its time column on RangeStart/RangeEnd as a half-open window", async () => {
    for (const { mart, text } of await filesOf(".pq")) {
      expect(text, mart).toContain(`OData.Feed("${EXAMPLE_ORIGIN}/odata/${mart}/", null, [Implementation = "2.0", ApiKeyName = "api_key"])`)
      const feed = findFeed(mart, loadedSet(text) ?? "")
      expect(feed, mart).toBeDefined()
      const time = feed?.time
      expect(time?.type, mart).toBe("timestamptz")
      expect(text).toContain(`[${time?.name}] >= DateTime.AddZone(RangeStart, 0)`)
      expect(text).toContain(`[${time?.name}] < DateTime.AddZone(RangeEnd, 0)`)
      const code = text.replace(/\/\/.*$/gm, "")
      for (const [, column] of code.matchAll(/\[([a-z_]+)\]/g))
        expect(
          feed?.columns.map(({ name }) => name),
          `${mart}: ${column}`
        ).toContain(column)
      expect(code.match(/\blet\b/g)).toHaveLength(1)
      expect(code.match(/\bin\b/g)).toHaveLength(1)
    }
  })
})

describe("the DAX files", () => {
  it("define measures over the table their mart's M file loads, on columns it has, and use only measures they define", async () => {
    const ms = new Map((await filesOf(".pq")).map(({ mart, text }) => [mart, loadedSet(text)]))
    const daxFiles = await filesOf(".dax")
    expect(daxFiles.map(({ mart }) => mart).sort()).toEqual([...ms.keys()].sort())
    for (const { mart, text } of daxFiles) {
      const table = ms.get(mart) as string
      const feed = findFeed(mart, table)
      const code = text.replace(/\/\/.*$/gm, "")
      const defined = [...code.matchAll(/MEASURE ([a-z_]+)\[([^\]]+)\] =/g)].map(([, owner, name]) => {
        expect(owner, mart).toBe(table)
        return name as string
      })
      expect(defined.length, mart).toBeGreaterThan(3)
      expect(new Set(defined).size).toBe(defined.length)
      for (const [, owner, name] of code.matchAll(/([a-z_]+)\[([^\]]+)\]/g)) {
        expect(owner, `${mart}: ${owner}[${name}]`).toBe(table)
        if (!defined.includes(name as string))
          expect(
            feed?.columns.map((column) => column.name),
            `${mart}: ${name}`
          ).toContain(name)
      }
      for (const [, name] of code.matchAll(/(?<![a-z_\]])\[([^\]]+)\]/g)) expect(defined, `${mart}: [${name}]`).toContain(name)
      expect(code).toMatch(/^\s*DEFINE\b[\s\S]*\bEVALUATE\b/)
      for (const open of ["(", "["]) {
        const close = open === "(" ? ")" : "]"
        expect(code.split(open).length, `${mart}: ${open}`).toBe(code.split(close).length)
      }
    }
  })
})
