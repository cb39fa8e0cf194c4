/**
 * effect-memcache under test, two ways:
 * - from Effect code: N long-lived fibers looping `yield* mc.get(k)` in one `runPromise`;
 * - from plain async code: N async workers each awaiting `runtime.runPromise(mc.get(k))`.
 */
import { Cause, Effect, Exit, ManagedRuntime } from "effect"
import { type ItemInput, McClient, type McClientOptions, type McClientService } from "../../src/index.js"
import {
  isMixedSet,
  KEY_COUNT,
  makeBatches,
  makeKeys,
  MULTI_KEYS,
  preloadWith,
  type RunResult,
  type Runner,
  runAsyncScenario,
  type Scenario,
  startIndex,
  type StopFlag,
  stopAfter,
  VALUE,
  VALUE_BYTES,
} from "./types.js"

/** A client and what it works on. */
export interface Data {
  readonly mc: McClientService
  readonly keys: ReadonlyArray<string>
  readonly items: ReadonlyArray<ItemInput>
  readonly batches: ReadonlyArray<ReadonlyArray<string>>
}

export const makeData = (mc: McClientService, keys: ReadonlyArray<string>): Data => ({
  mc,
  keys,
  items: keys.map((key) => ({ key, value: VALUE })),
  batches: makeBatches(keys),
})

interface Counters {
  units: number
  bad: number
}

const range = (n: number): ReadonlyArray<number> => Array.from({ length: n }, (_, i) => i)

/** One fiber's loop for a scenario; counts into `c` until `stop` flips. */
const fiberLoop = (data: Data, scenario: Scenario, stop: StopFlag, c: Counters, w: number) => {
  const { mc, keys, items, batches } = data
  switch (scenario.kind) {
    case "get":
      return Effect.gen(function* () {
        let i = startIndex(w)
        while (stop.running) {
          const item = yield* mc.get(keys[i++ % KEY_COUNT]!)
          if (item.value.length === VALUE_BYTES) c.units++
          else c.bad++
        }
      })
    case "set":
      return Effect.gen(function* () {
        let i = startIndex(w)
        while (stop.running) {
          yield* mc.set(items[i++ % KEY_COUNT]!)
          c.units++
        }
      })
    case "getMulti":
      return Effect.gen(function* () {
        let i = startIndex(w)
        while (stop.running) {
          const found = yield* mc.getMulti(batches[i++ % batches.length]!)
          c.units += found.size
          if (found.size !== MULTI_KEYS) c.bad++
        }
      })
    case "mixed":
      return Effect.gen(function* () {
        let i = startIndex(w)
        while (stop.running) {
          const k = i % KEY_COUNT
          if (isMixedSet(i++)) {
            yield* mc.set(items[k]!)
            c.units++
          } else {
            const item = yield* mc.get(keys[k]!)
            if (item.value.length === VALUE_BYTES) c.units++
            else c.bad++
          }
        }
      })
  }
}

/** The whole scenario as one effect: `concurrency` fibers in one runtime. Any failure ends the run. */
export const runFibers = (data: Data, scenario: Scenario, durationMs: number): Effect.Effect<RunResult> =>
  Effect.suspend(() => {
    const c: Counters = { units: 0, bad: 0 }
    const stop = stopAfter(durationMs)
    const start = performance.now()
    return Effect.forEach(range(scenario.concurrency), (w) => fiberLoop(data, scenario, stop, c, w), {
      concurrency: "unbounded",
      discard: true,
    }).pipe(
      Effect.exit,
      Effect.map((exit): RunResult => {
        stop.running = false
        const failed = Exit.isFailure(exit)
        return {
          units: c.units,
          elapsedMs: performance.now() - start,
          errors: c.bad + (failed ? 1 : 0),
          firstError: failed
            ? Cause.pretty(exit.cause).split("\n")[0]
            : c.bad > 0
              ? "wrong value or short getMulti"
              : undefined,
        }
      }),
    )
  })

/** `count` gets spread over `concurrency` fibers (for the heap check). */
export const runFiberGets = (
  mc: McClientService,
  keys: ReadonlyArray<string>,
  concurrency: number,
  count: number,
): Effect.Effect<void, unknown> =>
  Effect.forEach(
    range(concurrency),
    (w) =>
      Effect.gen(function* () {
        let i = startIndex(w)
        for (let n = Math.ceil(count / concurrency); n > 0; n--) yield* mc.get(keys[i++ % KEY_COUNT]!)
      }),
    { concurrency: "unbounded", discard: true },
  )

export interface EffectRunner extends Runner {
  readonly runtime: ManagedRuntime.ManagedRuntime<McClient, unknown>
  /** the client and its keys, once `preload` has run */
  readonly data: () => Data
}

/**
 * effect-memcache with `McClient.layer({ servers })` (plus `disableBinaryEncodedKeys` when asked),
 * driven by fibers or by plain async code (`style`).
 */
export const makeEffectRunner = (
  spec: {
    readonly id: string
    readonly label: string
    readonly column: string
    readonly space: string
    readonly style: "fibers" | "runPromise"
    readonly disableBinaryEncodedKeys?: boolean
    /** more layer options (tracing, metrics), noted in the report */
    readonly layerOptions?: Omit<McClientOptions, "servers">
  },
  server: string,
  /** the package's entry module: this checkout's, or another's (BENCH_BASELINE) */
  api: { readonly McClient: typeof McClient } = { McClient },
): EffectRunner => {
  const plain = spec.disableBinaryEncodedKeys === true
  const runtime = ManagedRuntime.make(
    api.McClient.layer({
      ...spec.layerOptions,
      servers: [server],
      ...(plain ? { disableBinaryEncodedKeys: true } : {}),
    }),
  ) as ManagedRuntime.ManagedRuntime<McClient, unknown>
  const keys = makeKeys(spec.space)
  let data: Data | undefined
  const styleNote =
    spec.style === "fibers"
      ? "N fibers looping `yield* mc.get(k)` in one runPromise"
      : "N async workers awaiting `runtime.runPromise(mc.get(k))`"
  return {
    id: spec.id,
    label: spec.label,
    column: spec.column,
    group: "ours",
    notes:
      `McClient.layer defaults${plain ? " + disableBinaryEncodedKeys" : " (binary keys)"}` +
      `${spec.layerOptions === undefined ? "" : ` + ${JSON.stringify(spec.layerOptions)}`}; ${styleNote}`,
    runtime,
    data: () => data!,
    preload: async () => {
      const mc = await runtime.runPromise(api.McClient)
      data = makeData(mc, keys)
      const { items } = data
      await preloadWith((i) => runtime.runPromise(mc.set(items[i]!)), KEY_COUNT)
    },
    run: (scenario, durationMs) => {
      const d = data!
      if (spec.style === "fibers") return runtime.runPromise(runFibers(d, scenario, durationMs))
      const { mc, keys, items, batches } = d
      return runAsyncScenario(
        {
          get: (i) => runtime.runPromise(mc.get(keys[i]!)),
          value: (item) => item.value,
          set: (i) => runtime.runPromise(mc.set(items[i]!)),
          getMulti: (b) => runtime.runPromise(mc.getMulti(batches[b]!)).then((found) => found.size),
        },
        scenario,
        durationMs,
      )
    },
    close: () => runtime.dispose(),
  }
}
