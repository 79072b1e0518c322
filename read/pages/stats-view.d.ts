/** Types of stats-view.js (a browser module), for its unit test. */

export declare const DEFAULT_REFRESH_SECONDS: number
export declare const refreshSeconds: (search: string) => number
export interface DayComparison {
  readonly name: string
  readonly today: number
  readonly yesterday: number
}
export declare const compareDays: <T extends { readonly count: number }>(
  today: ReadonlyArray<T> | undefined,
  yesterday: ReadonlyArray<T> | undefined,
  nameOf: (entry: T) => string
) => Array<DayComparison>
export declare const deviceTypeLabel: (deviceType: string) => string
export declare const formatCount: (count: number) => string
export declare const formatDay: (isoDay: string) => string
export declare const formatClock: (date: Date) => string
export interface AnswerDescription {
  readonly tone: "ok" | "missing" | "refused" | "stale"
  readonly text: string
  readonly askForKey: boolean
}
export declare const describeAnswer: (
  status: number | "no key" | "unreachable",
  body: { readonly message?: string } | undefined
) => AnswerDescription
