/**
 * effect-memcache under test, two calling styles:
 * - from Effect code: N long-lived fibers looping `yield* mc.get(k)` in one `runPromise`;
 * - from plain async code: N async workers each awaiting `runtime.runPromise(mc.get(k))`.
 * (A Promise facade, if the package grows one, is another plain-async style: see bench.ts.)
 */
import { Effect, ManagedRuntime } from "effect"
import type { ItemInput, McClient, McClientOptions, McClientService, McPromiseClient } from "../../src/index.js"
import { LatencyRecorder } from "./latency.js"
import type { ClientApi } from "./package.js"
import {
  checkBatch,
  checkValue,
  isMixedSet,
  KEY_COUNT,
  LARGE_KEY_COUNT,
  makeWorkload,
  MULTI_KEYS,
  preloadWith,
  type AsyncOps,
  type RunResult,
  type Runner,
  runAsyncScenario,
  type Scenario,
  startIndex,
  runFiberLoops,
  type Counters,
  type StopFlag,
  type Workload,
} from "./types.js"

/** A client and what it works on. */
export interface Data extends Workload {
  readonly mc: McClientService
  readonly items: ReadonlyArray<ItemInput>
}

const makeData = (mc: McClientService, w: Workload): Data => ({
  ...w,
  mc,
  items: w.keys.map((key, i) => ({ key, value: w.values[i]! })),
})

const range = (n: number): ReadonlyArray<number> => Array.from({ length: n }, (_, i) => i)

type Found = ReadonlyMap<string, { readonly value: Uint8Array }>
const multiOps: Pick<AsyncOps<unknown, Found>, "found" | "multiValue"> = {
  found: (m) => m.size,
  multiValue: (m, key) => m.get(key)?.value,
}

/** One fiber's loop for a scenario; counts into `c` until `stop` flips. Sampled calls are timed and fully checked. */
const fiberLoop = (data: Data, scenario: Scenario, stop: StopFlag, c: Counters, lat: LatencyRecorder, w: number) => {
  const { mc, keys, values, texts, largeKeys, largeValues, largeTexts, items, batches } = data
  switch (scenario.kind) {
    case "get":
      return Effect.gen(function* () {
        let i = startIndex(w)
        while (stop.running) {
          const k = i++ % KEY_COUNT
          const t0 = lat.start()
          const item = yield* mc.get(keys[k]!)
          if (checkValue(item.value, values[k]!, texts[k]!, lat.end(t0)) === 1) c.units++
          else c.bad++
        }
      })
    case "getLarge":
      return Effect.gen(function* () {
        let i = startIndex(w)
        while (stop.running) {
          const k = i++ % LARGE_KEY_COUNT
          const t0 = lat.start()
          const item = yield* mc.get(largeKeys[k]!)
          if (checkValue(item.value, largeValues[k]!, largeTexts[k]!, lat.end(t0)) === 1) c.units++
          else c.bad++
        }
      })
    case "set":
      return Effect.gen(function* () {
        let i = startIndex(w)
        while (stop.running) {
          const t0 = lat.start()
          yield* mc.set(items[i++ % KEY_COUNT]!)
          lat.end(t0)
          c.units++
        }
      })
    case "getMulti":
      return Effect.gen(function* () {
        let i = startIndex(w)
        while (stop.running) {
          const b = i++ % batches.length
          const t0 = lat.start()
          const found = yield* mc.getMulti(batches[b]!)
          const n = checkBatch(multiOps, data, found, b, lat.end(t0))
          c.units += n
          if (n !== MULTI_KEYS) c.bad++
        }
      })
    case "mixed":
      return Effect.gen(function* () {
        let i = startIndex(w)
        while (stop.running) {
          const k = i % KEY_COUNT
          const t0 = lat.start()
          if (isMixedSet(i++)) {
            yield* mc.set(items[k]!)
            lat.end(t0)
            c.units++
          } else {
            const item = yield* mc.get(keys[k]!)
            if (checkValue(item.value, values[k]!, texts[k]!, lat.end(t0)) === 1) c.units++
            else c.bad++
          }
        }
      })
  }
}

/** The whole scenario as one effect: `concurrency` fibers in one runtime. Any failure ends the run. */
export const runFibers = (data: Data, scenario: Scenario, durationMs: number): Effect.Effect<RunResult> =>
  runFiberLoops(scenario.concurrency, durationMs, (stop, c, lat, w) => fiberLoop(data, scenario, stop, c, lat, w))

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

export interface EffectRunnerSpec {
  readonly id: string
  readonly label: string
  readonly column: string
  /** its key space */
  readonly space: string
  readonly style: "fibers" | "runPromise" | "promise"
  readonly disableBinaryEncodedKeys?: boolean
  /** more layer options (tracing, metrics, tls), noted in the report */
  readonly layerOptions?: Omit<McClientOptions, "servers">
  /** how to describe layerOptions in the report, when JSON would not do (e.g. a CA) */
  readonly optionsNote?: string
  readonly measures?: (scenario: Scenario) => boolean
}

/**
 * effect-memcache with `McClient.layer({ servers })` (plus `disableBinaryEncodedKeys` when asked),
 * driven by fibers or by plain async code (`style`).
 */
export const makeEffectRunner = (
  spec: EffectRunnerSpec,
  server: string,
  /** the built package: this checkout's, or another's (BENCH_BASELINE) */
  api: ClientApi,
): EffectRunner => {
  const plain = spec.disableBinaryEncodedKeys === true
  const layer = api.McClient.layer({
    ...spec.layerOptions,
    servers: [server],
    ...(plain ? { disableBinaryEncodedKeys: true } : {}),
  })
  const runtime = ManagedRuntime.make(layer) as ManagedRuntime.ManagedRuntime<McClient, unknown>
  // "promise": the package's Promise client (makePromiseClient), over its own layer.
  let promised: McPromiseClient | undefined
  const workload = makeWorkload(spec.space)
  let data: Data | undefined
  const styleNote =
    spec.style === "fibers"
      ? "N fibers looping `yield* mc.get(k)` in one runPromise"
      : spec.style === "promise"
        ? "N async workers awaiting `mc.get(k)` of makePromiseClient(layer)"
        : "N async workers awaiting `runtime.runPromise(mc.get(k))`"
  const optionsNote = spec.optionsNote ?? (spec.layerOptions === undefined ? undefined : JSON.stringify(spec.layerOptions))
  return {
    id: spec.id,
    label: spec.label,
    column: spec.column,
    group: "ours",
    callingStyle: spec.style === "fibers" ? "effect" : "plain-async",
    ...(spec.measures === undefined ? {} : { measures: spec.measures }),
    notes:
      `McClient.layer defaults${plain ? " + disableBinaryEncodedKeys" : " (binary keys)"}` +
      `${optionsNote === undefined ? "" : ` + ${optionsNote}`}; ${styleNote}`,
    runtime,
    data: () => data!,
    preload: async () => {
      const mc = spec.style === "promise" ? (promised = await api.makePromiseClient(layer)).service : await runtime.runPromise(api.McClient)
      data = makeData(mc, workload)
      await preloadWith((key, value) => runtime.runPromise(mc.set({ key, value })), data)
    },
    run: (scenario, durationMs) => {
      const d = data!
      if (spec.style === "fibers") return runtime.runPromise(runFibers(d, scenario, durationMs))
      const { mc } = d
      const pc = promised
      if (pc !== undefined)
        return runAsyncScenario(
          {
            get: (key) => pc.get(key),
            value: (item) => item.value,
            set: (key, value, k) => pc.set(k === undefined ? { key, value } : d.items[k]!),
            getMulti: (batch) => pc.getMulti(batch),
            ...multiOps,
          },
          d,
          scenario,
          durationMs,
        )
      return runAsyncScenario(
        {
          get: (key) => runtime.runPromise(mc.get(key)),
          value: (item) => item.value,
          // prebuilt items, as the fibers use
          set: (key, value, k) => runtime.runPromise(mc.set(k === undefined ? { key, value } : d.items[k]!)),
          getMulti: (batch) => runtime.runPromise(mc.getMulti(batch)),
          ...multiOps,
        },
        d,
        scenario,
        durationMs,
      )
    },
    close: () => Promise.all([runtime.dispose(), promised?.close()]).then(() => undefined),
  }
}
