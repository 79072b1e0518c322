import type { EdgeOutcome } from "../contracts/log.ts"
import { addToTally, lastMinutes, type MinuteTally } from "./rates.ts"

/**
 * The edge's answers to one source as the console heard them (contracts/log.ts EdgeOutcome):
 * duplicates and rejections by status per minute, and the last rejection. Pure: outcomes in,
 * tallies out. Only what arrived while the console listened is counted.
 */
export interface SourceOutcomes {
  readonly duplicates: MinuteTally
  readonly rejected: ReadonlyMap<number, MinuteTally>
  readonly lastRejection: { readonly at: number; readonly status: number; readonly error: string; readonly message: string } | undefined
}

export const NO_OUTCOMES: SourceOutcomes = { duplicates: new Map(), rejected: new Map(), lastRejection: undefined }

/** `outcomes` with `outcome` (heard at `at`) added. */
export const addOutcome = (outcomes: SourceOutcomes, outcome: EdgeOutcome, at: number): SourceOutcomes => {
  if (outcome.status < 300) return { ...outcomes, duplicates: addToTally(outcomes.duplicates, at, outcome.duplicates) }
  const rejected = new Map(outcomes.rejected)
  rejected.set(outcome.status, addToTally(rejected.get(outcome.status) ?? new Map(), at, 1))
  return {
    ...outcomes,
    rejected,
    lastRejection: { at, status: outcome.status, error: outcome.error ?? "rejected", message: outcome.message ?? "" }
  }
}

/** What the page shows of a source's outcomes over the last `minutes` minutes up to `now`. */
export const outcomesView = (outcomes: SourceOutcomes, now: number, minutes: number) => {
  const byStatus = [...outcomes.rejected]
    .map(([status, tally]) => ({ status, count: lastMinutes(tally, now, minutes).reduce((sum, one) => sum + one.count, 0) }))
    .filter((one) => one.count > 0)
    .sort((a, b) => a.status - b.status)
  return {
    duplicatesPerMinute: lastMinutes(outcomes.duplicates, now, minutes),
    duplicates: lastMinutes(outcomes.duplicates, now, minutes).reduce((sum, one) => sum + one.count, 0),
    rejectedByStatus: byStatus,
    lastRejection: outcomes.lastRejection ?? null
  }
}
