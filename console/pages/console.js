/* global document, location, history, sessionStorage, fetch, setTimeout, clearTimeout, URL */
// The operator's console: polls the console's data API with this tab's key and draws what it
// answers. The page itself holds no data; a key without the console:admin scope gets none.

const KEY_STORE = "ingest-mesh.console.api-key"
const POLL_MS = 1000

/** The key this tab uses: ?api_key= moves it into session storage and out of the address bar. */
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

const api = async (path, body) => {
  const response = await fetch(path, {
    method: body === undefined ? "GET" : "POST",
    headers: { "X-API-Key": takeKey(), ...(body === undefined ? {} : { "Content-Type": "application/json" }) },
    body: body === undefined ? undefined : JSON.stringify(body)
  })
  const type = response.headers.get("content-type") ?? ""
  return { status: response.status, body: type.includes("json") ? await response.json() : undefined }
}

const el = (tag, attributes = {}, ...children) => {
  const node = document.createElement(tag)
  for (const [name, value] of Object.entries(attributes)) {
    if (value === undefined || value === null || value === false) continue
    if (name === "text") node.textContent = String(value)
    else node.setAttribute(name, value === true ? "" : String(value))
  }
  node.append(...children)
  return node
}

/** A cell with its column's name, which narrow screens show beside the value. */
const td = (label, ...children) => el("td", { "data-label": label }, ...children)
const text = (label, value) => td(label, value === null || value === undefined ? "-" : String(value))
const number = (value) => (value === null || value === undefined ? "-" : Number(value).toLocaleString("en"))
const seconds = (value) =>
  value === null || value === undefined ? "-" : value < 10 ? value.toFixed(1) : Math.round(value).toLocaleString("en")
const clock = (iso) => (iso ? new Date(iso).toLocaleTimeString("en-GB") : "-")
const duration = (s) => {
  if (s === null || s === undefined) return "unknown"
  if (s < 60) return `${Math.ceil(s)} s`
  if (s < 3600) return `${Math.floor(s / 60)} min ${Math.round(s % 60)} s`
  return `${Math.floor(s / 3600)} h ${Math.round((s % 3600) / 60)} min`
}

/** The last minutes as small bars, newest last, each with its count for screen readers and hovering. */
const minutes = (label, perMinute) => {
  const max = Math.max(1, ...perMinute.map((one) => one.count))
  const bars = el("span", { class: "minutes", role: "img", "aria-label": perMinute.map((one) => `${one.minute} ${one.count}`).join(", ") })
  for (const one of perMinute)
    bars.append(
      el("span", { class: "minute", style: `height:${Math.round((100 * one.count) / max)}%`, title: `${one.minute}: ${one.count}` })
    )
  const last = perMinute.at(-1)
  return td(label, bars, el("span", { class: "this-minute", text: `${number(last?.count ?? 0)} this minute` }))
}

const payload = (label, value) => td(label, el("details", {}, el("summary", { text: "event" }), el("pre", { text: value })))

const fill = (id, rows, emptyId) => {
  document.querySelector(`#${id} tbody`).replaceChildren(...rows)
  if (emptyId) {
    document.getElementById(emptyId).hidden = rows.length > 0
    document.getElementById(id).hidden = rows.length === 0
  }
}

const say = (id, message, tone = "") => {
  const region = document.getElementById(id)
  region.textContent = message
  region.className = `status ${tone}`.trim()
}

const confirmDialog = document.getElementById("confirm")
/** Asks before a re-drive; resolves true only on the dialog's Re-drive button. */
const confirmed = (question) =>
  new Promise((resolve) => {
    document.getElementById("confirm-text").textContent = question
    confirmDialog.addEventListener("close", () => resolve(confirmDialog.returnValue === "yes"), { once: true })
    confirmDialog.returnValue = ""
    confirmDialog.showModal()
  })

const redrive = async (question, path, body, outcome) => {
  if (!(await confirmed(question))) return say("action-status", "Nothing was re-driven.")
  say("action-status", "Re-driving…")
  const answer = await api(path, body)
  if (answer.status !== 200) return say("action-status", answer.body?.message ?? `the console answered ${answer.status}`, "bad")
  say("action-status", outcome(answer.body), "good")
  void refresh()
}

const sourceRow = (source) =>
  el(
    "tr",
    { "data-source": source.source },
    el("th", { scope: "row", "data-label": "source", text: source.source }),
    text("accepted", number(source.accepted)),
    minutes("accepted per minute", source.acceptedPerMinute),
    minutes("duplicates per minute", source.duplicatesPerMinute),
    text(
      "rejected (by status)",
      source.rejectedByStatus.length === 0 ? "none" : source.rejectedByStatus.map((one) => `${one.status}: ${number(one.count)}`).join(", ")
    ),
    td(
      "quarantined",
      `${number(source.quarantined)}`,
      source.waitingInQuarantine > 0 ? el("span", { class: "badge", text: `${source.waitingInQuarantine} waiting` }) : ""
    ),
    minutes("quarantined per minute", source.quarantinedPerMinute),
    td(
      "last error",
      source.lastError === null ? "-" : el("span", { class: "error", text: `${clock(source.lastError.at)} ${source.lastError.text}` })
    )
  )

const rebuildCell = (rebuilds) => {
  if (rebuilds.length === 0) return text("rebuild", "-")
  return td(
    "rebuild",
    ...rebuilds.map((build) =>
      el(
        "div",
        { class: "rebuild" },
        el("progress", { max: 100, value: build.percent.toFixed(1), "aria-label": `rebuild of generation ${build.generation}` }),
        el("span", {
          class: "rebuild-text",
          text:
            `g${build.generation}: ${number(build.position)} of ${number(build.target)} (${build.percent.toFixed(0)}%), ` +
            `${number(Math.round(build.eventsPerSecond))} events/s, ETA ${duration(build.etaSeconds)}` +
            (build.switchWaitingSince ? `; switch waiting for readers since ${clock(build.switchWaitingSince)}` : "")
        })
      )
    )
  )
}

const projectionRow = (row) =>
  el(
    "tr",
    { "data-projection": row.projection },
    el("th", { scope: "row", "data-label": "projection", text: row.projection }),
    text("generation", row.generation),
    text("version", row.version),
    text("checkpoint / head", `${number(row.checkpoint)} / ${number(row.head)}`),
    text("lag (events)", number(row.lag)),
    text("lag (s)", seconds(row.lagSeconds)),
    text("events/s", number(Math.round(row.eventsPerSecond))),
    td("dead letters", row.deadLetters > 0 ? el("span", { class: "badge bad", text: number(row.deadLetters) }) : "0"),
    rebuildCell(row.rebuilds)
  )

const deadLetterRow = (letter) =>
  el(
    "tr",
    { "data-id": letter.id },
    el("th", { scope: "row", "data-label": "id", text: `#${letter.id}` }),
    text("projection", letter.projection),
    text("event", `seq ${letter.seq} · ${letter.subject} · key ${letter.dedupeKey}`),
    text("reason", `${letter.sqlstate ? `${letter.sqlstate} ` : ""}${letter.reason}`),
    payload("payload", letter.payload),
    td("action", el("button", { type: "button", "data-redrive": letter.id, text: "Re-drive" }))
  )

const quarantineRow = (record) =>
  el(
    "tr",
    { "data-id": record.id },
    el("th", { scope: "row", "data-label": "id", text: `#${record.id}` }),
    text("source", `${record.source}${record.key ? ` · key ${record.key}` : ""}`),
    text("received", record.receivedAt),
    td("issues", el("ul", {}, ...record.issues.map((issue) => el("li", { text: `${issue.path}: ${issue.message}` })))),
    payload("payload", record.payload),
    td("action", el("button", { type: "button", "data-redrive": record.id, text: "Re-drive" }))
  )

const draw = (view) => {
  say("updated", `Live · updated ${clock(view.at)}`)
  document.getElementById("sources-hint").textContent =
    `Accepted and quarantined totals are what the log holds. Accepted per minute counts since the console started (${clock(view.startedAt)}); ` +
    `quarantined per minute comes from the quarantine itself. Duplicates and rejections (over the last ${view.minutes} minutes) are the edge's answers heard since then.`
  fill("sources", view.sources.map(sourceRow))
  fill("projections", view.projections.map(projectionRow))
  fill("dead-letters", view.deadLetters.map(deadLetterRow), "dead-letters-empty")
  for (const button of document.querySelectorAll("#dead-letters button[data-redrive]")) {
    const letter = view.deadLetters.find((one) => String(one.id) === button.dataset.redrive)
    button.addEventListener("click", () =>
      redrive(
        `Re-drive dead letter #${letter.id} of ${letter.projection} (seq ${letter.seq}) with the current code?`,
        "/api/console/dead-letters/redrive",
        { projection: letter.projection, ids: [letter.id] },
        (result) =>
          result.redriven.length > 0
            ? `Re-drove dead letter #${result.redriven.join(", #")}.`
            : `Still poison: ${result.stillPoison.map((one) => `#${one.id} ${one.reason}`).join("; ")}`
      )
    )
  }
  if (view.quarantine.error) say("action-status", `The quarantine could not be read: ${view.quarantine.error}`, "bad")
  fill("quarantine", view.quarantine.waiting.map(quarantineRow), "quarantine-empty")
  for (const button of document.querySelectorAll("#quarantine button[data-redrive]"))
    button.addEventListener("click", () =>
      redrive(
        `Re-drive quarantined event #${button.dataset.redrive}? It is judged again by the current contract and appended once if it passes.`,
        "/api/console/quarantine/redrive",
        { ids: [Number(button.dataset.redrive)] },
        (result) => result.reports.map((report) => `#${report.id} ${report.outcome}: ${report.detail}`).join("; ")
      )
    )
  const { push, refreshes } = view.powerbi
  fill(
    "powerbi-push",
    push.map((row) =>
      el(
        "tr",
        {},
        el("th", { scope: "row", "data-label": "dataset / table", text: `${row.dataset} / ${row.table}` }),
        text("phase", row.phase),
        text("rows", number(row.rowsInPowerBi)),
        text("backlog", number(row.backlog)),
        text("last POST", clock(row.lastPostAt)),
        text("last error", row.lastError)
      )
    ),
    undefined
  )
  fill(
    "powerbi-refreshes",
    refreshes.map((row) =>
      el(
        "tr",
        {},
        el("th", { scope: "row", "data-label": "projection", text: row.projection }),
        text("dataset", `${row.groupId}/${row.datasetId}`),
        text("last refresh", clock(row.lastTrigger.at)),
        text("status", row.lastTrigger.status),
        text("next allowed", clock(row.nextAllowedAt)),
        text("error", row.lastTrigger.error)
      )
    )
  )
  document.getElementById("powerbi-empty").hidden = push.length + refreshes.length > 0 || Boolean(view.powerbi.error)
  if (view.powerbi.error) say("powerbi-empty", `The Power BI sink's state could not be read: ${view.powerbi.error}`, "bad")
  document.getElementById("powerbi-push").hidden = push.length === 0
  document.getElementById("powerbi-refreshes").hidden = refreshes.length === 0
  fill(
    "edges",
    view.edges.flatMap((edge) =>
      edge.shards.length === 0
        ? [
            el(
              "tr",
              {},
              el("th", { scope: "row", "data-label": "edge", text: `${edge.url}: ${edge.status}` }),
              text("region / shard", edge.error)
            )
          ]
        : edge.shards.map((shard) =>
            el(
              "tr",
              {},
              el("th", { scope: "row", "data-label": "edge", text: `${edge.url}: ${edge.status}` }),
              text("region / shard", `${shard.region} / ${shard.shard}`),
              text("log", shard.connected ? "connected" : "not connected"),
              text("spool depth", number(shard.depth)),
              text("oldest", shard.oldestAgeMs === null ? "-" : `${(shard.oldestAgeMs / 1000).toFixed(1)} s`),
              text("drain failures in a row", shard.drainFailures)
            )
          )
    ),
    "edges-empty"
  )
}

const clearData = () => {
  for (const id of ["sources", "projections", "dead-letters", "quarantine", "powerbi-push", "powerbi-refreshes", "edges"])
    document.querySelector(`#${id} tbody`).replaceChildren()
}

let timer
const refresh = async () => {
  clearTimeout(timer)
  try {
    const answer = await api("/api/console/status")
    if (answer.status === 200) {
      say("access", "")
      document.getElementById("key-section").classList.add("settled")
      document.body.classList.remove("no-data")
      draw(answer.body)
    } else {
      clearData()
      document.body.classList.add("no-data")
      document.getElementById("key-section").classList.remove("settled")
      say("updated", "No data.")
      say(
        "access",
        answer.status === 401
          ? "The API key is missing or unknown: enter a key with the console:admin scope."
          : answer.status === 403
            ? "This key may not see the console: it needs the console:admin scope."
            : (answer.body?.message ?? `the console answered ${answer.status}`),
        "bad"
      )
      return
    }
  } catch (error) {
    say("updated", `Not reachable: ${error.message}; trying again.`, "bad")
  }
  timer = setTimeout(refresh, POLL_MS)
}

const form = document.getElementById("key-form")
form.querySelector("input").value = takeKey()
form.addEventListener("submit", (event) => {
  event.preventDefault()
  const key = form.querySelector("input").value.trim()
  if (key) sessionStorage.setItem(KEY_STORE, key)
  else sessionStorage.removeItem(KEY_STORE)
  void refresh()
})
void refresh()
