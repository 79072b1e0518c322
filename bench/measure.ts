/** Runs `work`, sampling RSS every 50 ms; returns seconds and the peak in MiB. */
export const measure = async <A>(work: () => Promise<A>): Promise<{ result: A; seconds: number; peakMiB: number }> => {
  global.gc?.()
  let peak = process.memoryUsage().rss
  const sampler = setInterval(() => (peak = Math.max(peak, process.memoryUsage().rss)), 50)
  const started = performance.now()
  try {
    const result = await work()
    return { result, seconds: (performance.now() - started) / 1000, peakMiB: Math.max(peak, process.memoryUsage().rss) / 2 ** 20 }
  } finally {
    clearInterval(sampler)
  }
}
