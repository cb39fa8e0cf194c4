/**
 * The client for code outside Effect: every operation returns a Promise, which rejects with the
 * same typed errors (`CacheMiss`, `Timeout`, …) the Effect API fails with.
 *
 * It is not a second client: it holds a `McClient` built from the layer you give, and each call is
 * that service's operation. A plain request (one `mg`, `ms`, `md`, …, no spans or metrics around
 * it) is sent by its own register step, without starting a fiber (see `registered`); everything
 * else (namespaces, compression, retries after a failed connection, getMulti, tracing) runs on the
 * layer's runtime. Routing, deadlines, reply checks and decoding are the same code either way.
 */
import { Cause, Effect, Exit, type Layer, ManagedRuntime } from "effect"
import type { GetOrSetOptions } from "./client/ReadThrough.js"
import { captureRegister } from "./client/Transport.js"
import { ClientError, ConnectionError } from "./Errors.js"
import type { Item, ItemInput } from "./Item.js"
import { McClient, type McClientService, type PartialItems, type ServerStats, type ServerStatus } from "./McClient.js"
import type {
  DeleteOptions,
  Expiration,
  GetMultiOptions,
  GetOptions,
  IncrDecrOptions,
  SetOptions,
  TimeoutOption,
} from "./Options.js"

export interface McPromiseClient {
  readonly get: (key: string, options?: GetOptions) => Promise<Item>
  readonly getMulti: {
    (keys: Iterable<string>, options: GetMultiOptions & { readonly partial: true }): Promise<PartialItems>
    (keys: Iterable<string>, options?: GetMultiOptions): Promise<ReadonlyMap<string, Item>>
  }
  readonly set: (item: ItemInput, options?: SetOptions) => Promise<void>
  readonly add: (item: ItemInput, options?: SetOptions) => Promise<void>
  readonly replace: (item: ItemInput, options?: SetOptions) => Promise<void>
  readonly append: (item: ItemInput, options?: SetOptions) => Promise<void>
  readonly prepend: (item: ItemInput, options?: SetOptions) => Promise<void>
  readonly compareAndSwap: (item: ItemInput, options?: SetOptions) => Promise<void>
  readonly del: (key: string, options?: DeleteOptions) => Promise<void>
  readonly inc: (key: string, delta: bigint | number, expiration?: Expiration, options?: IncrDecrOptions) => Promise<bigint>
  readonly dec: (key: string, delta: bigint | number, expiration?: Expiration, options?: IncrDecrOptions) => Promise<bigint>
  readonly touch: (key: string, expiration: Expiration, options?: TimeoutOption) => Promise<void>
  readonly purgeNamespace: (namespace: string, options?: TimeoutOption) => Promise<void>
  /**
   * Read-through (see getOrSet): `lookup` runs once for all concurrent callers of a missing key, and
   * its rejection rejects every one of them.
   */
  readonly getOrSet: <A, I>(key: string, lookup: () => Promise<A>, options: GetOrSetOptions<A, I>) => Promise<A>
  readonly status: () => Promise<ReadonlyArray<ServerStatus>>
  readonly stats: {
    (server: string): Promise<ServerStats>
    (): Promise<ReadonlyMap<string, ServerStats>>
  }
  /** The Effect service underneath, for code that has both styles. */
  readonly service: McClientService
  /** Closes every connection; calls made afterwards reject. */
  readonly close: () => Promise<void>
}

/** A failure's error as a Promise rejects with it: the typed error itself, else the cause squashed. */
const rejection = <E>(cause: Cause.Cause<E>): unknown => {
  const failure = Cause.failureOption(cause)
  return failure._tag === "Some" ? failure.value : Cause.squash(cause)
}

/**
 * Builds the client from a layer (`McClient.layer(options)`, `McClient.layerMemory()`, …). The
 * returned Promise rejects with the layer's error (`InvalidOption`, `NoServers`, …).
 */
export const makePromiseClient = async <E>(layer: Layer.Layer<McClient, E>): Promise<McPromiseClient> => {
  const runtime = ManagedRuntime.make(layer)
  const built = await runtime.runPromiseExit(McClient)
  if (Exit.isFailure(built)) {
    await runtime.dispose()
    throw rejection(built.cause)
  }
  const mc = built.value
  let closed = false

  const onRuntime = <A, X>(effect: Effect.Effect<A, X>): Promise<A> =>
    closed
      ? Promise.reject(new ConnectionError({ server: "", reason: "client closed" }))
      : runtime.runPromiseExit(effect).then((exit) => (Exit.isSuccess(exit) ? exit.value : Promise.reject(rejection(exit.cause))))

  const run = <A, X>(make: () => Effect.Effect<A, X>): Promise<A> => {
    // After close, a request's own register step fails it with ConnectionError, as on the runtime.
    const { effect, register } = captureRegister(make)
    if (register === undefined) return onRuntime(effect)
    return new Promise<A>((resolve, reject) => {
      register((outcome) => {
        // Hot paths decode to an Exit in the socket's callback; anything else is still to run.
        if (!Exit.isExit(outcome)) return void onRuntime(outcome).then(resolve, reject)
        const exit = outcome as Exit.Exit<A, X>
        if (Exit.isSuccess(exit)) resolve(exit.value)
        else reject(rejection(exit.cause))
      })
    })
  }

  return {
    get: (key, options) => run(() => mc.get(key, options)),
    getMulti: ((keys: Iterable<string>, options?: GetMultiOptions) => run(() => mc.getMulti(keys, options))) as McPromiseClient["getMulti"],
    set: (item, options) => run(() => mc.set(item, options)),
    add: (item, options) => run(() => mc.add(item, options)),
    replace: (item, options) => run(() => mc.replace(item, options)),
    append: (item, options) => run(() => mc.append(item, options)),
    prepend: (item, options) => run(() => mc.prepend(item, options)),
    compareAndSwap: (item, options) => run(() => mc.compareAndSwap(item, options)),
    del: (key, options) => run(() => mc.del(key, options)),
    inc: (key, delta, expiration, options) => run(() => mc.inc(key, delta, expiration, options)),
    dec: (key, delta, expiration, options) => run(() => mc.dec(key, delta, expiration, options)),
    touch: (key, expiration, options) => run(() => mc.touch(key, expiration, options)),
    purgeNamespace: (namespace, options) => run(() => mc.purgeNamespace(namespace, options)),
    getOrSet: (key, lookup, options) =>
      typeof lookup !== "function"
        ? Promise.reject(new ClientError({ reason: `getOrSet: lookup must be a function returning a Promise, got ${typeof lookup}` }))
        : run(() => mc.getOrSet(key, Effect.tryPromise({ try: () => lookup(), catch: (error) => error }), options)),
    status: () => run(() => mc.status),
    stats: ((server?: string) => (server === undefined ? run(() => mc.stats()) : run(() => mc.stats(server)))) as McPromiseClient["stats"],
    service: mc,
    close: () => {
      closed = true
      return runtime.dispose()
    },
  }
}
