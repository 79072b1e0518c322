import type postgres from "postgres"
import { quoteIdent, quoteLiteral } from "../platform/sql.ts"
import { catalogue, READER_ROLE } from "../projections/catalogue.ts"
import { READER_SCOPE_FUNCTION, scopeFunction } from "../projections/row-scope.ts"
import { inSharedSchema } from "../platform/ingest-schema.ts"
import { ensureApiKeys } from "./keys.ts"
import { READER_SCOPE_SETTING, type RowScope } from "./row-scope.ts"

/** Postgres roles of the read side: the reader group, and the logins in it (the API's, BI users'). */

/**
 * The group role readers of the marts are members of (the API's login, and BI users connecting
 * with the native PostgreSQL connector): SELECT on the `mart` views, re-granted by each
 * activation, and nothing else. Run with a role that may create roles.
 */
export const ensureReaderRole = async (sql: postgres.Sql): Promise<void> => {
  await ensureApiKeys(sql)
  await ensureReaderScopes(sql)
  await sql.unsafe(`DO $$ BEGIN CREATE ROLE ${READER_ROLE} NOLOGIN; EXCEPTION WHEN duplicate_object OR unique_violation THEN NULL; END $$`)
  // Every published schema (mart_<projection>) there is so far; activations grant those made later.
  await sql.unsafe(`DO $$ DECLARE published text; BEGIN
    FOR published IN SELECT nspname FROM pg_namespace WHERE nspname LIKE 'mart\\_%' LOOP
      EXECUTE format('GRANT USAGE ON SCHEMA %I TO ${READER_ROLE}', published);
      EXECUTE format('GRANT SELECT ON ALL TABLES IN SCHEMA %I TO ${READER_ROLE}', published);
    END LOOP; END $$`)
  // The marts behind row-level security are read with the reader's rights: their active
  // generations' published objects too (activations grant those of generations made later).
  const [registry] = await sql`SELECT to_regclass('ingest.projections') IS NOT NULL AS exists`
  for (const marts of registry?.exists === true ? catalogue.filter((set) => set.rowScope !== undefined) : []) {
    const [active] = await sql`SELECT schema_name FROM ingest.projections WHERE name = ${marts.name} AND status = 'active'`
    // A generation built before its rows were scoped has no policies: it stays closed (consumers/switch.ts closeUnscoped).
    const [guarded] =
      active === undefined
        ? []
        : await sql`SELECT to_regprocedure(${`${scopeFunction(active.schema_name as string)}()`}) IS NOT NULL AS yes`
    if (active === undefined || guarded?.yes !== true) continue
    const schema = quoteIdent(active.schema_name as string)
    await sql.unsafe(`GRANT USAGE ON SCHEMA ${schema} TO ${READER_ROLE}`)
    for (const name of marts.published) await sql.unsafe(`GRANT SELECT ON ${schema}.${quoteIdent(name)} TO ${READER_ROLE}`)
  }
}

/**
 * Who sees which rows of the store-scoped marts: a row per reader login, and the function the
 * marts' policies ask ({@link READER_SCOPE_FUNCTION}). A login marked `delegated` (the read API's
 * own) reads the scope of the request it serves from {@link READER_SCOPE_SETTING}, set per request
 * from its API key; any other login has the scope it was created with, whatever it sets. A login
 * with no row, or a request that set nothing, sees no scoped row.
 */
export const ensureReaderScopes = (sql: postgres.Sql): Promise<void> =>
  inSharedSchema(sql, async (tx) => {
    const [existing] = await tx`SELECT to_regclass('ingest.reader_scopes') IS NOT NULL AS exists`
    await tx.unsafe(`CREATE TABLE IF NOT EXISTS ingest.reader_scopes (
      login text PRIMARY KEY,
      delegated boolean NOT NULL DEFAULT false,
      all_rows boolean NOT NULL DEFAULT false,
      stores text[] NOT NULL DEFAULT '{}',
      regions text[] NOT NULL DEFAULT '{}',
      updated_at timestamptz NOT NULL DEFAULT now())`)
    // Logins made before row scopes saw every row: they keep doing so (the API's logins, those
    // that may read the key table, read each request's scope instead).
    if (existing?.exists !== true)
      await tx.unsafe(`INSERT INTO ingest.reader_scopes (login, delegated, all_rows)
        SELECT r.rolname, has_table_privilege(r.oid, 'ingest.api_keys', 'SELECT'), true
        FROM pg_auth_members m JOIN pg_roles r ON r.oid = m.member JOIN pg_roles g ON g.oid = m.roleid
        WHERE g.rolname = '${READER_ROLE}' AND r.rolcanlogin
        ON CONFLICT (login) DO NOTHING`)
    // session_user, not current_user: a login that SETs ROLE is still itself.
    await tx.unsafe(`CREATE OR REPLACE FUNCTION ${READER_SCOPE_FUNCTION}(OUT all_rows boolean, OUT stores text[], OUT regions text[])
      LANGUAGE plpgsql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $fn$
      DECLARE reader record; requested jsonb;
      BEGIN
        all_rows := false; stores := '{}'; regions := '{}';
        SELECT * INTO reader FROM ingest.reader_scopes s WHERE s.login = session_user;
        IF NOT FOUND THEN RETURN; END IF;
        IF NOT reader.delegated THEN
          all_rows := reader.all_rows; stores := reader.stores; regions := reader.regions;
          RETURN;
        END IF;
        requested := nullif(current_setting('${READER_SCOPE_SETTING}', true), '')::jsonb;
        IF requested IS NULL THEN RETURN; END IF;
        all_rows := coalesce((requested->>'all_rows')::boolean, false);
        stores := ARRAY(SELECT jsonb_array_elements_text(coalesce(requested->'stores', '[]'::jsonb)));
        regions := ARRAY(SELECT jsonb_array_elements_text(coalesce(requested->'regions', '[]'::jsonb)));
      END $fn$`)
  })

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
  options: { readonly apiKeys: true } | { readonly apiKeys: false; readonly rows: RowScope } = { apiKeys: true }
): Promise<string> => {
  checkLogin(login)
  await ensureReaderRole(sql)
  // A BI login never becomes an API login by being made again without its scope: that is every row.
  const [before] = await sql`SELECT delegated FROM ingest.reader_scopes WHERE login = ${login}`
  if (options.apiKeys && before?.delegated === false)
    throw new Error(
      `${login} is a BI user's login with its own row scope: give it --stores, --regions or --all-rows again, or drop it to make it the read API's login`
    )
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
  // The API's login reads each request's scope (its key's); a BI login has its own, fixed here.
  const rows = options.apiKeys ? { allRows: false, stores: [], regions: [] } : options.rows
  const fixed = rows.allRows ? { stores: [], regions: [] } : rows
  await sql`INSERT INTO ingest.reader_scopes (login, delegated, all_rows, stores, regions)
    VALUES (${login}, ${options.apiKeys}, ${rows.allRows}, ${sql.array([...fixed.stores])}, ${sql.array([...fixed.regions])})
    ON CONFLICT (login) DO UPDATE SET delegated = EXCLUDED.delegated, all_rows = EXCLUDED.all_rows, stores = EXCLUDED.stores,
      regions = EXCLUDED.regions, updated_at = now()`
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
  const [scopes] = await sql`SELECT to_regclass('ingest.reader_scopes') IS NOT NULL AS yes`
  if (scopes?.yes === true) await sql`DELETE FROM ingest.reader_scopes WHERE login = ${login}`
}
