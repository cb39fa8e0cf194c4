/**
 * The in-memory transport: the meta engine behind the same `Transport` seam as TCP, with time
 * from Effect's `Clock` (so `TestClock.adjust` expires items).
 */
import { Effect } from "effect"
import { unexpected } from "../client/Replies.js"
import type { ManyOutcome, Transport } from "../client/Transport.js"
import { ClientError, CorruptResponse } from "../Errors.js"
import { MemoryEngine } from "../memory/MemoryEngine.js"
import type { Reply } from "../protocol/Reply.js"

const MEMORY_SERVER = "memory"

// The engine implements current memcached's dialect (1.6.38): append/prepend with `N` autovivify,
// so the client sends `MA N<ttl>` to it (src/memory/MemoryEngine.ts lists the differences from 1.6.18).
const MEMORY_VERSION = { text: "1.6.38 (in-memory engine)", major: 1, minor: 6, patch: 38 }

export interface MemoryOptions {
  /** largest value accepted, like memcached's -I (default 1 MiB) */
  readonly maxItemSize?: number | undefined
}

export const makeMemoryTransport = (options: MemoryOptions = {}): Transport => {
  const engine = new MemoryEngine(options.maxItemSize === undefined ? {} : { maxItemSize: options.maxItemSize })
  const started = Date.now()
  // What memcached's `stats` counts and the engine can know: reads (an `mg` that asks for the value).
  const counts = { gets: 0, hits: 0, misses: 0 }
  const countRead = (reply: Reply | undefined) => {
    counts.gets++
    if (reply?.code === "VA") counts.hits++
    else if (reply === undefined || reply.code === "EN") counts.misses++
  }
  return {
    request: (_routingKey, request, decode, opts) =>
      Effect.clockWith((clock) =>
        Effect.suspend(() => {
          const reply = engine.execute(request, clock.unsafeCurrentTimeMillis())
          if (request.command === "mg" && request.flags.v === true) countRead(reply)
          return reply === undefined
            ? Effect.fail(new CorruptResponse({ server: MEMORY_SERVER, key: opts.key, reason: "no reply to a non-quiet request" }))
            : decode(reply, MEMORY_SERVER, opts.key)
        }),
      ),
    getMany: (routingKeys, wires, flags) =>
      Effect.clockWith((clock) =>
        Effect.sync(() => {
          const now = clock.unsafeCurrentTimeMillis()
          const outcomes: Array<ManyOutcome> = new Array(wires.length)
          const servers: Array<string | undefined> = new Array(wires.length).fill(undefined)
          for (let i = 0; i < wires.length; i++) {
            const reply = engine.execute({ command: "mg", key: wires[i]!, flags }, now)
            countRead(reply)
            outcomes[i] =
              reply === undefined || reply.code === "EN"
                ? undefined
                : reply.code === "VA"
                  ? reply
                  : unexpected(reply, MEMORY_SERVER, routingKeys[i]!)
            if (reply?.code === "VA") servers[i] = MEMORY_SERVER
          }
          return { outcomes, servers }
        }),
      ),
    version: () => Effect.succeed(MEMORY_VERSION),
    status: Effect.sync(() => [
      {
        address: MEMORY_SERVER,
        state: "up",
        since: started,
        lastError: undefined,
        lastErrorAt: undefined,
        version: MEMORY_VERSION.text,
        connections: 0,
        inFlight: 0,
      },
    ]),
    stats: (server) =>
      server !== undefined && server !== MEMORY_SERVER
        ? Effect.fail(new ClientError({ reason: `stats: ${JSON.stringify(server)} is not one of this client's servers (memory)` }))
        : Effect.clockWith((clock) =>
            Effect.sync(() => {
              const { items, bytes } = engine.usage(clock.unsafeCurrentTimeMillis())
              const stats = new Map<string, string>([
                ["version", MEMORY_VERSION.text],
                ["curr_items", String(items)],
                ["bytes", String(bytes)],
                ["cmd_get", String(counts.gets)],
                ["get_hits", String(counts.hits)],
                ["get_misses", String(counts.misses)],
              ])
              return new Map([[MEMORY_SERVER, stats]])
            }),
          ),
  }
}
