import { spawn } from "node:child_process"
import { dirname, join, resolve } from "node:path"
import { fileURLToPath } from "node:url"
import type { PushStep } from "../../powerbi/pusher.ts"

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), "../..")

/**
 * Runs the pusher once to the end of the backlog in its own OS process (`pusher-main.ts`), killed by
 * SIGKILL the `occurrence`-th time it reaches `crashAt` if given. Resolves with how it ended and
 * the end of its stderr.
 */
export const runPusherProcess = (
  env: Readonly<Record<string, string | undefined>>,
  crashAt?: { readonly step: PushStep; readonly occurrence: number }
): Promise<{ readonly code: number | null; readonly signal: NodeJS.Signals | null; readonly stderr: string }> =>
  new Promise((resolveRun, reject) => {
    const child = spawn(
      process.execPath,
      [
        "--import",
        "tsx",
        join(ROOT, "infra", "local", "pusher-main.ts"),
        ...(crashAt === undefined ? [] : [`--crash-at=${crashAt.step}:${crashAt.occurrence}`])
      ],
      { cwd: ROOT, env: { ...process.env, ...env }, stdio: ["ignore", "ignore", "pipe"] }
    )
    let stderr = ""
    child.stderr?.on("data", (chunk: Buffer) => {
      stderr = (stderr + chunk.toString()).slice(-4000)
    })
    child.once("error", reject)
    child.once("exit", (code, signal) => resolveRun({ code, signal, stderr }))
  })
