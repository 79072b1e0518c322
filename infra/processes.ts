import type { ChildProcess } from "node:child_process"
import { existsSync, readFileSync } from "node:fs"

const pause = (ms: number) => new Promise((resolveLater) => setTimeout(resolveLater, ms))

/** Whether `pid` is a live process whose command line contains `name`. */
export const isRunning = (pid: number, name: string): boolean => {
  if (!Number.isInteger(pid) || pid <= 0) return false
  try {
    return readFileSync(`/proc/${pid}/cmdline`, "utf8").includes(name)
  } catch {
    return false // gone
  }
}

const signal = (pid: number, name: NodeJS.Signals) => {
  try {
    process.kill(pid, name)
  } catch {
    // it ended on its own meanwhile
  }
}

/**
 * Stops a server left running by a harness that was killed before it could stop it (its pid in the
 * first line of `pidFile`, its command line containing `name`): `stopSignal`, then SIGKILL after 10 s.
 * A persistent store remembers its server, and a leftover would hold its ports and lock files.
 */
export const stopLeftover = async (pidFile: string, name: string, stopSignal: NodeJS.Signals = "SIGTERM"): Promise<void> => {
  if (!existsSync(pidFile)) return
  const pid = Number(readFileSync(pidFile, "utf8").split("\n")[0]?.trim())
  if (!isRunning(pid, name)) return
  signal(pid, stopSignal)
  for (let waited = 0; isRunning(pid, name); waited += 50) {
    if (waited >= 10_000) signal(pid, "SIGKILL")
    await pause(50)
  }
}

/** However this process ends (a library's signal handler calling process.exit included), `child` gets `stopSignal`. */
export const stopWithParent = (child: ChildProcess, stopSignal: NodeJS.Signals = "SIGTERM"): void => {
  const stop = () => child.kill(stopSignal)
  process.once("exit", stop)
  child.once("exit", () => process.off("exit", stop))
}

/** Resolves when `child` has written `ready` to stdout or stderr; rejects with its output if it exits first. */
export const waitForOutput = (child: ChildProcess, ready: string, what: string): Promise<void> =>
  new Promise<void>((resolveReady, reject) => {
    let output = ""
    const onData = (chunk: Buffer) => {
      output = (output + chunk.toString()).slice(-8192)
      if (!output.includes(ready)) return
      child.stderr?.off("data", onData)
      child.stdout?.off("data", onData)
      child.off("exit", onExit)
      child.stderr?.resume()
      child.stdout?.resume()
      resolveReady()
    }
    const onExit = (code: number | null) => reject(new Error(`${what} exited with code ${code} before it was ready:\n${output}`))
    child.stderr?.on("data", onData)
    child.stdout?.on("data", onData)
    child.once("exit", onExit)
    child.once("error", reject)
  })

/** Sends `stopSignal` and resolves once `child` has exited (at once when it already has). */
export const stopChild = (child: ChildProcess | undefined, stopSignal: NodeJS.Signals = "SIGTERM"): Promise<void> =>
  new Promise<void>((resolveStopped) => {
    if (child === undefined || child.exitCode !== null || child.signalCode !== null) return resolveStopped()
    child.once("exit", () => resolveStopped())
    child.kill(stopSignal)
  })
