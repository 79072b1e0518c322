import { describe, expect, it } from "vitest"
import { projections } from "./index.ts"
import { catalogue, publishedClashes, publishedObjects, publishedSchema } from "./catalogue.ts"

describe("published names", () => {
  it("never clash between the declared projections: each publishes into its own schema", () => {
    expect(publishedClashes(Object.values(projections))).toEqual([])
    const schemas = Object.values(projections).map(publishedSchema)
    expect(new Set(schemas).size).toBe(schemas.length)
    for (const [name, projection] of Object.entries(projections)) expect(projection.name).toBe(name)
  })

  it("keep crm's and retail's dim_date apart", () => {
    expect(projections.crm?.published).toContain("dim_date")
    expect(projections.retail?.published).toContain("dim_date")
    expect(publishedSchema({ name: "crm" })).not.toBe(publishedSchema({ name: "retail" }))
  })

  it("are found clashing when a projection publishes one twice or two projections share a name", () => {
    expect(publishedClashes([{ name: "a", published: ["x", "y", "x"] }])).toEqual(["mart_a.x"])
    expect(
      publishedClashes([
        { name: "a", published: ["x"] },
        { name: "a", published: ["x"] },
        { name: "b", published: ["x"] }
      ])
    ).toEqual(["mart_a.x"])
  })

  it("are the catalogue's: the read side's mart sets are the very ones each projection writes", () => {
    expect(catalogue.map((marts) => marts.name)).toEqual(Object.keys(projections))
    for (const marts of catalogue) {
      const projection = projections[marts.name]
      expect(projection?.tables).toBe(marts.tables)
      expect(projection?.views).toBe(marts.views)
      expect(projection?.published).toBe(marts.published)
    }
  })

  it("each have a declared shape, or the catalogue refuses the mart set naming the object", () => {
    for (const marts of catalogue) expect(publishedObjects(marts).map((object) => object.name)).toEqual(marts.published)
    expect(() => publishedObjects({ name: "a", tables: [], published: ["ghost"] })).toThrow(
      "mart set a publishes ghost but declares neither a table nor a view of that name"
    )
  })
})
