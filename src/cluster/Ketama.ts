/**
 * Consistent hashing compatible with libmemcached's weighted ketama
 * (MEMCACHED_BEHAVIOR_KETAMA_WEIGHTED, i.e. PHP Memcached's
 * OPT_LIBKETAMA_COMPATIBLE, pylibmc's `ketama_weighted`), checked key for key
 * against libmemcached itself by test/cluster/Ketama.test.ts.
 *
 * - Each server gets `floor(weight / totalWeight * 160 / 4 * n + 1e-10) * 4`
 *   points, evaluated in single precision as libmemcached does (so 25 equal
 *   servers get 156 points each, not 160).
 * - Point names are `host-i` for port 11211 and `host:port-i` otherwise, for
 *   i in [0, points / 4). libmemcached stores a unix socket with port 0, so
 *   its names are `/path:0-i` (PHP's addServer(path, 0) is the odd one out:
 *   it gets port 11211, hence `/path-i`). Each name's md5 yields four points,
 *   its 32-bit little-endian words in order.
 * - Points are sorted by value, ties by server position in the list.
 * - A key hashes to the first md5 word of the key, little-endian, and belongs
 *   to the first point >= that hash, wrapping to the first point.
 *
 * @since 0.1.0
 */
import { hash } from "node:crypto"

/** @since 0.1.0 */
export interface ServerSpec {
  /** `host:port`, or an absolute unix socket path */
  readonly address: string
  /** a positive integer; relative share of the keys */
  readonly weight: number
}

const DEFAULT_PORT = 11211
const MAX_WEIGHT = 0xffff_ffff // libmemcached stores weights as uint32

const parseInteger = (text: string, what: string, spec: string): number => {
  if (!/^\d+$/.test(text)) throw new Error(`Invalid ${what} in server spec "${spec}"`)
  return Number(text)
}

const checkWeight = (weight: number, spec: string): number => {
  if (!Number.isInteger(weight) || weight < 0 || weight > MAX_WEIGHT) {
    throw new Error(`Invalid weight in server spec "${spec}"`)
  }
  return weight === 0 ? 1 : weight // libmemcached treats 0 as the default, 1
}

// `[v6]` or `[v6]:port`: an IPv6 literal in brackets (the host keeps them).
const BRACKETED = /^(\[[0-9A-Za-z:.%_-]*:[0-9A-Za-z:.%_-]*\])(?::([^:]*))?$/

/** Returns `[host, port]`, or `[path, undefined]` for a unix socket. */
const splitAddress = (address: string, spec: string): readonly [string, number | undefined] => {
  if (address.startsWith("/")) return [address, undefined]
  const v6 = address.startsWith("[") ? BRACKETED.exec(address) : null
  if (address.startsWith("[") && v6 === null) throw new Error(`Invalid address in server spec "${spec}"`)
  const [host = "", port, ...rest] = v6 === null ? address.split(":") : [v6[1]!, ...(v6[2] === undefined ? [] : [v6[2]])]
  if (host === "" || rest.length > 0) throw new Error(`Invalid address in server spec "${spec}"`)
  if (port === undefined) return [host, DEFAULT_PORT]
  const n = parseInteger(port, "port", spec)
  if (n < 1 || n > 65535) throw new Error(`Invalid port in server spec "${spec}"`)
  return [host, n]
}

/**
 * Parses `host`, `host:port`, `host:port:weight`, `/unix/path` or
 * `{ address, weight }`. The port defaults to 11211 and the weight to 1; a
 * weight of 0 means 1, as in libmemcached. An IPv6 literal goes in brackets:
 * `[::1]`, `[::1]:11211`, `[::1]:11211:2`.
 * Throws on malformed input.
 *
 * @since 0.1.0
 */
export const parseServerSpec = (
  s: string | { readonly address: string; readonly weight?: number }
): ServerSpec => {
  const spec = typeof s === "string" ? s : s.address
  let address = spec
  let weight = typeof s === "string" ? 1 : s.weight ?? 1
  if (typeof s === "string" && s.startsWith("[")) {
    const close = s.indexOf("]")
    const parts = close < 0 ? [] : s.slice(close + 1).split(":")
    if (parts.length === 3) {
      weight = parseInteger(parts[2]!, "weight", spec)
      address = s.slice(0, close + 1) + ":" + parts[1]
    }
  } else if (typeof s === "string" && !s.startsWith("/")) {
    const parts = s.split(":")
    if (parts.length === 3) {
      weight = parseInteger(parts[2]!, "weight", spec)
      address = `${parts[0]}:${parts[1]}`
    }
  }
  const [host, port] = splitAddress(address, spec)
  return {
    address: port === undefined ? host : `${host}:${port}`,
    weight: checkWeight(weight, spec)
  }
}

/** @since 0.1.0 */
export interface KetamaRing {
  /** the normalized server addresses, in configuration order */
  readonly servers: ReadonlyArray<string>
  /**
   * Every distinct server address in ring order from the key's point: the
   * primary first, then the failover alternates. Servers too light to own a
   * point come last.
   */
  readonly pick: (key: string) => ReadonlyArray<string>
}

const md5 = (data: string): Buffer => hash("md5", data, "buffer")

const PICK_MEMO_LIMIT = 16_384

const f32 = Math.fround

/** libmemcached's update_continuum arithmetic, which is in `float`. */
const pointsFor = (weight: number, totalWeight: number, serverCount: number): number => {
  const pct = f32(f32(weight) / f32(totalWeight))
  const quarter = f32(f32(f32(pct * 160) / 4) * f32(serverCount))
  return Math.floor(f32(quarter + f32(1e-10))) * 4
}

/**
 * Builds the ring; server specs go through `parseServerSpec`, so `servers`
 * holds normalized addresses. Throws on a duplicate address.
 *
 * @since 0.1.0
 */
export const makeKetamaRing = (specs: ReadonlyArray<ServerSpec>): KetamaRing => {
  const parsed = specs.map(parseServerSpec)
  const servers = parsed.map((s) => s.address)
  if (new Set(servers).size !== servers.length) {
    throw new Error(`Duplicate server address in ${JSON.stringify(servers)}`)
  }
  if (servers.length <= 1) {
    const only = Object.freeze([...servers])
    return { servers: only, pick: () => only }
  }

  const totalWeight = parsed.reduce((sum, s) => sum + s.weight, 0)
  const pointCounts = parsed.map((s) => pointsFor(s.weight, totalWeight, parsed.length))
  const values: Array<number> = []
  const owners: Array<number> = []
  parsed.forEach(({ address }, owner) => {
    const [host, port] = splitAddress(address, address)
    // libmemcached names an IPv6 server by its bare address
    const bare = host.startsWith("[") ? host.slice(1, -1) : host
    const prefix = port === DEFAULT_PORT ? bare : `${bare}:${port ?? 0}`
    for (let i = 0; i < pointCounts[owner]! / 4; i++) {
      const digest = md5(`${prefix}-${i}`)
      for (let word = 0; word < 4; word++) {
        values.push(digest.readUInt32LE(word * 4))
        owners.push(owner)
      }
    }
  })
  const order = values.map((_, i) => i).sort((a, b) => values[a]! - values[b]! || owners[a]! - owners[b]!)
  const ring = Uint32Array.from(order, (i) => values[i]!)
  const ringOwner = Uint32Array.from(order, (i) => owners[i]!)
  const unplaced = servers.filter((_, i) => pointCounts[i] === 0)
  const placedCount = servers.length - unplaced.length

  // The failover order from a point; computed on first use, then shared.
  const cache: Array<ReadonlyArray<string> | undefined> = new Array(ring.length)
  const walk = (start: number): ReadonlyArray<string> => {
    const seen = new Uint8Array(servers.length)
    const found: Array<string> = []
    for (let p = start; found.length < placedCount; p = p + 1 === ring.length ? 0 : p + 1) {
      const owner = ringOwner[p]!
      if (seen[owner] === 0) {
        seen[owner] = 1
        found.push(servers[owner]!)
      }
    }
    return Object.freeze([...found, ...unplaced])
  }

  const lookup = (key: string): ReadonlyArray<string> => {
    const h = md5(key).readUInt32LE(0)
    let lo = 0
    let hi = ring.length
    while (lo < hi) {
      const mid = (lo + hi) >>> 1
      if (ring[mid]! < h) lo = mid + 1
      else hi = mid
    }
    const point = lo === ring.length ? 0 : lo
    return (cache[point] ??= walk(point))
  }

  // One server owns every key: no hash to compute.
  if (placedCount + unplaced.length === 1) {
    const only = walk(0)
    return { servers: Object.freeze(servers), pick: () => only }
  }

  // Hot keys repeat: md5 through node:crypto costs ~1.5 µs, a Map hit ~35 ns. Bounded: the map
  // is dropped when full.
  let memo = new Map<string, ReadonlyArray<string>>()
  const pick = (key: string): ReadonlyArray<string> => {
    let servers = memo.get(key)
    if (servers === undefined) {
      servers = lookup(key)
      if (memo.size >= PICK_MEMO_LIMIT) memo = new Map()
      memo.set(key, servers)
    }
    return servers
  }

  return { servers: Object.freeze(servers), pick }
}
