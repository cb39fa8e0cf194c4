/**
 * The options objects of the operations, each option read once (a getter or Proxy is not read
 * again), then checked with the rules of Inputs.ts.
 */
import { Schema } from "effect"
import type { CodecOption } from "../Codec.js"
import type { ClientError } from "../Errors.js"
import type { GetMultiOptions, TimeoutOption } from "../Options.js"
import {
  badInput,
  badOptions,
  badTimeout,
  expirationRule,
  expirationSeconds,
  isCodec,
  isFlag,
  isOptions,
  render,
  timeoutMillisOf,
  unreadable,
} from "./Inputs.js"

/** Get options read once (a getter or Proxy is not read again) and checked; `timeout` in ms. */
export const checkGetOptions = (key: string | undefined, o: unknown): GetMultiOptions | ClientError => {
  if (!isOptions(o)) return badOptions(key, o)
  if (o === undefined) return {}
  let cas: unknown, hit: unknown, lastAccess: unknown, ttl: unknown, earlyRecache: unknown, timeout: unknown, broadcast: unknown, partial: unknown
  try {
    ;({ cas, hit, lastAccess, ttl, earlyRecache, timeout, broadcast, partial } = o as Record<string, unknown>)
  } catch (e) {
    return unreadable(key, "the options", e)
  }
  if (!isFlag(cas)) return badInput(key, `cas must be a boolean, got ${render(cas)}`)
  if (!isFlag(hit)) return badInput(key, `hit must be a boolean, got ${render(hit)}`)
  if (!isFlag(lastAccess)) return badInput(key, `lastAccess must be a boolean, got ${render(lastAccess)}`)
  if (!isFlag(ttl)) return badInput(key, `ttl must be a boolean, got ${render(ttl)}`)
  if (!isFlag(broadcast)) return badInput(key, `broadcast must be a boolean, got ${render(broadcast)}`)
  if (!isFlag(partial)) return badInput(key, `partial must be a boolean, got ${render(partial)}`)
  const R = earlyRecache === undefined ? undefined : expirationSeconds(earlyRecache, false)
  if (R !== undefined && R < 0) return badInput(key, `earlyRecache must be ${expirationRule} (not infinite), got ${render(earlyRecache)}`)
  const timeoutMillis = timeoutMillisOf(timeout, -2)
  if (timeoutMillis === -1) return badTimeout(key, timeout)
  return {
    cas: cas as boolean | undefined,
    hit: hit as boolean | undefined,
    lastAccess: lastAccess as boolean | undefined,
    ttl: ttl as boolean | undefined,
    earlyRecache: R,
    timeout: timeoutMillis === -2 ? undefined : timeoutMillis,
    broadcast: broadcast as boolean | undefined,
    partial: partial as boolean | undefined,
  }
}

/** The `timeout` of an options object that has nothing else (touch, purgeNamespace), in ms, or the error. */
export const checkTimeoutOption = (key: string | undefined, o: unknown, fallback: number): number | ClientError => {
  if (o === undefined) return fallback
  if (!isOptions(o)) return badOptions(key, o)
  let timeout: unknown
  try {
    timeout = (o as TimeoutOption).timeout
  } catch (e) {
    return unreadable(key, "the options", e)
  }
  const ms = timeoutMillisOf(timeout, fallback)
  return ms === -1 ? badTimeout(key, timeout) : ms
}

/** One option and the timeout of an options object, read (in that order) but not yet checked. */
export interface OptionAndTimeout {
  readonly option: unknown
  readonly timeout: unknown
}

const NO_OPTIONS: OptionAndTimeout = { option: undefined, timeout: undefined }

/**
 * The options object of del (`invalidate`) and inc/dec (`initialValue`): it must be an object, and
 * its two options are read once; each operation checks them in its own order.
 */
export const readOptionAndTimeout = (
  key: string,
  o: unknown,
  name: "invalidate" | "initialValue",
): OptionAndTimeout | ClientError => {
  if (!isOptions(o)) return badOptions(key, o)
  if (o === undefined) return NO_OPTIONS
  try {
    const options = o as Record<string, unknown>
    return { option: options[name], timeout: options.timeout }
  } catch (e) {
    return unreadable(key, "the options", e)
  }
}

/** The schema and codec of getAs / setAs, checked; the codec is read once. */
export const checkCodecArgs = (
  schema: unknown,
  o: unknown,
): { readonly codec: CodecOption["codec"] } | ClientError => {
  if (!Schema.isSchema(schema)) return badInput(undefined, `schema must be an Effect Schema, got ${render(schema)}`)
  if (!isOptions(o)) return badOptions(undefined, o)
  let codec: unknown
  try {
    codec = (o as CodecOption | undefined)?.codec
  } catch (e) {
    return unreadable(undefined, "the options", e)
  }
  if (!isCodec(codec))
    return badInput(undefined, `codec must be "json", "msgpack" or { encode, decode }, got ${render(codec)}`)
  return { codec: codec as CodecOption["codec"] }
}
