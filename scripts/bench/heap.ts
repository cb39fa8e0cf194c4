/**
 * The heap check: many gets from long-lived fibers through one effect-memcache client; heapUsed
 * before and after, each measured after `gc()` when node runs with --expose-gc.
 */
import { type EffectRunner, runFiberGets } from "./effect.js"

export interface Heap {
  readonly gets: number
  readonly concurrency: number
  readonly gcExposed: boolean
  readonly beforeMB: number
  readonly afterMB: number
  /** highest heapUsed sampled during the run (garbage included) */
  readonly peakMB: number
  readonly deltaMB: number
  readonly rssBeforeMB: number
  readonly rssAfterMB: number
  readonly opsPerSecond: number
}

const MB = 1024 * 1024

const gc = (globalThis as { gc?: () => void }).gc

export const gcExposed = gc !== undefined

/** Full collections, when node exposes gc (twice: the first may leave weakly held garbage). */
export const collect = (): void => {
  if (gc !== undefined) {
    gc()
    gc()
  }
}

export const heapCheck = async (runner: EffectRunner, gets: number, concurrency: number): Promise<Heap> => {
  const { mc, keys } = runner.data()
  collect()
  const before = process.memoryUsage()
  let peak = before.heapUsed
  const sampler = setInterval(() => {
    peak = Math.max(peak, process.memoryUsage().heapUsed)
  }, 25)
  const start = performance.now()
  try {
    await runner.runtime.runPromise(runFiberGets(mc, keys, concurrency, gets))
  } finally {
    clearInterval(sampler)
  }
  const elapsed = performance.now() - start
  collect()
  const after = process.memoryUsage()
  return {
    gets,
    concurrency,
    gcExposed,
    beforeMB: before.heapUsed / MB,
    afterMB: after.heapUsed / MB,
    peakMB: peak / MB,
    deltaMB: (after.heapUsed - before.heapUsed) / MB,
    rssBeforeMB: before.rss / MB,
    rssAfterMB: after.rss / MB,
    opsPerSecond: (gets / elapsed) * 1000,
  }
}
