/**
 * The client's operations, written once over a `Transport`: key encoding, namespaces,
 * compression, min-uses, getMulti fan-out and codecs run the same on TCP and in memory.
 * Each command family has its own file (Reads, Stores, Updates) over one shared context.
 */
import { Effect, Exit, type Schema } from "effect"
import type { CodecOption } from "../Codec.js"
import type { BadIncrDec, CacheMiss, CASConflict, ClientError, DecodeError, EncodeError, McError, NotStored } from "../Errors.js"
import type { Item, ItemInput } from "../Item.js"
import type {
  DeleteOptions,
  Expiration,
  GetMultiOptions,
  GetOptions,
  IncrDecrOptions,
  SetOptions,
  TimeoutOption,
} from "../Options.js"
import { type ClientConfig, makeClientContext } from "./ClientContext.js"
import { badInput, render } from "./Inputs.js"
import { makeReads, type PartialItems } from "./Reads.js"
import type { GetOrSet } from "./ReadThrough.js"
import { makeStores } from "./Stores.js"
import type { ServerStats, ServerStatus, Transport } from "./Transport.js"
import { makeUpdates } from "./Updates.js"

export type { ClientConfig } from "./ClientContext.js"
export type { PartialItems } from "./Reads.js"

export interface McClientService {
  readonly get: (key: string, options?: GetOptions) => Effect.Effect<Item, CacheMiss | McError | DecodeError>
  readonly getMulti: {
    (
      keys: Iterable<string>,
      options: GetMultiOptions & { readonly partial: true },
    ): Effect.Effect<PartialItems, McError | DecodeError>
    (keys: Iterable<string>, options?: GetMultiOptions): Effect.Effect<ReadonlyMap<string, Item>, McError | DecodeError>
  }
  readonly set: (item: ItemInput, options?: SetOptions) => Effect.Effect<void, McError | ClientError>
  readonly add: (item: ItemInput, options?: SetOptions) => Effect.Effect<void, NotStored | McError>
  readonly replace: (item: ItemInput, options?: SetOptions) => Effect.Effect<void, NotStored | McError>
  readonly append: (item: ItemInput, options?: SetOptions) => Effect.Effect<void, NotStored | McError>
  readonly prepend: (item: ItemInput, options?: SetOptions) => Effect.Effect<void, NotStored | McError>
  readonly compareAndSwap: (
    item: ItemInput,
    options?: SetOptions,
  ) => Effect.Effect<void, CASConflict | CacheMiss | NotStored | McError>
  readonly del: (key: string, options?: DeleteOptions) => Effect.Effect<void, CacheMiss | McError>
  readonly inc: (
    key: string,
    delta: bigint | number,
    expiration?: Expiration,
    options?: IncrDecrOptions,
  ) => Effect.Effect<bigint, CacheMiss | BadIncrDec | McError>
  readonly dec: (
    key: string,
    delta: bigint | number,
    expiration?: Expiration,
    options?: IncrDecrOptions,
  ) => Effect.Effect<bigint, CacheMiss | BadIncrDec | McError>
  readonly touch: (key: string, expiration: Expiration, options?: TimeoutOption) => Effect.Effect<void, CacheMiss | McError>
  readonly purgeNamespace: (namespace: string, options?: TimeoutOption) => Effect.Effect<void, McError>
  /** get, then decode the value with a schema (format read from the item's flags) */
  readonly getAs: <A, I>(
    schema: Schema.Schema<A, I, never>,
    key: string,
    options?: GetOptions & CodecOption,
  ) => Effect.Effect<A, CacheMiss | DecodeError | McError>
  /** encode the value with a schema and a codec (JSON by default), then set */
  readonly setAs: <A, I>(
    schema: Schema.Schema<A, I, never>,
    item: { readonly key: string; readonly value: A; readonly flags?: number | undefined },
    options?: SetOptions & CodecOption,
  ) => Effect.Effect<void, EncodeError | McError | ClientError>
  /**
   * The value of `key` decoded with `schema`; on a miss `lookup` computes it, once across
   * processes (leases) and within this one, and it is stored (src/client/ReadThrough.ts).
   */
  readonly getOrSet: GetOrSet
  /** Every server's state, version, connections and requests in flight (no I/O). */
  readonly status: Effect.Effect<ReadonlyArray<ServerStatus>>
  /**
   * memcached's `stats` (the `STAT` lines): of one server (one of the client's), or, without a
   * server, of each server, keyed by address.
   */
  readonly stats: {
    (server: string): Effect.Effect<ServerStats, McError>
    (): Effect.Effect<ReadonlyMap<string, ServerStats>, McError>
  }
}

/** Every operation but `getOrSet`, which is built on top (src/client/ReadThrough.ts). */
export const makeClient = (transport: Transport, config: ClientConfig): Omit<McClientService, "getOrSet"> => {
  const ctx = makeClientContext(transport, config)
  const reads = makeReads(ctx)
  const stores = makeStores(ctx)
  const updates = makeUpdates(ctx)

  const stats = (server?: string): Effect.Effect<ServerStats | ReadonlyMap<string, ServerStats>, McError> => {
    if (server === undefined) return transport.stats(undefined, config.timeoutMillis)
    if (typeof server !== "string") return Exit.fail(badInput(undefined, `stats takes a server address, got ${render(server)}`))
    return Effect.map(transport.stats(server, config.timeoutMillis), (all) => all.get(server)!)
  }

  return {
    status: transport.status,
    stats: stats as McClientService["stats"],
    get: reads.get,
    getMulti: reads.getMulti as McClientService["getMulti"],
    set: stores.set,
    add: stores.add,
    replace: stores.replace,
    compareAndSwap: stores.compareAndSwap,
    append: stores.append,
    prepend: stores.prepend,
    del: updates.del,
    inc: updates.inc,
    dec: updates.dec,
    touch: updates.touch,
    purgeNamespace: updates.purgeNamespace,
    getAs: reads.getAs,
    setAs: stores.setAs,
  }
}
