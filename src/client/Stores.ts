/**
 * The stores: set / add / replace / compareAndSwap (through min-uses, compression and namespace),
 * append / prepend, and setAs.
 */
import { Effect, Exit, type Schema } from "effect"
import { type CodecOption, encodeValue } from "../Codec.js"
import { type CacheMiss, type CASConflict, ClientError, EncodeError, type McError, type NotStored } from "../Errors.js"
import type { ItemInput } from "../Item.js"
import type { SetOptions } from "../Options.js"
import { constantFlags, type SetFlags, type SetMode, StoreFlags, storeRequest } from "../protocol/Request.js"
import { supportsAppendVivify } from "../connection/Version.js"
import { checkCodecArgs } from "./CallOptions.js"
import type { ClientContext } from "./ClientContext.js"
import { runCodec } from "./Compression.js"
import {
  badExpiration,
  badInput,
  badOptions,
  badTimeout,
  badValue,
  expirationSeconds,
  isNamespace,
  isOptions,
  isValue,
  MAX_U64,
  notAKey,
  reasonOf,
  render,
  timeoutMillisOf,
  unreadable,
} from "./Inputs.js"
import { storeReply } from "./Replies.js"
import { requestOptions } from "./Transport.js"
import { COMPRESSED, NAMESPACED, USER_FLAGS_MASK, writeNamespaceHeader } from "./ValueFormat.js"

const encoder = new TextEncoder()
const toBytes = (value: Uint8Array | string): Uint8Array => (typeof value === "string" ? encoder.encode(value) : value)

export const makeStores = (ctx: ClientContext) => {
  const { transport, config, keys, b, ns } = ctx
  // The flags of a plain set (nothing but the key's encoding): one object, encoded once.
  const plainStoreFlags: SetFlags = constantFlags({ b })

  /** One `ms`. Absent flags are `undefined` (not written), so the flags are one plain object. */
  const sendStore = (
    key: string,
    wire: string,
    value: Uint8Array,
    M: SetMode | undefined,
    F: number | undefined,
    T: number | undefined,
    C: bigint | undefined,
    N: number | undefined,
    timeoutMillis: number,
    idempotent: boolean,
  ) =>
    transport.request<void, NotStored | CASConflict | CacheMiss>(
      key,
      storeRequest(
        wire,
        C === undefined && F === undefined && M === undefined && N === undefined && T === undefined ? plainStoreFlags : new StoreFlags(b, C, F, M, N, T),
        value,
      ),
      storeReply,
      requestOptions(timeoutMillis, idempotent, key),
    )

  /** set / add / replace / cas: the value goes through min-uses, compression and namespace. */
  // `E`: the outcomes the mode can answer (a plain set has none besides McError).
  const storeWith =
    <E>(mode: "S" | "E" | "R", cas: boolean) =>
    (input: ItemInput, o?: SetOptions): Effect.Effect<void, E | McError> =>
      storeAny(mode, cas, input, 0, o) as Effect.Effect<void, E | McError>

  /** `internal`: the upper flag bits a codec sets (setAs); user-facing stores pass 0. */
  const storeAny = (
    mode: "S" | "E" | "R",
    cas: boolean,
    input: ItemInput,
    internal: number,
    o: SetOptions | undefined,
  ): Effect.Effect<void, NotStored | CASConflict | CacheMiss | McError> => {
    // Every input is read once into a local (a getter or a Proxy is not asked twice), then checked.
    if (typeof input !== "object" || input === null)
      return Exit.fail(badInput(undefined, `an item must be an object { key, value }, got ${render(input)}`))
    let key: unknown, rawValue: unknown, rawFlags: unknown, rawCas: unknown
    try {
      key = input.key
      rawValue = input.value
      rawFlags = input.flags
      if (cas) rawCas = input.cas
    } catch (e) {
      return Exit.fail(unreadable(undefined, "the item", e))
    }
    if (typeof key !== "string") return Exit.fail(notAKey(key))
    const wire = keys.encode(key)
    if (typeof wire !== "string") return Exit.fail(wire)
    if (!isValue(rawValue)) return Exit.fail(badValue(key, rawValue))
    const userFlags = rawFlags === undefined ? 0 : rawFlags
    if (typeof userFlags !== "number" || !Number.isInteger(userFlags) || userFlags < 0 || userFlags > USER_FLAGS_MASK)
      return Exit.fail(badInput(key, `flags must be an integer in 0..65535, got ${render(userFlags)}`))
    if (cas && (typeof rawCas !== "bigint" || rawCas < 0n || rawCas > MAX_U64))
      return Exit.fail(
        rawCas === undefined
          ? badInput(key, "compareAndSwap needs the item's cas (read it with get(key, { cas: true }))")
          : badInput(key, `cas must be a bigint in 0..2^64-1, got ${render(rawCas)}`),
      )
    if (!isOptions(o)) return Exit.fail(badOptions(key, o))
    let rawExp: unknown, rawTimeout: unknown, namespace: unknown, compression: unknown, minUses: unknown
    if (o !== undefined) {
      try {
        rawExp = o.expiration
        rawTimeout = o.timeout
        namespace = o.namespace
        compression = o.compression
        minUses = o.minUses
      } catch (e) {
        return Exit.fail(unreadable(key, "the options", e))
      }
    }
    const exp = rawExp === undefined ? 0 : expirationSeconds(rawExp, true)
    if (exp < 0) return Exit.fail(badExpiration(key, "expiration", rawExp))
    const timeoutMillis = timeoutMillisOf(rawTimeout, config.timeoutMillis)
    if (timeoutMillis < 0) return Exit.fail(badTimeout(key, rawTimeout))
    if (namespace !== undefined && !isNamespace(namespace))
      return Exit.fail(badInput(key, `namespace must be a string of at most 65535 UTF-8 bytes, got ${render(namespace)}`))
    if (compression !== undefined && !(typeof compression === "number" && compression >= 0))
      return Exit.fail(badInput(key, `compression must be a number of bytes >= 0, got ${render(compression)}`))
    if (minUses !== undefined && !(Number.isSafeInteger(minUses) && (minUses as number) >= 0))
      return Exit.fail(badInput(key, `minUses must be an integer >= 0, got ${render(minUses)}`))
    const M = mode === "S" ? undefined : mode
    const T = exp === 0 ? undefined : exp
    const C = cas ? (rawCas as bigint) : undefined
    const idempotent = mode === "S" && !cas
    const value = toBytes(rawValue)
    // The common case: nothing but bytes and flags.
    if (namespace === undefined && compression === undefined && ((minUses as number | undefined) ?? 1) <= 1) {
      const F = userFlags | internal
      return sendStore(key, wire, value, M, F === 0 ? undefined : F, T, C, undefined, timeoutMillis, idempotent)
    }
    const uses = (minUses as number | undefined) ?? 1
    const threshold = compression as number | undefined
    const space = namespace as string | undefined
    return Effect.gen(function* () {
      if (uses > 1) {
        const count = yield* ns.countUse(key, exp, timeoutMillis)
        if (count < BigInt(uses)) return
      }
      let payload = value
      let bits = internal
      if (threshold !== undefined && payload.length > threshold) {
        const packed = yield* runCodec(config.compression.compress, payload).pipe(
          Effect.mapError((cause) => badInput(key, `compression failed: ${reasonOf(cause)}`)),
        )
        if (packed.length < payload.length) {
          payload = packed
          bits |= COMPRESSED
        }
      }
      if (space !== undefined) {
        const version = yield* ns.version(space, timeoutMillis)
        payload = writeNamespaceHeader(space, version, payload)
        bits |= NAMESPACED
      }
      const F = userFlags | bits
      yield* sendStore(key, wire, payload, M, F === 0 ? undefined : F, T, C, undefined, timeoutMillis, idempotent)
    })
  }

  /**
   * append / prepend. With an expiration a missing key is created (autovivify): `ms … N<ttl>` on
   * memcached ≥ 1.6.20; on older servers append, then add on NS, then append again if the add lost
   * to a concurrent creator, so no update is lost.
   */
  const concat =
    (mode: "A" | "P") =>
    (input: ItemInput, o?: SetOptions): Effect.Effect<void, NotStored | McError> => {
      // Read once, then checked (flags, namespace, compression and minUses do not apply here).
      if (typeof input !== "object" || input === null)
        return Exit.fail(badInput(undefined, `an item must be an object { key, value }, got ${render(input)}`))
      let key: unknown, rawValue: unknown, rawExp: unknown, rawTimeout: unknown
      try {
        key = input.key
        rawValue = input.value
      } catch (e) {
        return Exit.fail(unreadable(undefined, "the item", e))
      }
      if (typeof key !== "string") return Exit.fail(notAKey(key))
      const wire = keys.encode(key)
      if (typeof wire !== "string") return Exit.fail(wire)
      if (!isValue(rawValue)) return Exit.fail(badValue(key, rawValue))
      if (!isOptions(o)) return Exit.fail(badOptions(key, o))
      if (o !== undefined) {
        try {
          rawExp = o.expiration
          rawTimeout = o.timeout
        } catch (e) {
          return Exit.fail(unreadable(key, "the options", e))
        }
      }
      const exp = rawExp === undefined ? 0 : expirationSeconds(rawExp, true)
      if (exp < 0) return Exit.fail(badExpiration(key, "expiration", rawExp))
      const timeoutMillis = timeoutMillisOf(rawTimeout, config.timeoutMillis)
      if (timeoutMillis < 0) return Exit.fail(badTimeout(key, rawTimeout))
      const value = toBytes(rawValue)
      // Without C, an ms in these modes answers HD or NS (or an infrastructure error).
      const send = (M: SetMode, T: number | undefined, N: number | undefined) =>
        sendStore(key, wire, value, M, undefined, T, undefined, N, timeoutMillis, false) as Effect.Effect<void, NotStored | McError>
      const plain = send(mode, undefined, undefined)
      if (exp === 0) return plain
      return Effect.flatMap(transport.version(key), (version) => {
        if (supportsAppendVivify(version)) return send(mode, undefined, exp)
        const add = send("E", exp, undefined)
        return plain.pipe(
          Effect.catchTag("NotStored", () => add),
          Effect.catchTag("NotStored", () => plain),
        )
      })
    }

  const setAs = <A, I>(
    schema: Schema.Schema<A, I, never>,
    item: { readonly key: string; readonly value: A; readonly flags?: number | undefined },
    o?: SetOptions & CodecOption,
  ): Effect.Effect<void, EncodeError | McError> => {
    const checked = checkCodecArgs(schema, o)
    if (checked instanceof ClientError) return Exit.fail(checked)
    if (typeof item !== "object" || item === null)
      return Exit.fail(badInput(undefined, `an item must be an object { key, value }, got ${render(item)}`))
    let key: unknown, value: unknown, flags: unknown
    try {
      key = item.key
      value = item.value
      flags = item.flags
    } catch (e) {
      return Exit.fail(unreadable(undefined, "the item", e))
    }
    if (typeof key !== "string") return Exit.fail(notAKey(key))
    return encodeValue(schema, key, value as A, checked.codec).pipe(
      // A schema's own code can throw on a hostile value (a getter, a Proxy): still an EncodeError.
      Effect.catchAllDefect((cause) => Effect.fail(new EncodeError({ key, reason: reasonOf(cause), cause }))),
      Effect.flatMap(
        ({ bytes, internalFlags }) =>
          storeAny("S", false, { key, value: bytes, flags: flags as number | undefined }, internalFlags, o) as Effect.Effect<
            void,
            McError
          >,
      ),
    )
  }

  return {
    set: storeWith<never>("S", false),
    add: storeWith<NotStored>("E", false),
    replace: storeWith<NotStored>("R", false),
    compareAndSwap: storeWith<CASConflict | CacheMiss | NotStored>("S", true),
    append: concat("A"),
    prepend: concat("P"),
    setAs,
  }
}
