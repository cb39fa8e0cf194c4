/**
 * Seed: Example (Client.PurgeNamespace). Items stored with a `namespace` all become misses after
 * `purgeNamespace`, even for a `get` that names no namespace.
 *
 * Go prints the error (`memcache: cache miss`); this client's `CacheMiss` message also names the
 * server and key, so the example prints the seed's text when it catches the miss.
 *
 * Output:
 *   key="key", value="value"
 *   memcache: cache miss
 */
import { Console, Effect } from "effect"
import { McClient, valueText } from "../src/index.js"
import { runIfMain } from "./runtime.js"

export const program: Effect.Effect<void, unknown, McClient> = Effect.gen(function* () {
  yield* McClient.set({ key: "key", value: "value", flags: 42 }, { expiration: 5, namespace: "namespace" })

  const item = yield* McClient.get("key")
  yield* Console.log(`key=${JSON.stringify(item.key)}, value=${JSON.stringify(valueText(item))}`)

  yield* McClient.purgeNamespace("namespace")

  yield* McClient.get("key").pipe(
    Effect.zipRight(Effect.dieMessage("ns bug")),
    Effect.catchTag("CacheMiss", () => Console.log("memcache: cache miss")),
  )
})

runIfMain(import.meta.url, program)
