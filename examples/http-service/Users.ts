/**
 * The example service's domain: users, and a deliberately slow directory that looks them up (a
 * stand-in for a database or a remote API worth caching).
 */
import { Clock, Context, Data, DateTime, type Duration, Effect, Layer, Schema } from "effect"

/** A user id as it comes in a path: digits of a positive integer. */
export const UserId = Schema.NumberFromString.pipe(Schema.int(), Schema.positive(), Schema.brand("UserId"))
export type UserId = typeof UserId.Type

export class User extends Schema.Class<User>("User")({
  id: Schema.Number,
  name: Schema.String,
  email: Schema.String,
  /** when the directory produced this record: tells a cached copy from a fresh one */
  loadedAt: Schema.DateTimeUtc,
}) {}

export class UserNotFound extends Data.TaggedError("UserNotFound")<{ readonly id: UserId }> {}

/** The directory holds users 1 to `directorySize`. */
export const directorySize = 1000

export class UserDirectory extends Context.Tag("http-service/UserDirectory")<
  UserDirectory,
  { readonly lookup: (id: UserId) => Effect.Effect<User, UserNotFound> }
>() {
  /** Every lookup takes `delay` (on Effect's Clock, so a test's TestClock drives it). */
  static readonly layerSlow = (delay: Duration.DurationInput): Layer.Layer<UserDirectory> =>
    Layer.succeed(UserDirectory, {
      lookup: (id) =>
        Effect.gen(function* () {
          yield* Effect.sleep(delay)
          if (id > directorySize) return yield* new UserNotFound({ id })
          const loadedAt = DateTime.unsafeMake(yield* Clock.currentTimeMillis)
          return new User({ id, name: `User ${id}`, email: `user${id}@example.com`, loadedAt })
        }),
    })
}
