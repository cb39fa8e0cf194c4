/**
 * Where the examples run: the memcached servers of `MEMCACHE_SERVERS` when they answer, else the
 * in-memory engine. Used by `npm start` (scripts/tour.ts) and by each example run on its own:
 *
 *   npx tsx examples/add.ts
 *   MEMCACHE_SERVERS=127.0.0.1:11211 npx tsx examples/add.ts
 */
import { pathToFileURL } from "node:url"
import { Cause, Config, Console, Effect, Exit, Layer, Logger, LogLevel, Option, Schedule } from "effect"
import { McClient, make } from "../src/index.js"

export interface Backend {
  /** e.g. "memcached at 127.0.0.1:11211 (MEMCACHE_SERVERS)" */
  readonly description: string
  readonly layer: Layer.Layer<McClient, unknown>
}

/**
 * Asks the servers for a key nobody stores, with 300 ms deadlines and no retries. A miss (or a hit)
 * means memcached answered; a connection error or a timeout means it did not.
 */
const probe = (servers: ReadonlyArray<string>): Effect.Effect<void, string> =>
  Effect.scoped(
    Effect.flatMap(
      make({ servers, dialTimeout: "300 millis", timeout: "300 millis", retry: Schedule.stop }),
      (mc) => mc.get("effect-memcache:probe"),
    ),
  ).pipe(
    Effect.asVoid,
    Effect.catchTag("CacheMiss", () => Effect.void),
    Effect.mapError((error) => error.message),
    Effect.timeoutFail({ duration: "1 second", onTimeout: () => "no answer within 1 second" }),
    // The client logs a warning when it marks a server down; the caller reports the outcome instead.
    Logger.withMinimumLogLevel(LogLevel.None),
  )

/** Picks the backend; never fails. */
export const selectBackend: Effect.Effect<Backend> = Effect.gen(function* () {
  const servers = yield* Config.option(McClient.serversFromEnv).pipe(
    Effect.map(Option.getOrElse((): ReadonlyArray<string> => [])),
    Effect.orElseSucceed((): ReadonlyArray<string> => []),
  )
  if (servers.length === 0)
    return { description: "the in-memory engine (MEMCACHE_SERVERS is not set)", layer: McClient.layerMemory() }
  const answered = yield* Effect.either(probe(servers))
  if (answered._tag === "Left")
    return {
      description: `the in-memory engine (MEMCACHE_SERVERS=${servers.join(",")} did not answer: ${answered.left})`,
      layer: McClient.layerMemory(),
    }
  return { description: `memcached at ${servers.join(", ")} (MEMCACHE_SERVERS)`, layer: McClient.layer({ servers }) }
})

/**
 * Runs `program` when its file is the one node was started with (`npx tsx examples/<name>.ts`).
 * Its output goes to stdout; which backend it uses goes to stderr.
 */
export const runIfMain = (moduleUrl: string, program: Effect.Effect<void, unknown, McClient>): void => {
  const main = process.argv[1]
  if (main === undefined || pathToFileURL(main).href !== moduleUrl) return
  const run = Effect.gen(function* () {
    const backend = yield* selectBackend
    yield* Console.error(`(using ${backend.description})`)
    yield* Effect.provide(program, backend.layer)
  })
  void Effect.runPromiseExit(run).then((exit) => {
    if (Exit.isFailure(exit)) {
      console.error(Cause.pretty(exit.cause))
      process.exitCode = 1
    }
  })
}
