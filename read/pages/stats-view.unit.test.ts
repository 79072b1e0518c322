import { describe, expect, it } from "vitest"
import {
  compareDays,
  DEFAULT_REFRESH_SECONDS,
  describeAnswer,
  deviceTypeLabel,
  formatClock,
  formatCount,
  formatDay,
  refreshSeconds
} from "./stats-view.js"

describe("the stats page's view", () => {
  it("refreshes every ?refresh= seconds, kept within 1 to 300, and every 5 s without one or with a bad one", () => {
    expect(DEFAULT_REFRESH_SECONDS).toBe(5)
    expect(refreshSeconds("")).toBe(5)
    expect(refreshSeconds("?refresh=2")).toBe(2)
    expect(refreshSeconds("?api_key=x&refresh=30")).toBe(30)
    expect(refreshSeconds("?refresh=0")).toBe(1)
    expect(refreshSeconds("?refresh=9000")).toBe(300)
    expect(refreshSeconds("?refresh=-3")).toBe(5)
    expect(refreshSeconds("?refresh=1.5")).toBe(5)
    expect(refreshSeconds("?refresh=soon")).toBe(5)
  })

  it("compares two days by name: every name of either day, 0 where absent, busiest today first, then yesterday, then by name", () => {
    const today = [
      { initials: "JD", count: 3 },
      { initials: "AK", count: 3 },
      { initials: "MR", count: 1 }
    ]
    const yesterday = [
      { initials: "MR", count: 7 },
      { initials: "ZZ", count: 2 },
      { initials: "JD", count: 1 },
      { initials: "QQ", count: 2 }
    ]
    expect(compareDays(today, yesterday, (entry) => entry.initials)).toEqual([
      { name: "JD", today: 3, yesterday: 1 },
      { name: "AK", today: 3, yesterday: 0 },
      { name: "MR", today: 1, yesterday: 7 },
      { name: "QQ", today: 0, yesterday: 2 },
      { name: "ZZ", today: 0, yesterday: 2 }
    ])
    expect(compareDays([], undefined, (entry: { name: string; count: number }) => entry.name)).toEqual([])
  })

  it("names device types as people say them", () => {
    expect(deviceTypeLabel("laptops_desktops")).toBe("Laptops & desktops")
    expect(deviceTypeLabel("servers")).toBe("Servers")
    expect(deviceTypeLabel("mobile_phones")).toBe("Mobile phones")
    expect(deviceTypeLabel("network-switches")).toBe("Network switches")
    expect(deviceTypeLabel("toString")).toBe("ToString")
    expect(deviceTypeLabel("__")).toBe("__")
  })

  it("formats counts with thousands separators, the day as a long UTC date and the clock as 24-hour time", () => {
    expect(formatCount(0)).toBe("0")
    expect(formatCount(12345)).toBe("12,345")
    expect(formatDay("2025-01-15")).toBe("Wednesday 15 January 2025")
    expect(formatDay("2024-12-31")).toBe("Tuesday 31 December 2024")
    expect(formatClock(new Date(2025, 0, 15, 7, 3, 9))).toBe("07:03:09")
    expect(formatClock(new Date(2025, 0, 15, 23, 59, 0))).toBe("23:59:00")
  })

  it("asks for a key when there is none or it is refused, and keeps polling through passing failures", () => {
    expect(describeAnswer(200, undefined)).toEqual({ tone: "ok", text: "", askForKey: false })
    expect(describeAnswer("no key", undefined)).toEqual({
      tone: "missing",
      text: "No API key: open this page with ?api_key=<key>, or enter a key scoped to the warehouse mart.",
      askForKey: true
    })
    expect(describeAnswer(401, { message: "unknown API key" })).toEqual({
      tone: "refused",
      text: "The API key was refused: unknown API key.",
      askForKey: true
    })
    expect(describeAnswer(403, { message: "this API key may read the crm mart(s), not warehouse" })).toEqual({
      tone: "refused",
      text: "This key may not read the warehouse mart: this API key may read the crm mart(s), not warehouse.",
      askForKey: true
    })
    expect(describeAnswer(401, undefined).text).toBe("The API key was refused: it is unknown or revoked.")
    expect(describeAnswer(403, undefined).text).toBe("This key may not read the warehouse mart: it is scoped to other marts.")
    expect(describeAnswer(503, { message: "busy" })).toEqual({
      tone: "stale",
      text: "The read API answered 503: busy. Retrying.",
      askForKey: false
    })
    expect(describeAnswer(502, undefined)).toEqual({ tone: "stale", text: "The read API answered 502. Retrying.", askForKey: false })
    expect(describeAnswer("unreachable", undefined)).toEqual({
      tone: "stale",
      text: "The read API could not be reached. Retrying.",
      askForKey: false
    })
  })
})
