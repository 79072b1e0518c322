import { describe, expect, it } from "vitest"
import { type Account, blockingFolder, foldersDownTo, mayEnter } from "./access.ts"

const postgresAccount: Account = { uid: 105, gids: [111] }

describe("who may enter a folder", () => {
  it("reads the owner, group or other execute bit, whichever applies", () => {
    expect(mayEnter(postgresAccount, { mode: 0o700, uid: 105, gid: 0 })).toBe(true)
    expect(mayEnter(postgresAccount, { mode: 0o070, uid: 105, gid: 111 })).toBe(false)
    expect(mayEnter(postgresAccount, { mode: 0o750, uid: 0, gid: 111 })).toBe(true)
    expect(mayEnter(postgresAccount, { mode: 0o705, uid: 0, gid: 111 })).toBe(false)
    expect(mayEnter(postgresAccount, { mode: 0o701, uid: 0, gid: 0 })).toBe(true)
    expect(mayEnter({ uid: 0, gids: [0] }, { mode: 0o000, uid: 105, gid: 111 })).toBe(true)
  })

  it("lists a path's folders from the root down", () => {
    expect(foldersDownTo("/root/ingest-mesh/node_modules")).toEqual(["/", "/root", "/root/ingest-mesh", "/root/ingest-mesh/node_modules"])
    expect(foldersDownTo("/")).toEqual(["/"])
  })

  it("names the first folder on the way that the account cannot enter: root's home for a checkout cloned there", () => {
    const modes: Record<string, number> = { "/": 0o755, "/root": 0o700, "/root/mesh": 0o755, "/root/mesh/native": 0o755 }
    const statOf = (path: string) => (modes[path] === undefined ? undefined : { mode: modes[path] as number, uid: 0, gid: 0 })
    expect(blockingFolder("/root/mesh/native", postgresAccount, statOf)).toBe("/root")
    expect(blockingFolder("/root/mesh/native", { uid: 0, gids: [0] }, statOf)).toBeUndefined()
    modes["/root"] = 0o711
    expect(blockingFolder("/root/mesh/native", postgresAccount, statOf)).toBeUndefined()
    expect(blockingFolder("/root/mesh/not-made-yet", postgresAccount, statOf)).toBeUndefined()
  })
})
