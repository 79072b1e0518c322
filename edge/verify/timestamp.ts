import { Effect } from "effect"
import { SignatureRejected } from "./signed-request.ts"

/** Fails when `timestampMs` is further than `toleranceMs` from `now`, in the past or the future. */
export const checkTimestamp = (
  header: string,
  timestampMs: number,
  now: number,
  toleranceMs: number
): Effect.Effect<void, SignatureRejected> => {
  const skew = now - timestampMs
  if (skew > toleranceMs)
    return Effect.fail(
      new SignatureRejected({
        reason: `${header} is ${Math.round(skew / 1000)} s old, more than the ${toleranceMs / 1000} s tolerance: a replayed or delayed request`
      })
    )
  if (-skew > toleranceMs)
    return Effect.fail(
      new SignatureRejected({
        reason: `${header} is ${Math.round(-skew / 1000)} s in the future, more than the ${toleranceMs / 1000} s tolerance: check the sender's clock`
      })
    )
  return Effect.void
}
