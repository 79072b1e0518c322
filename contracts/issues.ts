import { Schema, SchemaIssue } from "effect"
import type { ContractIssue } from "./event.ts"

const formatter = SchemaIssue.makeFormatterStandardSchemaV1()

type PathSegment = PropertyKey | { readonly key: PropertyKey }

const segmentKey = (segment: PathSegment): PropertyKey => (typeof segment === "object" && segment !== null ? segment.key : segment)

/** `$[0].portalId` style rendering of a path into the request body. */
export const renderPath = (path: ReadonlyArray<PathSegment>): string =>
  path.reduce<string>((out, segment) => {
    const key = segmentKey(segment)
    return typeof key === "number"
      ? `${out}[${key}]`
      : /^[A-Za-z_$][\w$]*$/.test(String(key))
        ? `${out}.${String(key)}`
        : `${out}[${JSON.stringify(String(key))}]`
  }, "$")

const valueAt = (input: unknown, path: ReadonlyArray<PathSegment>): { found: boolean; value?: unknown } => {
  let current: unknown = input
  for (const segment of path) {
    const key = segmentKey(segment)
    if (current === null || typeof current !== "object" || !(key in current)) return { found: false }
    current = (current as Record<PropertyKey, unknown>)[key]
  }
  return { found: true, value: current }
}

const describeValue = (value: unknown): string => {
  const text = JSON.stringify(value)
  if (text === undefined) return String(value)
  return text.length > 60 ? `${text.slice(0, 57)}...` : text
}

/**
 * Every issue of a failed decode as `{path, message}`, each message naming the value that was
 * received so the sender can see what to fix.
 */
export const issuesOf = (error: Schema.SchemaError, input: unknown, prefix: ReadonlyArray<PropertyKey> = []): Array<ContractIssue> =>
  formatter(error.issue).issues.map((issue) => {
    const path = [...prefix, ...(issue.path ?? [])] as ReadonlyArray<PathSegment>
    const at = valueAt(input, issue.path ?? [])
    const message = at.found && issue.message !== "Missing key" ? `${issue.message}, got ${describeValue(at.value)}` : issue.message
    return { path: renderPath(path), message }
  })

/** Decode options for contracts: report every issue, keep sender fields we do not model. */
export const decodeAll = { errors: "all", onExcessProperty: "ignore" } as const

/** Issues as one line (`$.data.oee_pct: Expected a number, got "x"; …`): a dead letter's reason. */
export const describeIssues = (issues: ReadonlyArray<ContractIssue>): string =>
  issues.map((issue) => `${issue.path}: ${issue.message}`).join("; ")
