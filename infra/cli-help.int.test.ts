import { execFile } from "node:child_process"
import { dirname, join, resolve } from "node:path"
import { fileURLToPath } from "node:url"
import { promisify } from "node:util"
import { describe, expect, it } from "vitest"
import { MESH_COMMANDS } from "./cli.ts"

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), "..")

/** `npm run mesh -- <args>` as a process of its own (package.json's `mesh` script), with nothing of a mesh to reach. */
const mesh = (args: ReadonlyArray<string>) =>
  promisify(execFile)(join(ROOT, "node_modules", ".bin", "tsx"), [join(ROOT, "infra", "cli.ts"), ...args], {
    cwd: ROOT,
    env: { ...process.env, DATABASE_URL: "postgres://nobody@127.0.0.1:1/none", NATS_URL: "nats://127.0.0.1:1" },
    timeout: 50_000
  }).then(
    ({ stdout, stderr }) => ({ code: 0, stdout, stderr }),
    (error: { code: number; stdout: string; stderr: string }) => ({ code: error.code, stdout: error.stdout, stderr: error.stderr })
  )

describe("`mesh <command> --help`", () => {
  it("`mesh --help` names every command", async () => {
    const help = await mesh(["--help"])
    expect(help.code, help.stderr).toBe(0)
    for (const command of MESH_COMMANDS) expect(help.stdout).toContain(`  ${command.name}`)
  })

  // The options are read from the tables the commands parse with, so an option added to a command
  // and left out of its help fails here.
  it.each(MESH_COMMANDS.map((command) => [command.name, command] as const))(
    "%s lists every option it parses, without reaching NATS or Postgres",
    async (name, command) => {
      const help = await mesh([...name.split(" "), "--help"])
      expect(help.code, help.stderr).toBe(0)
      expect(help.stdout).toContain(command.usage)
      const options = command.options.flatMap((table) => Object.keys(table))
      const missing = options.filter((option) => !new RegExp(`--${option}(?![\\w-])`).test(help.stdout))
      expect(missing, `${name} --help leaves out ${missing.map((option) => `--${option}`).join(", ")}`).toEqual([])
    }
  )
})
