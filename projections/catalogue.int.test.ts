import postgres from "postgres"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { createDatabase, type PostgresServer, startPostgres } from "../infra/postgres/database.ts"
import { quoteIdent } from "../platform/sql.ts"
import { catalogue, publishedObjects } from "./catalogue.ts"
import { tableDdl } from "./statements.ts"
import type { ColumnType } from "./table.ts"

/** How Postgres names each declared column type in information_schema. */
const postgresType: Readonly<Record<ColumnType, string>> = {
  text: "text",
  integer: "integer",
  bigint: "bigint",
  numeric: "numeric",
  date: "date",
  timestamptz: "timestamp with time zone",
  boolean: "boolean"
}

let pg: PostgresServer
let database: { url: string; drop: () => Promise<void> }
let sql: postgres.Sql

beforeAll(async () => {
  pg = await startPostgres()
  database = await createDatabase(pg.url)
  sql = postgres(database.url, { max: 1, onnotice: () => {} })
})

afterAll(async () => {
  await sql?.end()
  await database?.drop()
  await pg?.dispose()
})

describe("the catalogue's declared shapes", () => {
  for (const marts of catalogue) {
    it(`are what Postgres makes of the ${marts.name} marts' DDL and view SQL: every published object's columns, in order, with their types`, async () => {
      const schema = `catalogue_${marts.name}`
      await sql.unsafe(`CREATE SCHEMA ${quoteIdent(schema)}`)
      for (const table of marts.tables) for (const statement of tableDdl(schema, table)) await sql.unsafe(statement)
      for (const statement of marts.extraSql?.(schema) ?? []) await sql.unsafe(statement)
      for (const object of publishedObjects(marts)) {
        const columns = await sql`SELECT column_name, data_type FROM information_schema.columns
                                  WHERE table_schema = ${schema} AND table_name = ${object.name} ORDER BY ordinal_position`
        expect(
          columns.map((column) => [column.column_name, column.data_type]),
          `${marts.name}.${object.name}`
        ).toEqual(object.columns.map((column) => [column.name, postgresType[column.type]]))
      }
    })
  }
})
