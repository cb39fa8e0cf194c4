/**
 * Checks of the options of `McClient.layer` / `make` / `layerConfig` / `layerMemory`, run once when
 * the layer is built, before anything is opened. Any invalid option fails the layer with
 * `InvalidOption` (naming the option and its value); an empty server list is `NoServers`.
 *
 * To check a new option, add one line to `checks`: its name and a rule (below, or your own
 * `(value: unknown) => string | undefined`, the reason when invalid). Every option is optional:
 * a rule sees only values other than `undefined`.
 */
import { Duration, Effect, Redacted, Schedule } from "effect"
import { decodeDuration, expirationSeconds, MAX_TIMER_MILLIS, reasonOf, render } from "./client/Inputs.js"
import { parseServerSpec } from "./cluster/Ketama.js"
import { InvalidOption, NoServers } from "./Errors.js"

/** A rule: `undefined` when the value is valid, else what it must be. */
export type Rule = (value: unknown) => string | undefined

/** A function (pickServer, codec sides). */
export const func: Rule = (v) => (typeof v === "function" ? undefined : "must be a function")

export const boolean: Rule = (v) => (typeof v === "boolean" ? undefined : "must be true or false")

export const integerAtLeast =
  (min: number): Rule =>
  (v) =>
    Number.isSafeInteger(v) && (v as number) >= min ? undefined : `must be an integer >= ${min}`

export const oneOf =
  (values: ReadonlyArray<string>): Rule =>
  (v) =>
    typeof v === "string" && values.includes(v) ? undefined : `must be one of ${values.map((x) => JSON.stringify(x)).join(", ")}`

/**
 * A `Duration.DurationInput` (a number is milliseconds) above zero. `infinite`: whether
 * `Duration.infinity` is allowed; finite ones drive a Node timer, so they are at most 2^31-1 ms.
 */
export const positiveDuration =
  (infinite: boolean): Rule =>
  (v) => {
    const d = decodeDuration(v)
    const rule = infinite
      ? "must be a Duration input above 0 (a number is milliseconds; Duration.infinity for never)"
      : "must be a finite Duration input above 0 and at most 2147483647 ms (a number is milliseconds)"
    if (d === undefined) return rule
    const ms = Duration.toMillis(d)
    if (ms === Infinity) return infinite ? undefined : rule
    return ms > 0 && ms <= MAX_TIMER_MILLIS ? undefined : rule
  }

/** An expiration as the operations take it (seconds, a Duration, "1 hour"), finite, at least `min` seconds. */
export const expirationAtLeast =
  (min: number): Rule =>
  (v) =>
    expirationSeconds(v, false) >= min
      ? undefined
      : `must be whole seconds (a number) or a Duration / duration string, from ${min} s to 30 days`

export const schedule: Rule = (v) => (Schedule.isSchedule(v) ? undefined : "must be a Schedule (from effect)")

/** `{ compress, decompress }`, functions of bytes. */
export const compressionCodec: Rule = (v) =>
  typeof v === "object" &&
  v !== null &&
  typeof (v as { compress?: unknown }).compress === "function" &&
  typeof (v as { decompress?: unknown }).decompress === "function"
    ? undefined
    : "must be { compress, decompress }, functions of Uint8Array"

/** `true`, `false` or `{ keys?: boolean, attributes?: Record<string, unknown> }`. */
export const tracing: Rule = (v) => {
  const rule = "must be true, false or { keys?: boolean, attributes?: Record<string, unknown> }"
  if (typeof v === "boolean") return undefined
  if (typeof v !== "object" || v === null || Array.isArray(v)) return rule
  const { keys, attributes, ...rest } = v as Record<string, unknown>
  if (Object.keys(rest).length > 0) return `${rule}; unknown field ${Object.keys(rest)[0]}`
  if (keys !== undefined && typeof keys !== "boolean") return `${rule}; keys ${boolean(keys)}`
  if (attributes !== undefined && (typeof attributes !== "object" || attributes === null || Array.isArray(attributes)))
    return `${rule}; attributes must be an object`
  return undefined
}

const isObject = (v: unknown): v is Record<string, unknown> => typeof v === "object" && v !== null && !Array.isArray(v)

const isPem = (v: unknown): boolean => {
  const one = (x: unknown) => typeof x === "string" || x instanceof Uint8Array
  return one(v) || (Array.isArray(v) && v.every(one))
}

const TLS_RULE =
  'must be true, false or { ca?, cert?, key?, servername?, rejectUnauthorized?, minVersion?: "TLSv1.2" | "TLSv1.3" } (PEM strings or bytes)'

/** `true`, `false` or TlsOptions. */
export const tlsOption: Rule = (v) => {
  if (typeof v === "boolean") return undefined
  if (!isObject(v)) return TLS_RULE
  for (const name of Object.keys(v)) {
    const x = v[name]
    if (x === undefined) continue
    const ok =
      name === "ca" || name === "cert"
        ? isPem(x)
        : name === "key"
          ? isPem(x) || (Redacted.isRedacted(x) && typeof Redacted.value(x) === "string")
          : name === "servername"
            ? typeof x === "string" && x.length > 0
            : name === "rejectUnauthorized"
              ? typeof x === "boolean"
              : name === "minVersion"
                ? x === "TLSv1.2" || x === "TLSv1.3"
                : false
    if (!ok) return `${TLS_RULE}; ${name} is not valid`
  }
  return undefined
}

/** `{ username, password: Redacted }`, fit for memcached's `<user> <pass>` token. */
export const authOption: Rule = (v) => {
  const rule = "must be { username, password: Redacted<string> } (Redacted.make or Config.redacted)"
  if (!isObject(v)) return rule
  const { username, password } = v
  if (typeof username !== "string" || !/^[^\s]+$/.test(username)) return `${rule}; username must be non-empty, without spaces or line breaks`
  if (!Redacted.isRedacted(password) || typeof Redacted.value(password) !== "string") return `${rule}; password must be Redacted`
  const pass = Redacted.value(password) as string
  if (pass.length === 0 || /[\r\n]/.test(pass)) return `${rule}; password must be non-empty, without line breaks`
  return undefined
}

/** `{ configEndpoint: "host:port", interval? }`. */
export const discoveryOption: Rule = (v) => {
  const rule = 'must be { configEndpoint: "host:port", interval?: Duration input }'
  if (!isObject(v)) return rule
  const endpoint = v["configEndpoint"]
  if (typeof endpoint !== "string" || endpoint.startsWith("/")) return rule
  try {
    parseServerSpec(endpoint)
  } catch (e) {
    return `${rule}; ${reasonOf(e)}`
  }
  if (v["interval"] !== undefined) {
    const reason = positiveDuration(false)(v["interval"])
    if (reason !== undefined) return `${rule}; interval ${reason}`
  }
  return undefined
}

/** How an invalid option's value is shown: secrets never are. */
const shown = (name: string, value: unknown): unknown => {
  if (name === "auth") return isObject(value) ? { username: value["username"], password: "<redacted>" } : typeof value
  if (name === "tls" && isObject(value)) return { ...value, ...("key" in value ? { key: "<redacted>" } : {}) }
  return value
}

/** One line per option (other than `servers`, checked by `checkServers`). */
export const checks: Readonly<Record<string, Rule>> = {
  pickServer: func,
  dialTimeout: positiveDuration(false),
  // Infinity: no deadline of the client's own; stall detection still judges the server.
  timeout: positiveDuration(true),
  connMaxLifetime: positiveDuration(true),
  maxIdleConnsPerAddr: integerAtLeast(1),
  disableBinaryEncodedKeys: boolean,
  keyHash: oneOf(["sha256-128", "xxhash64"]),
  compression: compressionCodec,
  retry: schedule,
  reconnect: schedule,
  stallTimeout: positiveDuration(false),
  failoverTtl: expirationAtLeast(1),
  tracing,
  metrics: boolean,
  tls: tlsOption,
  auth: authOption,
  discovery: discoveryOption,
  // MemoryOptions (layerMemory)
  maxItemSize: integerAtLeast(1),
}

const invalid = (option: string, value: unknown, reason: string) =>
  new InvalidOption({ option, value: render(value), reason })

const SERVER_RULE =
  'must be a non-empty string ("host:port", "host:port:weight", "[ipv6]:port" or a unix socket path) or { address, weight?, tls? }'

/** `servers`: a non-empty array of parseable specs, no two naming the same server once normalised. */
const checkServers = (given: unknown): ReadonlyArray<string | Record<string, unknown>> | InvalidOption | NoServers => {
  if (given === undefined) return invalid("servers", given, "must be given (or discovery, whose configuration endpoint lists them)")
  if (!Array.isArray(given)) return invalid("servers", given, "must be an array of server addresses")
  const servers: Array<unknown> = Array.from(given) // read once
  if (servers.length === 0) return new NoServers({ reason: "the servers list is empty" })
  const seen = new Map<string, number>()
  for (let i = 0; i < servers.length; i++) {
    const spec: unknown = servers[i]
    const option = `servers[${i}]`
    let address: string
    if (isObject(spec)) {
      const { address: a, weight, tls } = spec
      if (typeof a !== "string" || a.length === 0) return invalid(option, shown("tls", spec), SERVER_RULE)
      if (weight !== undefined && !(Number.isSafeInteger(weight) && (weight as number) >= 0))
        return invalid(option, shown("tls", spec), `${SERVER_RULE}; weight must be an integer >= 0`)
      if (tls !== undefined) {
        const reason = tlsOption(tls)
        if (reason !== undefined) return invalid(`${option}.tls`, shown("tls", tls), reason)
      }
      servers[i] = { ...spec } // read once
    } else if (typeof spec !== "string" || spec.length === 0) return invalid(option, spec, SERVER_RULE)
    try {
      const s = servers[i] as string | { readonly address: string; readonly weight?: number }
      address = parseServerSpec(s).address
    } catch (e) {
      return invalid(option, spec, reasonOf(e))
    }
    const first = seen.get(address)
    if (first !== undefined) return invalid(option, spec, `duplicate server: servers[${first}] is also ${address}`)
    seen.set(address, i)
  }
  return servers as Array<string | Record<string, unknown>>
}

/**
 * Checks options and returns a plain copy of them (each option read once, so a getter or a Proxy
 * is not asked again later). `servers`: whether the server list is required and checked (TCP) or
 * not used (memory).
 */
export const checkOptions = <O extends object>(
  options: O | undefined,
  servers: "required" | "unused",
): Effect.Effect<O, InvalidOption | NoServers> =>
  Effect.suspend(() => {
    let result: Record<string, unknown> | InvalidOption | NoServers
    try {
      result = check(options, servers)
    } catch (e) {
      // a getter or a Proxy trap threw while an option was read
      result = invalid("options", options, `could not be read: ${reasonOf(e)}`)
    }
    return result instanceof InvalidOption || result instanceof NoServers ? Effect.fail(result) : Effect.succeed(result as O)
  })

const check = (options: unknown, servers: "required" | "unused"): Record<string, unknown> | InvalidOption | NoServers => {
  if (options === undefined && servers === "unused") return {}
  if (typeof options !== "object" || options === null || Array.isArray(options))
    return invalid("options", options, "must be an object")
  const copy: Record<string, unknown> = { ...options }
  // Options inherited from a prototype (class getters) are read as well.
  for (const name of [...Object.keys(checks), "servers"]) if (name in options) copy[name] = (options as Record<string, unknown>)[name]
  if (servers === "required" && copy.discovery !== undefined) {
    // The configuration endpoint lists the servers, and ketama places keys on them.
    if (copy.servers !== undefined) return invalid("servers", copy.servers, "must be omitted with discovery (the configuration endpoint lists the servers)")
    if (copy.pickServer !== undefined) return invalid("pickServer", copy.pickServer, "must be omitted with discovery (keys are placed by ketama over the discovered nodes)")
  } else if (servers === "required") {
    const list = checkServers(copy.servers)
    if (list instanceof InvalidOption || list instanceof NoServers) return list
    copy.servers = list
  }
  for (const name in checks) {
    const value = copy[name]
    if (value === undefined) continue
    const reason = checks[name]!(value)
    if (reason !== undefined) return invalid(name, shown(name, value), reason)
  }
  return copy
}
