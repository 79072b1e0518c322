// The export picker a CMS embeds: report, page and filter values from the frozen API, a PNG
// preview, and PNG or PDF downloads, each an export job polled to its end.
import { api, el, fillSelect, keyForm, messageOf, say } from "./common.js"

const $ = (id) => document.getElementById(id)
const wanted = new URL(location.href).searchParams.get("report")
const POLL_MS = 500
let filters = []
let working = false

const loadReports = async () => {
  const answer = await api("/api/reports")
  if (answer.status !== 200) {
    say($("status"), messageOf(answer), "bad")
    return
  }
  const reports = answer.body.reports
  fillSelect(
    $("report"),
    reports.map((report) => [report.report_id, report.title]),
    wanted ?? undefined
  )
  if (reports.length === 0) say($("status"), "No reports are registered yet.")
  await loadReport()
}

const loadReport = async () => {
  const id = $("report").value
  if (!id) return
  const [pages, filtered] = await Promise.all([api(`/api/pages/${encodeURIComponent(id)}`), api(`/api/filters/${encodeURIComponent(id)}`)])
  if (pages.status !== 200 || filtered.status !== 200) {
    say($("status"), messageOf(pages.status !== 200 ? pages : filtered), "bad")
    return
  }
  fillSelect(
    $("page"),
    pages.body.pages.map((page) => [page.name, page.display_name])
  )
  filters = filtered.body.filters
  const fieldset = $("filters")
  fieldset.querySelectorAll(".filter").forEach((node) => node.remove())
  $("filters-empty").hidden = filters.length > 0
  filters.forEach((filter, i) => {
    const select = el("select", { id: `filter-${i}`, "data-label": filter.label })
    // A filter without a default may be left open: every value.
    const values = filter.allowed_values.map((value) => [String(value), String(value)])
    fillSelect(select, filter.default === null ? [["", "All"], ...values] : values, filter.default === null ? "" : String(filter.default))
    fieldset.append(el("div", { class: "filter" }, el("label", { for: `filter-${i}`, text: filter.label }), select))
  })
  snippets()
}

/** The export request the form describes. */
const request = (format) => {
  const chosen = {}
  filters.forEach((filter, i) => {
    const text = $(`filter-${i}`).value
    if (text === "") return
    chosen[filter.label] = filter.allowed_values.find((value) => String(value) === text) ?? text
  })
  const body = { report_id: $("report").value, filters: chosen, format }
  if (!(format === "pdf" && $("all-pages").checked)) body.page = $("page").value
  return body
}

const wait = (ms) => new Promise((resolve) => setTimeout(resolve, ms))

/** Runs one export to its end; resolves the file as a Blob, or undefined after saying why not. */
const exportFile = async (format) => {
  const status = $("status")
  const buttons = document.querySelectorAll("#choose-form button")
  // One export at a time; aria-disabled, not disabled, so keyboard focus stays where it was.
  if (working) return undefined
  working = true
  buttons.forEach((button) => button.setAttribute("aria-disabled", "true"))
  try {
    say(status, `Exporting ${format.toUpperCase()}…`)
    let answer = await api("/api/exports", { method: "POST", body: request(format) })
    if (answer.status !== 202) {
      const problems = answer.body?.problems?.map((problem) => problem.message).join("; ")
      say(status, problems ?? messageOf(answer), "bad")
      return undefined
    }
    let job = answer.body
    while (job.status === "NotStarted" || job.status === "Running") {
      say(status, `Exporting ${format.toUpperCase()}: ${job.status === "Running" ? `${job.percent_complete}%` : "queued"}`)
      await wait(POLL_MS)
      answer = await api(`/api/exports/${job.id}`)
      if (answer.status !== 200) {
        say(status, messageOf(answer), "bad")
        return undefined
      }
      job = answer.body
    }
    if (job.status === "Failed") {
      say(status, `The export failed: ${job.error}`, "bad")
      return undefined
    }
    const file = await api(`/api/exports/${job.id}/file`)
    if (file.status !== 200) {
      say(status, messageOf(file), "bad")
      return undefined
    }
    say(status, `Exported ${format.toUpperCase()}${job.cached ? " (from the cache)" : ""}.`, "good")
    return { blob: await file.response.blob(), job }
  } finally {
    working = false
    buttons.forEach((button) => button.removeAttribute("aria-disabled"))
  }
}

const preview = async () => {
  const done = await exportFile("png")
  if (done === undefined) return
  const report = $("report").selectedOptions[0]?.textContent ?? ""
  const page = $("page").selectedOptions[0]?.textContent ?? ""
  const img = el("img", { src: URL.createObjectURL(done.blob), alt: `Preview of ${report}, ${page}`, id: "preview-image" })
  $("preview").replaceChildren(img)
}

const download = async (format) => {
  const done = await exportFile(format)
  if (done === undefined) return
  const link = el("a", { href: URL.createObjectURL(done.blob), download: `${done.job.report_id}-${done.job.id.slice(4, 12)}.${format}` })
  document.body.append(link)
  link.click()
  link.remove()
}

const snippets = () => {
  const report = $("report").value
  const picker = new URL("/reports/picker", location.origin)
  if (report) picker.searchParams.set("report", report)
  picker.searchParams.set("api_key", "YOUR_REPORTS_KEY")
  $("snippet-iframe").textContent =
    `<iframe src="${picker.href}" title="Report export" width="100%" height="900" style="border:0"></iframe>`
  $("snippet-script").textContent =
    `<script src="${location.origin}/reports/assets/embed.js" data-report="${report}" data-api-key="YOUR_REPORTS_KEY" async></script>`
}

$("report").addEventListener("change", loadReport)
$("choose-form").addEventListener("submit", (event) => {
  event.preventDefault()
  preview()
})
$("png-button").addEventListener("click", () => download("png"))
$("pdf-button").addEventListener("click", () => download("pdf"))
keyForm($("key-form"), loadReports)
snippets()
loadReports()
