/**
 * Seed: Example (New). Store a value with flags and an expiration, then read it back.
 *
 * The Go example builds the client with `mc.New(&mc.Options{Addrs: ...})`; here the client is the
 * `McClient` layer, provided by whoever runs the program:
 *
 *   program.pipe(Effect.provide(McClient.layer({ servers: ["127.0.0.1:11211"] })), Effect.runPromise)
 *
 * Output:
 *   key="key", value="value"
 */
import { Console, Effect } from "effect"
import { McClient, valueText } from "../src/index.js"
import { runIfMain } from "./runtime.js"

export const program: Effect.Effect<void, unknown, McClient> = Effect.gen(function* () {
  yield* McClient.set({ key: "key", value: "value", flags: 42 }, { expiration: 5 })

  const item = yield* McClient.get("key")
  yield* Console.log(`key=${JSON.stringify(item.key)}, value=${JSON.stringify(valueText(item))}`)
})

runIfMain(import.meta.url, program)
