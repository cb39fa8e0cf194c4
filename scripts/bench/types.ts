/**
 * The benchmark's vocabulary: scenarios, the clients under test ("runners"), and what one timed run
 * measures. Every runner gets the same keys, values and concurrency.
 */

export const KEY_COUNT = 1_000
export const VALUE_BYTES = 100
/** keys per getMulti call */
export const MULTI_KEYS = 100

export type ScenarioKind = "get" | "set" | "getMulti" | "mixed"

export interface Scenario {
  readonly id: string
  readonly label: string
  readonly kind: ScenarioKind
  /** workers (fibers or async loops) running at once */
  readonly concurrency: number
  /** getMulti counts keys, the others count operations */
  readonly unit: "ops/s" | "keys/s"
}

export const scenarios: ReadonlyArray<Scenario> = [
  { id: "get-c1", label: "get c=1", kind: "get", concurrency: 1, unit: "ops/s" },
  { id: "get-c50", label: "get c=50", kind: "get", concurrency: 50, unit: "ops/s" },
  { id: "get-c500", label: "get c=500", kind: "get", concurrency: 500, unit: "ops/s" },
  { id: "set-c50", label: "set c=50", kind: "set", concurrency: 50, unit: "ops/s" },
  { id: "multi-c10", label: `getMulti(${MULTI_KEYS}) c=10`, kind: "getMulti", concurrency: 10, unit: "keys/s" },
  { id: "mixed-c100", label: "90/10 get/set c=100", kind: "mixed", concurrency: 100, unit: "ops/s" },
]

/** What one timed run did: `units` are operations, or keys for getMulti. */
export interface RunResult {
  readonly units: number
  readonly elapsedMs: number
  /** failed operations, misses and wrong values (all should be zero) */
  readonly errors: number
  /** the first error seen, for the report */
  readonly firstError?: string | undefined
}

export type RunnerGroup = "ours" | "peer" | "ceiling"

export interface Runner {
  readonly id: string
  readonly label: string
  /** a short column header for the table */
  readonly column: string
  readonly group: RunnerGroup
  /** how it is configured, for the report (connections, options) */
  readonly notes: string
  /** Stores the runner's 1,000 keys with its own set. */
  readonly preload: () => Promise<void>
  /** Runs the scenario for `durationMs`. */
  readonly run: (scenario: Scenario, durationMs: number) => Promise<RunResult>
  readonly close: () => Promise<void>
}

/** The keys of one runner: same length for everyone, one key space per runner so preloads never clash. */
export const makeKeys = (space: string): ReadonlyArray<string> =>
  Array.from({ length: KEY_COUNT }, (_, i) => `bench:${space}:${String(i).padStart(4, "0")}`)

/** getMulti batches: consecutive slices of the keys, cycled through by the workers. */
export const makeBatches = (keys: ReadonlyArray<string>): ReadonlyArray<ReadonlyArray<string>> =>
  Array.from({ length: KEY_COUNT / MULTI_KEYS }, (_, b) => keys.slice(b * MULTI_KEYS, (b + 1) * MULTI_KEYS))

/** The 100-byte value every runner stores and expects back. */
export const VALUE: Buffer = Buffer.from("0123456789abcdefghijklmnopqrstuvwxyz".repeat(3).slice(0, VALUE_BYTES), "latin1")

/** Worker `w`'s starting key: workers spread over the key space. */
export const startIndex = (w: number): number => (w * 37) % KEY_COUNT

/** A stop flag flipped by a timer: cheaper per iteration than reading the clock. */
export interface StopFlag {
  running: boolean
}

export const stopAfter = (durationMs: number): StopFlag => {
  const flag: StopFlag = { running: true }
  setTimeout(() => {
    flag.running = false
  }, durationMs)
  return flag
}

const describe = (e: unknown): string => (e instanceof Error ? `${e.name}: ${e.message}` : String(e))

/**
 * Drives promise-returning operations: `concurrency` async workers, each awaiting one step at a time
 * until the deadline. `count` turns a step's result into units (1, or keys found for getMulti); a
 * result short of `expected`, or a rejected step, counts as an error.
 */
export const runAsyncWorkers = async <T>(
  concurrency: number,
  durationMs: number,
  step: (i: number) => Promise<T>,
  count: (result: T, i: number) => number,
  expected: number,
): Promise<RunResult> => {
  let units = 0
  let errors = 0
  let firstError: string | undefined
  const stop = stopAfter(durationMs)
  const worker = async (w: number): Promise<void> => {
    let i = startIndex(w)
    while (stop.running) {
      try {
        const n = count(await step(i), i)
        i++
        units += n
        if (n !== expected) {
          errors++
          firstError ??= `short result: ${n} of ${expected}`
        }
      } catch (e) {
        i++
        errors++
        firstError ??= describe(e)
      }
    }
  }
  const start = performance.now()
  await Promise.all(Array.from({ length: concurrency }, (_, w) => worker(w)))
  return { units, elapsedMs: performance.now() - start, errors, firstError }
}

/**
 * A client's operations as promises, for the shared driver. Operations take the index of the key
 * (or batch), so no adapter pays for a lookup; `value` reads the value out of a get's result.
 */
export interface AsyncOps<G> {
  readonly get: (key: number) => Promise<G>
  readonly value: (result: G) => Uint8Array | null | undefined
  readonly set: (key: number) => Promise<unknown>
  /** resolves with the number of keys found */
  readonly getMulti: (batch: number) => Promise<number>
}

/** Every tenth operation of the mixed scenario is a set. */
export const isMixedSet = (i: number): boolean => i % 10 === 9

const one = (): number => 1
const found = (n: number): number => n

export const runAsyncScenario = <G>(ops: AsyncOps<G>, scenario: Scenario, durationMs: number): Promise<RunResult> => {
  const c = scenario.concurrency
  const hit = (r: G): number => {
    const v = ops.value(r)
    return v != null && v.length === VALUE_BYTES ? 1 : 0
  }
  switch (scenario.kind) {
    case "get":
      return runAsyncWorkers(c, durationMs, (i) => ops.get(i % KEY_COUNT), hit, 1)
    case "set":
      return runAsyncWorkers(c, durationMs, (i) => ops.set(i % KEY_COUNT), one, 1)
    case "getMulti":
      return runAsyncWorkers(c, durationMs, (i) => ops.getMulti(i % (KEY_COUNT / MULTI_KEYS)), found, MULTI_KEYS)
    case "mixed":
      return runAsyncWorkers<unknown>(
        c,
        durationMs,
        (i) => (isMixedSet(i) ? ops.set(i % KEY_COUNT) : ops.get(i % KEY_COUNT)),
        (r, i) => (isMixedSet(i) ? 1 : hit(r as G)),
        1,
      )
  }
}

/** Sets keys 0..count-1 (by index), 50 at a time. */
export const preloadWith = async (set: (i: number) => Promise<unknown>, count: number): Promise<void> => {
  for (let i = 0; i < count; i += 50) {
    const wave: Array<Promise<unknown>> = []
    for (let j = i; j < Math.min(count, i + 50); j++) wave.push(set(j))
    await Promise.all(wave)
  }
}
