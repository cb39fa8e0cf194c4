/**
 * The updates that carry no value: del, inc / dec, touch, and purgeNamespace.
 */
import { type Effect, Exit } from "effect"
import { BadIncrDec, ClientError, type CacheMiss, type McError } from "../Errors.js"
import type { DeleteOptions, Expiration, IncrDecrOptions, TimeoutOption } from "../Options.js"
import { checkTimeoutOption, readOptionAndTimeout } from "./CallOptions.js"
import type { ClientContext } from "./ClientContext.js"
import {
  badExpiration,
  badInput,
  badTimeout,
  expirationSeconds,
  isNamespace,
  notAKey,
  render,
  timeoutMillisOf,
  toU64,
} from "./Inputs.js"
import { arithmeticRequest, deleteRequest, getRequest } from "../protocol/Request.js"
import { cacheMiss, deleted, touched, unexpected } from "./Replies.js"
import { requestOptions } from "./Transport.js"

export const makeUpdates = (ctx: ClientContext) => {
  const { transport, config, keys, b, ns } = ctx

  const del = (key: string, o?: DeleteOptions): Effect.Effect<void, CacheMiss | McError> => {
    if (typeof key !== "string") return Exit.fail(notAKey(key))
    const wire = keys.encode(key)
    if (typeof wire !== "string") return Exit.fail(wire)
    const read = readOptionAndTimeout(key, o, "invalidate")
    if (read instanceof ClientError) return Exit.fail(read)
    const timeoutMillis = timeoutMillisOf(read.timeout, config.timeoutMillis)
    if (timeoutMillis < 0) return Exit.fail(badTimeout(key, read.timeout))
    // Infinity: stale until replaced (T0).
    const T = read.option === undefined ? undefined : expirationSeconds(read.option, true)
    if (T !== undefined && T < 0) return Exit.fail(badExpiration(key, "invalidate", read.option))
    const flags = T === undefined ? { b } : { b, I: true, T }
    return transport.request<void, CacheMiss>(
      key,
      deleteRequest(wire, flags),
      deleted,
      requestOptions(timeoutMillis, true, key),
    )
  }

  const arithmetic =
    (mode: "I" | "D") =>
    (
      key: string,
      delta: bigint | number,
      expiration?: Expiration,
      o?: IncrDecrOptions,
    ): Effect.Effect<bigint, CacheMiss | BadIncrDec | McError> => {
      if (typeof key !== "string") return Exit.fail(notAKey(key))
      const wire = keys.encode(key)
      if (typeof wire !== "string") return Exit.fail(wire)
      const read = readOptionAndTimeout(key, o, "initialValue")
      if (read instanceof ClientError) return Exit.fail(read)
      // A number must be a safe integer: a larger one has already lost digits.
      const d = toU64(delta)
      if (d === undefined)
        return Exit.fail(new BadIncrDec({ key, reason: `delta must be a bigint or a safe integer in 0..2^64-1, got ${render(delta)}` }))
      const rawInitial = read.option
      const initial = rawInitial === undefined ? undefined : toU64(rawInitial)
      if (rawInitial !== undefined && initial === undefined)
        return Exit.fail(
          new BadIncrDec({ key, reason: `initial value must be a bigint or a safe integer in 0..2^64-1, got ${render(rawInitial)}` }),
        )
      const exp = expiration === undefined ? 0 : expirationSeconds(expiration, true)
      if (exp < 0) return Exit.fail(badExpiration(key, "expiration", expiration))
      const timeoutMillis = timeoutMillisOf(read.timeout, config.timeoutMillis)
      if (timeoutMillis < 0) return Exit.fail(badTimeout(key, read.timeout))
      const flags = {
        b,
        v: true,
        D: d,
        ...(mode === "D" ? { M: mode } : {}),
        ...(initial === undefined ? {} : { N: exp, J: initial }),
      }
      return transport.request<bigint, CacheMiss | BadIncrDec>(
        key,
        arithmeticRequest(wire, flags),
        (reply, server, key) => {
          if (reply.code === "VA") {
            const text = Buffer.from(reply.value!).toString("latin1")
            return /^\d+$/.test(text)
              ? Exit.succeed(BigInt(text))
              : Exit.fail(unexpected(reply, server, key))
          }
          if (reply.code === "NF") return Exit.fail(cacheMiss(key, server))
          if (reply.code === "CLIENT_ERROR" && /non-numeric/.test(reply.message ?? ""))
            return Exit.fail(new BadIncrDec({ key, reason: "value is not a decimal number", server }))
          return Exit.fail(unexpected(reply, server, key))
        },
        requestOptions(timeoutMillis, false, key),
      )
    }

  const touch = (key: string, expiration: Expiration, o?: TimeoutOption): Effect.Effect<void, CacheMiss | McError> => {
    if (typeof key !== "string") return Exit.fail(notAKey(key))
    const wire = keys.encode(key)
    if (typeof wire !== "string") return Exit.fail(wire)
    const T = expirationSeconds(expiration, true)
    if (T < 0) return Exit.fail(badExpiration(key, "expiration", expiration))
    const timeoutMillis = checkTimeoutOption(key, o, config.timeoutMillis)
    if (typeof timeoutMillis !== "number") return Exit.fail(timeoutMillis)
    return transport.request<void, CacheMiss>(
      key,
      getRequest(wire, { b, T }),
      touched,
      requestOptions(timeoutMillis, true, key),
    )
  }

  const purgeNamespace = (namespace: string, o?: TimeoutOption): Effect.Effect<void, McError> => {
    if (!isNamespace(namespace))
      return Exit.fail(badInput(undefined, `a namespace must be a string of at most 65535 UTF-8 bytes, got ${render(namespace)}`))
    const timeoutMillis = checkTimeoutOption(undefined, o, config.timeoutMillis)
    if (typeof timeoutMillis !== "number") return Exit.fail(timeoutMillis)
    return ns.purge(namespace, timeoutMillis)
  }

  return { del, inc: arithmetic("I"), dec: arithmetic("D"), touch, purgeNamespace }
}
