/** SQL text built by hand: quoted identifiers and bound parameters, so no value is ever spliced in. */

/** A Postgres identifier, quoted: `"order"`, `"a""b"`. */
export const quoteIdent = (identifier: string): string => `"${identifier.replaceAll('"', '""')}"`

/** `"schema"."name"`. */
export const qualified = (schema: string, name: string): string => `${quoteIdent(schema)}.${quoteIdent(name)}`

export type Parameter = string | number | boolean | null

/**
 * Collects a statement's parameters: `bind(value, cast)` appends the value and returns its
 * placeholder (`$3::timestamptz`). Start from `params` to continue a statement already begun.
 */
export const binder = (params: Array<Parameter> = []) => ({
  params,
  bind: (value: Parameter, cast: string): string => {
    params.push(value)
    return `$${params.length}::${cast}`
  }
})

/** A string literal, quoted: for DDL, where Postgres takes no parameters (`'it''s'`). */
export const quoteLiteral = (text: string): string => `'${text.replaceAll("'", "''")}'`
