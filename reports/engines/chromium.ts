import { PDFDocument } from "pdf-lib"
import { type Browser, chromium } from "playwright-core"
import { type RenderEngine, RenderFailed, type RenderRequest } from "../model.ts"

/**
 * The flags Debian's Chromium runs headless with here: no sandbox (the service may run as root),
 * no GPU, and none of the background connections a closed network refuses by the dozen.
 */
export const CHROMIUM_FLAGS = [
  "--no-sandbox",
  "--disable-gpu",
  "--disable-quic",
  "--no-first-run",
  "--disable-background-networking",
  "--disable-component-update",
  "--disable-sync",
  "--disable-dev-shm-usage"
] as const

/** Debian's `chromium` (or CHROMIUM_BIN), headless, driven by playwright-core: Playwright's own browser download is not used. */
export const launchChromium = (executablePath: string): Promise<Browser> =>
  chromium.launch({ executablePath, headless: true, args: [...CHROMIUM_FLAGS] }).catch((error: unknown) => {
    throw new RenderFailed(
      `could not start Chromium at ${executablePath} (install Debian's chromium, or set CHROMIUM_BIN): ${error instanceof Error ? error.message.split("\n")[0] : String(error)}`,
      true
    )
  })

/** The report's embed URL with the page and Power BI's URL filter added (as `pageName` and `filter`). */
export const embedUrlFor = (embedUrl: string, pageName: string, filter: string | undefined): string => {
  const url = new URL(embedUrl)
  url.searchParams.set("pageName", pageName)
  if (filter === undefined) url.searchParams.delete("filter")
  else url.searchParams.set("filter", filter)
  return url.toString()
}

/**
 * Listens, before the page's own scripts run, for what the embed SDK reports: `rendered` (the
 * visuals are drawn), or an error — as an event on the window, or posted by the report's frame.
 */
const LISTEN = `(() => {
  let settle;
  window.__meshRender = new Promise((resolve) => { settle = resolve; });
  addEventListener("rendered", () => settle({ ok: true }));
  addEventListener("error", (e) => { if (!(e instanceof ErrorEvent)) settle({ ok: false, message: String(e.message ?? "the report failed to render") }); });
  addEventListener("message", (e) => {
    const d = e.data;
    if (d && d.event === "rendered") settle({ ok: true });
    else if (d && d.event === "error") settle({ ok: false, message: String(d.message ?? "the report failed to render") });
  });
})();`

type Outcome = { readonly ok: true } | { readonly ok: false; readonly message: string }

const describe = (error: unknown) => (error instanceof Error ? error.message.split("\n")[0] : String(error))

/**
 * The headless engine: each page of the request loaded from the report's embed URL with the
 * filter in Power BI's URL syntax, waited on until it says `rendered`, then captured — a PNG
 * screenshot of the one page, or each page printed and the prints joined into one PDF. One browser
 * serves every render (started on first use, started again if it dies); each render has its own
 * context, so no cookie or storage crosses from one job to the next.
 */
export const chromiumEngine = (options: {
  readonly executablePath: string
  readonly viewport: { readonly width: number; readonly height: number }
  readonly renderTimeoutMs: number
}): RenderEngine => {
  let browser: Promise<Browser> | undefined
  const browserOf = (): Promise<Browser> => {
    if (browser === undefined) {
      const started = launchChromium(options.executablePath)
      browser = started
      started.then(
        (running) =>
          running.on("disconnected", () => {
            if (browser === started) browser = undefined
          }),
        () => {
          if (browser === started) browser = undefined
        }
      )
    }
    return browser
  }

  const render = async (request: RenderRequest) => {
    const { report } = request
    if (report.embed_url === null)
      throw new RenderFailed(`report ${report.report_id} has no embed_url: register one to export it through the headless engine`, false)
    const context = await (await browserOf()).newContext({ viewport: options.viewport })
    const aborted = new Promise<never>((_, reject) => {
      const fail = () => reject(new RenderFailed("the export was stopped (its time was up, or the worker is stopping)", true))
      if (request.signal.aborted) fail()
      request.signal.addEventListener("abort", fail, { once: true })
    })
    aborted.catch(() => undefined)
    try {
      await context.addInitScript({ content: LISTEN })
      const captures: Array<Uint8Array> = []
      for (const [i, page] of request.pages.entries()) {
        const tab = await context.newPage()
        const url = embedUrlFor(report.embed_url, page.name, request.filter)
        const response = await Promise.race([tab.goto(url, { waitUntil: "commit", timeout: options.renderTimeoutMs }), aborted])
        if (response !== null && response.status() >= 400) {
          const status = response.status()
          throw new RenderFailed(
            `the embed URL answered ${status} for page ${page.name}`,
            status === 429 || status >= 500,
            status === 429 ? Number(response.headers()["retry-after"] ?? 0) * 1000 || undefined : undefined
          )
        }
        let timer: ReturnType<typeof setTimeout> | undefined
        const timedOut = new Promise<Outcome>((resolve) => {
          timer = setTimeout(
            () => resolve({ ok: false, message: `page ${page.name} did not say rendered within ${options.renderTimeoutMs} ms` }),
            options.renderTimeoutMs
          )
        })
        const outcome = await Promise.race([
          tab.evaluate(() => (globalThis as unknown as { __meshRender: Promise<Outcome> }).__meshRender),
          timedOut,
          aborted
        ]).finally(() => clearTimeout(timer))
        if (!outcome.ok) {
          const timeout = outcome.message.includes("did not say rendered")
          throw new RenderFailed(timeout ? outcome.message : `page ${page.name} failed to render: ${outcome.message}`, timeout)
        }
        captures.push(
          request.format === "png"
            ? new Uint8Array(await tab.screenshot({ type: "png", fullPage: true }))
            : // One sheet the size of the viewport per report page, as Power BI's own PDF export gives.
              new Uint8Array(
                await tab.pdf({
                  printBackground: true,
                  width: `${options.viewport.width}px`,
                  height: `${options.viewport.height}px`,
                  pageRanges: "1"
                })
              )
        )
        await tab.close()
        request.progress(Math.round(((i + 1) / request.pages.length) * 100))
      }
      if (request.format === "png") {
        if (captures.length !== 1) throw new RenderFailed("a PNG shows one page", false)
        return { bytes: captures[0] as Uint8Array, contentType: "image/png" as const }
      }
      const merged = await PDFDocument.create()
      for (const capture of captures) {
        const part = await PDFDocument.load(capture)
        for (const copied of await merged.copyPages(part, part.getPageIndices())) merged.addPage(copied)
      }
      return { bytes: await merged.save(), contentType: "application/pdf" as const }
    } catch (error) {
      if (error instanceof RenderFailed) throw error
      // The browser crashed or was closed under us, or a navigation failed: another attempt may work.
      throw new RenderFailed(`the headless browser failed: ${describe(error)}`, true)
    } finally {
      await context.close().catch(() => undefined)
    }
  }

  return {
    name: "embed",
    render,
    close: async () => {
      const running = browser
      browser = undefined
      if (running !== undefined) await (await running.catch(() => undefined))?.close().catch(() => undefined)
    }
  }
}
