import { describe, expect, it } from "vitest"
import { boolean, numeric, text } from "../projections/table.ts"
import { csvChunks, neutraliseFormula } from "./formats.ts"
import { tooSlow } from "./stream.ts"

const collect = async (chunks: AsyncIterable<string>) => {
  let out = ""
  for await (const chunk of chunks) out += chunk
  return out
}
async function* batches(...rows: Array<Array<unknown>>) {
  yield rows as never
}

describe("CSV formula neutralisation (OWASP)", () => {
  it("prefixes text starting with = + - @ tab or carriage return with a quote, and nothing else", () => {
    for (const formula of ["=1+1", "+cmd|' /C calc'!A0", "-2+3", "@SUM(A1)", "\tx", "\rx"])
      expect(neutraliseFormula(formula)).toBe(`'${formula}`)
    for (const plain of ["plain", "a=b", "", "'quoted", " =spaced"]) expect(neutraliseFormula(plain)).toBe(plain)
  })

  it("applies to text columns only, so negative numbers stay numbers, and not at all when raw", async () => {
    const columns = [text("name"), numeric("delta"), boolean("ok")]
    expect(await collect(csvChunks(columns, batches(["=A1", "-5", true], ["-x, y", "-0.5", false]), true))).toBe(
      `name,delta,ok\r\n'=A1,-5,true\r\n"'-x, y",-0.5,false\r\n`
    )
    expect(await collect(csvChunks(columns, batches(["=A1", "-5", true]), false, true))).toBe("=A1,-5,true\r\n")
  })
})

describe("a client too slow for a stream", () => {
  const limits = { minBytesPerSecond: 1000, slowWindowMs: 10_000 }

  it("is one we waited on for the whole window while it took less than the minimum", () => {
    expect(tooSlow([{ at: 1000, waitedMs: 0, bytes: 5000 }], 1000, 11_500, limits)).toBe(true)
    expect(tooSlow([{ at: 5000, waitedMs: 4000, bytes: 20_000 }], 5000, 12_000, limits)).toBe(false)
  })

  it("is never one we kept waiting ourselves, producing rows", () => {
    expect(tooSlow([{ at: 11_000, waitedMs: 100, bytes: 10 }], undefined, 12_000, limits)).toBe(false)
    expect(tooSlow([], undefined, 60_000, limits)).toBe(false)
  })
})
