/* global clearTimeout, document, fetch, history, location, sessionStorage, setTimeout, URL */
// The warehouse floor's stats page: reads /metrics/today and /metrics/yesterday with the tab's key
// every few seconds and shows them. The key comes from ?api_key= once, then this tab's session
// storage (never the address bar).

import { compareDays, describeAnswer, deviceTypeLabel, formatClock, formatCount, formatDay, refreshSeconds } from "./stats-view.js"

const KEY_STORE = "ingest-mesh.stats.api-key"
const every = refreshSeconds(location.search)

const takeKey = () => {
  const url = new URL(location.href)
  const fromUrl = url.searchParams.get("api_key")
  if (fromUrl) {
    sessionStorage.setItem(KEY_STORE, fromUrl)
    url.searchParams.delete("api_key")
    history.replaceState(null, "", url)
  }
  return sessionStorage.getItem(KEY_STORE) ?? ""
}

const byId = (id) => document.getElementById(id)
const message = byId("message")
const keyForm = byId("key-form")
const keyInput = byId("api-key")
const updated = byId("updated")
let lastUpdated
let timer
let round = 0

const say = ({ tone, text, askForKey }) => {
  message.textContent = text
  message.className = `message ${tone}`
  message.hidden = text === ""
  keyForm.hidden = !askForKey
  document.body.dataset.state = tone
  const when = lastUpdated === undefined ? "Not updated yet" : `Updated ${formatClock(lastUpdated)}`
  updated.textContent = tone === "ok" || lastUpdated === undefined ? when : `${when} (stale)`
  updated.classList.toggle("stale", tone !== "ok")
}

const cell = (text, className) => {
  const td = document.createElement("td")
  td.textContent = text
  if (className) td.className = className
  return td
}

const fillTable = (id, rows, labelOf) => {
  const most = Math.max(1, ...rows.map((row) => row.today))
  byId(id)
    .querySelector("tbody")
    .replaceChildren(
      ...rows.map((row) => {
        const tr = document.createElement("tr")
        const name = cell("", "name")
        const label = document.createElement("span")
        label.textContent = labelOf(row.name)
        const bar = document.createElement("span")
        bar.className = "bar"
        bar.style.width = `${(row.today / most) * 100}%`
        name.append(bar, label)
        tr.append(name, cell(formatCount(row.today), "count today"), cell(formatCount(row.yesterday), "count yesterday"))
        return tr
      })
    )
  byId(`${id}-empty`).hidden = rows.some((row) => row.today > 0)
}

const show = (today, yesterday) => {
  const day = byId("day")
  day.dateTime = today.date
  day.textContent = formatDay(today.date)
  for (const [field, id] of [
    ["booked_in", "booked-in"],
    ["erased", "erased"],
    ["qa", "qa"]
  ]) {
    const figure = byId(`${id}-today`)
    figure.textContent = formatCount(today[field])
    figure.style.setProperty("--chars", String(figure.textContent.length))
    byId(`${id}-yesterday`).textContent = formatCount(yesterday[field])
  }
  fillTable(
    "device-types",
    compareDays(today.device_types, yesterday.device_types, (entry) => entry.device_type),
    deviceTypeLabel
  )
  fillTable(
    "engineers",
    compareDays(today.engineers, yesterday.engineers, (entry) => entry.initials),
    (initials) => initials
  )
  byId("figures").setAttribute("aria-busy", "false")
}

const read = async (path, key) => {
  const response = await fetch(path, { headers: { "X-API-Key": key }, cache: "no-store" })
  const body = (response.headers.get("content-type") ?? "").includes("json") ? await response.json() : undefined
  return { status: response.status, body }
}

/** One round: both days, shown together; then the next round, unless the key has to change first. A newer round (a key entered) supersedes it. */
const refresh = async () => {
  clearTimeout(timer)
  const mine = ++round
  const key = takeKey()
  if (key === "") return say(describeAnswer("no key"))
  let answers
  try {
    answers = await Promise.all([read("/metrics/today", key), read("/metrics/yesterday", key)])
  } catch {
    if (mine !== round) return
    say(describeAnswer("unreachable"))
    timer = setTimeout(refresh, every * 1000)
    return
  }
  if (mine !== round) return
  const failed = answers.find((answer) => answer.status !== 200)
  const described = describeAnswer(failed?.status ?? 200, failed?.body)
  if (failed === undefined) {
    lastUpdated = new Date()
    show(answers[0].body, answers[1].body)
  }
  say(described)
  if (!described.askForKey) timer = setTimeout(refresh, every * 1000)
}

keyInput.value = takeKey()
keyForm.addEventListener("submit", (event) => {
  event.preventDefault()
  const key = keyInput.value.trim()
  if (key) sessionStorage.setItem(KEY_STORE, key)
  else sessionStorage.removeItem(KEY_STORE)
  refresh()
})
refresh()
