/**
 * The benchmark's vocabulary: scenarios, the clients under test ("runners"), the keys and values
 * they work on, and what one timed run measures. Every runner gets the same keys (in its own key
 * space), the same values and the same concurrency.
 */
import { Cause, Effect, Exit } from "effect"
import { type Latency, LatencyRecorder } from "./latency.js"

export const KEY_COUNT = 1_000
export const VALUE_BYTES = 100
/** the 16 KiB scenario's keys: fewer, so that every runner's set fits the server's 64 MB */
export const LARGE_KEY_COUNT = 100
export const LARGE_VALUE_BYTES = 16 * 1024
/** keys per getMulti call */
export const MULTI_KEYS = 100

/** `getLarge` is a get of the 16 KiB keys. */
export type ScenarioKind = "get" | "getLarge" | "set" | "getMulti" | "mixed"

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
  { id: "get16k-c50", label: "get 16 KiB c=50", kind: "getLarge", concurrency: 50, unit: "ops/s" },
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
  /** per call (one getMulti is one call); undefined where the runner cannot time single calls */
  readonly latency?: Latency | undefined
}

/**
 * "ours": effect-memcache; "peer": other Node clients; "floor": the minimal socket client, what no
 * client built on the same calling style can beat; "ceiling": raw batches, no client at all.
 */
export type RunnerGroup = "ours" | "peer" | "floor" | "ceiling"

export interface Runner {
  readonly id: string
  readonly label: string
  /** a short column header for the table */
  readonly column: string
  readonly group: RunnerGroup
  /** "plain-async": called from code outside Effect (runPromise per call, or a Promise facade) */
  readonly callingStyle?: "effect" | "plain-async"
  /** how it is configured, for the report (connections, options) */
  readonly notes: string
  /** the scenarios it runs; all when absent */
  readonly measures?: (scenario: Scenario) => boolean
  /** Stores the runner's keys with its own set. */
  readonly preload: () => Promise<void>
  /** Runs the scenario for `durationMs`. */
  readonly run: (scenario: Scenario, durationMs: number) => Promise<RunResult>
  readonly close: () => Promise<void>
}

export const runs = (runner: Runner, scenario: Scenario): boolean => runner.measures?.(scenario) ?? true

const FILLER = "0123456789abcdefghijklmnopqrstuvwxyz"

/** A value that encodes its key, so a reply given to the wrong caller cannot pass the check. */
export const valueFor = (key: string, bytes: number): Buffer =>
  Buffer.from((key + "=" + FILLER.repeat(Math.ceil(bytes / FILLER.length) + 1)).slice(0, bytes), "latin1")

/** One runner's keys and the values it stores and expects back, as bytes and as text. */
export interface Workload {
  readonly keys: ReadonlyArray<string>
  readonly values: ReadonlyArray<Buffer>
  readonly texts: ReadonlyArray<string>
  readonly largeKeys: ReadonlyArray<string>
  readonly largeValues: ReadonlyArray<Buffer>
  readonly largeTexts: ReadonlyArray<string>
  /** getMulti batches: batch b holds keys b*100 .. b*100+99 */
  readonly batches: ReadonlyArray<ReadonlyArray<string>>
}

/** One key space per runner (same key lengths for everyone), so preloads never clash. */
export const makeWorkload = (space: string): Workload => {
  const keys = Array.from({ length: KEY_COUNT }, (_, i) => `bench:${space}:${String(i).padStart(4, "0")}`)
  const largeKeys = Array.from({ length: LARGE_KEY_COUNT }, (_, i) => `bench:${space}:big:${String(i).padStart(3, "0")}`)
  const values = keys.map((k) => valueFor(k, VALUE_BYTES))
  const largeValues = largeKeys.map((k) => valueFor(k, LARGE_VALUE_BYTES))
  return {
    keys,
    values,
    texts: values.map((v) => v.toString("latin1")),
    largeKeys,
    largeValues,
    largeTexts: largeValues.map((v) => v.toString("latin1")),
    batches: Array.from({ length: KEY_COUNT / MULTI_KEYS }, (_, b) => keys.slice(b * MULTI_KEYS, (b + 1) * MULTI_KEYS)),
  }
}

/** A value as a client returned it (bytes or text), against the expected one. */
export type Got = Uint8Array | string | null | undefined

/** The expected value's length: checked on every call. */
export const sameLength = (got: Got, expected: Buffer): boolean => got != null && got.length === expected.length

/** The whole value: checked on the sampled calls (see LatencyRecorder). */
export const sameValue = (got: Got, expected: Buffer, expectedText: string): boolean =>
  got != null && (typeof got === "string" ? got === expectedText : expected.equals(got))

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

/** What a fiber loop counts: units done, and calls that got a wrong answer. */
export interface Counters {
  units: number
  bad: number
}

/**
 * `concurrency` fibers running `loop(stop, counters, latency, w)` until the run's time is up, in
 * one effect: any failure ends the run and is reported as its first error.
 */
export const runFiberLoops = (
  concurrency: number,
  durationMs: number,
  loop: (stop: StopFlag, c: Counters, lat: LatencyRecorder, w: number) => Effect.Effect<void, unknown>,
): Effect.Effect<RunResult> =>
  Effect.suspend(() => {
    const c: Counters = { units: 0, bad: 0 }
    const lat = new LatencyRecorder()
    const stop = stopAfter(durationMs)
    const start = performance.now()
    const workers = Array.from({ length: concurrency }, (_, w) => w)
    return Effect.forEach(workers, (w) => loop(stop, c, lat, w), { concurrency: "unbounded", discard: true }).pipe(
      Effect.exit,
      Effect.map((exit): RunResult => {
        stop.running = false
        const failed = Exit.isFailure(exit)
        return {
          units: c.units,
          elapsedMs: performance.now() - start,
          errors: c.bad + (failed ? 1 : 0),
          firstError: failed ? Cause.pretty(exit.cause).split("\n")[0] : c.bad > 0 ? "wrong value or short getMulti" : undefined,
          latency: lat.summary(),
        }
      }),
    )
  })

export const describe = (e: unknown): string => (e instanceof Error ? `${e.name}: ${e.message}` : String(e))

/**
 * Drives promise-returning calls: `concurrency` async workers, each awaiting one step at a time
 * until the deadline. `verify` turns a step's result into units (1, or keys found for getMulti),
 * checking the whole value when `full` (the sampled calls); a result short of `expected`, or a
 * rejected step, counts as an error.
 */
export const runAsyncWorkers = async <T>(
  concurrency: number,
  durationMs: number,
  step: (i: number) => Promise<T>,
  verify: (result: T, i: number, full: boolean) => number,
  expected: number,
): Promise<RunResult> => {
  let units = 0
  let errors = 0
  let firstError: string | undefined
  const latency = new LatencyRecorder()
  const stop = stopAfter(durationMs)
  const worker = async (w: number): Promise<void> => {
    let i = startIndex(w)
    while (stop.running) {
      const t0 = latency.start()
      try {
        const result = await step(i)
        const sampled = latency.end(t0)
        const n = verify(result, i, sampled)
        units += n
        if (n !== expected) {
          errors++
          firstError ??= `${sampled ? "right (whole values checked)" : "found"}: ${n} of ${expected}`
        }
      } catch (e) {
        errors++
        firstError ??= describe(e)
      }
      i++
    }
  }
  const start = performance.now()
  await Promise.all(Array.from({ length: concurrency }, (_, w) => worker(w)))
  return { units, elapsedMs: performance.now() - start, errors, firstError, latency: latency.summary() }
}

/**
 * A client's operations as promises, for the shared driver. `value` reads the value out of a
 * get's result; `multiValue` the value of the j-th key of a batch out of a getMulti's result.
 */
export interface AsyncOps<G, M> {
  readonly get: (key: string) => Promise<G>
  readonly value: (result: G) => Got
  /** `k`: the key's index in the workload's small keys, when it is one of them (not in preloads) */
  readonly set: (key: string, value: Buffer, k?: number) => Promise<unknown>
  readonly getMulti: (batch: ReadonlyArray<string>) => Promise<M>
  /** the number of keys found */
  readonly found: (result: M) => number
  readonly multiValue: (result: M, key: string, j: number) => Got
}

/** Every tenth operation of the mixed scenario is a set. */
export const isMixedSet = (i: number): boolean => i % 10 === 9

/** 1 when a get's value is right: its length always, all of it when `full`. */
export const checkValue = (got: Got, expected: Buffer, expectedText: string, full: boolean): number =>
  (full ? sameValue(got, expected, expectedText) : sameLength(got, expected)) ? 1 : 0

/** Keys found by a getMulti of batch b; when `full`, only the keys whose whole value is right. */
export const checkBatch = <M>(
  ops: Pick<AsyncOps<unknown, M>, "found" | "multiValue">,
  data: Workload,
  result: M,
  b: number,
  full: boolean,
): number => {
  if (!full) return ops.found(result)
  const batch = data.batches[b]!
  let ok = 0
  for (let j = 0; j < batch.length; j++) {
    const k = b * MULTI_KEYS + j
    if (sameValue(ops.multiValue(result, batch[j]!, j), data.values[k]!, data.texts[k]!)) ok++
  }
  return ok
}

export const runAsyncScenario = <G, M>(
  ops: AsyncOps<G, M>,
  data: Workload,
  scenario: Scenario,
  durationMs: number,
): Promise<RunResult> => {
  const c = scenario.concurrency
  const { keys, values, texts, largeKeys, largeValues, largeTexts, batches } = data
  const hit = (r: G, k: number, full: boolean) => checkValue(ops.value(r), values[k]!, texts[k]!, full)
  switch (scenario.kind) {
    case "get":
      return runAsyncWorkers(c, durationMs, (i) => ops.get(keys[i % KEY_COUNT]!), (r, i, full) => hit(r, i % KEY_COUNT, full), 1)
    case "getLarge":
      return runAsyncWorkers(
        c,
        durationMs,
        (i) => ops.get(largeKeys[i % LARGE_KEY_COUNT]!),
        (r, i, full) => checkValue(ops.value(r), largeValues[i % LARGE_KEY_COUNT]!, largeTexts[i % LARGE_KEY_COUNT]!, full),
        1,
      )
    case "set":
      return runAsyncWorkers(c, durationMs, (i) => ops.set(keys[i % KEY_COUNT]!, values[i % KEY_COUNT]!, i % KEY_COUNT), () => 1, 1)
    case "getMulti":
      return runAsyncWorkers(
        c,
        durationMs,
        (i) => ops.getMulti(batches[i % batches.length]!),
        (r, i, full) => checkBatch(ops, data, r, i % batches.length, full),
        MULTI_KEYS,
      )
    case "mixed":
      return runAsyncWorkers<unknown>(
        c,
        durationMs,
        (i) =>
          isMixedSet(i) ? ops.set(keys[i % KEY_COUNT]!, values[i % KEY_COUNT]!, i % KEY_COUNT) : ops.get(keys[i % KEY_COUNT]!),
        (r, i, full) => (isMixedSet(i) ? 1 : hit(r as G, i % KEY_COUNT, full)),
        1,
      )
  }
}

/** Stores every key of the workload (both sizes), 50 at a time. */
export const preloadWith = async (set: (key: string, value: Buffer) => Promise<unknown>, data: Workload): Promise<void> => {
  const pairs: Array<readonly [string, Buffer]> = [
    ...data.keys.map((k, i) => [k, data.values[i]!] as const),
    ...data.largeKeys.map((k, i) => [k, data.largeValues[i]!] as const),
  ]
  for (let i = 0; i < pairs.length; i += 50) await Promise.all(pairs.slice(i, i + 50).map(([k, v]) => set(k, v)))
}
