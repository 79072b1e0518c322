import type postgres from "postgres"
import { quoteLiteral } from "../platform/sql.ts"
import { READER_ROLE } from "../projections/catalogue.ts"
import { ensureApiKeys } from "./keys.ts"

/** Postgres roles of the read side: the reader group, and the logins in it (the API's, BI users'). */

/**
 * The group role readers of the marts are members of (the API's login, and BI users connecting
 * with the native PostgreSQL connector): SELECT on the `mart` views, re-granted by each
 * activation, and nothing else. Run with a role that may create roles.
 */
export const ensureReaderRole = async (sql: postgres.Sql): Promise<void> => {
  await ensureApiKeys(sql)
  await sql.unsafe(`DO $$ BEGIN CREATE ROLE ${READER_ROLE} NOLOGIN; EXCEPTION WHEN duplicate_object OR unique_violation THEN NULL; END $$`)
  // Every published schema (mart_<projection>) there is so far; activations grant those made later.
  await sql.unsafe(`DO $$ DECLARE published text; BEGIN
    FOR published IN SELECT nspname FROM pg_namespace WHERE nspname LIKE 'mart\\_%' LOOP
      EXECUTE format('GRANT USAGE ON SCHEMA %I TO ${READER_ROLE}', published);
      EXECUTE format('GRANT SELECT ON ALL TABLES IN SCHEMA %I TO ${READER_ROLE}', published);
    END LOOP; END $$`)
}

/** Logins are written into SQL as identifiers: only plain lower-case ones are taken. */
const checkLogin = (login: string): void => {
  if (!/^[a-z_][a-z0-9_]{0,62}$/.test(login)) throw new Error(`reader login ${JSON.stringify(login)} must be a lower-case SQL identifier`)
}

/**
 * A login in the reader group with `password`, read-only by default; returns `url` rewritten to
 * log in as it. The read API's login (`apiKeys`) may also read the key table; a BI user's may not.
 */
export const ensureReaderLogin = async (
  sql: postgres.Sql,
  url: string,
  login: string,
  password: string,
  options: { readonly apiKeys: boolean } = { apiKeys: true }
): Promise<string> => {
  checkLogin(login)
  await ensureReaderRole(sql)
  await sql.unsafe(
    `DO $$ BEGIN CREATE ROLE ${login} LOGIN IN ROLE ${READER_ROLE}; EXCEPTION WHEN duplicate_object OR unique_violation THEN NULL; END $$`
  )
  await sql.unsafe(`ALTER ROLE ${login} WITH LOGIN PASSWORD ${quoteLiteral(password)}`)
  await sql.unsafe(`ALTER ROLE ${login} SET default_transaction_read_only = on`)
  await sql.unsafe(`GRANT ${READER_ROLE} TO ${login}`)
  if (options.apiKeys) {
    await sql.unsafe(`GRANT USAGE ON SCHEMA ingest TO ${login}`)
    await sql.unsafe(`GRANT SELECT ON ingest.api_keys TO ${login}`)
  } else {
    await sql.unsafe(`REVOKE SELECT ON ingest.api_keys FROM ${login}`)
  }
  const reader = new URL(url)
  reader.username = login
  reader.password = password
  return reader.toString()
}

/** Takes a reader login away: its grants in this database, then the role (once no other database grants it anything). */
export const dropReaderLogin = async (sql: postgres.Sql, login: string): Promise<void> => {
  checkLogin(login)
  const [exists] = await sql`SELECT 1 FROM pg_roles WHERE rolname = ${login}`
  if (exists === undefined) return
  await sql.unsafe(`DROP OWNED BY ${login}`)
  await sql.unsafe(`DROP ROLE ${login}`)
}
