/**
 * Seed: Example (OpaqueValues). `getMulti` tags each pipelined request with an opaque token and
 * matches the replies by it (and by key, and by the server that should hold the key), so responses
 * are correlated with requests without any work from the caller.
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

  // getMulti uses opaque values internally to correlate responses with requests
  const items = yield* McClient.getMulti(keys)

  for (const key of keys) {
    const item = items.get(key)
    if (item !== undefined) yield* Console.log(`${key}: ${valueText(item)}`)
  }
})

runIfMain(import.meta.url, program)
