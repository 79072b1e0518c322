// Puts the export picker where this script tag is, as an iframe:
//   <script src="https://mesh.example/reports/assets/embed.js" data-report="sales" data-api-key="…" async></script>
// data-report preselects a report; data-height sets the frame's height in pixels (default 900).
;(() => {
  const script = document.currentScript
  if (!script) return
  const origin = new URL(script.src).origin
  const picker = new URL("/reports/picker", origin)
  if (script.dataset.report) picker.searchParams.set("report", script.dataset.report)
  if (script.dataset.apiKey) picker.searchParams.set("api_key", script.dataset.apiKey)
  const frame = document.createElement("iframe")
  frame.src = picker.href
  frame.title = script.dataset.title || "Report export"
  frame.width = "100%"
  frame.height = script.dataset.height || "900"
  frame.style.border = "0"
  script.after(frame)
})()
