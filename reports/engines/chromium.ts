import { availableParallelism } from "node:os"
import { PDFDocument } from "pdf-lib"
import { type Browser, type BrowserContext, chromium, type Page } from "playwright-core"
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
 * serves every render (started on first use, started again if it dies); each render has a tab of
 * its own, in a context of its own, its cookies and storage cleared before the tab serves another job.
 */
export const chromiumEngine = (options: {
  readonly executablePath: string
  readonly viewport: { readonly width: number; readonly height: number }
  readonly renderTimeoutMs: number
  /**
   * Renders at once (REPORTS_BROWSER_TABS; default the machine's cores): drawing and capturing a
   * page keeps the browser's processes busy on the CPU, so more tabs than cores draw no faster
   * (bench:reports). Workers beyond it wait their turn, and serve Export To File meanwhile.
   */
  readonly tabs?: number
}): RenderEngine => {
  const limit = Math.max(1, options.tabs ?? availableParallelism())
  let busy = 0
  const waiting: Array<() => void> = []
  const turn = async (signal: AbortSignal): Promise<() => void> => {
    if (busy >= limit)
      await new Promise<void>((resolve, reject) => {
        const go = () => {
          signal.removeEventListener("abort", stop)
          resolve()
        }
        const stop = () => {
          waiting.splice(waiting.indexOf(go), 1)
          reject(new RenderFailed("the export was stopped while waiting for a browser tab", true))
        }
        waiting.push(go)
        signal.addEventListener("abort", stop, { once: true })
      })
    else busy++
    // A turn ends once: handed to the next in line, or freed.
    let ended = false
    return () => {
      if (ended) return
      ended = true
      const next = waiting.shift()
      if (next === undefined) busy--
      else next()
    }
  }
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

  /**
   * Tabs kept between renders, each in a context of its own: opening a tab costs a renderer
   * process (200–400 ms here, more than drawing the page), so a tab is reused — its cookies cleared
   * and the page left for about:blank — and closed instead when its render failed.
   */
  interface Tab {
    readonly browser: Browser
    readonly context: BrowserContext
    readonly page: Page
  }
  const idle: Array<Tab> = []
  const acquire = async (): Promise<Tab> => {
    const running = await browserOf()
    for (let tab = idle.pop(); tab !== undefined; tab = idle.pop()) {
      if (tab.browser === running && tab.browser.isConnected() && !tab.page.isClosed()) return tab
      await tab.context.close().catch(() => undefined)
    }
    const context = await running.newContext({ viewport: options.viewport })
    await context.addInitScript({ content: LISTEN })
    return { browser: running, context, page: await context.newPage() }
  }
  const release = async (tab: Tab, reusable: boolean) => {
    if (reusable && tab.browser.isConnected()) {
      try {
        await tab.context.clearCookies()
        // What the report's page stored (for its origin) goes with it; the next job starts clean.
        await tab.page.evaluate("try { localStorage.clear(); sessionStorage.clear() } catch {}")
        await tab.page.goto("about:blank")
        idle.push(tab)
        return
      } catch {
        // Not reusable after all: closed below.
      }
    }
    await tab.context.close().catch(() => undefined)
  }

  const render = async (request: RenderRequest) => {
    const { report } = request
    if (report.embed_url === null)
      throw new RenderFailed(`report ${report.report_id} has no embed_url: register one to export it through the headless engine`, false)
    const aborted = new Promise<never>((_, reject) => {
      const fail = () => reject(new RenderFailed("the export was stopped (its time was up, or the worker is stopping)", true))
      if (request.signal.aborted) fail()
      request.signal.addEventListener("abort", fail, { once: true })
    })
    aborted.catch(() => undefined)
    const done = await turn(request.signal)
    let tab: Tab
    const acquiring = acquire()
    try {
      tab = await Promise.race([acquiring, aborted])
    } catch (error) {
      // Stopped while the tab opened: the tab is kept for the next render, not leaked.
      void acquiring.then((late) => release(late, true)).catch(() => undefined)
      done()
      throw error instanceof RenderFailed ? error : new RenderFailed(`the headless browser failed: ${describe(error)}`, true)
    }
    let reusable = false
    try {
      const captures: Array<Uint8Array> = []
      for (const [i, page] of request.pages.entries()) {
        const url = embedUrlFor(report.embed_url, page.name, request.filter)
        const response = await Promise.race([tab.page.goto(url, { waitUntil: "commit", timeout: options.renderTimeoutMs }), aborted])
        if (response !== null && response.status() >= 400) {
          const status = response.status()
          throw new RenderFailed(
            `the embed URL answered ${status} for page ${page.name}`,
            status === 429 || status >= 500,
            Number(response.headers()["retry-after"] ?? 0) * 1000 || undefined
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
          tab.page.evaluate(() => (globalThis as unknown as { __meshRender: Promise<Outcome> }).__meshRender),
          timedOut,
          aborted
        ]).finally(() => clearTimeout(timer))
        if (!outcome.ok) {
          const timeout = outcome.message.includes("did not say rendered")
          throw new RenderFailed(timeout ? outcome.message : `page ${page.name} failed to render: ${outcome.message}`, timeout)
        }
        captures.push(
          request.format === "png"
            ? new Uint8Array(await Promise.race([tab.page.screenshot({ type: "png" }), aborted]))
            : // One sheet the size of the viewport per report page, as Power BI's own PDF export gives.
              new Uint8Array(
                await Promise.race([
                  tab.page.pdf({
                    printBackground: true,
                    width: `${options.viewport.width}px`,
                    height: `${options.viewport.height}px`,
                    pageRanges: "1"
                  }),
                  aborted
                ])
              )
        )
        request.progress(Math.round(((i + 1) / request.pages.length) * 100))
      }
      reusable = true
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
      done()
      void release(tab, reusable)
    }
  }

  return {
    name: "embed",
    render,
    close: async () => {
      const running = browser
      browser = undefined
      for (const tab of idle.splice(0)) await tab.context.close().catch(() => undefined)
      if (running !== undefined) await (await running.catch(() => undefined))?.close().catch(() => undefined)
    }
  }
}
