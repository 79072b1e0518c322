// The registry's admin page: lists reports, registers one, sets its pages, imports a filter sheet
// and shows the sheet's problems row by row. Every change goes through the admin API.
import { api, el, fillSelect, keyForm, messageOf, say } from "./common.js"

const $ = (id) => document.getElementById(id)
let reports = []

const refresh = async () => {
  const status = $("reports-status")
  const answer = await api("/api/reports")
  if (answer.status !== 200) {
    say(status, messageOf(answer), "bad")
    return
  }
  reports = answer.body.reports
  const counts = await Promise.all(
    reports.map(async (report) => {
      const filters = await api(`/api/filters/${encodeURIComponent(report.report_id)}`)
      return filters.status === 200 ? filters.body.filters.length : 0
    })
  )
  $("reports-table")
    .querySelector("tbody")
    .replaceChildren(
      ...reports.map((report, i) =>
        el(
          "tr",
          { "data-report": report.report_id },
          el("td", { text: report.report_id }),
          el("td", { text: report.title }),
          el("td", { text: report.engine }),
          el("td", { text: report.page_names.join(", ") || "none yet" }),
          el("td", { text: String(counts[i]) })
        )
      )
    )
  say(status, reports.length === 0 ? "No reports registered yet." : `${reports.length} report${reports.length === 1 ? "" : "s"}.`)
  const options = reports.map((report) => [report.report_id, `${report.title} (${report.report_id})`])
  fillSelect($("pages-report"), options)
  fillSelect($("import-report"), [["", "The reports the sheet's report_id column names"], ...options])
}

/** The problems of a refused change, one per line. */
const problemText = (answer) =>
  answer.body?.problems?.map((problem) => `${problem.field || "body"}: ${problem.message}`).join("\n") ?? messageOf(answer)

/**
 * Runs one submission at a time: the button says it is busy (aria-disabled, not disabled, so
 * keyboard focus stays on it) and a second press while it works is ignored.
 */
const busy = async (form, work) => {
  const button = form.querySelector("button[type=submit]")
  if (button.getAttribute("aria-disabled") === "true") return
  button.setAttribute("aria-disabled", "true")
  try {
    await work()
  } finally {
    button.removeAttribute("aria-disabled")
  }
}

$("register-form").addEventListener("submit", (event) => {
  event.preventDefault()
  const form = event.currentTarget
  busy(form, async () => {
    const data = new FormData(form)
    const body = {}
    for (const [name, value] of data.entries()) if (String(value).trim() !== "") body[name] = String(value).trim()
    const answer = await api("/api/admin/reports", { method: "POST", body })
    const status = $("register-status")
    if (answer.status === 201 || answer.status === 202) {
      say(
        status,
        answer.status === 201
          ? `Registered ${body.report_id}.`
          : `Registered ${body.report_id}; it shows in the list once the registry catches up.`,
        "good"
      )
      await refresh()
      $("pages-report").value = body.report_id
    } else say(status, problemText(answer), "bad")
  })
})

$("pages-form").addEventListener("submit", (event) => {
  event.preventDefault()
  busy(event.currentTarget, async () => {
    const reportId = $("pages-report").value
    const pages = $("pages-list")
      .value.split(/\r?\n/)
      .map((line) => line.trim())
      .filter((line) => line !== "")
      .map((line) => {
        const [name, display] = line.split("|").map((part) => part.trim())
        return { name, display_name: display || name }
      })
    const answer = await api(`/api/admin/reports/${encodeURIComponent(reportId)}/pages`, { method: "PUT", body: { pages } })
    const status = $("pages-status")
    if (answer.status === 200 || answer.status === 202) {
      say(status, `Set ${pages.length} page${pages.length === 1 ? "" : "s"} of ${reportId}.`, "good")
      await refresh()
    } else say(status, problemText(answer), "bad")
  })
})

$("import-form").addEventListener("submit", (event) => {
  event.preventDefault()
  busy(event.currentTarget, async () => {
    const file = $("import-file").files[0]
    const status = $("import-status")
    const table = $("import-problems")
    table.hidden = true
    if (file === undefined) {
      say(status, "Choose a file to import.", "bad")
      return
    }
    const query = new URLSearchParams({ file_name: file.name })
    if ($("import-report").value !== "") query.set("report_id", $("import-report").value)
    const answer = await api(`/api/admin/filters?${query}`, {
      method: "POST",
      body: file,
      contentType: file.name.toLowerCase().endsWith(".csv")
        ? "text/csv"
        : "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
    })
    if (answer.status === 200 || answer.status === 202) {
      const imported = answer.body.imported
      say(
        status,
        `Imported ${imported.map((one) => `${one.filters.length} filter${one.filters.length === 1 ? "" : "s"} for ${one.report_id}`).join(", ")}.`,
        "good"
      )
      await refresh()
    } else if (answer.status === 422) {
      const problems = answer.body.problems
      say(status, `The sheet has ${problems.length} problem${problems.length === 1 ? "" : "s"}; nothing was imported.`, "bad")
      table
        .querySelector("tbody")
        .replaceChildren(
          ...problems.map((problem) =>
            el(
              "tr",
              {},
              el("td", { text: problem.sheet }),
              el("td", { text: String(problem.row) }),
              el("td", { text: problem.column }),
              el("td", { text: problem.value }),
              el("td", { text: problem.message })
            )
          )
        )
      table.hidden = false
    } else say(status, messageOf(answer), "bad")
  })
})

keyForm($("key-form"), refresh)
refresh()
