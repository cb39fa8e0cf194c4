/**
 * Seed: Example (WithCompression). Values longer than `compression` bytes are compressed (gzip by
 * default, or the layer's `compression` codec) and transparently decompressed on read.
 *
 * Output:
 *   Data retrieved and decompressed successfully
 */
import { Console, Effect } from "effect"
import { McClient } from "../src/index.js"
import { runIfMain } from "./runtime.js"

export const program: Effect.Effect<void, unknown, McClient> = Effect.gen(function* () {
  // A large value: compressed because it is longer than 1024 bytes
  const largeData = Uint8Array.from({ length: 2048 }, (_, i) => i % 256)

  yield* McClient.set({ key: "large_data", value: largeData }, { compression: 1024, expiration: 60 })

  const item = yield* McClient.get("large_data")
  if (item.value.length === largeData.length) {
    yield* Console.log("Data retrieved and decompressed successfully")
  }
})

runIfMain(import.meta.url, program)
