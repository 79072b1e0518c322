import { qualified, quoteIdent } from "../platform/sql.ts"
import type { MartSet } from "./table.ts"

/**
 * Row-level security by store and region, as Postgres policies on a generation's tables: what a
 * reader sees of a table with a store column ({@link TableSpec.rowScope}) is decided by the
 * database for every query, whatever its filter, order or joins — never by application code.
 *
 * Who the reader is and what its scope holds is the read side's: {@link READER_SCOPE_FUNCTION}
 * answers, for the session, whether it sees every row, and which stores and regions it sees.
 * This module only turns that answer into policies: a region stands for the stores the
 * generation's store table places in it.
 */

/**
 * The read side's function of the session's scope, `(all_rows boolean, stores text[], regions text[])`,
 * nothing visible by default. The policies call it through {@link scopeFunction}, resolved when a
 * reader queries (it need not exist when a generation is made).
 */
export const READER_SCOPE_FUNCTION = "ingest.reader_scope"

/** The generation's function that gives a reader's visible stores, or NULL for every row. */
export const scopeFunction = (schema: string): string => qualified(schema, "row_scope_stores")

/** The policy's name on each scoped table. */
export const ROW_SCOPE_POLICY = "reader_row_scope"

/**
 * The statements that put `marts`' store-scoped tables of the generation in `schema` behind
 * row-level security: one SECURITY DEFINER function (owned by the generation's owner, so it reads
 * the store table past the policies and the read side's scope table the reader may not read), and
 * a SELECT policy per scoped table. The function is called once per query (an init plan), not per
 * row. The owner (the projector, a rebuild) is not subject to the policies and writes as before.
 */
export const rowScopeDdl = (schema: string, marts: MartSet): ReadonlyArray<string> => {
  const scope = marts.rowScope
  const scoped = marts.tables.filter((table) => table.rowScope !== undefined)
  if (scope === undefined) {
    if (scoped.length > 0) throw new Error(`mart set ${marts.name} scopes tables by store but declares no rowScope`)
    return []
  }
  const stores = qualified(schema, scope.stores)
  const fn = scopeFunction(schema)
  return [
    `CREATE FUNCTION ${fn}() RETURNS text[] LANGUAGE plpgsql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $fn$
    DECLARE scope record;
    BEGIN
      SELECT * INTO scope FROM ${READER_SCOPE_FUNCTION}();
      IF scope.all_rows IS TRUE THEN RETURN NULL; END IF;
      RETURN ARRAY(
        SELECT unnest(coalesce(scope.stores, '{}'::text[]))
        UNION
        SELECT ${quoteIdent(scope.store)} FROM ${stores} WHERE ${quoteIdent(scope.region)} = ANY (coalesce(scope.regions, '{}'::text[])));
    END $fn$`,
    ...scoped.flatMap((table) => {
      const target = qualified(schema, table.name)
      const column = quoteIdent(table.rowScope as string)
      return [
        `ALTER TABLE ${target} ENABLE ROW LEVEL SECURITY`,
        // NULL from the function is every row (a scope with all_rows); an empty array no row.
        `CREATE POLICY ${ROW_SCOPE_POLICY} ON ${target} FOR SELECT USING ((SELECT ${fn}()) IS NULL OR ${column} = ANY ((SELECT ${fn}())::text[]))`
      ]
    })
  ]
}
