import { describe, expect, it } from "vitest"
import { retailMarts } from "./retail/marts.ts"
import { ROW_SCOPE_POLICY, rowScopeDdl, scopeFunction } from "./row-scope.ts"
import { warehouseMarts } from "./warehouse/marts.ts"

describe("row-level security statements", () => {
  it("put every retail table with a store behind one policy that asks the generation's scope function", () => {
    const ddl = rowScopeDdl("proj_retail_g7", retailMarts)
    const scoped = retailMarts.tables.filter((table) => table.rowScope !== undefined).map((table) => table.name)
    expect(scoped).toContain("fact_sales")
    expect(scoped).not.toContain("dim_product")
    expect(ddl[0]).toContain(`CREATE FUNCTION ${scopeFunction("proj_retail_g7")}() RETURNS text[]`)
    expect(ddl[0]).toContain("SECURITY DEFINER")
    for (const table of scoped) {
      expect(ddl).toContain(`ALTER TABLE "proj_retail_g7"."${table}" ENABLE ROW LEVEL SECURITY`)
      expect(
        ddl.some((statement) => statement.startsWith(`CREATE POLICY ${ROW_SCOPE_POLICY} ON "proj_retail_g7"."${table}" FOR SELECT`))
      ).toBe(true)
    }
    expect(ddl).toHaveLength(1 + 2 * scoped.length)
  })

  it("makes nothing for marts without stores, and refuses scoped tables without a scope", () => {
    expect(rowScopeDdl("proj_warehouse_g1", warehouseMarts)).toEqual([])
    const { rowScope: _, ...unscoped } = retailMarts
    expect(() => rowScopeDdl("s", unscoped)).toThrow(/scopes tables by store but declares no rowScope/)
  })
})
