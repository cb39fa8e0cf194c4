/**
 * Seed: Example (HotKeyCacheInvalidation). Find hot keys with `hit` and `lastAccess`, and update
 * them in place instead of deleting them (a delete would cause misses and a stampede).
 *
 * "cold_key" is read once only by the check itself, so it has not been hit before.
 *
 * Output:
 *   Hot key detected: hot_key1 (last accessed 0 seconds ago)
 *   Hot key detected: hot_key2 (last accessed 0 seconds ago)
 *   Updated hot key: hot_key1
 *   Updated hot key: hot_key2
 *   Hot key management completed
 */
import { Console, Effect } from "effect"
import { McClient } from "../src/index.js"
import { runIfMain } from "./runtime.js"

export const program: Effect.Effect<void, unknown, McClient> = Effect.gen(function* () {
  const keys = ["hot_key1", "hot_key2", "cold_key"]
  yield* Effect.forEach(keys, (key, i) => McClient.set({ key, value: `value${i + 1}` }, { expiration: 3600 }), {
    discard: true,
  })

  // Frequent access to the hot keys
  for (let i = 0; i < 5; i++) {
    yield* McClient.get("hot_key1", { hit: true, lastAccess: true })
    yield* McClient.get("hot_key2", { hit: true, lastAccess: true })
  }

  // A key is hot if it has been hit before and accessed recently
  const hotKeys: Array<string> = []
  for (const key of keys) {
    const item = yield* McClient.get(key, { hit: true, lastAccess: true }).pipe(
      Effect.catchTag("CacheMiss", () => Effect.succeed(undefined)),
    )
    if (item?.hit === true && item.lastAccess !== undefined && item.lastAccess < 10) {
      hotKeys.push(key)
      yield* Console.log(`Hot key detected: ${key} (last accessed ${item.lastAccess} seconds ago)`)
    }
  }

  // Update hot keys in place: they stay available, with no misses
  for (const key of hotKeys) {
    yield* McClient.set({ key, value: "fresh_value" }, { expiration: 3600 })
    yield* Console.log(`Updated hot key: ${key}`)
  }

  yield* Console.log("Hot key management completed")
})

runIfMain(import.meta.url, program)
