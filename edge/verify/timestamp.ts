import { Effect } from "effect"
import { SignatureRejected } from "./signed-request.ts"

/** Fails when `timestampMs` is further than `toleranceMs` from `now`, in the past or the future. */
export const checkTimestamp = (header: string, timestampMs: number, now: number, toleranceMs: number): Effect.Effect<void, SignatureRejected> => {
  const skew = now - timestampMs
  if (skew > toleranceMs)
    return Effect.fail(new SignatureRejected({ reason: `${header} is ${Math.round(skew / 1000)} s old, more than the ${toleranceMs / 1000} s tolerance: a replayed or delayed request` }))
  if (-skew > toleranceMs)
    return Effect.fail(new SignatureRejected({ reason: `${header} is ${Math.round(-skew / 1000)} s in the future, more than the ${toleranceMs / 1000} s tolerance: check the sender's clock` }))
  return Effect.void
}

export const requireHeader = (headers: Headers, name: string): Effect.Effect<string, SignatureRejected> => {
  const value = headers.get(name)
  return value === null || value.trim() === "" ? Effect.fail(new SignatureRejected({ reason: `missing ${name} header` })) : Effect.succeed(value.trim())
}

/** Runs `matches` for each secret; succeeds with the index of the first that matches. */
export const firstMatchingSecret = (
  secrets: ReadonlyArray<string>,
  matches: (secret: string) => Promise<boolean>,
  reason: string
): Effect.Effect<{ secretIndex: number }, SignatureRejected> =>
  Effect.flatMap(
    Effect.promise(async () => {
      let found = -1
      for (let i = 0; i < secrets.length; i++) if ((await matches(secrets[i] as string)) && found < 0) found = i
      return found
    }),
    (index) => (index < 0 ? Effect.fail(new SignatureRejected({ reason })) : Effect.succeed({ secretIndex: index }))
  )
