import { describe, expect, it } from "vitest"
import { chaosLine, runChaos } from "./local/chaos.ts"

describe("the chaos run, shortened", () => {
  it("loses nothing and doubles nothing while the projection process is killed and nats-server and Postgres restart", async () => {
    const report = await runChaos({ events: 3000, batch: 25, killEveryMs: 2500, minKills: 3 })
    console.log(`${chaosLine(report)} (${report.kills} kills, ${report.seconds.toFixed(0)} s)`)
    expect(report.lost).toBe(0)
    expect(report.doubled).toBe(0)
    expect(report.accepted + report.quarantined).toBe(report.sent)
    expect(report.quarantined).toBeGreaterThan(0)
    expect(report.deadLettered).toBeGreaterThan(0)
    expect(report.kills).toBeGreaterThanOrEqual(3)
    expect([report.natsRestarts, report.postgresRestarts]).toEqual([1, 1])
  }, 600_000)
})
