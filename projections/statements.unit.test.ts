import { describe, expect, it } from "vitest"
import {
  bulkWrite,
  copyLine,
  copyRow,
  dropIndexDdl,
  foldStaged,
  indexDdl,
  mergeRows,
  selectList,
  stagingDdl,
  tableDdl
} from "./statements.ts"
import { boolean, date, type DerivedColumn, integer, numeric, type Row, type TableSpec, text, timestamp } from "./table.ts"

const events: TableSpec = { name: "events", columns: [text("id"), integer("n"), numeric("amount", true)], key: ["id"], merge: "insert" }
const stock: TableSpec = {
  name: "stock_level",
  columns: [text("store_id"), text("product_id"), integer("quantity_on_hand"), integer("reorder_point", true), timestamp("as_of")],
  key: ["store_id", "product_id"],
  merge: "latest",
  orderBy: "as_of"
}
const daily: TableSpec = {
  name: "daily_stats",
  columns: [date("date"), integer("booked_in"), integer("erased")],
  key: ["date"],
  merge: "increment"
}

describe("tableDdl", () => {
  it("creates the table in the schema, every column NOT NULL unless nullable, with its primary key", () => {
    expect(tableDdl("gen_1", events)).toEqual([
      `CREATE TABLE "gen_1"."events" ("id" text NOT NULL, "n" integer NOT NULL, "amount" numeric, PRIMARY KEY ("id"))`
    ])
  })

  it("treats a column whose nullable is left out as NOT NULL", () => {
    const spec: TableSpec = {
      name: "t",
      columns: [
        { name: "a", type: "boolean" },
        { name: "b", type: "date", nullable: true }
      ],
      key: ["a"],
      merge: "upsert"
    }
    expect(tableDdl("s", spec)).toEqual([`CREATE TABLE "s"."t" ("a" boolean NOT NULL, "b" date, PRIMARY KEY ("a"))`])
  })

  it("declares a composite primary key in the order given", () => {
    const [create] = tableDdl("s", stock)
    expect(create).toBe(
      `CREATE TABLE "s"."stock_level" ("store_id" text NOT NULL, "product_id" text NOT NULL, "quantity_on_hand" integer NOT NULL, ` +
        `"reorder_point" integer, "as_of" timestamptz NOT NULL, PRIMARY KEY ("store_id", "product_id"))`
    )
  })

  it("creates one index per declared column list, numbered in order", () => {
    const spec: TableSpec = { ...events, indexes: [["n"], ["amount", "id"]] }
    expect(tableDdl("gen_1", spec).slice(1)).toEqual([
      `CREATE INDEX "events_ix0" ON "gen_1"."events" ("n")`,
      `CREATE INDEX "events_ix1" ON "gen_1"."events" ("amount", "id")`
    ])
  })

  it("quotes every identifier, doubling the quotes inside", () => {
    const spec: TableSpec = {
      name: 'we"ird',
      columns: [text("order"), text('a"b', true)],
      key: ["order"],
      merge: "insert",
      indexes: [['a"b']]
    }
    expect(tableDdl('my"schema', spec)).toEqual([
      `CREATE TABLE "my""schema"."we""ird" ("order" text NOT NULL, "a""b" text, PRIMARY KEY ("order"))`,
      `CREATE INDEX "we""ird_ix0" ON "my""schema"."we""ird" ("a""b")`
    ])
  })
})

describe("mergeRows", () => {
  const rows: ReadonlyArray<Row> = [
    { id: "a", n: 1, amount: null },
    { id: "b", n: 2, amount: 5 },
    { id: "a", n: 3, amount: 7 }
  ]

  it("keeps the first row of each key for insert", () => {
    expect(mergeRows(events, rows)).toEqual([
      { id: "a", n: 1, amount: null },
      { id: "b", n: 2, amount: 5 }
    ])
  })

  it("keeps the last row of each key for upsert", () => {
    expect(mergeRows({ ...events, merge: "upsert" }, rows)).toEqual([
      { id: "a", n: 3, amount: 7 },
      { id: "b", n: 2, amount: 5 }
    ])
  })

  const counts = {
    early: { store_id: "47", product_id: "SKU1", quantity_on_hand: 30, reorder_point: 20, as_of: "2025-01-15T08:00:00.000Z" },
    middle: { store_id: "47", product_id: "SKU1", quantity_on_hand: 18, reorder_point: 20, as_of: "2025-01-15T08:10:00.000Z" },
    late: { store_id: "47", product_id: "SKU1", quantity_on_hand: 12, reorder_point: 20, as_of: "2025-01-15T08:20:00.000Z" }
  }
  const { early, middle, late } = counts

  it.each([
    ["in order", [early, middle, late]],
    ["newest first", [late, middle, early]],
    ["newest in the middle", [early, late, middle]],
    ["newest first, then older", [late, early, middle]]
  ])("keeps the row with the greatest orderBy of each key for latest, %s", (_, batch) => {
    expect(mergeRows(stock, batch)).toEqual([late])
  })

  it("keeps the later of two rows with equal orderBy for latest, as the database's >= does", () => {
    const again = { ...late, quantity_on_hand: 11 }
    expect(mergeRows(stock, [late, again])).toEqual([again])
  })

  it("merges by the whole key: rows sharing only part of a composite key stay apart", () => {
    const other = { ...early, product_id: "SKU2" }
    const elsewhere = { ...middle, store_id: "48" }
    expect(mergeRows(stock, [early, other, elsewhere, late])).toEqual([late, other, elsewhere])
  })

  it("never merges rows whose key parts only look alike once joined", () => {
    const spec: TableSpec = { name: "t", columns: [text("a"), text("b")], key: ["a", "b"], merge: "insert" }
    const batch = [
      { a: "x,y", b: "z" },
      { a: "x", b: "y,z" }
    ]
    expect(mergeRows(spec, batch)).toEqual(batch)
  })

  it("leaves increment rows as they are, duplicates and all, for the database to sum", () => {
    const batch = [
      { date: "2025-01-15", booked_in: 0, erased: 1 },
      { date: "2025-01-15", booked_in: 30, erased: 0 },
      { date: "2025-01-16", booked_in: 0, erased: 1 }
    ]
    expect(mergeRows(daily, batch)).toBe(batch)
  })

  it("returns nothing for no rows", () => {
    expect(mergeRows(events, [])).toEqual([])
    expect(mergeRows(stock, [])).toEqual([])
  })
})

describe("bulkWrite", () => {
  const unnest3 = `FROM unnest($1::text[], $2::text[], $3::text[]) AS u(c0, c1, c2)`

  it("inserts new keys only for insert, each column cast from its text array", () => {
    expect(bulkWrite("gen_1", events, []).text).toBe(
      `INSERT INTO "gen_1"."events" ("id", "n", "amount") SELECT u.c0::text, u.c1::integer, u.c2::numeric ${unnest3} ` +
        `ON CONFLICT ("id") DO NOTHING`
    )
  })

  it("replaces every non-key column for upsert, only when one of them changes", () => {
    expect(bulkWrite("gen_1", { ...events, merge: "upsert" }, []).text).toBe(
      `INSERT INTO "gen_1"."events" ("id", "n", "amount") SELECT u.c0::text, u.c1::integer, u.c2::numeric ${unnest3} ` +
        `ON CONFLICT ("id") DO UPDATE SET "n" = EXCLUDED."n", "amount" = EXCLUDED."amount" ` +
        `WHERE ("gen_1"."events"."n", "gen_1"."events"."amount") IS DISTINCT FROM (EXCLUDED."n", EXCLUDED."amount")`
    )
  })

  it("replaces a row for latest only when the incoming orderBy is at least the stored one and the row changes", () => {
    expect(bulkWrite("gen_1", stock, []).text).toBe(
      `INSERT INTO "gen_1"."stock_level" ("store_id", "product_id", "quantity_on_hand", "reorder_point", "as_of") ` +
        `SELECT u.c0::text, u.c1::text, u.c2::integer, u.c3::integer, u.c4::timestamptz ` +
        `FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[]) AS u(c0, c1, c2, c3, c4) ` +
        `ON CONFLICT ("store_id", "product_id") DO UPDATE SET "quantity_on_hand" = EXCLUDED."quantity_on_hand", ` +
        `"reorder_point" = EXCLUDED."reorder_point", ` +
        `"as_of" = EXCLUDED."as_of" WHERE EXCLUDED."as_of" >= "gen_1"."stock_level"."as_of" AND ` +
        `("gen_1"."stock_level"."quantity_on_hand", "gen_1"."stock_level"."reorder_point", "gen_1"."stock_level"."as_of") ` +
        `IS DISTINCT FROM (EXCLUDED."quantity_on_hand", EXCLUDED."reorder_point", EXCLUDED."as_of")`
    )
  })

  it("sums the batch's rows by key and adds them to the stored ones for increment", () => {
    expect(bulkWrite("gen_1", daily, []).text).toBe(
      `INSERT INTO "gen_1"."daily_stats" ("date", "booked_in", "erased") ` +
        `SELECT u.c0::date, sum(u.c1::integer)::integer, sum(u.c2::integer)::integer ${unnest3} ` +
        `GROUP BY u.c0::date ON CONFLICT ("date") DO UPDATE SET "booked_in" = "gen_1"."daily_stats"."booked_in" + EXCLUDED."booked_in", ` +
        `"erased" = "gen_1"."daily_stats"."erased" + EXCLUDED."erased"`
    )
  })

  it("groups increments by the key columns wherever they stand among the columns", () => {
    const spec: TableSpec = {
      name: "engineer_stats",
      columns: [numeric("count"), date("date"), text("initials")],
      key: ["date", "initials"],
      merge: "increment"
    }
    expect(bulkWrite("s", spec, []).text).toBe(
      `INSERT INTO "s"."engineer_stats" ("count", "date", "initials") ` +
        `SELECT sum(u.c0::numeric)::numeric, u.c1::date, u.c2::text ${unnest3} ` +
        `GROUP BY u.c1::date, u.c2::text ` +
        `ON CONFLICT ("date", "initials") DO UPDATE SET "count" = "s"."engineer_stats"."count" + EXCLUDED."count"`
    )
  })

  it.each(["insert", "upsert", "latest", "increment"] as const)(
    "does nothing on conflict for %s when every column is in the key",
    (merge) => {
      const spec: TableSpec = { name: "keys", columns: [text("a"), integer("b")], key: ["a", "b"], merge, orderBy: "b" }
      expect(bulkWrite("s", spec, []).text).toMatch(/ ON CONFLICT \("a", "b"\) DO NOTHING$/)
    }
  )

  it("quotes the schema, table and column names", () => {
    const spec: TableSpec = { name: 'we"ird', columns: [text("order"), text('a"b')], key: ["order"], merge: "upsert" }
    expect(bulkWrite('my"schema', spec, []).text).toBe(
      `INSERT INTO "my""schema"."we""ird" ("order", "a""b") ` +
        `SELECT u.c0::text, u.c1::text FROM unnest($1::text[], $2::text[]) AS u(c0, c1) ` +
        `ON CONFLICT ("order") DO UPDATE SET "a""b" = EXCLUDED."a""b" ` +
        `WHERE ("my""schema"."we""ird"."a""b") IS DISTINCT FROM (EXCLUDED."a""b")`
    )
  })

  it("binds one text array per column, in column order, each value as String() and null for null or a missing value", () => {
    const spec: TableSpec = {
      name: "t",
      columns: [text("id"), integer("n"), numeric("amount", true), boolean("flag", true), timestamp("at")],
      key: ["id"],
      merge: "upsert"
    }
    const { columns } = bulkWrite("s", spec, [
      { id: "a", n: 1, amount: 0.3, flag: true, at: "2025-01-15T08:00:00.000Z" },
      { id: "b", n: -0, amount: null, flag: false, at: "2025-01-15T09:00:00.000Z" },
      { id: "c", n: 1e21, at: "2025-01-15T10:00:00.000Z" }
    ])
    expect(columns).toEqual([
      ["a", "b", "c"],
      ["1", "0", "1e+21"],
      ["0.3", null, null],
      ["true", "false", null],
      ["2025-01-15T08:00:00.000Z", "2025-01-15T09:00:00.000Z", "2025-01-15T10:00:00.000Z"]
    ])
  })

  it("ignores row fields that are not columns of the table", () => {
    expect(bulkWrite("s", events, [{ id: "a", n: 1, amount: 2, extra: "x" }]).columns).toEqual([["a"], ["1"], ["2"]])
  })

  it("binds empty arrays, one per column, for no rows", () => {
    expect(bulkWrite("s", stock, []).columns).toEqual([[], [], [], [], []])
  })
})

describe("selectList", () => {
  it("lists each expression AS its quoted column name, in order", () => {
    const columns: ReadonlyArray<DerivedColumn> = [
      [integer("date_key"), "f.date_key"],
      [integer("event_count"), "count(*)::integer"],
      [numeric("duration_seconds", true), "sum(f.duration_seconds)"]
    ]
    expect(selectList(columns)).toBe(
      `f.date_key AS "date_key", count(*)::integer AS "event_count", sum(f.duration_seconds) AS "duration_seconds"`
    )
  })

  it("quotes a name that needs it and leaves the expression as written", () => {
    expect(selectList([[text('say "hi"'), "'it''s'"]])).toBe(`'it''s' AS "say ""hi"""`)
  })

  it("is empty for no columns", () => {
    expect(selectList([])).toBe("")
  })
})

describe("a bulk load's statements", () => {
  it("stages rows in COPY's text format: the values as bulkWrite sends them, null as \\N, special characters escaped, then the log order", () => {
    expect(copyRow(events, { id: "a", n: 1, amount: null }, 7)).toBe("a\t1\t\\N\t7\n")
    expect(copyRow(events, { id: "tab\there\nnew\rline back\\slash", n: 2, amount: 0.5 }, 8)).toBe(
      "tab\\there\\nnew\\rline back\\\\slash\t2\t0.5\t8\n"
    )
    expect(copyLine([true, false, "", undefined])).toBe("true\tfalse\t\t\\N\n")
  })

  it("stages into an unlogged table with the table's columns, all nullable, and the order, without key or index", () => {
    expect(stagingDdl("gen_1", events)).toBe(
      `CREATE UNLOGGED TABLE "gen_1"."events__load" ("id" text, "n" integer, "amount" numeric, "__ord" bigint NOT NULL)`
    )
  })

  it("folds staged rows as batch after batch would: first for insert, last for upsert, greatest orderBy then last for latest, sums for increment", () => {
    const into = `INSERT INTO "gen_1"."events" ("id", "n", "amount") SELECT DISTINCT ON ("id") "id", "n", "amount" FROM "gen_1"."events__load"`
    expect(foldStaged("gen_1", events)).toBe(`${into} ORDER BY "id", "__ord" ON CONFLICT ("id") DO NOTHING`)
    expect(foldStaged("gen_1", { ...events, merge: "upsert" })).toMatch(
      new RegExp(`^${into.replace(/[.*+?^${}()|[\]\\]/g, "\\$&")} ORDER BY "id", "__ord" DESC ON CONFLICT \\("id"\\) DO UPDATE SET`)
    )
    expect(foldStaged("gen_1", stock)).toContain(
      `FROM "gen_1"."stock_level__load" ORDER BY "store_id", "product_id", "as_of" DESC NULLS LAST, "__ord" DESC ON CONFLICT`
    )
    expect(foldStaged("gen_1", daily)).toBe(
      `INSERT INTO "gen_1"."daily_stats" ("date", "booked_in", "erased") SELECT "date", sum("booked_in")::integer, sum("erased")::integer ` +
        `FROM "gen_1"."daily_stats__load" GROUP BY "date" ON CONFLICT ("date") DO UPDATE SET ` +
        `"booked_in" = "gen_1"."daily_stats"."booked_in" + EXCLUDED."booked_in", "erased" = "gen_1"."daily_stats"."erased" + EXCLUDED."erased"`
    )
  })

  it("drops and builds exactly the secondary indexes tableDdl declares", () => {
    const spec: TableSpec = { ...events, indexes: [["n"], ["amount", "id"]] }
    expect(indexDdl("s", spec)).toEqual(tableDdl("s", spec).slice(1))
    expect(dropIndexDdl("s", spec)).toEqual([`DROP INDEX "s"."events_ix0"`, `DROP INDEX "s"."events_ix1"`])
  })
})
