import { describe, expect, it } from "vitest"
import { boolean, type Column, date, integer, numeric, text, timestamp } from "../projections/table.ts"
import { BadParameter } from "./errors.ts"
import { type Feed, findFeed, martFeeds } from "./feeds.ts"
import {
  DEFAULT_PAGE_SIZE,
  MAX_PAGE_SIZE,
  metadataXml,
  nextLink,
  type ODataOptions,
  odataPage,
  pageQuery,
  pageSizeFor,
  parseODataOptions,
  positionToken,
  serviceDocument
} from "./odata.ts"
import type { Cells } from "./rows.ts"

const feedOf = (mart: string, name: string): Feed => {
  const feed = findFeed(mart, name)
  if (feed === undefined) throw new Error(`no feed ${mart}.${name}`)
  return feed
}

const snapshots = feedOf("oee", "oee_snapshots")
const engineerStats = feedOf("warehouse", "engineer_stats")

const ROOT = "https://mesh.example/odata/oee"

const options = (search: string, feed: Feed = snapshots): ODataOptions => parseODataOptions(feed, new URLSearchParams(search))

const rejection = (search: string, feed: Feed = snapshots): BadParameter => {
  try {
    options(search, feed)
  } catch (error) {
    if (error instanceof BadParameter) return error
    throw error
  }
  throw new Error(`${search} was accepted`)
}

const names = (columns: ReadonlyArray<Column>) => columns.map((column) => column.name)

const token = (values: ReadonlyArray<string | null>) => Buffer.from(JSON.stringify(values)).toString("base64url")

/** The `$n` placeholders of a statement, in the order they appear. */
const placeholders = (sql: string) => [...sql.matchAll(/\$(\d+)::/g)].map((match) => Number(match[1]))

describe("parseODataOptions", () => {
  it("without options, selects every column in order, with no order, filter, top, position or count", () => {
    expect(options("")).toEqual({ select: snapshots.columns, orderBy: [], skip: 0, count: false })
  })

  it("selects the listed properties in the order given, once each, ignoring spaces", () => {
    expect(names(options("$select=oee_pct, machine_id,oee_pct").select)).toEqual(["oee_pct", "machine_id"])
    expect(options("$select=*").select).toEqual(snapshots.columns)
  })

  it("rejects an unknown property in $select, naming $select and listing the properties", () => {
    const error = rejection("$select=id,oee")
    expect(error.parameter).toBe("$select")
    expect(error.message).toContain('"oee"')
    expect(error.message).toContain(names(snapshots.columns).join(", "))
  })

  it("rejects an empty property name in $select", () => {
    expect(rejection("$select=id,,machine_id").parameter).toBe("$select")
    expect(rejection("$select=").parameter).toBe("$select")
  })

  it("reads $orderby as properties with optional asc or desc", () => {
    const { orderBy } = options("$orderby=snapshot_time desc, machine_id asc,oee_pct")
    expect(orderBy.map(({ column, descending }) => [column.name, descending])).toEqual([
      ["snapshot_time", true],
      ["machine_id", false],
      ["oee_pct", false]
    ])
  })

  it.each(["snapshot_time down", "snapshot_time desc nulls", "snapshot_time DESC", "nothing"])(
    "rejects $orderby=%s, naming $orderby",
    (value) => {
      expect(rejection(`$orderby=${encodeURIComponent(value)}`).parameter).toBe("$orderby")
    }
  )

  it("reads $top, $skip and $count", () => {
    expect(options("$top=25&$skip=50&$count=true")).toMatchObject({ top: 25, skip: 50, count: true })
    expect(options("$top=0&$count=false")).toMatchObject({ top: 0, skip: 0, count: false })
  })

  it.each([
    ["$top", "-1"],
    ["$top", "1.5"],
    ["$top", "ten"],
    ["$top", ""],
    ["$top", "1234567890"],
    ["$skip", "-5"],
    ["$skip", "1e3"],
    ["$count", "yes"],
    ["$count", "TRUE"]
  ])("rejects %s=%j, naming the option", (option, value) => {
    expect(rejection(`${option}=${encodeURIComponent(value)}`).parameter).toBe(option)
  })

  it("keeps $filter as given, for the filter compiler", () => {
    expect(options(`$filter=${encodeURIComponent("machine_id eq 'M-01'")}`).filter).toBe("machine_id eq 'M-01'")
  })

  it("serves JSON only, in $format's short or media-type form", () => {
    expect(() => options("$format=json")).not.toThrow()
    expect(() => options(`$format=${encodeURIComponent("application/json;odata.metadata=minimal")}`)).not.toThrow()
    for (const format of ["xml", "atom", "application/xml"])
      expect(rejection(`$format=${encodeURIComponent(format)}`).parameter).toBe("$format")
  })

  it.each(["$expand", "$search", "$apply", "$levels", "$Top"])("rejects the unsupported system option %s, naming it", (option) => {
    const error = rejection(`${option}=x`)
    expect(error.parameter).toBe(option)
    expect(error.message).toContain("$select")
  })

  it("rejects a system option given twice", () => {
    const error = rejection("$top=5&$top=5")
    expect(error.parameter).toBe("$top")
    expect(error.message).toContain("more than once")
  })

  it("ignores custom options, the API key among them", () => {
    expect(options("api_key=imk_x&api_key=imk_y&anything=1")).toEqual(options(""))
  })

  it("reads a $skiptoken as the position it holds: $orderby values, then the key", () => {
    expect(options(`$orderby=machine_id desc&$skiptoken=${token(["M-02", "snap-9"])}`).after).toEqual(["M-02", "snap-9"])
    expect(options(`$orderby=shift_id&$skiptoken=${token([null, "snap-9"])}`).after).toEqual([null, "snap-9"])
  })

  it.each([
    ["not base64 JSON", "$skiptoken=%%%"],
    ["valid base64 of no JSON", `$skiptoken=${Buffer.from("snap-9").toString("base64url")}`],
    ["an object", `$skiptoken=${Buffer.from('{"id":"snap-9"}').toString("base64url")}`],
    ["too few values for the $orderby", `$orderby=machine_id&$skiptoken=${token(["snap-9"])}`],
    ["too many values", `$skiptoken=${token(["M-02", "snap-9"])}`],
    ["a null key", `$skiptoken=${token([null])}`],
    ["a number", `$skiptoken=${token([9] as never)}`]
  ])("rejects a $skiptoken that is %s, naming $skiptoken", (_, search) => {
    expect(rejection(search).parameter).toBe("$skiptoken")
  })
})

describe("pageSizeFor", () => {
  it("uses the default page size when the client states no preference", () => {
    expect(pageSizeFor(undefined)).toEqual({ size: DEFAULT_PAGE_SIZE, applied: false })
    expect(pageSizeFor("return=minimal")).toEqual({ size: DEFAULT_PAGE_SIZE, applied: false })
    expect(pageSizeFor("odata.maxpagesize=lots")).toEqual({ size: DEFAULT_PAGE_SIZE, applied: false })
  })

  it("applies odata.maxpagesize, also among other preferences", () => {
    expect(pageSizeFor("odata.maxpagesize=500")).toEqual({ size: 500, applied: true })
    expect(pageSizeFor("return=minimal, odata.maxpagesize=20")).toEqual({ size: 20, applied: true })
  })

  it("bounds the preference to at least 1 and at most MAX_PAGE_SIZE", () => {
    expect(pageSizeFor("odata.maxpagesize=0")).toEqual({ size: 1, applied: true })
    expect(pageSizeFor(`odata.maxpagesize=${MAX_PAGE_SIZE + 1}`)).toEqual({ size: MAX_PAGE_SIZE, applied: true })
    expect(pageSizeFor("odata.maxpagesize=99999999999999999999999")).toEqual({ size: MAX_PAGE_SIZE, applied: true })
  })
})

describe("pageQuery", () => {
  it("selects the chosen cells formatted in SQL, then the sort keys as text, from the published object in key order", () => {
    const query = pageQuery(snapshots, options("$select=id,snapshot_time,oee_pct"), 100)
    expect(query.rows.text).toBe(
      `SELECT "id" AS "id", to_char("snapshot_time" AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"') AS "snapshot_time", ` +
        `("oee_pct")::text AS "oee_pct", ("id")::text AS "$position0" ` +
        `FROM "mart_oee"."oee_snapshots" ORDER BY "id" ASC NULLS LAST LIMIT $1::bigint`
    )
    expect(query.rows.params).toEqual([101])
    expect(names(query.rows.columns)).toEqual(["id", "snapshot_time", "oee_pct"])
    expect(query.pageRows).toBe(100)
    expect(query.count).toBeUndefined()
  })

  it("asks for one row more than the page, the page being $top when that is smaller", () => {
    expect(pageQuery(snapshots, options("$top=7"), 100)).toMatchObject({ pageRows: 7, rows: { params: [8] } })
    expect(pageQuery(snapshots, options("$top=700"), 100)).toMatchObject({ pageRows: 100, rows: { params: [101] } })
    expect(pageQuery(snapshots, options("$top=0"), 100)).toMatchObject({ pageRows: 0, rows: { params: [1] } })
  })

  it("binds $skip as an offset after the limit", () => {
    const query = pageQuery(snapshots, options("$select=id&$skip=40"), 10)
    expect(query.rows.text).toMatch(/ LIMIT \$1::bigint OFFSET \$2::bigint$/)
    expect(query.rows.params).toEqual([11, 40])
  })

  it("orders by $orderby, descending with nulls first and ascending with nulls last, then by the key", () => {
    const query = pageQuery(snapshots, options("$select=id&$orderby=shift_id desc,oee_pct"), 10)
    expect(query.rows.text).toContain(`ORDER BY "shift_id" DESC NULLS FIRST, "oee_pct" ASC NULLS LAST, "id" ASC NULLS LAST LIMIT`)
    expect(query.rows.text).toContain(
      `("shift_id")::text AS "$position0", ("oee_pct")::text AS "$position1", ("id")::text AS "$position2" FROM`
    )
  })

  it("does not append a key column that $orderby already names", () => {
    const query = pageQuery(snapshots, options("$select=id&$orderby=id desc"), 10)
    expect(query.rows.text).toContain(`ORDER BY "id" DESC NULLS FIRST LIMIT`)
    expect(query.rows.text).not.toContain("$position1")
  })

  it("appends each key column not ordered by, in key order", () => {
    const query = pageQuery(engineerStats, options("$orderby=initials desc", engineerStats), 10)
    expect(query.rows.text).toContain(`ORDER BY "initials" DESC NULLS FIRST, "date" ASC NULLS LAST LIMIT`)
    expect(query.rows.text).toContain(`FROM "mart_warehouse"."engineer_stats"`)
  })

  it("puts the filter's literals in params, never in the SQL text", () => {
    const evil = "M'1'); DROP TABLE mart_oee.oee_snapshots; --"
    const query = pageQuery(
      snapshots,
      options(`$select=id&$filter=${encodeURIComponent(`machine_id eq '${evil.replaceAll("'", "''")}'`)}`),
      10
    )
    expect(query.rows.text).toContain(`WHERE ("machine_id" = $1::text) ORDER BY`)
    expect(query.rows.text).not.toContain("DROP")
    expect(query.rows.params).toEqual([evil, 11])
  })

  it("continues after a key-only $skiptoken with one row comparison the key's index serves", () => {
    const query = pageQuery(snapshots, options(`$select=id&$skiptoken=${token(["snap-9"])}`), 10)
    expect(query.rows.text).toContain(`WHERE (("id") > ($1::text)) ORDER BY "id" ASC NULLS LAST LIMIT $2::bigint`)
    expect(query.rows.params).toEqual(["snap-9", 11])
  })

  it("continues after a position in a descending order: strictly past on each column, the earlier ones equal", () => {
    const query = pageQuery(snapshots, options(`$select=id&$orderby=machine_id desc&$skiptoken=${token(["M-02", "snap-9"])}`), 10)
    expect(query.rows.text).toContain(`WHERE (("machine_id" < $1::text) OR ("machine_id" = $2::text AND "id" > $3::text)) ORDER BY`)
    expect(query.rows.params).toEqual(["M-02", "M-02", "snap-9", 11])
  })

  it("places nulls where the order puts them: last when ascending, first when descending", () => {
    const ascendingNull = pageQuery(snapshots, options(`$select=id&$orderby=shift_id&$skiptoken=${token([null, "snap-9"])}`), 10)
    expect(ascendingNull.rows.text).toContain(`WHERE ((false) OR ("shift_id" IS NULL AND "id" > $1::text))`)
    const descendingNull = pageQuery(snapshots, options(`$select=id&$orderby=shift_id desc&$skiptoken=${token([null, "snap-9"])}`), 10)
    expect(descendingNull.rows.text).toContain(`WHERE (("shift_id" IS NOT NULL) OR ("shift_id" IS NULL AND "id" > $1::text))`)
    const ascendingValue = pageQuery(snapshots, options(`$select=id&$orderby=shift_id&$skiptoken=${token(["S1", "snap-9"])}`), 10)
    expect(ascendingValue.rows.text).toContain(
      `WHERE ((("shift_id" > $1::text OR "shift_id" IS NULL)) OR ("shift_id" = $2::text AND "id" > $3::text))`
    )
  })

  it("casts each position value to its column's type", () => {
    const query = pageQuery(engineerStats, options(`$orderby=count desc&$skiptoken=${token(["4", "2025-01-15", "AB"])}`, engineerStats), 10)
    expect(query.rows.text).toContain(`"count" < $1::integer`)
    expect(query.rows.text).toContain(`"count" = $2::integer AND "date" > $3::date`)
    expect(query.rows.text).toContain(`"count" = $4::integer AND "date" = $5::date AND "initials" > $6::text`)
    expect(query.rows.params).toEqual(["4", "4", "2025-01-15", "4", "2025-01-15", "AB", 11])
  })

  it("binds the filter's and the position's values in one sequence, each placeholder used once, and the token's text never in SQL", () => {
    const evil = "x'); DELETE FROM t; --"
    const filter = encodeURIComponent("line_id eq 'L1' and oee_pct gt 50.5")
    const query = pageQuery(
      snapshots,
      options(`$select=id&$filter=${filter}&$orderby=machine_id desc&$skiptoken=${token([evil, evil])}&$skip=3`),
      10
    )
    expect(query.rows.text).not.toContain("DELETE")
    expect(placeholders(query.rows.text)).toEqual(query.rows.params.map((_, i) => i + 1))
    expect(query.rows.params).toEqual(["L1", "50.5", evil, evil, evil, 11, 3])
  })

  it("counts with the filter alone: no position, order, limit or offset, and only the filter's params", () => {
    const query = pageQuery(
      snapshots,
      options(`$filter=${encodeURIComponent("machine_id eq 'M-01'")}&$count=true&$skiptoken=${token(["snap-9"])}&$top=5&$skip=2`),
      10
    )
    expect(query.count).toEqual({
      text: `SELECT count(*)::bigint FROM "mart_oee"."oee_snapshots" WHERE ("machine_id" = $1::text)`,
      params: ["M-01"],
      columns: []
    })
    expect(pageQuery(snapshots, options("$count=true"), 10).count).toEqual({
      text: `SELECT count(*)::bigint FROM "mart_oee"."oee_snapshots"`,
      params: [],
      columns: []
    })
  })
})

describe("positionToken and nextLink", () => {
  const url = (search: string) => new URL(`${ROOT}/oee_snapshots?${search}`)

  it("make a link whose $skiptoken parses back as the last row's position", () => {
    const request = url("$select=id,oee_pct&$orderby=machine_id desc")
    const parsed = parseODataOptions(snapshots, request.searchParams)
    const last: Cells = ["snap-9", "87.5", "M-02", "snap-9"]
    const link = new URL(nextLink(request, parsed, 10, positionToken(parsed, snapshots, last)))
    const next = parseODataOptions(snapshots, link.searchParams)
    expect(next.after).toEqual(["M-02", "snap-9"])
    expect(names(next.select)).toEqual(["id", "oee_pct"])
    expect(next.orderBy).toEqual(parsed.orderBy)
  })

  it("hold a key that $orderby names once in the order and again as the key, and read it back", () => {
    const parsed = options("$select=id&$orderby=id desc")
    const value = positionToken(parsed, snapshots, ["snap-9", "snap-9"])
    expect(JSON.parse(Buffer.from(value, "base64url").toString("utf8"))).toEqual(["snap-9", "snap-9"])
    const query = pageQuery(snapshots, options(`$select=id&$orderby=id desc&$skiptoken=${value}`), 10)
    expect(query.rows.text).toContain(`WHERE (("id" < $1::text))`)
    expect(query.rows.params).toEqual(["snap-9", 11])
  })

  it("lay out a composite key whose columns are partly ordered by, so the next page resumes where this one ended", () => {
    const parsed = options("$select=count&$orderby=initials desc", engineerStats)
    // count, then the positions: initials (ordered), date (the key column not ordered by).
    const value = positionToken(parsed, engineerStats, [4, "AB", "2025-01-15"])
    const next = options(`$select=count&$orderby=initials desc&$skiptoken=${value}`, engineerStats)
    expect(next.after).toEqual(["AB", "2025-01-15", "AB"])
    const query = pageQuery(engineerStats, next, 10)
    expect(query.rows.text).toContain(`WHERE (("initials" < $1::text) OR ("initials" = $2::text AND "date" > $3::date))`)
    expect(query.rows.params).toEqual(["AB", "AB", "2025-01-15", 11])
  })

  it("keep every other parameter, the API key included, drop $skip, and count $top down by the page", () => {
    const request = url(`$select=id&$filter=${encodeURIComponent("machine_id eq 'M 1'")}&$top=25&$skip=5&api_key=imk_k&$count=true`)
    const parsed = parseODataOptions(snapshots, request.searchParams)
    const link = new URL(nextLink(request, parsed, 10, "TOKEN"))
    expect(link.origin + link.pathname).toBe(`${ROOT}/oee_snapshots`)
    expect(Object.fromEntries(link.searchParams)).toEqual({
      $select: "id",
      $filter: "machine_id eq 'M 1'",
      api_key: "imk_k",
      $count: "true",
      $top: "15",
      $skiptoken: "TOKEN"
    })
  })

  it("replace the previous page's $skiptoken instead of adding a second", () => {
    const request = url(`$select=id&$skiptoken=${token(["snap-1"])}`)
    const link = new URL(nextLink(request, parseODataOptions(snapshots, request.searchParams), 10, token(["snap-2"])))
    expect(link.searchParams.getAll("$skiptoken")).toEqual([token(["snap-2"])])
    expect(parseODataOptions(snapshots, link.searchParams).after).toEqual(["snap-2"])
  })
})

/** A minimal XML well-formedness check: one root, balanced tags, quoted attributes, only the predefined entities. */
const wellFormed = (xml: string): boolean => {
  const body = xml.replace(/^<\?xml [^?]*\?>/, "")
  const entity = "&(?:amp|lt|gt|quot|apos);"
  const tag = new RegExp(`<(/?)([A-Za-z_][\\w.:-]*)((?:\\s+[A-Za-z_][\\w.:-]*="(?:[^"<&]|${entity})*")*)\\s*(/?)>`, "y")
  const textRun = new RegExp(`(?:[^<&]|${entity})*`, "y")
  const stack: Array<string> = []
  let roots = 0
  let at = 0
  while (at < body.length) {
    if (body[at] !== "<") {
      textRun.lastIndex = at
      textRun.exec(body)
      if (textRun.lastIndex === at || stack.length === 0) return false
      at = textRun.lastIndex
      continue
    }
    tag.lastIndex = at
    const match = tag.exec(body)
    if (match === null) return false
    const [, closing, name, , selfClosing] = match
    if (closing === "/") {
      if (stack.pop() !== name) return false
    } else {
      if (stack.length === 0) roots++
      if (selfClosing !== "/") stack.push(name as string)
    }
    at = tag.lastIndex
  }
  return stack.length === 0 && roots === 1
}

const unescape = (value: string) => value.replaceAll("&quot;", '"').replaceAll("&lt;", "<").replaceAll("&gt;", ">").replaceAll("&amp;", "&")

describe("metadataXml", () => {
  it("the checker used here tells malformed XML from well-formed", () => {
    expect(wellFormed(`<?xml version="1.0"?><a x="1"><b/>t&amp;t</a>`)).toBe(true)
    for (const bad of [`<a><b></a></b>`, `<a x="<"/>`, `<a>&</a>`, `<a/><b/>`, `<a>`, `<a x=1/>`]) expect(wellFormed(bad), bad).toBe(false)
  })

  it("describes every mart's feeds in well-formed CSDL", () => {
    for (const [mart, feeds] of Object.entries(martFeeds)) expect(wellFormed(metadataXml(mart, feeds)), mart).toBe(true)
  })

  it("declares an entity type and an entity set per feed, in the mart's namespace and container", () => {
    const oee = martFeeds.oee ?? []
    const xml = metadataXml("oee", oee)
    expect(xml).toContain(`<Schema Namespace="IngestMesh.oee" xmlns="http://docs.oasis-open.org/odata/ns/edm">`)
    expect(xml).toContain(`<EntityContainer Name="oee">`)
    expect([...xml.matchAll(/<EntityType Name="([^"]+)">/g)].map((match) => match[1])).toEqual(oee.map((feed) => feed.name))
    expect([...xml.matchAll(/<EntitySet Name="([^"]+)" EntityType="([^"]+)"\/>/g)].map((match) => [match[1], match[2]])).toEqual(
      oee.map((feed) => [feed.name, `IngestMesh.oee.${feed.name}`])
    )
  })

  it("keys each entity type as its feed is keyed, on properties it declares", () => {
    for (const feed of [...(martFeeds.warehouse ?? []), ...(martFeeds.crm ?? [])]) {
      const xml = metadataXml(feed.mart, [feed])
      const refs = [...(/<Key>(.*?)<\/Key>/.exec(xml)?.[1] ?? "").matchAll(/<PropertyRef Name="([^"]+)"\/>/g)].map((match) => match[1])
      expect(refs, feed.name).toEqual(feed.key)
      const properties = [...xml.matchAll(/<Property Name="([^"]+)"/g)].map((match) => match[1])
      expect(properties, feed.name).toEqual(names(feed.columns))
    }
  })

  it("gives each column type its Edm type, nullability, a variable scale to decimals and millisecond precision to instants", () => {
    const columns: ReadonlyArray<Column> = [
      text("t"),
      text("t_null", true),
      integer("i"),
      { name: "b", type: "bigint" },
      numeric("n", true),
      date("d"),
      timestamp("ts"),
      boolean("flag", true)
    ]
    const xml = metadataXml("demo", [{ mart: "demo", name: "things", columns, key: ["t"] }])
    const properties = [...xml.matchAll(/<Property ([^>]*)\/>/g)].map((match) => match[1])
    expect(properties).toEqual([
      `Name="t" Type="Edm.String" Nullable="false"`,
      `Name="t_null" Type="Edm.String" Nullable="true"`,
      `Name="i" Type="Edm.Int32" Nullable="false"`,
      `Name="b" Type="Edm.Int64" Nullable="false"`,
      `Name="n" Type="Edm.Decimal" Nullable="true" Scale="variable"`,
      `Name="d" Type="Edm.Date" Nullable="false"`,
      `Name="ts" Type="Edm.DateTimeOffset" Nullable="false" Precision="3"`,
      `Name="flag" Type="Edm.Boolean" Nullable="true"`
    ])
  })

  it("escapes entity, property, key and container names, which stay readable once unescaped", () => {
    const odd = `a<b>&"c`
    const xml = metadataXml("demo", [{ mart: "demo", name: odd, columns: [text(odd), integer(`n&"1`)], key: [odd] }])
    expect(wellFormed(xml)).toBe(true)
    expect(xml).not.toContain(odd)
    expect(xml).toContain(`<EntityType Name="a&lt;b&gt;&amp;&quot;c">`)
    expect(xml).toContain(`<PropertyRef Name="a&lt;b&gt;&amp;&quot;c"/>`)
    expect(xml).toContain(`EntityType="IngestMesh.demo.a&lt;b&gt;&amp;&quot;c"`)
    expect([...xml.matchAll(/<Property Name="([^"]+)"/g)].map((match) => unescape(match[1] as string))).toEqual([odd, `n&"1`])
  })
})

describe("serviceDocument", () => {
  it("lists every feed as an entity set relative to the service root", () => {
    const oee = martFeeds.oee ?? []
    expect(serviceDocument(ROOT, oee)).toEqual({
      "@odata.context": `${ROOT}/$metadata`,
      value: oee.map((feed) => ({ name: feed.name, kind: "EntitySet", url: feed.name }))
    })
  })
})

describe("odataPage", () => {
  async function* batchesOf(batches: ReadonlyArray<ReadonlyArray<Cells>>) {
    for (const batch of batches) yield batch
  }

  /** One page of `$select=id,oee_pct`: each row's cells, then its position (the key). */
  const row = (n: number): Cells => [`snap-${n}`, `${n}.50`, `snap-${n}`]
  const rows = (from: number, to: number) => Array.from({ length: to - from + 1 }, (_, i) => row(from + i))

  interface Body {
    readonly "@odata.context": string
    readonly "@odata.count"?: number
    readonly value: ReadonlyArray<Record<string, unknown>>
    readonly "@odata.nextLink"?: string
  }

  const render = async (search: string, batches: ReadonlyArray<ReadonlyArray<Cells>>, pageSize: number, total?: string) => {
    const url = new URL(`${ROOT}/oee_snapshots?${search}`)
    const parsed = parseODataOptions(snapshots, url.searchParams)
    const query = pageQuery(snapshots, parsed, pageSize)
    let raw = ""
    for await (const chunk of odataPage({ root: ROOT, feed: snapshots, url, options: parsed, query, total, batches: batchesOf(batches) }))
      raw += chunk
    return { raw, body: JSON.parse(raw) as Body }
  }

  it("names the entity set and the selected properties in @odata.context", async () => {
    expect((await render("$select=id,oee_pct", [], 3)).body["@odata.context"]).toBe(`${ROOT}/$metadata#oee_snapshots(id,oee_pct)`)
    const whole = snapshots.columns.map((column): Cells[number] =>
      column.type === "text" ? "x" : column.type === "timestamptz" ? "2025-01-15T00:00:00.000Z" : 1
    )
    const { body } = await render("", [[[...whole, "x"]]], 3)
    expect(body["@odata.context"]).toBe(`${ROOT}/$metadata#oee_snapshots`)
    expect(Object.keys(body.value[0] ?? {})).toEqual(names(snapshots.columns))
  })

  it("gives @odata.count before the rows when a total is given, and none otherwise", async () => {
    const counted = await render("$select=id,oee_pct&$count=true", [rows(1, 2)], 3, "42")
    expect(counted.body["@odata.count"]).toBe(42)
    expect(counted.raw.indexOf('"@odata.count"')).toBeLessThan(counted.raw.indexOf('"value"'))
    expect((await render("$select=id,oee_pct", [rows(1, 2)], 3)).body).not.toHaveProperty("@odata.count")
  })

  it("writes the selected cells only, decimals as exact JSON numbers, and not the trailing position", async () => {
    const { raw, body } = await render("$select=id,oee_pct", [[["snap-1", "87.50", "snap-1"]]], 3)
    expect(body.value).toEqual([{ id: "snap-1", oee_pct: 87.5 }])
    expect(raw).toContain(`{"id":"snap-1","oee_pct":87.50}`)
  })

  it("returns every row, and no link, when the rows fit the page", async () => {
    const fewer = await render("$select=id,oee_pct", [rows(1, 2)], 3)
    expect(fewer.body.value.map((value) => value.id)).toEqual(["snap-1", "snap-2"])
    expect(fewer.body).not.toHaveProperty("@odata.nextLink")
    const exactly = await render("$select=id,oee_pct", [rows(1, 3)], 3)
    expect(exactly.body.value).toHaveLength(3)
    expect(exactly.body).not.toHaveProperty("@odata.nextLink")
  })

  it("writes an empty page as an empty value array", async () => {
    expect((await render("$select=id,oee_pct", [], 3)).body).toEqual({
      "@odata.context": `${ROOT}/$metadata#oee_snapshots(id,oee_pct)`,
      value: []
    })
    expect((await render("$select=id,oee_pct", [[], []], 3)).body.value).toEqual([])
  })

  it("returns exactly a page of rows when one more was read, and links to the rows after the page's last", async () => {
    const { body } = await render("$select=id,oee_pct", [rows(1, 4)], 3)
    expect(body.value.map((value) => value.id)).toEqual(["snap-1", "snap-2", "snap-3"])
    const link = new URL(body["@odata.nextLink"] as string)
    expect(parseODataOptions(snapshots, link.searchParams).after).toEqual(["snap-3"])
  })

  it("tells that more rows follow whichever batch the extra row arrives in", async () => {
    for (const batches of [
      [rows(1, 2), rows(3, 4)],
      [rows(1, 3), rows(4, 4)],
      [rows(1, 1), [], rows(2, 2), rows(3, 5)]
    ]) {
      const { body } = await render("$select=id,oee_pct", batches, 3)
      expect(body.value.map((value) => value.id)).toEqual(["snap-1", "snap-2", "snap-3"])
      expect(parseODataOptions(snapshots, new URL(body["@odata.nextLink"] as string).searchParams).after).toEqual(["snap-3"])
    }
  })

  it("stops reading batches once it knows more rows follow", async () => {
    let pulled = 0
    async function* counted() {
      for (const batch of [rows(1, 2), rows(3, 4), rows(5, 6)]) {
        pulled++
        yield batch
      }
    }
    const url = new URL(`${ROOT}/oee_snapshots?$select=id,oee_pct`)
    const parsed = parseODataOptions(snapshots, url.searchParams)
    const page = odataPage({
      root: ROOT,
      feed: snapshots,
      url,
      options: parsed,
      query: pageQuery(snapshots, parsed, 3),
      total: undefined,
      batches: counted()
    })
    for await (const chunk of page) expect(chunk).toBeTypeOf("string")
    expect(pulled).toBe(2)
  })

  it("links on while $top leaves rows to return, with $top counted down, and not once $top is reached", async () => {
    const partial = await render("$select=id,oee_pct&$top=5", [rows(1, 4)], 3)
    expect(partial.body.value).toHaveLength(3)
    expect(new URL(partial.body["@odata.nextLink"] as string).searchParams.get("$top")).toBe("2")
    const reached = await render("$select=id,oee_pct&$top=3", [rows(1, 4)], 3)
    expect(reached.body.value).toHaveLength(3)
    expect(reached.body).not.toHaveProperty("@odata.nextLink")
  })

  it("returns nothing and no link for $top=0", async () => {
    const { body } = await render("$select=id,oee_pct&$top=0", [rows(1, 1)], 3)
    expect(body.value).toEqual([])
    expect(body).not.toHaveProperty("@odata.nextLink")
  })

  it("carries the request's other options into the link, so the walk continues in the same order and filter", async () => {
    const search = `$select=id,oee_pct&$orderby=oee_pct desc&$filter=${encodeURIComponent("machine_id eq 'M-01'")}&api_key=imk_k&$skip=10`
    // Each row: id, oee_pct, then the positions oee_pct and id.
    const batch: ReadonlyArray<Cells> = [1, 2, 3].map((n) => [`snap-${n}`, `${90 - n}.5`, `${90 - n}.5`, `snap-${n}`])
    const { body } = await render(search, [batch], 2)
    const link = new URL(body["@odata.nextLink"] as string)
    expect(link.searchParams.get("$filter")).toBe("machine_id eq 'M-01'")
    expect(link.searchParams.get("api_key")).toBe("imk_k")
    expect(link.searchParams.has("$skip")).toBe(false)
    expect(parseODataOptions(snapshots, link.searchParams)).toMatchObject({ after: ["88.5", "snap-2"], skip: 0 })
  })
})
