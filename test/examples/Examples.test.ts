/**
 * The seed's examples print exactly the seed's `Output:` lines, against real memcached and against
 * the in-memory engine alike.
 */
import { describe, expect, it, layer } from "@effect/vitest"
import { Console, Effect, type Layer } from "effect"
import { inject } from "vitest"
import { examples } from "../../examples/index.js"
import { McClient } from "../../src/index.js"

/** The seed's `Output:` block of each example. */
const expected: Record<string, ReadonlyArray<string>> = {
  New: ['key="key", value="value"'],
  Add: ["Key already exists, Add failed"],
  Append: ["Message: Hello World"],
  "Append (autovivify)": ["Log:", "Entry 1", "Entry 2"],
  Prepend: ["Message: Hello World"],
  Replace: ["Status: new"],
  CompareAndSwap: ["Updated successfully using CAS"],
  "CAS conflict retry": ["Successfully updated with CAS"],
  "CAS override": ["Config: forced_config"],
  "Inc with initial value": ["Counter after first increment: 1", "Counter after increment by 5: 6"],
  Dec: ["Stock after decrement: 90"],
  Del: ["Key successfully deleted"],
  GetMulti: ["key1: value1", "key2: value2", "key3: value3"],
  "Opaque values": ["key1: value1", "key2: value2", "key3: value3"],
  PurgeNamespace: ['key="key", value="value"', "memcache: cache miss"],
  Compression: ["Data retrieved and decompressed successfully"],
  "Min uses": ["Item set with min uses requirement"],
  "CAS token": ["Updated using CAS"],
  "Last access": ["Retrieved: data"],
  "Early recache": ["Value: data"],
  "Hot key cache invalidation": [
    "Hot key detected: hot_key1 (last accessed 0 seconds ago)",
    "Hot key detected: hot_key2 (last accessed 0 seconds ago)",
    "Updated hot key: hot_key1",
    "Updated hot key: hot_key2",
    "Hot key management completed",
  ],
  "Probabilistic hot cache": ["First access - not hit before", "Hot cache item - has been accessed before"],
  "Serve stale": ["Cache miss - need to fetch from source"],
  "Stampeding herd handling": ["Using cached data: cached_value"],
  // Not the seed's: examples/getOrSet.ts.
  "Read-through (getOrSet): a stampede, one lookup": [
    "100 concurrent callers, 1 lookup",
    "every caller got: Ada (user 42)",
    "a later call: Ada, still 1 lookup",
  ],
}

/** Runs `program` with a Console whose `log` records lines instead of printing them. */
const captureLog = <E, R>(program: Effect.Effect<void, E, R>): Effect.Effect<ReadonlyArray<string>, E, R> =>
  Console.consoleWith((current) => {
    const lines: Array<string> = []
    const recording: Console.Console = {
      ...current,
      log: (...args) => Effect.sync(() => void lines.push(...args.map(String).join(" ").split("\n"))),
    }
    return program.pipe(Effect.withConsole(recording), Effect.as(lines))
  })

it("every example has the seed's expected output, and every expected output an example", () => {
  expect(examples.map((e) => e.name).sort()).toEqual(Object.keys(expected).sort())
})

const targets: ReadonlyArray<readonly [string, () => Layer.Layer<McClient, unknown>]> = [
  ["memcached", () => McClient.layer({ servers: [inject("memcached")] })],
  ["memory", () => McClient.layerMemory()],
]

for (const [name, makeLayer] of targets) {
  describe(name, () => {
    // Real time: "Serve stale" sleeps 2 seconds for its item to expire.
    layer(makeLayer(), { excludeTestServices: true })("examples", (it) => {
      for (const example of examples) {
        it.effect(
          example.name,
          () =>
            Effect.gen(function* () {
              const lines = yield* captureLog(example.program)
              expect(lines).toEqual(expected[example.name])
            }),
          // memcached's clock ticks once a second: when a tick falls inside this example's few
          // milliseconds, it honestly prints "1 seconds ago" instead of the seed's "0".
          example.name === "Hot key cache invalidation" ? { retry: 2 } : {},
        )
      }
    })
  })
}
