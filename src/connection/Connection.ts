/**
 * One socket to one memcached server: a pipeline with FIFO reply matching.
 *
 * Hot-path rules (DESIGN.md §3):
 * - `send` queues the slot and the bytes in one synchronous step, so concurrent callers can never
 *   interleave a request and its slot;
 * - writes are coalesced per tick (one `socket.write` per tick);
 * - one deadline timer per connection, not per operation;
 * - on a socket error, a corrupt reply or an unresponsive server, every pending slot fails with a
 *   typed error and the socket is destroyed: a pipeline that lost sync is never reused.
 */
import * as net from "node:net"
import { ConnectionError, CorruptResponse, Timeout, UnsupportedServerVersion } from "../Errors.js"
import { type Reply, ReplyParser } from "../protocol/Reply.js"
import type { Slot, SlotFailure } from "./Slot.js"
import { parseServerVersion, type ServerVersion, supportsMetaProtocol } from "./Version.js"

export interface ConnectionOptions {
  /** "host:port" or a unix socket path */
  readonly server: string
  readonly dialTimeoutMillis: number
  /** no reply at all for this long while requests are pending: the server is considered stuck */
  readonly stallTimeoutMillis: number
  /**
   * The server passed the version check (the first reply of every connection). A failed check
   * closes the connection with `UnsupportedServerVersion` instead.
   */
  readonly onVersion: (version: ServerVersion) => void
  /** the connection is gone; `error` says why when it was not a graceful close */
  readonly onClose: (connection: Connection, error: SlotFailure | undefined) => void
}

const connectOptions = (server: string): net.NetConnectOpts => {
  if (server.startsWith("/")) return { path: server }
  const colon = server.lastIndexOf(":")
  const host = server.slice(0, colon).replace(/^\[(.*)\]$/, "$1")
  return { host, port: Number(server.slice(colon + 1)), noDelay: true }
}

/**
 * Runs `f` after the event loop has polled for I/O. Timers run before the poll phase, so when the
 * process was busy (a burst of fibers, a GC pause) a deadline can fire while its reply or the
 * connect event already waits in the kernel. Deciding after the poll avoids blaming the server
 * for our own stall.
 *
 * The decision must be taken as of the poll, not as of when `f` runs: other callbacks of the same
 * check phase may run first and keep the process busy, and what arrives meanwhile is only read by
 * the next poll. So deadline checks compare with the time the timer fired (the poll came after it),
 * and state that only I/O changes (`socket.connecting`) is read as the poll left it.
 */
const afterPendingIO = (f: () => void): void => {
  setImmediate(f)
}

export class Connection {
  readonly createdAt = Date.now()
  /** set once connected and the version check passed */
  ready = false
  closed = false
  /** no new requests are sent; closes once the in-flight ones are answered */
  draining = false
  private readonly socket: net.Socket
  private readonly parser: ReplyParser
  // FIFO of slots awaiting replies: `queue[head]` gets the next reply.
  private queue: Array<Slot | undefined> = []
  private head = 0
  // Coalesced output for this tick: strings accumulate in `outText`; value blocks force a chunk.
  private outText = ""
  private outChunks: Array<string | Uint8Array> = []
  private flushScheduled = false
  private timer: NodeJS.Timeout | undefined = undefined
  private timerAt = Number.POSITIVE_INFINITY
  // When the armed timer is due, when it last fired (`onTimer` judges deadlines as of then, see
  // afterPendingIO), and how late that was: a late timer means this process was not running.
  private timerDue = 0
  private timerFiredAt = 0
  private timerLate = 0
  // Last time the server showed life while requests were pending.
  private lastProgress = Date.now()
  private dialTimer: NodeJS.Timeout | undefined

  constructor(private readonly options: ConnectionOptions) {
    this.parser = new ReplyParser((reply) => this.dispatch(reply))
    this.socket = net.createConnection(connectOptions(options.server))
    this.socket.setNoDelay(true)
    this.dialTimer = setTimeout(
      () =>
        afterPendingIO(() => {
          if (this.socket.connecting) {
            this.fail(new ConnectionError({ server: options.server, reason: `dial timeout after ${options.dialTimeoutMillis} ms` }))
          }
        }),
      options.dialTimeoutMillis,
    )
    this.socket.once("connect", () => {
      clearTimeout(this.dialTimer)
      this.dialTimer = undefined
      this.lastProgress = Date.now()
    })
    this.socket.on("data", (chunk: Buffer) => {
      this.lastProgress = Date.now()
      const error = this.parser.push(chunk)
      if (error !== undefined) this.fail(new CorruptResponse({ server: options.server, reason: error.reason }))
    })
    this.socket.on("error", (cause) =>
      this.fail(new ConnectionError({ server: options.server, reason: cause.message, cause })),
    )
    this.socket.on("close", () => this.fail(new ConnectionError({ server: options.server, reason: "connection closed" })))
    // The version check rides the pipeline: requests sent before its answer queue behind it.
    this.send("version\r\n", undefined, {
      onReply: (reply) => {
        this.onVersionReply(reply)
        return true
      },
      onFailure: () => {},
      deadline: Date.now() + options.dialTimeoutMillis + options.stallTimeoutMillis,
      timeoutMillis: options.dialTimeoutMillis + options.stallTimeoutMillis,
      key: undefined,
      abandoned: false,
    })
  }

  get server(): string {
    return this.options.server
  }

  /** Requests awaiting replies. */
  get inFlight(): number {
    return this.queue.length - this.head
  }

  /**
   * Queues a request and its slot in one step. `value` is the data block of an `ms`; the caller
   * has put the request line in `header`.
   */
  send(header: string, value: Uint8Array | undefined, slot: Slot): void {
    if (this.closed) {
      slot.onFailure(new ConnectionError({ server: this.options.server, reason: "connection closed", key: slot.key }))
      return
    }
    if (this.head === this.queue.length) this.lastProgress = Date.now()
    this.queue.push(slot)
    if (value === undefined) {
      this.outText += header
    } else {
      this.outChunks.push(this.outText + header, value)
      this.outText = "\r\n"
    }
    if (!this.flushScheduled) {
      this.flushScheduled = true
      process.nextTick(this.flush)
    }
    if (slot.deadline < this.timerAt) this.armTimer(slot.deadline)
  }

  /** Stops taking requests and closes once the in-flight ones are answered. */
  drain(): void {
    this.draining = true
    if (this.inFlight === 0) this.close()
  }

  /** Closes now; pending slots fail with `ConnectionError`. */
  close(): void {
    this.fail(undefined)
  }

  private readonly flush = (): void => {
    this.flushScheduled = false
    if (this.closed) return
    if (this.outChunks.length === 0) {
      this.socket.write(this.outText)
    } else {
      // Values: the tick's requests go out as one buffer (one write request, one syscall).
      const chunks = this.outChunks
      chunks.push(this.outText)
      let size = 0
      for (const c of chunks) size += typeof c === "string" ? Buffer.byteLength(c) : c.byteLength
      const out = Buffer.allocUnsafe(size)
      let at = 0
      for (const c of chunks) {
        if (typeof c === "string") at += out.write(c, at)
        else {
          out.set(c, at)
          at += c.byteLength
        }
      }
      this.socket.write(out)
      this.outChunks = []
    }
    this.outText = ""
  }

  private dispatch(reply: Reply): void {
    if (this.closed) return
    const slot = this.queue[this.head]
    if (slot === undefined) {
      this.fail(new CorruptResponse({ server: this.options.server, reason: `unexpected ${reply.code} with no request pending` }))
      return
    }
    if (!slot.onReply(reply)) return
    this.queue[this.head++] = undefined
    if (this.head === this.queue.length) {
      this.queue.length = 0
      this.head = 0
      if (this.draining) this.close()
    } else if (this.head >= 1024 && this.head * 2 >= this.queue.length) {
      this.queue = this.queue.slice(this.head)
      this.head = 0
    }
  }

  private onVersionReply(reply: Reply): void {
    const version = reply.code === "VERSION" ? parseServerVersion(reply.message ?? "") : undefined
    if (version === undefined || !supportsMetaProtocol(version)) {
      const text = version?.text ?? reply.message ?? reply.code
      this.fail(new UnsupportedServerVersion({ server: this.options.server, version: text }))
      return
    }
    this.ready = true
    this.options.onVersion(version)
  }

  private armTimer(at: number): void {
    if (this.timer !== undefined) clearTimeout(this.timer)
    const now = Date.now()
    this.timerAt = at
    this.timerDue = Math.max(at, now)
    this.timer = setTimeout(this.onTimerFired, Math.max(0, at - now))
    this.timer.unref()
  }

  private readonly onTimerFired = (): void => {
    // The timer is spent: a request sent before `onTimer` runs arms a new one.
    this.timer = undefined
    this.timerAt = Number.POSITIVE_INFINITY
    this.timerFiredAt = Date.now()
    this.timerLate = this.timerFiredAt - this.timerDue
    afterPendingIO(this.onTimer)
  }

  private readonly onTimer = (): void => {
    if (this.closed) return
    // As of the poll that followed the timer: a reply that came later, while this process was
    // busy with other callbacks, is not late (it waits in the kernel for the next poll). A
    // deadline that falls in between is checked again by the next timer.
    const now = this.timerFiredAt
    const stall = this.options.stallTimeoutMillis
    let stallCheckAt = this.lastProgress + stall
    if (this.inFlight > 0 && now >= stallCheckAt) {
      if (this.timerLate <= Math.max(10, stall / 10)) {
        // Nothing came back for a whole timeout: the server (or the path to it) is stuck.
        this.fail("stall")
        return
      }
      // The timer fired late: this process was not running when the time was up (a GC pause, a
      // busy event loop, an overloaded machine), and a server on the same machine may have been
      // held up by the same cause. Give it a moment to answer before marking it down.
      stallCheckAt = now + Math.max(10, stall / 4)
    }
    let next = Number.POSITIVE_INFINITY
    for (let i = this.head; i < this.queue.length; i++) {
      const slot = this.queue[i]!
      if (slot.abandoned) continue
      if (slot.deadline <= now) {
        // The slot keeps its place: its late reply is read and dropped.
        slot.onFailure(new Timeout({ server: this.options.server, timeoutMillis: slot.timeoutMillis, key: slot.key }))
        slot.abandoned = true
      } else if (slot.deadline < next) {
        next = slot.deadline
      }
    }
    if (this.inFlight > 0) next = Math.min(next, stallCheckAt)
    if (next < this.timerAt) this.armTimer(next)
  }

  /** Ends the connection; every pending slot fails with `error` (or a Timeout for a stall). */
  private fail(error: SlotFailure | "stall" | undefined): void {
    if (this.closed) return
    this.closed = true
    if (this.timer !== undefined) clearTimeout(this.timer)
    if (this.dialTimer !== undefined) clearTimeout(this.dialTimer)
    this.socket.destroy()
    const queue = this.queue
    const head = this.head
    this.queue = []
    this.head = 0
    const server = this.options.server
    for (let i = head; i < queue.length; i++) {
      const slot = queue[i]!
      if (slot.abandoned) continue
      slot.onFailure(
        error === "stall"
          ? new Timeout({ server, timeoutMillis: slot.timeoutMillis, key: slot.key })
          : error === undefined
            ? new ConnectionError({ server, reason: "connection closed", key: slot.key })
            : error,
      )
    }
    this.options.onClose(
      this,
      error === "stall" ? new Timeout({ server, timeoutMillis: this.options.stallTimeoutMillis }) : error,
    )
  }
}
