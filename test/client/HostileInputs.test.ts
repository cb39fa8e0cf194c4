/**
 * Any JavaScript value, through every operation, on both layers: the outcome is a success or a
 * typed failure (never a throw, a defect or a crash), real memcached and the in-memory engine
 * agree on it, and the client still works afterwards.
 *
 * Each run gets a fresh key prefix, so runs share no state; each layer gets the same calls in the
 * same order. Stored values spell their key, so a reply for the wrong key cannot pass.
 */
import { Cause, Duration, Effect, Exit, Layer, Schema, Scope } from "effect"
import * as fc from "fast-check"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { inject } from "vitest"
import { McClient, type McClientService } from "../../src/index.js"
import { failureTag } from "../support/exits.js"
import { hostile, weirdDuration, weirdNumber, weirdString } from "../support/hostile.js"

/** A field of an options object: usually a plausible value of its kind, else anything. */
const field = <A>(plausible: fc.Arbitrary<A>) => fc.oneof({ weight: 3, arbitrary: plausible }, { weight: 1, arbitrary: hostile })
const option = <A>(a: fc.Arbitrary<A>) => fc.option(a, { nil: undefined, freq: 2 })
// The options objects built by `optionsOf` (not the hostile ones).
const generated = new WeakSet<object>()
const remember = <A extends object>(o: A): A => {
  generated.add(o)
  return o
}
/** An options object: absent, one with plausible/hostile fields, or any value at all. */
const optionsOf = <R extends Record<string, fc.Arbitrary<unknown>>>(fields: R) =>
  fc.oneof(
    { weight: 2, arbitrary: fc.constant(undefined) },
    { weight: 6, arbitrary: fc.record(fields, { requiredKeys: [] }).map(remember) },
    { weight: 1, arbitrary: hostile },
  )

const expiration = fc.oneof(fc.integer({ min: 0, max: 2 ** 31 - 1 }), weirdNumber, weirdDuration, weirdString, hostile)
// A valid timeout must not be short: the real server would time out where memory does not.
const timeout = field(fc.constantFrom(5000, "5 seconds", Duration.seconds(3))).filter((t) => {
  const ms = (() => {
    try {
      return Duration.toMillis(Duration.decode(t as Duration.DurationInput))
    } catch {
      return -1
    }
  })()
  return !(ms > 0 && ms < 1000)
})
const bool = field(fc.boolean())

const getOptions = {
  cas: bool,
  hit: bool,
  lastAccess: bool,
  ttl: bool,
  earlyRecache: expiration,
  timeout,
}
const setOptions = {
  expiration,
  namespace: field(fc.constantFrom("ns", "other ns", "")),
  compression: field(fc.constantFrom(0, 4, 1000)),
  minUses: field(fc.constantFrom(0, 1, 2)),
  timeout,
}

// Keys: the run's prepared key (it holds a value), a fresh one, or anything.
type KeyGen = { readonly kind: "prepared" } | { readonly kind: "counter" } | { readonly kind: "fresh"; readonly s: string } | { readonly kind: "raw"; readonly v: unknown }
const keyGen: fc.Arbitrary<KeyGen> = fc.oneof(
  { weight: 3, arbitrary: fc.constant({ kind: "prepared" } as const) },
  { weight: 1, arbitrary: fc.constant({ kind: "counter" } as const) },
  { weight: 2, arbitrary: weirdString.map((s) => ({ kind: "fresh", s }) as const) },
  { weight: 2, arbitrary: hostile.map((v) => ({ kind: "raw", v }) as const) },
)
type ValueGen = { readonly kind: "text"; readonly s: string } | { readonly kind: "bytes"; readonly b: Uint8Array } | { readonly kind: "raw"; readonly v: unknown }
const valueGen: fc.Arbitrary<ValueGen> = fc.oneof(
  { weight: 2, arbitrary: fc.string().map((s) => ({ kind: "text", s }) as const) },
  { weight: 1, arbitrary: fc.uint8Array({ maxLength: 64 }).map((b) => ({ kind: "bytes", b }) as const) },
  { weight: 1, arbitrary: hostile.map((v) => ({ kind: "raw", v }) as const) },
)
// CAS: the token each layer read for the prepared key ("real"), or anything else. In-range bigints
// are kept far above any token a fresh server hands out, so they conflict on both layers.
const casGen = fc.oneof(
  fc.constant("real" as const),
  fc.bigInt({ min: 2n ** 62n, max: 2n ** 64n - 1n }),
  fc.constantFrom(-1n, 2n ** 64n, undefined, 5, "5", null),
  hostile,
)
type ItemGen = { readonly kind: "raw"; readonly v: unknown } | {
  readonly kind: "item"
  readonly key: KeyGen
  readonly value: ValueGen | undefined
  readonly flags: unknown
  readonly cas: unknown
  readonly withFlags: boolean
}
const itemGen: fc.Arbitrary<ItemGen> = fc.oneof(
  { weight: 1, arbitrary: hostile.map((v) => ({ kind: "raw", v }) as const) },
  {
    weight: 6,
    arbitrary: fc.record({
      kind: fc.constant("item" as const),
      key: keyGen,
      value: fc.option(valueGen, { nil: undefined, freq: 10 }),
      flags: field(fc.integer({ min: 0, max: 65535 })),
      withFlags: fc.boolean(),
      cas: casGen,
    }),
  },
)

// ---------------------------------------------------------------------------------------------
// Running one call on both layers

interface Run {
  readonly prefix: string
  readonly prepared: string
  readonly counter: string
  /** per layer: the CAS token of the prepared key */
  readonly cas: bigint
}

const keyOf = (g: KeyGen, run: Run): unknown => {
  switch (g.kind) {
    case "prepared":
      return run.prepared
    case "counter":
      return run.counter
    case "fresh":
      return run.prefix + g.s
    case "raw":
      // Strings are kept apart per run too ("" stays: it is never a key).
      return typeof g.v === "string" && g.v !== "" ? run.prefix + g.v : g.v
  }
}
const valueOf = (g: ValueGen | undefined, key: unknown): unknown => {
  const tag = typeof key === "string" ? key : "?"
  if (g === undefined) return undefined
  if (g.kind === "text") return `${tag}=${g.s}`
  if (g.kind === "bytes") return Buffer.concat([Buffer.from(`${tag}=`), g.b])
  return g.v
}
const itemOf = (g: ItemGen, run: Run): unknown => {
  if (g.kind === "raw") return g.v
  const key = keyOf(g.key, run)
  const item: Record<string, unknown> = { key, value: valueOf(g.value, key) }
  if (g.withFlags) item.flags = g.flags
  item.cas = g.cas === "real" ? run.cas : g.cas
  return item
}
const namespaceOf = (ns: unknown, run: Run): unknown => (typeof ns === "string" ? run.prefix + ns : ns)
/** Options generated as records get the run's namespace prefix (hostile ones are passed as they are). */
const withNamespace = (o: unknown, run: Run): unknown => {
  if (!generated.has(o as object)) return o
  const r = o as Record<string, unknown>
  return "namespace" in r ? { ...r, namespace: namespaceOf(r.namespace, run) } : r
}

/** An outcome both layers must agree on: tag, plus what a success returned (CAS tokens left out). */
const summary = (exit: Exit.Exit<unknown, unknown>): string => {
  const tag = failureTag(exit as Exit.Exit<unknown, { readonly _tag: string }>)
  if (tag === "Defect" || tag === "Interrupt") return `${tag}: ${Cause.pretty((exit as Exit.Failure<unknown, unknown>).cause)}`
  if (!Exit.isSuccess(exit)) return tag
  const describe = (v: unknown): string => {
    if (v === undefined) return "void"
    if (typeof v === "bigint") return `${v}n`
    if (v instanceof Map) return `Map{${[...v.entries()].map(([k, i]) => `${k}:${describe(i)}`).sort().join(",")}}`
    if (typeof v === "object" && v !== null && "value" in v && "flags" in v) {
      const i = v as { value: Uint8Array; flags: number; hit: unknown; ttl: unknown; stale: unknown; won: unknown; key: unknown }
      return JSON.stringify({ key: i.key, value: Buffer.from(i.value).toString("latin1"), flags: i.flags, hit: i.hit, ttl: i.ttl, stale: i.stale, won: i.won })
    }
    try {
      return JSON.stringify(v) ?? String(v)
    } catch {
      return String(v)
    }
  }
  return `Success ${describe(exit.value)}`
}

interface Pair {
  readonly tcp: McClientService
  readonly memory: McClientService
}

const scope = Effect.runSync(Scope.make())
const build = (layer: Layer.Layer<McClient, unknown>) =>
  Effect.runPromise(Layer.buildWithScope(layer, scope).pipe(Effect.map((ctx) => ctx.unsafeMap.get(McClient.key) as McClientService)))

const pairs: Record<"binary" | "plain", Pair> = {} as never
beforeAll(async () => {
  const server = inject("memcached")
  for (const [name, plain] of [["binary", false], ["plain", true]] as const) {
    const options = { timeout: "5 seconds", disableBinaryEncodedKeys: plain } as const
    pairs[name] = {
      tcp: await build(McClient.layer({ ...options, servers: [server] })),
      memory: await build(McClient.layerMemory(options)),
    }
  }
})
afterAll(() => Effect.runPromise(Scope.close(scope, Exit.void)))

let runs = 0
/** Prepares a run on one layer: the prepared key holds a value that spells it, the counter a number. */
const prepare = (mc: McClientService, run: Omit<Run, "cas">) =>
  Effect.gen(function* () {
    yield* mc.set({ key: run.prepared, value: JSON.stringify(`value of ${run.prepared}`), flags: 7 })
    yield* mc.set({ key: run.counter, value: "41" })
    return (yield* mc.get(run.prepared, { cas: true })).cas!
  })

/** After the call, the same client still answers: a fresh key round-trips its own value. */
const sanity = (mc: McClientService, run: Omit<Run, "cas">) =>
  Effect.gen(function* () {
    const key = `${run.prefix}sanity`
    yield* mc.set({ key, value: `sane ${key}` })
    const item = yield* mc.get(key)
    return Buffer.from(item.value).toString("utf8") === `sane ${key}` ? "ok" : `wrong value ${Buffer.from(item.value).toString("utf8")}`
  })

const bothAgree = <Args>(
  args: Args,
  plainKeys: boolean,
  call: (mc: McClientService, args: Args, run: Run) => Effect.Effect<unknown, unknown>,
) =>
  Effect.runPromise(
    Effect.gen(function* () {
      const pair = pairs[plainKeys ? "plain" : "binary"]
      const n = runs++
      const base = { prefix: `hostile:${process.pid}:${n}:`, prepared: `hostile:${process.pid}:${n}:prepared`, counter: `hostile:${process.pid}:${n}:counter` }
      const outcomes: Array<string> = []
      for (const mc of [pair.tcp, pair.memory]) {
        const cas = yield* prepare(mc, base)
        const run: Run = { ...base, cas }
        // A throw from the call itself (not from its effect) is a failure of this test too.
        const exit = yield* Effect.exit(Effect.suspend(() => call(mc, args, run)))
        outcomes.push(summary(exit))
        expect(yield* sanity(mc, base), `sanity after ${outcomes.at(-1)}`).toBe("ok")
      }
      expect(outcomes[0], "no defect").not.toMatch(/^(Defect|Interrupt)/)
      expect(outcomes[1], "memory agrees with memcached").toBe(outcomes[0])
    }),
  )

// ---------------------------------------------------------------------------------------------
// Every operation

// Loosely typed access: the point is to pass what TypeScript would refuse.
type Loose = Record<string, (...args: Array<unknown>) => Effect.Effect<unknown, unknown>>
const loose = (mc: McClientService) => mc as unknown as Loose

const schemaGen = fc.oneof(
  fc.constantFrom<unknown>(Schema.Unknown, Schema.String, Schema.Number, Schema.Struct({ a: Schema.Number })),
  hostile,
)
const codecGen = fc.option(
  fc.oneof(
    fc.constantFrom<unknown>("json", "msgpack", { encode: (v: unknown) => Buffer.from(String(v)), decode: (b: Uint8Array) => Buffer.from(b).toString() }),
    hostile,
  ),
  { nil: undefined },
)
const keysGen = fc.oneof(
  { weight: 4, arbitrary: fc.array(keyGen, { maxLength: 6 }).map((ks) => ({ kind: "array", ks }) as const) },
  { weight: 1, arbitrary: fc.array(keyGen, { maxLength: 4 }).map((ks) => ({ kind: "set", ks }) as const) },
  { weight: 1, arbitrary: hostile.map((v) => ({ kind: "raw", v }) as const) },
)
type KeysGen = { readonly kind: "array" | "set"; readonly ks: ReadonlyArray<KeyGen> } | { readonly kind: "raw"; readonly v: unknown }
const keysOf = (g: KeysGen, run: Run): unknown =>
  g.kind === "raw" ? (typeof g.v === "string" ? run.prefix + g.v : g.v) : g.kind === "set" ? new Set(g.ks.map((k) => keyOf(k, run))) : g.ks.map((k) => keyOf(k, run))

const RUNS = Number(process.env.HOSTILE_RUNS ?? 24) // per operation; 15 operations × 24 ≈ 360 runs, both key modes at random
const property = <Args>(name: string, args: fc.Arbitrary<Args>, call: (mc: McClientService, args: Args, run: Run) => Effect.Effect<unknown, unknown>) =>
  it(name, async () => {
    await fc.assert(
      fc.asyncProperty(args, fc.boolean(), (a, plainKeys) => bothAgree(a, plainKeys, call)),
      { numRuns: RUNS },
    )
  })

describe("hostile inputs, real memcached vs the in-memory engine", () => {
  property("get", fc.tuple(keyGen, optionsOf(getOptions)), (mc, [k, o], run) => loose(mc).get!(keyOf(k, run), o))
  property("getMulti", fc.tuple(keysGen, optionsOf({ ...getOptions, broadcast: bool })), (mc, [ks, o], run) =>
    loose(mc).getMulti!(keysOf(ks, run), o),
  )
  for (const op of ["set", "add", "replace", "append", "prepend", "compareAndSwap"] as const) {
    property(op, fc.tuple(itemGen, optionsOf(setOptions)), (mc, [i, o], run) => loose(mc)[op]!(itemOf(i, run), withNamespace(o, run)))
  }
  property("del", fc.tuple(keyGen, optionsOf({ invalidate: expiration, timeout })), (mc, [k, o], run) => loose(mc).del!(keyOf(k, run), o))
  for (const op of ["inc", "dec"] as const) {
    property(
      op,
      fc.tuple(
        keyGen,
        field(fc.oneof(fc.bigInt({ min: 0n, max: 2n ** 64n - 1n }), fc.nat())),
        fc.option(expiration, { nil: undefined }),
        optionsOf({ initialValue: field(fc.oneof(fc.bigInt({ min: 0n, max: 2n ** 64n - 1n }), fc.nat())), timeout }),
      ),
      (mc, [k, d, e, o], run) => loose(mc)[op]!(keyOf(k, run), d, e, o),
    )
  }
  property("touch", fc.tuple(keyGen, expiration, optionsOf({ timeout })), (mc, [k, e, o], run) => loose(mc).touch!(keyOf(k, run), e, o))
  property("purgeNamespace", fc.tuple(field(weirdString), optionsOf({ timeout })), (mc, [ns, o], run) =>
    loose(mc).purgeNamespace!(namespaceOf(ns, run), o),
  )
  property("getAs", fc.tuple(schemaGen, keyGen, optionsOf({ ...getOptions, codec: codecGen })), (mc, [s, k, o], run) =>
    loose(mc).getAs!(s, keyOf(k, run), o),
  )
  property(
    "setAs",
    fc.tuple(
      schemaGen,
      fc.oneof(
        fc.record({ key: keyGen, value: hostile, flags: option(field(fc.nat(65535))) }).map((r) => ({ kind: "item", r }) as const),
        hostile.map((v) => ({ kind: "raw", v }) as const),
      ),
      optionsOf({ ...setOptions, codec: codecGen }),
    ),
    (mc, [s, i, o], run) =>
      loose(mc).setAs!(s, i.kind === "raw" ? i.v : { ...i.r, key: keyOf(i.r.key, run) }, withNamespace(o, run)),
  )
})
