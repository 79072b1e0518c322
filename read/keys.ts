import { createHash, randomBytes, timingSafeEqual } from "node:crypto"
import type postgres from "postgres"
import { inSharedSchema } from "../platform/ingest-schema.ts"
import { Unauthenticated } from "./errors.ts"
import { ALL_ROWS, readsScopedRows, type RowScope, scopedMarts } from "./row-scope.ts"

/**
 * API keys for the read API. A key is `imk_<id>.<secret>`: the id finds the row, the secret is
 * checked against its SHA-256 (a random 256-bit secret needs no slow hash), and only the hash is
 * stored. A key is scoped to marts by name, or to every mart with `*`; a key that reads a mart
 * scoped by store (retail) also carries a row scope — stores, regions, or all rows — that Postgres'
 * row-level security enforces on every query the key makes.
 */
export interface ApiKey {
  readonly id: string
  readonly name: string
  readonly marts: ReadonlyArray<string>
  readonly rows: RowScope
  readonly createdAt: string
  readonly revokedAt: string | null
}

export const ALL_MARTS = "*"

const KEY_FORM = /^imk_([0-9a-f]{16})\.([A-Za-z0-9_-]{43})$/

const digest = (secret: string) => createHash("sha256").update(secret).digest()

export const ensureApiKeys = (sql: postgres.Sql): Promise<void> =>
  inSharedSchema(sql, async (tx) => {
    await tx.unsafe(`CREATE TABLE IF NOT EXISTS ingest.api_keys (
      id text PRIMARY KEY,
      name text NOT NULL,
      secret_sha256 bytea NOT NULL,
      marts text[] NOT NULL,
      created_at timestamptz NOT NULL DEFAULT now(),
      revoked_at timestamptz)`)
    // Row scopes came later: a key made before them saw every row, and keeps doing so.
    const [scoped] =
      await tx`SELECT 1 FROM information_schema.columns WHERE table_schema = 'ingest' AND table_name = 'api_keys' AND column_name = 'all_rows'`
    if (scoped === undefined)
      await tx.unsafe(`ALTER TABLE ingest.api_keys
        ADD COLUMN all_rows boolean NOT NULL DEFAULT true,
        ADD COLUMN stores text[] NOT NULL DEFAULT '{}',
        ADD COLUMN regions text[] NOT NULL DEFAULT '{}',
        ALTER COLUMN all_rows SET DEFAULT false`)
  })

const rowsOf = (row: Record<string, unknown>): RowScope =>
  row.all_rows === true
    ? ALL_ROWS
    : { allRows: false, stores: row.stores as ReadonlyArray<string>, regions: row.regions as ReadonlyArray<string> }

const toKey = (row: Record<string, unknown>): ApiKey => ({
  id: row.id as string,
  name: row.name as string,
  marts: row.marts as ReadonlyArray<string>,
  rows: rowsOf(row),
  createdAt: (row.created_at as Date).toISOString(),
  revokedAt: row.revoked_at === null ? null : (row.revoked_at as Date).toISOString()
})

/**
 * Creates a key; the returned `key` is shown once and never stored. A key reading a mart scoped
 * by store must say which rows it sees (`rows`): there is no default, so an unscoped key sees
 * everything only when made so on purpose (`--all-rows`).
 */
export const createApiKey = async (
  sql: postgres.Sql,
  name: string,
  marts: ReadonlyArray<string>,
  known: ReadonlyArray<string>,
  rows?: RowScope
): Promise<{ key: string; apiKey: ApiKey }> => {
  const unknown = marts.filter((mart) => mart !== ALL_MARTS && !known.includes(mart))
  if (marts.length === 0 || unknown.length > 0) {
    throw new Error(
      `--marts must list marts from ${known.join(", ")} (or ${ALL_MARTS} for all)${unknown.length > 0 ? `; unknown: ${unknown.join(", ")}` : ""}`
    )
  }
  if (rows === undefined && readsScopedRows(marts))
    throw new Error(
      `a key for the ${scopedMarts.join(", ")} mart sees its rows by store: give --stores 47,48, --regions Northeast, or --all-rows for every row`
    )
  const scope = rows ?? ALL_ROWS
  await ensureApiKeys(sql)
  const id = randomBytes(8).toString("hex")
  const secret = randomBytes(32).toString("base64url")
  const [row] = await sql`INSERT INTO ingest.api_keys (id, name, secret_sha256, marts, all_rows, stores, regions)
    VALUES (${id}, ${name}, ${digest(secret)}, ${sql.array([...marts])}, ${scope.allRows},
      ${sql.array(scope.allRows ? [] : [...scope.stores])}, ${sql.array(scope.allRows ? [] : [...scope.regions])}) RETURNING *`
  return { key: `imk_${id}.${secret}`, apiKey: toKey(row as Record<string, unknown>) }
}

/** Revokes a key by id (or by the whole key); false when no such key exists. */
export const revokeApiKey = async (sql: postgres.Sql, idOrKey: string): Promise<boolean> => {
  await ensureApiKeys(sql)
  const id = KEY_FORM.exec(idOrKey)?.[1] ?? idOrKey
  const rows = await sql`UPDATE ingest.api_keys SET revoked_at = coalesce(revoked_at, now()) WHERE id = ${id} RETURNING id`
  return rows.length > 0
}

export const listApiKeys = async (sql: postgres.Sql): Promise<ReadonlyArray<ApiKey>> => {
  await ensureApiKeys(sql)
  return (await sql`SELECT * FROM ingest.api_keys ORDER BY created_at, id`).map(toKey)
}

/**
 * The key a request presents: the `X-API-Key` header, else `Authorization: Bearer <key>` (what
 * Tableau's and other REST connectors send), else the `api_key` query parameter (Power BI's
 * OData connector, a browser link). An Authorization header of another kind presents nothing.
 */
export const presentedKey = (
  header: string | undefined,
  authorization: string | undefined,
  query: string | undefined
): string | undefined => {
  if (header !== undefined) return header
  const bearer = /^Bearer\s+(\S+)\s*$/i.exec(authorization ?? "")?.[1]
  return bearer ?? query
}

/** A presented key's id and secret, or why it cannot be a key: checked before anything touches the database. */
export const parseApiKey = (presented: string | undefined): { readonly id: string; readonly secret: string } => {
  if (presented === undefined || presented === "") {
    throw new Unauthenticated({
      message: "an API key is required: send it in the X-API-Key header, as Authorization: Bearer <key>, or in the api_key query parameter"
    })
  }
  const match = KEY_FORM.exec(presented)
  if (match === null)
    throw new Unauthenticated({
      message: "the API key is malformed: keys look like imk_<16 hex>.<43 characters>, as printed by `npm run mesh -- keys create`"
    })
  const [, id, secret] = match as unknown as [string, string, string]
  return { id, secret }
}

/** The key's id, marts and row scope, or why it does not authenticate. Revocation takes effect on the next request. */
export const authenticate = async (
  sql: postgres.Sql,
  presented: string | undefined
): Promise<{ id: string; marts: ReadonlyArray<string>; rows: RowScope }> => {
  const { id, secret } = parseApiKey(presented)
  const [row] = await sql`SELECT secret_sha256, marts, all_rows, stores, regions, revoked_at FROM ingest.api_keys WHERE id = ${id}`
  if (row === undefined || !timingSafeEqual(row.secret_sha256 as Buffer, digest(secret)))
    throw new Unauthenticated({ message: "the API key is not recognised" })
  if (row.revoked_at !== null)
    throw new Unauthenticated({ message: `the API key ${id} was revoked at ${(row.revoked_at as Date).toISOString()}; ask for a new one` })
  return { id, marts: row.marts as ReadonlyArray<string>, rows: rowsOf(row as Record<string, unknown>) }
}
