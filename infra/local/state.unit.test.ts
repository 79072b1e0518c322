import { describe, expect, it } from "vitest"
import { type LocalState, withLocalMesh } from "./state.ts"

const local: LocalState = {
  edgeUrl: "http://127.0.0.1:8787",
  secrets: {},
  natsPasswords: { admin: "a-pass", edge: "e-pass", projector: "p-pass" },
  natsUrl: "nats://127.0.0.1:14222",
  databaseUrl: "postgres://postgres:x@127.0.0.1:15432/postgres"
}

describe("the CLI entry's local mesh settings", () => {
  it("fill in the local mesh's database and log, as the projector, where DATABASE_URL is not set", () => {
    expect(withLocalMesh({ HOME: "/root" }, "projector", () => local)).toEqual({
      HOME: "/root",
      DATABASE_URL: local.databaseUrl,
      NATS_URL: local.natsUrl,
      NATS_USER: "projector",
      NATS_PASSWORD: "p-pass"
    })
    expect(withLocalMesh({}, "owner", () => local)).toEqual({ DATABASE_URL: local.databaseUrl })
    expect(withLocalMesh({ NATS_PASSWORD: "mine" }, "admin", () => local)).toEqual({ NATS_URL: local.natsUrl, NATS_PASSWORD: "mine" })
  })

  it("leave a deployment's environment as it is, without reading the local state at all", () => {
    const unread = () => {
      throw new Error("the local state was read")
    }
    const deployment = { DATABASE_URL: "postgres://prod/db", NATS_URL: "nats://prod:4222" }
    for (const role of ["projector", "owner", "admin"] as const) expect(withLocalMesh(deployment, role, unread)).toBe(deployment)
  })

  it("leave the environment as it is when no local mesh is running", () => {
    expect(withLocalMesh({}, "projector", () => undefined)).toEqual({})
  })
})
