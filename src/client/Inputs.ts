/**
 * Checks of per-call input, shared by every operation (and so by both layers), run before
 * anything is encoded or sent. JavaScript callers can pass anything, so each check takes
 * `unknown` and never throws.
 *
 * Hot-path rule: the checks of the common inputs (a string key, a byte or string value, a number
 * of seconds, a number of milliseconds) are `typeof` tests and comparisons that allocate nothing.
 * Invalid values are reported with a sentinel (`-1`, `undefined`) and described only on the
 * failure path.
 */
import { Duration } from "effect"
import { ClientError, MalformedKey, withoutStack } from "../Errors.js"

/** The largest expiration memcached takes: a signed 32-bit integer. */
export const MAX_EXPIRATION = 0x7fff_ffff
/** memcached reads an expiration above this (30 days) as an absolute Unix time. */
export const RELATIVE_EXPIRATION_LIMIT = 60 * 60 * 24 * 30
/** Node's largest timer delay (setTimeout clamps longer ones to 1 ms). */
export const MAX_TIMER_MILLIS = 0x7fff_ffff

/** A duration string as Effect's `Duration.decode` reads it, not negative. */
const DURATION_TEXT = /^\d+(?:\.\d+)?\s+(?:nanos?|micros?|millis?|seconds?|minutes?|hours?|days?|weeks?)$/

/** A `Duration`, or a duration string ("1 hour"); `undefined` for anything else. Never throws. */
const durationOf = (input: unknown): Duration.Duration | undefined => {
  try {
    if (typeof input === "string") return DURATION_TEXT.test(input) ? Duration.decode(input as Duration.DurationInput) : undefined
    return Duration.isDuration(input) ? input : undefined
  } catch {
    return undefined
  }
}

/**
 * An expiration (or a window: `earlyRecache`, `invalidate`) as the seconds memcached is sent, or
 * -1 when invalid.
 *
 * - a number is seconds: an integer in 0..2^31-1 (above 30 days memcached reads an absolute Unix
 *   time; 0 means no expiry for an expiration);
 * - a `Duration` or a duration string is relative: rounded up to whole seconds (so `"1 milli"` is
 *   1 s, never 0 = no expiry), at most 30 days; `Duration.infinity` is 0 = no expiry where
 *   `infinity` allows it (expirations), invalid elsewhere (windows).
 */
export const expirationSeconds = (input: unknown, infinity: boolean): number => {
  if (typeof input === "number") return Number.isInteger(input) && input >= 0 && input <= MAX_EXPIRATION ? input + 0 : -1
  const d = durationOf(input)
  if (d === undefined) return -1
  if (!Duration.isFinite(d)) return infinity ? 0 : -1
  const seconds = Math.ceil(Duration.toMillis(d) / 1000)
  return seconds <= RELATIVE_EXPIRATION_LIMIT ? seconds : -1
}

export const expirationRule =
  "whole seconds 0..2147483647 (above 30 days an absolute Unix time), or a Duration / duration string of at most 30 days"

/** Any `Duration.DurationInput` as a `Duration`, or `undefined` when it is not one. Never throws. */
export const decodeDuration = (input: unknown): Duration.Duration | undefined => {
  if (typeof input === "string") return durationOf(input)
  try {
    const d = Duration.decodeUnknown(input)
    return d._tag === "Some" ? d.value : undefined
  } catch {
    return undefined
  }
}

/**
 * A per-call `timeout` (a `Duration.DurationInput`; a number is milliseconds) in milliseconds, or
 * -1 when invalid: it must be above zero, and at most 2^31-1 ms (Node's longest timer) unless
 * infinite (no deadline of the caller's own; stall detection still judges the server).
 */
export const timeoutMillisOf = (input: unknown, fallback: number): number => {
  if (input === undefined) return fallback
  if (typeof input === "number") return input === Infinity || (input > 0 && input <= MAX_TIMER_MILLIS) ? input : -1
  const d = decodeDuration(input)
  if (d === undefined) return -1
  const ms = Duration.toMillis(d)
  return ms === Infinity || (ms > 0 && ms <= MAX_TIMER_MILLIS) ? ms : -1
}

export const timeoutRule = "a Duration input above 0, at most 2147483647 ms or infinite (a number is milliseconds)"

/** A value to store: bytes (any `Uint8Array`, `Buffer` included; not a Proxy of one) or text. */
export const isValue = (value: unknown): value is Uint8Array | string =>
  typeof value === "string" || isBytes(value)

const typedArrayTag = Object.getOwnPropertyDescriptor(Object.getPrototypeOf(Uint8Array.prototype), Symbol.toStringTag)!
  .get as (this: unknown) => string | undefined

/** A real `Uint8Array` (by its internal slot, so a Proxy or a look-alike object is not one). */
export const isBytes = (value: unknown): value is Uint8Array =>
  typeof value === "object" && value !== null && typedArrayTag.call(value) === "Uint8Array"

/** Options objects: absent, or an object (not null, an array or a primitive). */
export const isOptions = (o: unknown): boolean => o === undefined || (typeof o === "object" && o !== null && !Array.isArray(o))

/** An optional boolean option. */
export const isFlag = (v: unknown): boolean => v === undefined || typeof v === "boolean"

/** A codec option: "json", "msgpack" or `{ encode, decode }`. */
export const isCodec = (codec: unknown): boolean => {
  if (codec === undefined || codec === "json" || codec === "msgpack") return true
  if (typeof codec !== "object" || codec === null) return false
  try {
    const c = codec as { readonly encode?: unknown; readonly decode?: unknown }
    return typeof c.encode === "function" && typeof c.decode === "function"
  } catch {
    return false
  }
}

/** Any value as short text for an error message. Never throws (Proxies, null prototypes, symbols). */
export const render = (value: unknown): string => {
  try {
    switch (typeof value) {
      case "string":
        return JSON.stringify(value.length > 80 ? value.slice(0, 80) + "…" : value)
      case "number":
        return Object.is(value, -0) ? "-0" : String(value)
      case "bigint":
        return `${value}n`
      case "symbol":
        return value.toString()
      case "function":
        return `[function ${typeof value.name === "string" && value.name !== "" ? value.name : "anonymous"}]`
      case "object": {
        if (value === null) return "null"
        if (Array.isArray(value)) return `[array of ${value.length}]`
        if (Duration.isDuration(value)) return Duration.format(value)
        if (isBytes(value)) return `[Uint8Array of ${value.byteLength} bytes]`
        const text = JSON.stringify(value)
        if (typeof text === "string") return text.length > 80 ? text.slice(0, 80) + "…" : text
        return Object.prototype.toString.call(value)
      }
      default:
        return String(value)
    }
  } catch {
    return "[unprintable value]"
  }
}

/** A per-call input the client will not send. */
export const badInput = (key: string | undefined, reason: string): ClientError =>
  withoutStack(() => new ClientError({ key, reason }))

/** A key that is not a string (keys that are strings go through the key encoder). */
export const notAKey = (key: unknown): MalformedKey =>
  withoutStack(() => new MalformedKey({ key: render(key), reason: `a key must be a string, got ${typeof key}` }))

/** An input that threw while it was read (a getter, a Proxy trap). */
export const unreadable = (key: string | undefined, what: string, cause: unknown): ClientError =>
  badInput(key, `${what} could not be read: ${reasonOf(cause)}`)

/** What a thrown value says, as text. Never throws. */
export const reasonOf = (cause: unknown): string => {
  try {
    if (cause instanceof Error && typeof cause.message === "string") return cause.message
  } catch {
    // a Proxy posing as an error
  }
  return render(cause)
}
