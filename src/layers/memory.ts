/**
 * The in-memory transport: the meta engine behind the same `Transport` seam as TCP, with time
 * from Effect's `Clock` (so `TestClock.adjust` expires items).
 */
import { Effect } from "effect"
import type { Transport } from "../client/Transport.js"
import { CorruptResponse } from "../Errors.js"
import { MemoryEngine } from "../memory/MemoryEngine.js"
import type { Reply } from "../protocol/Reply.js"

const MEMORY_SERVER = "memory"
const MEMORY_SERVERS = [MEMORY_SERVER]

// The engine implements current memcached's dialect (1.6.38): append/prepend with `N` autovivify,
// so the client sends `MA N<ttl>` to it (src/memory/MemoryEngine.ts lists the differences from 1.6.18).
const MEMORY_VERSION = { text: "1.6.38 (in-memory engine)", major: 1, minor: 6, patch: 38 }

export interface MemoryOptions {
  /** largest value accepted, like memcached's -I (default 1 MiB) */
  readonly maxItemSize?: number | undefined
}

export const makeMemoryTransport = (options: MemoryOptions = {}): Transport => {
  const engine = new MemoryEngine(options.maxItemSize === undefined ? {} : { maxItemSize: options.maxItemSize })
  return {
    request: (_routingKey, request, decode, opts) =>
      Effect.clockWith((clock) =>
        Effect.suspend(() => {
          const reply = engine.execute(request, clock.unsafeCurrentTimeMillis())
          return reply === undefined
            ? Effect.fail(new CorruptResponse({ server: MEMORY_SERVER, key: opts.key, reason: "no reply to a non-quiet request" }))
            : decode(reply, MEMORY_SERVER, opts.key)
        }),
      ),
    batch: (_server, keys, opaques, flags) =>
      Effect.clockWith((clock) =>
        Effect.sync(() => {
          const now = clock.unsafeCurrentTimeMillis()
          const replies: Array<Reply> = []
          for (let i = 0; i < keys.length; i++) {
            const reply = engine.execute({ command: "mg", key: keys[i]!, flags: { ...flags, O: opaques[i]! } }, now)
            if (reply !== undefined) replies.push(reply)
          }
          return replies
        }),
      ),
    serverFor: () => MEMORY_SERVER,
    serversFor: () => MEMORY_SERVERS,
    version: () => Effect.succeed(MEMORY_VERSION),
  }
}
