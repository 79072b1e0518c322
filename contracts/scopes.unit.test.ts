import { describe, expect, it } from "vitest"
import { REPORTS_ADMIN_SCOPE } from "./reports.ts"
import { CONSOLE_ADMIN_SCOPE, grants } from "./scopes.ts"

describe("key scopes", () => {
  it("lets * read every mart but no admin scope, which a key gets only by naming it", () => {
    expect(grants(["*"], "retail")).toBe(true)
    expect(grants(["*"], CONSOLE_ADMIN_SCOPE)).toBe(false)
    expect(grants(["*"], REPORTS_ADMIN_SCOPE)).toBe(false)
    expect(grants(["*", CONSOLE_ADMIN_SCOPE], CONSOLE_ADMIN_SCOPE)).toBe(true)
    expect(grants(["warehouse"], "retail")).toBe(false)
    expect(grants(["warehouse"], "warehouse")).toBe(true)
  })
})
