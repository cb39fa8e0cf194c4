/**
 * Seed: Example (Client.GetMulti). Read several keys in one pipelined round trip per server; the
 * result is a `ReadonlyMap` where misses are absent.
 *
 * Output:
 *   key1: value1
 *   key2: value2
 *   key3: value3
 */
import { Console, Effect } from "effect"
import { McClient, valueText } from "../src/index.js"
import { runIfMain } from "./runtime.js"

export const program: Effect.Effect<void, unknown, McClient> = Effect.gen(function* () {
  const keys = ["key1", "key2", "key3"]
  yield* Effect.forEach(keys, (key, i) => McClient.set({ key, value: `value${i + 1}` }, { expiration: 60 }), {
    discard: true,
  })

  const items = yield* McClient.getMulti(keys)

  for (const key of keys) {
    const item = items.get(key)
    if (item !== undefined) yield* Console.log(`${key}: ${valueText(item)}`)
  }
})

runIfMain(import.meta.url, program)
