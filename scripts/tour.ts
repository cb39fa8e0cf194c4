/**
 * `npm start`: a short tour of effect-memcache. It runs the examples of examples/ (the seed's
 * examples, one file each, then getOrSet's stampede: many callers, one lookup) against the memcached servers of MEMCACHE_SERVERS when they answer,
 * otherwise against the in-memory engine, and says which one it uses.
 */
import { Cause, Console, Effect, Exit } from "effect"
import { examples } from "../examples/index.js"
import { selectBackend } from "../examples/runtime.js"

const tour = Effect.gen(function* () {
  const backend = yield* selectBackend
  yield* Console.log(`effect-memcache tour, using ${backend.description}`)

  let failures = 0
  yield* Effect.forEach(examples, ({ name, program }) =>
    Effect.gen(function* () {
      yield* Console.log(`\n## ${name}`)
      const exit = yield* Effect.exit(program)
      if (Exit.isFailure(exit)) {
        failures++
        yield* Console.error(`failed: ${Cause.pretty(exit.cause)}`)
      }
    }),
  ).pipe(Effect.provide(backend.layer))

  yield* Console.log(failures === 0 ? "\nAll examples ran." : `\n${failures} example(s) failed.`)
  return failures
})

Effect.runPromise(tour).then(
  (failures) => {
    process.exitCode = failures === 0 ? 0 : 1
  },
  (error) => {
    console.error(error)
    process.exitCode = 1
  },
)
