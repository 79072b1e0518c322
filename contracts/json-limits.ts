import type { ContractIssue } from "./event.ts"
import { renderPath } from "./issues.ts"

/**
 * Bounds every event's JSON must keep, whatever its contract: what the log, the projections and
 * Postgres can carry. Checked without recursion, so no body can exhaust the stack.
 */

/** Deepest nesting of arrays and objects a body may have; senders' events nest two or three levels. */
export const MAX_NESTING = 32
/** Most members one object may have. */
export const MAX_KEYS_PER_OBJECT = 256
/** Most issues reported for one event: the first ones name the problem well enough. */
export const MAX_ISSUES_PER_EVENT = 20

const LONE_SURROGATE = /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/

/** Whether `text` is well-formed UTF-16: every surrogate paired, so it has one UTF-8 encoding and survives any header or column. */
export const isWellFormed = (text: string): boolean => !LONE_SURROGATE.test(text)

/** What is wrong with a string as a value or a member name, or undefined. */
export const stringProblem = (text: string): string | undefined => {
  const surrogate = LONE_SURROGATE.exec(text)
  if (surrogate !== null) {
    const code = (surrogate[0].charCodeAt(0)).toString(16)
    return `contains a lone surrogate (\\u${code}) at character ${surrogate.index}: strings must be well-formed Unicode`
  }
  const nul = text.indexOf("\u0000")
  if (nul >= 0) return `contains a NUL character (\\u0000) at character ${nul}, which no text column can hold`
  return undefined
}

type Segment = string | number

/**
 * The first place where `value` nests deeper than {@link MAX_NESTING} levels (the body itself is
 * level 0), or undefined. Deeper bodies are refused whole: nothing downstream should have to walk them.
 */
export const tooDeep = (value: unknown): ReadonlyArray<Segment> | undefined => {
  const stack: Array<{ value: unknown; path: ReadonlyArray<Segment> }> = [{ value, path: [] }]
  while (stack.length > 0) {
    const { value: current, path } = stack.pop() as { value: unknown; path: ReadonlyArray<Segment> }
    if (current === null || typeof current !== "object") continue
    if (path.length >= MAX_NESTING) return path
    if (Array.isArray(current)) current.forEach((item, i) => stack.push({ value: item, path: [...path, i] }))
    else for (const [key, item] of Object.entries(current)) stack.push({ value: item, path: [...path, key] })
  }
  return undefined
}

/**
 * Every string (values and member names) and object of one event checked against the bounds, in
 * document order, with paths under `prefix`: lone surrogates, NUL characters, too many members.
 */
export const jsonIssues = (value: unknown, prefix: ReadonlyArray<Segment> = []): ReadonlyArray<ContractIssue> => {
  const issues: Array<ContractIssue> = []
  const stack: Array<{ value: unknown; path: ReadonlyArray<Segment> }> = [{ value, path: prefix }]
  while (stack.length > 0 && issues.length < MAX_ISSUES_PER_EVENT) {
    const { value: current, path } = stack.pop() as { value: unknown; path: ReadonlyArray<Segment> }
    if (typeof current === "string") {
      const problem = stringProblem(current)
      if (problem !== undefined) issues.push({ path: renderPath(path), message: `the string ${problem}` })
      continue
    }
    if (current === null || typeof current !== "object") continue
    const children: Array<{ value: unknown; path: ReadonlyArray<Segment> }> = []
    if (Array.isArray(current)) current.forEach((item, i) => children.push({ value: item, path: [...path, i] }))
    else {
      const entries = Object.entries(current)
      if (entries.length > MAX_KEYS_PER_OBJECT) issues.push({ path: renderPath(path), message: `the object has ${entries.length} members, more than ${MAX_KEYS_PER_OBJECT}` })
      for (const [key, item] of entries) {
        const problem = stringProblem(key)
        if (problem !== undefined) issues.push({ path: renderPath(path), message: `a member name ${problem}` })
        children.push({ value: item, path: [...path, key] })
      }
    }
    for (let i = children.length - 1; i >= 0; i--) stack.push(children[i] as { value: unknown; path: ReadonlyArray<Segment> })
  }
  return issues.slice(0, MAX_ISSUES_PER_EVENT)
}
