/**
 * A scriptable fake memcached for hostile-path tests.
 *
 * It speaks enough of the meta text protocol (mg, ms, md, ma, mn, plus version and quit) for the
 * client to run against it, checked against memcached 1.6.18's replies, and lets a test choose a
 * {@link Fault} for every request: drop, replace or pad the reply, delay or trickle it, stall or
 * close the connection.
 *
 * Rules worth knowing:
 * - Every request the script sees is applied to the store first; the fault only shapes what goes
 *   on the wire (so a dropped `ms` still stored its value, like a reply lost on the way back).
 * - Replies on one connection leave in request order: a delayed or trickled reply holds back the
 *   later ones. `stall` holds them back for ever; requests after it are still parsed and logged,
 *   but not shown to the script, not applied and never answered. After `close` (or `quit`) the
 *   rest of the connection's input is ignored.
 * - Store keys are the key's bytes as a latin1 string (for a plain key that is the key as written
 *   on the wire; for a `b` key it is the base64-decoded bytes).
 * - TTLs are seconds (0 = never, negative = already expired, above 30 days = unix time) and expire
 *   by wall clock. CAS is one counter per server, bumped on every store.
 * - Accepted but ignored flags: mg h l u E N R, ms I N, md E I T (`md ... I` deletes outright).
 *   No LRU, no memory limit; an item over 1 MiB gets `SERVER_ERROR object too large for cache`.
 */
import * as net from "node:net"

/** One complete request as the server parsed it. */
export interface ScriptedRequest {
  /** 0-based, per server, across connections; counts every command, version and mn included */
  readonly index: number
  /** 0-based number of the connection it came on (see {@link ScriptedServer.connections}) */
  readonly connection: number
  /** first token: "mg" | "ms" | "md" | "ma" | "mn" | "version" | anything else ("" for a blank line) */
  readonly command: string
  /** second token, as on the wire (still base64 with the `b` flag); undefined for version and mn */
  readonly key: string | undefined
  /** the line split on spaces, command included */
  readonly tokens: ReadonlyArray<string>
  /** the request line without its line ending */
  readonly line: string
  /** the data block of an `ms` (without the trailing \r\n) */
  readonly value: Buffer | undefined
}

/** What the server does with one request's reply. */
export type Fault =
  /** send the reply */
  | { readonly kind: "normal" }
  /** send no reply for this request (later replies still go out) */
  | { readonly kind: "drop" }
  /** send these bytes instead of the reply */
  | { readonly kind: "replace"; readonly bytes: string | Buffer }
  /** send the reply, then these bytes */
  | { readonly kind: "extra"; readonly bytes: string | Buffer }
  /** send these bytes, then the reply */
  | { readonly kind: "before"; readonly bytes: string | Buffer }
  /** send the reply `millis` after the request arrived; later replies on the connection wait behind it */
  | { readonly kind: "delay"; readonly millis: number }
  /** send the reply `bytesPerTick` bytes at a time, the first at once and then one every `intervalMillis` */
  | { readonly kind: "trickle"; readonly bytesPerTick: number; readonly intervalMillis: number }
  /** never reply to this or any later request on this connection, but keep the socket open */
  | { readonly kind: "stall" }
  /** destroy the connection instead of replying (once the earlier replies have gone out) */
  | { readonly kind: "close" }

export type Script = (request: ScriptedRequest) => Fault

/** What `onConnect` decides for a new connection. */
export type ConnectDecision = "accept" | { readonly kind: "reject"; readonly bytes: string | Buffer }

/** An item in {@link ScriptedServer.store}; fields may be changed by tests. */
export interface StoredItem {
  value: Buffer
  /** client flags (32-bit unsigned) */
  flags: number
  cas: bigint
  /** absolute expiry in epoch milliseconds; 0 = never */
  exp: number
}

export interface ScriptedServer {
  /** "127.0.0.1:<port>" */
  readonly address: string
  readonly port: number
  /** every request seen so far, in arrival order (a live array) */
  readonly requests: ReadonlyArray<ScriptedRequest>
  /** connections accepted so far, rejected ones included */
  readonly connections: number
  /** connections open right now */
  readonly openConnections: () => number
  /** replace the script (applies to requests parsed from now on) */
  readonly setScript: (script: Script) => void
  /** the items, keyed by the key's bytes as a latin1 string */
  readonly store: Map<string, StoredItem>
  /** destroys every socket and closes the listener */
  readonly close: () => Promise<void>
}

export interface ScriptedServerOptions {
  /** the fault for each request; default: always `normal` */
  readonly script?: Script
  /** what `version` answers; default "1.6.18" */
  readonly version?: string
  /**
   * Called for every new connection with its 0-based number. A `reject` writes the bytes and
   * closes, as memcached does past `-c` with "ERROR Too many open connections\r\n".
   */
  readonly onConnect?: (socket: net.Socket, connection: number) => ConnectDecision
}

export const normal: Fault = { kind: "normal" }

const MAX_KEY = 250
const MAX_ITEM = 1024 * 1024
const MAX_OPAQUE = 32
const THIRTY_DAYS = 60 * 60 * 24 * 30
const U64 = (1n << 64n) - 1n

const CRLF = "\r\n"
const ERROR = "ERROR\r\n"
const BAD_FORMAT = "CLIENT_ERROR bad command line format\r\n"
const BAD_TOKEN = "CLIENT_ERROR bad token in command line format\r\n"
const INVALID_FLAG = "CLIENT_ERROR invalid flag\r\n"

const toBuffer = (bytes: string | Buffer): Buffer => (typeof bytes === "string" ? Buffer.from(bytes, "latin1") : bytes)

type Out =
  | { readonly tag: "bytes"; readonly bytes: Buffer; readonly readyAt: number }
  | { readonly tag: "trickle"; readonly bytes: Buffer; readonly bytesPerTick: number; readonly intervalMillis: number }
  | { readonly tag: "stall" }
  | { readonly tag: "close" }

interface Connection {
  readonly id: number
  readonly socket: net.Socket
  buffer: Buffer
  pending: { readonly line: string; readonly tokens: ReadonlyArray<string>; readonly length: number } | undefined
  readonly queue: Array<Out>
  pumping: boolean
  stalled: boolean
  closing: boolean
  dead: boolean
  readonly timers: Set<NodeJS.Timeout>
}

/** Parsed meta flags: letters in request order, and each letter's token. */
interface Flags {
  readonly order: ReadonlyArray<string>
  readonly args: ReadonlyMap<string, string>
}

class ReplyError extends Error {
  constructor(readonly reply: string) {
    super(reply)
  }
}

const parseFlags = (tokens: ReadonlyArray<string>, allowed: string, withArgs: string): Flags => {
  const order: Array<string> = []
  const args = new Map<string, string>()
  for (const token of tokens) {
    const letter = token[0]!
    if (!allowed.includes(letter)) throw new ReplyError(INVALID_FLAG)
    const arg = token.slice(1)
    if (withArgs.includes(letter) && arg.length === 0) throw new ReplyError(BAD_TOKEN)
    if (letter === "O" && arg.length > MAX_OPAQUE) throw new ReplyError("CLIENT_ERROR opaque token too long\r\n")
    if (!args.has(letter)) order.push(letter)
    args.set(letter, arg)
  }
  return { order, args }
}

const intArg = (flags: Flags, letter: string): number | undefined => {
  const arg = flags.args.get(letter)
  if (arg === undefined) return undefined
  if (!/^-?\d{1,18}$/.test(arg)) throw new ReplyError(BAD_TOKEN)
  return Number(arg)
}

const u64Arg = (flags: Flags, letter: string): bigint | undefined => {
  const arg = flags.args.get(letter)
  if (arg === undefined) return undefined
  if (!/^\d{1,20}$/.test(arg) || BigInt(arg) > U64) throw new ReplyError(BAD_TOKEN)
  return BigInt(arg)
}

/** The store key for a wire key, or a reply error. */
const decodeKey = (wire: string, base64: boolean): string => {
  if (!base64) {
    if (wire.length > MAX_KEY) throw new ReplyError(BAD_FORMAT)
    return wire
  }
  if (wire.length % 4 !== 0 || !/^[A-Za-z0-9+/]+={0,2}$/.test(wire)) throw new ReplyError("CLIENT_ERROR error decoding key\r\n")
  const bytes = Buffer.from(wire, "base64")
  if (bytes.length === 0 || bytes.length > MAX_KEY) throw new ReplyError(BAD_FORMAT)
  return bytes.toString("latin1")
}

const expiryOf = (ttl: number, now: number): number => {
  if (ttl === 0) return 0
  if (ttl < 0) return now - 1
  if (ttl > THIRTY_DAYS) return Math.max(1, ttl * 1000)
  return now + ttl * 1000
}

const ttlLeft = (item: StoredItem, now: number): number => (item.exp === 0 ? -1 : Math.max(0, Math.ceil((item.exp - now) / 1000)))

const line = (code: string, flags: ReadonlyArray<string>): string => (flags.length === 0 ? code : `${code} ${flags.join(" ")}`) + CRLF

/** Starts a scripted server on a free loopback port. */
export const scriptedServer = (options: ScriptedServerOptions = {}): Promise<ScriptedServer> => {
  const version = options.version ?? "1.6.18"
  let script: Script = options.script ?? (() => normal)
  const requests: Array<ScriptedRequest> = []
  const store = new Map<string, StoredItem>()
  const open = new Set<Connection>()
  let accepted = 0
  let casCounter = 0n

  const lookup = (key: string, now: number): StoredItem | undefined => {
    const item = store.get(key)
    if (item !== undefined && item.exp !== 0 && item.exp <= now) {
      store.delete(key)
      return undefined
    }
    return item
  }

  /** The flags to echo: O, and k (with b after it when the key came as base64). */
  const echo = (flags: Flags, key: string, letter: string, out: Array<string>): boolean => {
    switch (letter) {
      case "O":
        out.push(`O${flags.args.get("O")}`)
        return true
      case "k":
        if (flags.args.has("b")) out.push(`k${Buffer.from(key, "latin1").toString("base64")}`, "b")
        else out.push(`k${key}`)
        return true
      default:
        return false
    }
  }

  const mg = (tokens: ReadonlyArray<string>): string | Buffer => {
    const flags = parseFlags(tokens.slice(2), "bcfhklOqstuvENRT", "ONRTE")
    const key = decodeKey(tokens[1]!, flags.args.has("b"))
    const now = Date.now()
    const touch = intArg(flags, "T")
    intArg(flags, "N")
    intArg(flags, "R")
    u64Arg(flags, "E")
    const item = lookup(key, now)
    if (item === undefined) {
      if (flags.args.has("q")) return ""
      const out: Array<string> = []
      for (const letter of flags.order) echo(flags, key, letter, out)
      return line("EN", out)
    }
    if (touch !== undefined) item.exp = expiryOf(touch, now)
    const out: Array<string> = []
    for (const letter of flags.order) {
      if (echo(flags, key, letter, out)) continue
      if (letter === "c") out.push(`c${item.cas}`)
      else if (letter === "f") out.push(`f${item.flags}`)
      else if (letter === "s") out.push(`s${item.value.length}`)
      else if (letter === "t") out.push(`t${ttlLeft(item, now)}`)
    }
    if (touch !== undefined && item.exp !== 0 && item.exp <= now) store.delete(key)
    if (!flags.args.has("v")) return line("HD", out)
    return Buffer.concat([Buffer.from(line(`VA ${item.value.length}`, out), "latin1"), item.value, Buffer.from(CRLF)])
  }

  const ms = (tokens: ReadonlyArray<string>, value: Buffer, terminated: boolean): string => {
    const flags = parseFlags(tokens.slice(3), "bcCEFIkOqTMN", "CEFTMNO")
    const key = decodeKey(tokens[1]!, flags.args.has("b"))
    const clientFlags = u64Arg(flags, "F")
    if (clientFlags !== undefined && clientFlags > 0xffffffffn) throw new ReplyError(BAD_TOKEN)
    const ttl = intArg(flags, "T") ?? 0
    const compare = u64Arg(flags, "C")
    const explicitCas = u64Arg(flags, "E")
    intArg(flags, "N")
    const mode = flags.args.get("M") ?? "S"
    if (mode.length !== 1 || !"EAPRS".includes(mode)) throw new ReplyError("CLIENT_ERROR invalid mode for ms M token\r\n")
    if (!terminated) return "CLIENT_ERROR bad data chunk\r\n"
    if (value.length > MAX_ITEM) return "SERVER_ERROR object too large for cache\r\n"
    const now = Date.now()
    const existing = lookup(key, now)
    const reply = (code: string, cas?: bigint): string => {
      if (code === "HD" && flags.args.has("q")) return ""
      const out: Array<string> = []
      for (const letter of flags.order) {
        if (echo(flags, key, letter, out)) continue
        if (letter === "c") out.push(`c${cas ?? 0n}`)
      }
      return line(code, out)
    }
    if (compare !== undefined) {
      if (existing === undefined) return reply("NF")
      if (existing.cas !== compare) return reply("EX")
    }
    if (mode === "E" && existing !== undefined) return reply("NS")
    if ((mode === "A" || mode === "P" || mode === "R") && existing === undefined) return reply("NS")
    const cas = explicitCas ?? ++casCounter
    if ((mode === "A" || mode === "P") && existing !== undefined) {
      existing.value = mode === "A" ? Buffer.concat([existing.value, value]) : Buffer.concat([value, existing.value])
      existing.cas = cas
      return reply("HD", cas)
    }
    store.set(key, { value, flags: Number(clientFlags ?? 0n), cas, exp: expiryOf(ttl, now) })
    return reply("HD", cas)
  }

  const md = (tokens: ReadonlyArray<string>): string => {
    const flags = parseFlags(tokens.slice(2), "bCEIkOqTx", "CEOT")
    const key = decodeKey(tokens[1]!, flags.args.has("b"))
    const compare = u64Arg(flags, "C")
    u64Arg(flags, "E")
    intArg(flags, "T")
    const reply = (code: string): string => {
      if (code === "HD" && flags.args.has("q")) return ""
      const out: Array<string> = []
      for (const letter of flags.order) echo(flags, key, letter, out)
      return line(code, out)
    }
    const item = lookup(key, Date.now())
    if (item === undefined) return reply("NF")
    if (compare !== undefined && item.cas !== compare) return reply("EX")
    if (flags.args.has("x")) {
      item.value = Buffer.alloc(0)
      item.flags = 0
      item.cas = ++casCounter
    } else {
      store.delete(key)
    }
    return reply("HD")
  }

  const ma = (tokens: ReadonlyArray<string>): string => {
    const flags = parseFlags(tokens.slice(2), "bCENJDTMqOtcvk", "CENJDTMO")
    const key = decodeKey(tokens[1]!, flags.args.has("b"))
    const compare = u64Arg(flags, "C")
    const explicitCas = u64Arg(flags, "E")
    const vivify = intArg(flags, "N")
    const initial = u64Arg(flags, "J") ?? 0n
    const delta = u64Arg(flags, "D") ?? 1n
    const touch = intArg(flags, "T")
    const mode = flags.args.get("M") ?? "I"
    if (mode.length !== 1 || !"Ii+Dd-".includes(mode)) throw new ReplyError("CLIENT_ERROR invalid mode for ma M token\r\n")
    const now = Date.now()
    let item = lookup(key, now)
    const reply = (code: string, target?: StoredItem): string => {
      if (code === "HD" && flags.args.has("q")) return ""
      const out: Array<string> = []
      for (const letter of flags.order) {
        if (echo(flags, key, letter, out)) continue
        if (target === undefined) continue
        if (letter === "c") out.push(`c${target.cas}`)
        else if (letter === "t") out.push(`t${ttlLeft(target, now)}`)
      }
      if (code === "HD" && target !== undefined && flags.args.has("v")) {
        const number = target.value.toString("latin1")
        return line(`VA ${number.length}`, out) + number + CRLF
      }
      return line(code, out)
    }
    if (item === undefined) {
      if (vivify === undefined) return reply("NF")
      item = { value: Buffer.from(String(initial), "latin1"), flags: 0, cas: explicitCas ?? ++casCounter, exp: expiryOf(vivify, now) }
      store.set(key, item)
      return reply("HD", item)
    }
    if (compare !== undefined && item.cas !== compare) return reply("EX")
    const text = item.value.toString("latin1")
    if (!/^\d{1,20}$/.test(text) || BigInt(text) > U64) {
      return "CLIENT_ERROR cannot increment or decrement non-numeric value\r\n"
    }
    const current = BigInt(text)
    const next = "Ii+".includes(mode) ? (current + delta) & U64 : current > delta ? current - delta : 0n
    item.value = Buffer.from(String(next), "latin1")
    item.cas = explicitCas ?? ++casCounter
    if (touch !== undefined) item.exp = expiryOf(touch, now)
    return reply("HD", item)
  }

  /** The reply to one request, or "close" for quit. */
  const execute = (tokens: ReadonlyArray<string>, value: Buffer | undefined, terminated: boolean): string | Buffer | "close" => {
    const command = tokens[0]
    try {
      switch (command) {
        case "version":
          return `VERSION ${version}\r\n`
        case "mn":
          return "MN\r\n"
        case "quit":
          return "close"
        case "mg":
        case "md":
        case "ma":
          if (tokens.length < 2) return ERROR
          return command === "mg" ? mg(tokens) : command === "md" ? md(tokens) : ma(tokens)
        case "ms":
          if (tokens.length < 2) return ERROR
          if (value === undefined) return BAD_FORMAT
          return ms(tokens, value, terminated)
        default:
          return ERROR
      }
    } catch (e) {
      if (e instanceof ReplyError) return e.reply
      throw e
    }
  }

  const sleep = (conn: Connection, millis: number): Promise<void> =>
    new Promise((resolve) => {
      const timer = setTimeout(() => {
        conn.timers.delete(timer)
        resolve()
      }, millis)
      conn.timers.add(timer)
    })

  /** Sends the queued output in order; waits where a delay or trickle says so. */
  const pump = async (conn: Connection): Promise<void> => {
    if (conn.pumping) return
    conn.pumping = true
    while (conn.queue.length > 0 && !conn.dead) {
      const out = conn.queue[0]!
      switch (out.tag) {
        case "stall":
          return // pumping stays true: nothing more leaves this connection
        case "close": {
          // flush what went before (the socket may be corked), then go
          conn.closing = true
          const socket = conn.socket
          socket.uncork()
          socket.end(() => socket.destroy())
          return
        }
        case "bytes": {
          const wait = out.readyAt - Date.now()
          if (wait > 0) {
            await sleep(conn, wait)
            if (conn.dead) return
          }
          if (out.bytes.length > 0) conn.socket.write(out.bytes)
          break
        }
        case "trickle": {
          const step = Math.max(1, Math.floor(out.bytesPerTick))
          for (let offset = 0; offset < out.bytes.length; offset += step) {
            if (offset > 0) {
              await sleep(conn, out.intervalMillis)
              if (conn.dead) return
            }
            conn.socket.write(out.bytes.subarray(offset, offset + step))
          }
          break
        }
      }
      conn.queue.shift()
    }
    conn.pumping = false
  }

  const enqueue = (conn: Connection, fault: Fault, reply: Buffer | "close"): void => {
    if (reply === "close") {
      conn.closing = true
      conn.queue.push({ tag: "close" })
      return
    }
    const now = Date.now()
    switch (fault.kind) {
      case "normal":
        conn.queue.push({ tag: "bytes", bytes: reply, readyAt: now })
        break
      case "drop":
        break
      case "replace":
        conn.queue.push({ tag: "bytes", bytes: toBuffer(fault.bytes), readyAt: now })
        break
      case "extra":
        conn.queue.push({ tag: "bytes", bytes: Buffer.concat([reply, toBuffer(fault.bytes)]), readyAt: now })
        break
      case "before":
        conn.queue.push({ tag: "bytes", bytes: Buffer.concat([toBuffer(fault.bytes), reply]), readyAt: now })
        break
      case "delay":
        conn.queue.push({ tag: "bytes", bytes: reply, readyAt: now + fault.millis })
        break
      case "trickle":
        conn.queue.push({ tag: "trickle", bytes: reply, bytesPerTick: fault.bytesPerTick, intervalMillis: fault.intervalMillis })
        break
      case "stall":
        conn.stalled = true
        conn.queue.push({ tag: "stall" })
        break
      case "close":
        conn.closing = true
        conn.queue.push({ tag: "close" })
        break
    }
  }

  const handle = (conn: Connection, text: string, tokens: ReadonlyArray<string>, value: Buffer | undefined, terminated: boolean): void => {
    const command = tokens[0] ?? ""
    const request: ScriptedRequest = {
      index: requests.length,
      connection: conn.id,
      command,
      key: command === "version" || command === "mn" ? undefined : tokens[1],
      tokens,
      line: text,
      value,
    }
    requests.push(request)
    if (conn.stalled) return
    const fault = script(request)
    const reply = execute(tokens, value, terminated)
    enqueue(conn, fault, typeof reply === "string" && reply !== "close" ? Buffer.from(reply, "latin1") : reply)
  }

  /** Parses every complete request in the buffer. */
  const parse = (conn: Connection): void => {
    while (!conn.closing && !conn.dead) {
      if (conn.pending !== undefined) {
        const { line: text, tokens, length } = conn.pending
        if (conn.buffer.length < length + 2) return
        const value = Buffer.from(conn.buffer.subarray(0, length))
        const terminated = conn.buffer[length] === 13 && conn.buffer[length + 1] === 10
        conn.buffer = conn.buffer.subarray(length + 2)
        conn.pending = undefined
        handle(conn, text, tokens, value, terminated)
        continue
      }
      const newline = conn.buffer.indexOf(10)
      if (newline < 0) return
      const end = newline > 0 && conn.buffer[newline - 1] === 13 ? newline - 1 : newline
      const text = conn.buffer.toString("latin1", 0, end)
      conn.buffer = conn.buffer.subarray(newline + 1)
      const tokens = text.split(" ").filter((t) => t.length > 0)
      if (tokens[0] === "ms" && tokens.length >= 3 && /^\d{1,10}$/.test(tokens[2]!)) {
        conn.pending = { line: text, tokens, length: Number(tokens[2]) }
        continue
      }
      handle(conn, text, tokens, undefined, true)
    }
  }

  const server = net.createServer((socket) => {
    const id = accepted++
    const conn: Connection = {
      id,
      socket,
      buffer: Buffer.alloc(0),
      pending: undefined,
      queue: [],
      pumping: false,
      stalled: false,
      closing: false,
      dead: false,
      timers: new Set(),
    }
    open.add(conn)
    socket.setNoDelay(true)
    socket.on("error", () => {})
    socket.on("close", () => {
      conn.dead = true
      for (const timer of conn.timers) clearTimeout(timer)
      conn.timers.clear()
      open.delete(conn)
    })
    const decision = options.onConnect?.(socket, id) ?? "accept"
    if (decision !== "accept") {
      conn.closing = true
      socket.end(toBuffer(decision.bytes), () => socket.destroy())
      return
    }
    socket.on("data", (chunk: Buffer) => {
      if (conn.closing || conn.dead) return
      conn.buffer = conn.buffer.length === 0 ? chunk : Buffer.concat([conn.buffer, chunk])
      socket.cork()
      try {
        parse(conn)
        void pump(conn)
      } finally {
        socket.uncork()
      }
    })
  })

  return new Promise((resolve, reject) => {
    server.once("error", reject)
    server.listen(0, "127.0.0.1", () => {
      const { port } = server.address() as net.AddressInfo
      resolve({
        address: `127.0.0.1:${port}`,
        port,
        get requests() {
          return requests
        },
        get connections() {
          return accepted
        },
        openConnections: () => open.size,
        setScript: (next) => {
          script = next
        },
        store,
        close: () =>
          new Promise<void>((done) => {
            for (const conn of open) {
              conn.dead = true
              for (const timer of conn.timers) clearTimeout(timer)
              conn.socket.destroy()
            }
            server.close(() => done())
          }),
      })
    })
  })
}

/** A raw TCP client for talking to a server byte by byte in tests. */
export interface RawClient {
  readonly socket: net.Socket
  readonly write: (bytes: string | Buffer) => void
  /** every byte received so far */
  readonly received: () => Buffer
  /** the received data events, with their arrival time (Date.now()) */
  readonly chunks: ReadonlyArray<{ readonly at: number; readonly bytes: Buffer }>
  /** resolves with everything received once `done(received)` holds; rejects on timeout or close first */
  readonly waitFor: (done: (received: Buffer) => boolean, timeoutMillis?: number) => Promise<Buffer>
  /** waitFor until the received bytes (latin1) contain `text` */
  readonly waitForText: (text: string, timeoutMillis?: number) => Promise<string>
  /** resolves when the socket has closed */
  readonly closed: Promise<void>
  readonly isClosed: () => boolean
  readonly close: () => void
}

/** Connects to "host:port"; resolves once connected. */
export const rawClient = (address: string): Promise<RawClient> =>
  new Promise((resolve, reject) => {
    const colon = address.lastIndexOf(":")
    const socket = net.createConnection({ host: address.slice(0, colon), port: Number(address.slice(colon + 1)) })
    socket.setNoDelay(true)
    const chunks: Array<{ at: number; bytes: Buffer }> = []
    let received = Buffer.alloc(0)
    let isClosed = false
    const listeners = new Set<() => void>()
    const notify = () => {
      for (const listener of [...listeners]) listener()
    }
    const closed = new Promise<void>((done) =>
      socket.once("close", () => {
        isClosed = true
        notify()
        done()
      }),
    )
    socket.on("data", (bytes: Buffer) => {
      chunks.push({ at: Date.now(), bytes })
      received = Buffer.concat([received, bytes])
      notify()
    })
    const waitFor = (done: (received: Buffer) => boolean, timeoutMillis = 2000): Promise<Buffer> =>
      new Promise((ok, fail) => {
        const finish = (error?: Error) => {
          clearTimeout(timer)
          listeners.delete(check)
          if (error === undefined) ok(received)
          else fail(error)
        }
        const check = () => {
          if (done(received)) finish()
          else if (isClosed) finish(new Error(`closed before the condition held; received ${JSON.stringify(received.toString("latin1"))}`))
        }
        const timer = setTimeout(
          () => finish(new Error(`timed out after ${timeoutMillis}ms; received ${JSON.stringify(received.toString("latin1"))}`)),
          timeoutMillis,
        )
        listeners.add(check)
        check()
      })
    socket.once("error", (e) => {
      if (!isClosed && chunks.length === 0) reject(e)
    })
    socket.once("connect", () => {
      socket.on("error", () => {})
      resolve({
        socket,
        write: (bytes) => {
          socket.write(bytes)
        },
        received: () => received,
        chunks,
        waitFor,
        waitForText: (text, timeoutMillis) =>
          waitFor((r) => r.toString("latin1").includes(text), timeoutMillis).then((r) => r.toString("latin1")),
        closed,
        isClosed: () => isClosed,
        close: () => {
          socket.destroy()
        },
      })
    })
  })
