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
    const code = surrogate[0].charCodeAt(0).toString(16)
    return `contains a lone surrogate (\\u${code}) at character ${surrogate.index}: strings must be well-formed Unicode`
  }
  const nul = text.indexOf("\u0000")
  if (nul >= 0) return `contains a NUL character (\\u0000) at character ${nul}, which no text column can hold`
  return undefined
}

type Segment = string | number

/** A node of a walk: its value, and how it was reached, so a path is built only for what is reported. */
interface Node {
  readonly value: unknown
  readonly key: Segment | undefined
  readonly parent: Node | undefined
  readonly depth: number
}

const pathOf = (node: Node, prefix: ReadonlyArray<Segment>): ReadonlyArray<Segment> => {
  const path: Array<Segment> = []
  for (let at: Node | undefined = node; at !== undefined && at.key !== undefined; at = at.parent) path.push(at.key)
  return [...prefix, ...path.reverse()]
}

/**
 * The first place where `value` nests deeper than {@link MAX_NESTING} levels (the body itself is
 * level 0), or undefined. Deeper bodies are refused whole: nothing downstream should have to walk them.
 */
export const tooDeep = (value: unknown): ReadonlyArray<Segment> | undefined => {
  const stack: Array<Node> = [{ value, key: undefined, parent: undefined, depth: 0 }]
  while (stack.length > 0) {
    const node = stack.pop() as Node
    const current = node.value
    if (current === null || typeof current !== "object") continue
    if (node.depth >= MAX_NESTING) return pathOf(node, [])
    if (Array.isArray(current)) {
      for (let i = 0; i < current.length; i++) {
        const item: unknown = current[i]
        if (item !== null && typeof item === "object") stack.push({ value: item, key: i, parent: node, depth: node.depth + 1 })
      }
    } else {
      for (const key of Object.keys(current)) {
        const item = (current as Record<string, unknown>)[key]
        if (item !== null && typeof item === "object") stack.push({ value: item, key, parent: node, depth: node.depth + 1 })
      }
    }
  }
  return undefined
}

/**
 * Every string (values and member names), number and object of one event checked against the
 * bounds, in document order, with paths under `prefix`: lone surrogates, NUL characters, numbers
 * the log cannot keep exactly, too many members.
 */
export const jsonIssues = (value: unknown, prefix: ReadonlyArray<Segment> = []): ReadonlyArray<ContractIssue> => {
  const issues: Array<ContractIssue> = []
  const stack: Array<Node> = [{ value, key: undefined, parent: undefined, depth: 0 }]
  const report = (node: Node, message: string) => issues.push({ path: renderPath(pathOf(node, prefix)), message })
  while (stack.length > 0 && issues.length < MAX_ISSUES_PER_EVENT) {
    const node = stack.pop() as Node
    const current = node.value
    if (typeof current === "string") {
      const problem = stringProblem(current)
      if (problem !== undefined) report(node, `the string ${problem}`)
      continue
    }
    if (typeof current === "number") {
      // The log keeps each event as JSON re-serialised: a number it cannot carry exactly would be changed silently.
      if (!Number.isFinite(current)) report(node, "the number is too large for a JSON number (it parses as infinity); send it as a string")
      else if (Number.isInteger(current) && !Number.isSafeInteger(current))
        report(node, `the integer ${current} is beyond ±2^53 and would lose digits; send it as a string`)
      continue
    }
    if (current === null || typeof current !== "object") continue
    const children: Array<Node> = []
    if (Array.isArray(current)) {
      for (let i = 0; i < current.length; i++) children.push({ value: current[i], key: i, parent: node, depth: node.depth + 1 })
    } else {
      const keys = Object.keys(current)
      if (keys.length > MAX_KEYS_PER_OBJECT) report(node, `the object has ${keys.length} members, more than ${MAX_KEYS_PER_OBJECT}`)
      for (const key of keys) {
        const problem = stringProblem(key)
        if (problem !== undefined) report(node, `a member name ${problem}`)
        children.push({ value: (current as Record<string, unknown>)[key], key, parent: node, depth: node.depth + 1 })
      }
    }
    for (let i = children.length - 1; i >= 0; i--) stack.push(children[i] as Node)
  }
  return issues.slice(0, MAX_ISSUES_PER_EVENT)
}
