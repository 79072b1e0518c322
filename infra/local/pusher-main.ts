import postgres from "postgres"
import { runPushers } from "../../powerbi/cli.ts"
import type { PushStep } from "../../powerbi/pusher.ts"

/**
 * `mesh powerbi push --once` as its own OS process for the crash tests, which can also make it kill
 * itself with SIGKILL — no cleanup, no flush, as a crashed host — at the n-th time it reaches a
 * step: `--crash-at after-post:3`. Settings from the environment, as the CLI's.
 */
const crash = /^--crash-at=?(.*)$/.exec(process.argv.slice(2).join("="))?.[1]
const [step, occurrence] = crash === undefined || crash === "" ? [] : crash.split(":")
let seen = 0
const sql = postgres(process.env.DATABASE_URL ?? "", { onnotice: () => {}, max: 2 })
await runPushers({
  source: { env: process.env },
  sql,
  signal: new AbortController().signal,
  once: true,
  onStep: (reached: PushStep) => {
    if (reached === step && ++seen === Number(occurrence)) process.kill(process.pid, "SIGKILL")
  }
})
await sql.end({ timeout: 5 })
