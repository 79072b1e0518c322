/* global URLSearchParams */
// What the stats page shows, decided from the read API's answers: pure, so it is unit-tested
// (stats-view.unit.test.ts) and the page's script only moves it into the document.

/** How often the page asks for the figures when `?refresh=` does not say: seconds. */
export const DEFAULT_REFRESH_SECONDS = 5

/** The refresh interval in seconds from the page's query string (`?refresh=N`, 1 to 300), else the default. */
export const refreshSeconds = (search) => {
  const raw = new URLSearchParams(search).get("refresh")
  if (raw === null || !/^\d+$/.test(raw)) return DEFAULT_REFRESH_SECONDS
  return Math.min(300, Math.max(1, Number(raw)))
}

/**
 * One row per name found on either day, with today's and yesterday's counts (0 where absent),
 * busiest today first, then busiest yesterday, then by name.
 */
export const compareDays = (today, yesterday, nameOf) => {
  const rows = new Map()
  const row = (name) => rows.get(name) ?? rows.set(name, { name, today: 0, yesterday: 0 }).get(name)
  for (const entry of today ?? []) row(nameOf(entry)).today += entry.count
  for (const entry of yesterday ?? []) row(nameOf(entry)).yesterday += entry.count
  return [...rows.values()].sort(
    (a, b) => b.today - a.today || b.yesterday - a.yesterday || (a.name < b.name ? -1 : a.name > b.name ? 1 : 0)
  )
}

const DEVICE_TYPE_LABELS = { laptops_desktops: "Laptops & desktops", servers: "Servers" }

/** A device type as people on the floor say it: `laptops_desktops` is "Laptops & desktops", `mobile_phones` "Mobile phones". */
export const deviceTypeLabel = (deviceType) => {
  if (Object.hasOwn(DEVICE_TYPE_LABELS, deviceType)) return DEVICE_TYPE_LABELS[deviceType]
  const words = deviceType.replaceAll(/[_-]+/g, " ").trim()
  return words === "" ? deviceType : words[0].toUpperCase() + words.slice(1)
}

/** A count with thousands separators, readable across a room: 12345 is "12,345". */
export const formatCount = (count) => new Intl.NumberFormat("en-GB").format(count)

const WEEKDAYS = ["Sunday", "Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday"]
const MONTHS = ["January", "February", "March", "April", "May", "June", "July", "August", "September", "October", "November", "December"]

/** A `YYYY-MM-DD` UTC day as a long date, the same in every browser: "Wednesday 15 January 2025". */
export const formatDay = (isoDay) => {
  const day = new Date(`${isoDay}T00:00:00Z`)
  return `${WEEKDAYS[day.getUTCDay()]} ${day.getUTCDate()} ${MONTHS[day.getUTCMonth()]} ${day.getUTCFullYear()}`
}

const twoDigits = (n) => String(n).padStart(2, "0")

/** A clock time in the viewer's zone, 24-hour: "14:03:07". */
export const formatClock = (date) => `${twoDigits(date.getHours())}:${twoDigits(date.getMinutes())}:${twoDigits(date.getSeconds())}`

/**
 * What the page says about an answer of the read API (`status` its HTTP status, "no key" when the
 * tab has none to send, "unreachable" when the request failed): nothing for a 200; for a missing or
 * refused key, why and what to do, and `askForKey` (polling stops until a key is entered);
 * otherwise a passing problem (the figures on screen stay, marked stale, and polling goes on).
 */
export const describeAnswer = (status, body) => {
  if (status === 200) return { tone: "ok", text: "", askForKey: false }
  if (status === "no key")
    return {
      tone: "missing",
      text: "No API key: open this page with ?api_key=<key>, or enter a key scoped to the warehouse mart.",
      askForKey: true
    }
  if (status === "unreachable") return { tone: "stale", text: "The read API could not be reached. Retrying.", askForKey: false }
  if (status === 401)
    return { tone: "refused", text: `The API key was refused: ${body?.message ?? "it is unknown or revoked"}.`, askForKey: true }
  if (status === 403)
    return {
      tone: "refused",
      text: `This key may not read the warehouse mart: ${body?.message ?? "it is scoped to other marts"}.`,
      askForKey: true
    }
  return { tone: "stale", text: `The read API answered ${status}${body?.message ? `: ${body.message}` : ""}. Retrying.`, askForKey: false }
}
