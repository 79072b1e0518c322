import { createHash, randomBytes, timingSafeEqual } from "node:crypto"
import type postgres from "postgres"
import { inSharedSchema } from "../platform/ingest-schema.ts"
import { Unauthenticated } from "./errors.ts"

/**
 * API keys for the read API. A key is `imk_<id>.<secret>`: the id finds the row, the secret is
 * checked against its SHA-256 (a random 256-bit secret needs no slow hash), and only the hash is
 * stored. A key is scoped to marts by name, or to every mart with `*`.
 */
export interface ApiKey {
  readonly id: string
  readonly name: string
  readonly marts: ReadonlyArray<string>
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
  })

const toKey = (row: Record<string, unknown>): ApiKey => ({
  id: row.id as string,
  name: row.name as string,
  marts: row.marts as ReadonlyArray<string>,
  createdAt: (row.created_at as Date).toISOString(),
  revokedAt: row.revoked_at === null ? null : (row.revoked_at as Date).toISOString()
})

/** Creates a key; the returned `key` is shown once and never stored. */
export const createApiKey = async (
  sql: postgres.Sql,
  name: string,
  marts: ReadonlyArray<string>,
  known: ReadonlyArray<string>
): Promise<{ key: string; apiKey: ApiKey }> => {
  const unknown = marts.filter((mart) => mart !== ALL_MARTS && !known.includes(mart))
  if (marts.length === 0 || unknown.length > 0) {
    throw new Error(
      `--marts must list marts from ${known.join(", ")} (or ${ALL_MARTS} for all)${unknown.length > 0 ? `; unknown: ${unknown.join(", ")}` : ""}`
    )
  }
  await ensureApiKeys(sql)
  const id = randomBytes(8).toString("hex")
  const secret = randomBytes(32).toString("base64url")
  const [row] =
    await sql`INSERT INTO ingest.api_keys (id, name, secret_sha256, marts) VALUES (${id}, ${name}, ${digest(secret)}, ${sql.array([...marts])}) RETURNING *`
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

/** A presented key's id and secret, or why it cannot be a key: checked before anything touches the database. */
export const parseApiKey = (presented: string | undefined): { readonly id: string; readonly secret: string } => {
  if (presented === undefined || presented === "") {
    throw new Unauthenticated({ message: "an API key is required: send it in the X-API-Key header or the api_key query parameter" })
  }
  const match = KEY_FORM.exec(presented)
  if (match === null)
    throw new Unauthenticated({
      message: "the API key is malformed: keys look like imk_<16 hex>.<43 characters>, as printed by `npm run mesh -- keys create`"
    })
  const [, id, secret] = match as unknown as [string, string, string]
  return { id, secret }
}

/** The key's id and marts, or why it does not authenticate. Revocation takes effect on the next request. */
export const authenticate = async (
  sql: postgres.Sql,
  presented: string | undefined
): Promise<{ id: string; marts: ReadonlyArray<string> }> => {
  const { id, secret } = parseApiKey(presented)
  const [row] = await sql`SELECT secret_sha256, marts, revoked_at FROM ingest.api_keys WHERE id = ${id}`
  if (row === undefined || !timingSafeEqual(row.secret_sha256 as Buffer, digest(secret)))
    throw new Unauthenticated({ message: "the API key is not recognised" })
  if (row.revoked_at !== null)
    throw new Unauthenticated({ message: `the API key ${id} was revoked at ${(row.revoked_at as Date).toISOString()}; ask for a new one` })
  return { id, marts: row.marts as ReadonlyArray<string> }
}
