import { describe, expect, it } from "vitest"
import { idsOf } from "./api.ts"

describe("a re-drive's ids", () => {
  it("are a non-empty list of positive whole numbers; anything else is refused naming the field", () => {
    expect(idsOf({ ids: [3, 4] })).toEqual([3, 4])
    for (const body of [{}, { ids: [] }, { ids: ["3"] }, { ids: [0] }, { ids: [1.5] }, null])
      expect(() => idsOf(body)).toThrow(/ids must be a non-empty list of positive whole numbers/)
  })
})
