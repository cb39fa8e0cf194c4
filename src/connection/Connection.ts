/**
 * One socket to one memcached server: a pipeline with FIFO reply matching.
 *
 * Hot-path rules (DESIGN.md §3):
 * - `send` queues the slot and the bytes in one synchronous step, so concurrent callers can never
 *   interleave a request and its slot;
 * - writes are coalesced per tick (one `socket.write` per tick);
 * - one deadline timer per connection, not per operation.
 *
 * Integrity: every request carries an opaque token (` O<n>`, n counting up per connection), and
 * its slot checks that the reply echoes it and that the reply's code can answer the request. The
 * first reply that does not fit destroys the connection: a pipeline that lost sync is never
 * reused, and its pending requests fail with `CorruptResponse`.
 *
 * Life cycle, one way: connecting → ready → (draining →) closed. `fail` is the only way to
 * closed, and it runs once: it clears both timers, destroys the socket, drops buffered bytes,
 * fails every pending slot, and tells the pool once.
 *
 * Health: a caller's deadline only fails that caller. The server is judged by `stallTimeout`:
 * while requests are pending, some whole reply must arrive within it. Trickled bytes are not
 * progress.
 */
import type * as net from "node:net"
import { ConnectionError, CorruptResponse, Timeout, UnsupportedServerVersion, withoutStack } from "../Errors.js"
import type { AuthOptions, TlsOptions } from "../Options.js"
import { type Reply, ReplyParser } from "../protocol/Reply.js"
import { type GetFlags, type LineParts, suffixOf } from "../protocol/Request.js"
import { authRequest, authSlot, unauthenticated } from "./Auth.js"
import { dial, socketError } from "./Dial.js"
import type { BatchSlot, SingleReplySlot } from "./ReplySlot.js"
import { OutputBuffer } from "./OutputBuffer.js"
import { DESYNC, DONE, type Slot, type SlotFailure } from "./Slot.js"
import { parseServerVersion, type ServerVersion, supportsMetaProtocol } from "./Version.js"

export interface ConnectionOptions {
  /** "host:port" or a unix socket path */
  readonly server: string
  readonly dialTimeoutMillis: number
  /** no whole reply for this long while requests are pending: the server is considered stuck */
  readonly stallTimeoutMillis: number
  /** TLS (Dial.ts); ignored for a unix socket */
  readonly tls?: TlsOptions | undefined
  /** credentials sent first, before any request is written (Auth.ts) */
  readonly auth?: AuthOptions | undefined
  /**
   * The server passed the version check (the first reply of every connection). A failed check
   * closes the connection with `UnsupportedServerVersion` instead.
   */
  readonly onVersion: (version: ServerVersion) => void
  /**
   * The connection is gone; `error` says why when it was not a graceful close, and `verdict` what
   * it says about the server, if anything.
   */
  readonly onClose: (connection: Connection, error: SlotFailure | undefined, verdict: ServerVerdict) => void
}

/**
 * What a closed connection says about its server:
 * - "unreachable": it could not be connected, or the server refused or failed the handshake;
 * - "stalled": the server stopped answering;
 * - undefined: nothing (a graceful close, a dropped or desynchronised connection).
 */
export type ServerVerdict = "unreachable" | "stalled" | undefined

export type ConnectionState = "connecting" | "ready" | "draining" | "closed"

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

// setTimeout's largest delay; longer ones fire at once. A far deadline is checked again then.
const MAX_TIMER_DELAY = 2 ** 31 - 1
// A value block being received for a caller that stopped waiting is skipped, not buffered, once
// this much of it has arrived.
const DISCARD_ABANDONED_VALUE_AT = 64 * 1024

/** Infrastructure errors are built without a stack: a captured stack keeps its frames' objects (the connection) alive. */
const connectionError = (server: string, reason: string, key?: string) =>
  withoutStack(() => new ConnectionError({ server, reason, key }))

export class Connection {
  readonly createdAt = Date.now()
  private stateNow: ConnectionState = "connecting"
  private versionChecked = false
  private readonly socket: net.Socket
  private readonly parser: ReplyParser
  // FIFO of slots awaiting replies: `queue[head]` gets the next reply.
  private queue: Array<Slot | undefined> = []
  private head = 0
  // Sum of the pending slots' weights (a batch counts its keys).
  private pendingWeight = 0
  // The opaque token of the next request.
  private nextOpaque = 1
  // Replies dispatched so far; the data handler compares it to see whether a chunk completed any.
  private replies = 0
  // This tick's requests, as bytes: written to the socket once per tick.
  private readonly out = new OutputBuffer()
  private flushScheduled = false
  private timer: NodeJS.Timeout | undefined = undefined
  private timerAt = Number.POSITIVE_INFINITY
  // When the armed timer is due, when it last fired (`onTimer` judges deadlines as of then, see
  // afterPendingIO), and how late that was: a late timer means this process was not running.
  private timerDue = 0
  private timerFiredAt = 0
  private timerLate = 0
  // Last time a whole reply arrived, or the queue became non-empty.
  private lastProgress = Date.now()
  private dialTimer: NodeJS.Timeout | undefined
  // Connected (TCP, and the TLS handshake when TLS is on).
  private connected = false
  // Requests are held back (not written) until the server accepted the credentials.
  private held = false

  constructor(private readonly options: ConnectionOptions) {
    this.parser = new ReplyParser((reply) => this.dispatch(reply))
    const dialed = dial(options.server, options.tls)
    this.socket = dialed.socket
    this.socket.setNoDelay(true)
    this.dialTimer = setTimeout(
      () =>
        afterPendingIO(() => {
          if (!this.connected) {
            this.fail(connectionError(options.server, `dial timeout after ${options.dialTimeoutMillis} ms`), "unreachable")
          }
        }),
      options.dialTimeoutMillis,
    )
    this.socket.once(dialed.connectedEvent, () => {
      this.connected = true
      clearTimeout(this.dialTimer)
      this.dialTimer = undefined
      this.lastProgress = Date.now()
    })
    this.socket.on("data", this.onData)
    // Socket errors carry no `cause`: node's error objects hold the socket.
    this.socket.on("error", (cause) => this.fail(socketError(options.server, cause), this.unreachable()))
    this.socket.on("close", () =>
      this.fail(connectionError(options.server, "connection closed by the server"), this.unreachable()),
    )
    // The version check rides the pipeline: requests sent before its answer queue behind it.
    const versionTimeout = options.dialTimeoutMillis + options.stallTimeoutMillis
    if (options.auth !== undefined) {
      // Authentication goes first, alone: what follows is written once it is accepted.
      this.held = true
      this.enqueue(
        authSlot(options.server, options.auth, versionTimeout, (refused) => {
          if (refused !== undefined) return this.fail(refused, undefined)
          this.held = false
          this.scheduleFlush()
        }),
      )
      this.socket.write(authRequest(options.auth))
    }
    this.enqueue({
      onReply: (reply) => {
        this.onVersionReply(reply)
        return DONE
      },
      onFailure: () => {},
      deadline: Date.now() + versionTimeout,
      timeoutMillis: versionTimeout,
      key: undefined,
      weight: 1,
      abandoned: false,
    })
    this.out.text("version\r\n")
    this.scheduleFlush()
  }

  get server(): string {
    return this.options.server
  }

  get state(): ConnectionState {
    return this.stateNow
  }

  /** The version check passed (and stays true once closed: it tells how the connection ended). */
  get ready(): boolean {
    return this.versionChecked
  }

  get closed(): boolean {
    return this.stateNow === "closed"
  }

  /** Requests awaiting replies, weighted (a batch counts its keys). */
  get load(): number {
    return this.pendingWeight
  }

  /**
   * Queues one request and its slot in one step. `line` is the request line without its end (the
   * connection adds the opaque token); `value` is the data block of an `ms`.
   */
  send<A, E>(line: LineParts, value: Uint8Array | undefined, slot: SingleReplySlot<A, E>): void {
    if (this.stateNow === "closed") {
      slot.onFailure(connectionError(this.options.server, "connection closed", slot.key))
      return
    }
    const opaque = this.nextOpaque++
    slot.opaque = opaque
    this.enqueue(slot)
    this.out.line(line, opaque)
    if (value !== undefined) this.out.value(value)
    this.scheduleFlush()
  }

  /**
   * Queues a batch of gets and its slot in one step: one quiet `mg` line per key (hits and errors
   * only), the i-th with opaque token `firstOpaque + i`, closed by a non-quiet `mg` of the first
   * key with `endFlags` (no value) and opaque `firstOpaque + keys.length`. Its `HD`/`EN`, which
   * must carry that opaque, ends the batch: unlike an `mn`, a stray reply cannot end it early.
   */
  sendBatch(quietFlags: GetFlags, endFlags: GetFlags, slot: BatchSlot): void {
    if (this.stateNow === "closed") {
      slot.onFailure(connectionError(this.options.server, "connection closed"))
      return
    }
    const keys = slot.keys
    const first = this.nextOpaque
    slot.firstOpaque = first
    this.nextOpaque += keys.length + 1
    this.enqueue(slot)
    const quiet = suffixOf(quietFlags)
    const ascii = quietFlags.b === true // base64 keys
    for (let i = 0; i < keys.length; i++) this.out.lineText("mg ", keys[i]!, quiet, first + i, ascii)
    this.out.lineText("mg ", keys[0]!, suffixOf(endFlags), first + keys.length)
    this.scheduleFlush()
  }

  /** Stops taking requests and closes once the in-flight ones are answered. */
  drain(): void {
    if (this.stateNow === "closed") return
    this.stateNow = "draining"
    if (this.head === this.queue.length) this.close()
  }

  /** Closes now; pending slots fail with `ConnectionError`. */
  close(): void {
    this.fail(undefined, undefined)
  }

  /** A failure before the version check passed means the server could not be used at all. */
  private unreachable(): ServerVerdict {
    return this.ready ? undefined : "unreachable"
  }

  private enqueue(slot: Slot): void {
    if (this.head === this.queue.length) this.lastProgress = Date.now()
    this.queue.push(slot)
    this.pendingWeight += slot.weight
    const due = Math.min(slot.deadline, this.lastProgress + this.options.stallTimeoutMillis)
    if (due < this.timerAt) this.armTimer(due)
  }

  private scheduleFlush(): void {
    if (!this.flushScheduled && !this.held) {
      this.flushScheduled = true
      process.nextTick(this.flush)
    }
  }

  private readonly flush = (): void => {
    this.flushScheduled = false
    if (this.stateNow === "closed") return
    this.out.writeTo(this.socket)
  }

  private readonly onData = (chunk: Buffer): void => {
    const before = this.replies
    const error = this.parser.push(chunk)
    if (error !== undefined) {
      this.fail(withoutStack(() => new CorruptResponse({ server: this.options.server, reason: error.reason })), undefined)
    }
    if (this.stateNow === "closed") {
      this.parser.clear()
      return
    }
    if (this.replies !== before) this.lastProgress = Date.now()
    if (this.parser.bufferedValueBytes >= DISCARD_ABANDONED_VALUE_AT && this.queue[this.head]?.abandoned === true) {
      this.parser.discardValue()
    }
  }

  private dispatch(reply: Reply): void {
    if (this.stateNow === "closed") return
    this.replies++
    if (reply.code === "ERROR") {
      // The server did not understand the stream (or refused the connection: "ERROR Too many
      // open connections"); what it skipped is unknown, so the pipeline cannot continue.
      this.fail(connectionError(this.options.server, `server answered ${JSON.stringify(reply.message)}`), this.unreachable())
      return
    }
    const slot = this.queue[this.head]
    if (slot === undefined) {
      this.desync(`unexpected ${reply.code} with no request pending`)
      return
    }
    const fit = slot.onReply(reply)
    if (fit === DESYNC) {
      this.desync(`${reply.code}${reply.opaque === undefined ? "" : ` O${reply.opaque}`} does not answer the pending request`)
      return
    }
    if (fit !== DONE) return
    this.pendingWeight -= slot.weight
    this.queue[this.head++] = undefined
    if (this.head === this.queue.length) {
      this.queue.length = 0
      this.head = 0
      if (this.stateNow === "draining") this.close()
    } else if (this.head >= 1024 && this.head * 2 >= this.queue.length) {
      this.queue = this.queue.slice(this.head)
      this.head = 0
    }
  }

  private desync(reason: string): void {
    this.fail(withoutStack(() => new CorruptResponse({ server: this.options.server, reason: `desync: ${reason}` })), undefined)
  }

  private onVersionReply(reply: Reply): void {
    const refused = unauthenticated(this.options.server, reply)
    if (refused !== undefined) return this.fail(refused, undefined)
    const version = reply.code === "VERSION" ? parseServerVersion(reply.message ?? "") : undefined
    if (version === undefined || !supportsMetaProtocol(version)) {
      const text = version?.text ?? reply.message ?? reply.code
      this.fail(withoutStack(() => new UnsupportedServerVersion({ server: this.options.server, version: text })), "unreachable")
      return
    }
    this.versionChecked = true
    if (this.stateNow === "connecting") this.stateNow = "ready"
    this.options.onVersion(version)
  }

  private armTimer(at: number): void {
    if (this.timer !== undefined) clearTimeout(this.timer)
    const now = Date.now()
    this.timerAt = at
    this.timerDue = Math.max(at, now)
    this.timer = setTimeout(this.onTimerFired, Math.min(MAX_TIMER_DELAY, Math.max(0, at - now)))
    this.timer.unref()
  }

  private readonly onTimerFired = (): void => {
    // The timer is spent: a request sent before `onTimer` runs arms a new one.
    this.timer = undefined
    this.timerAt = Number.POSITIVE_INFINITY
    this.timerFiredAt = Date.now()
    this.timerLate = Math.max(0, this.timerFiredAt - this.timerDue)
    afterPendingIO(this.onTimer)
  }

  private readonly onTimer = (): void => {
    if (this.stateNow === "closed") return
    // As of the poll that followed the timer: a reply that came later, while this process was
    // busy with other callbacks, is not late (it waits in the kernel for the next poll). A
    // deadline that falls in between is checked again by the next timer.
    const now = this.timerFiredAt
    // Callers whose deadline passed time out first: a stall found at the same moment fails only
    // the ones still waiting.
    let next = Number.POSITIVE_INFINITY
    for (let i = this.head; i < this.queue.length; i++) {
      const slot = this.queue[i]!
      if (slot.abandoned) continue
      if (slot.deadline <= now) {
        // The slot keeps its place: its late reply is read and dropped.
        slot.onFailure(withoutStack(() => new Timeout({ server: this.options.server, timeoutMillis: slot.timeoutMillis, key: slot.key })))
        slot.abandoned = true
      } else if (slot.deadline < next) {
        next = slot.deadline
      }
    }
    if (this.queue[this.head]?.abandoned === true) this.parser.discardValue()
    const stall = this.options.stallTimeoutMillis
    const pending = this.head < this.queue.length
    let stallCheckAt = this.lastProgress + stall
    if (pending && now >= stallCheckAt) {
      if (this.timerLate <= Math.max(10, stall / 10)) {
        // No whole reply for a stall window: the server (or the path to it) is stuck.
        this.fail(connectionError(this.options.server, `server stalled: no reply for ${stall} ms`), "stalled")
        return
      }
      // The timer fired late: this process was not running when the time was up (a GC pause, a
      // busy event loop, an overloaded machine), and a server on the same machine may have been
      // held up by the same cause. Give it a moment to answer before marking it down.
      stallCheckAt = now + Math.max(10, stall / 4)
    }
    if (pending) next = Math.min(next, stallCheckAt)
    if (next < this.timerAt) this.armTimer(next)
  }

  /** Ends the connection once; every pending slot fails with `error` (a `ConnectionError` when undefined). */
  private fail(error: SlotFailure | undefined, verdict: ServerVerdict): void {
    if (this.stateNow === "closed") return
    this.stateNow = "closed"
    if (this.timer !== undefined) clearTimeout(this.timer)
    if (this.dialTimer !== undefined) clearTimeout(this.dialTimer)
    this.timer = undefined
    this.dialTimer = undefined
    this.socket.destroy()
    this.parser.clear()
    this.out.clear()
    const queue = this.queue
    const head = this.head
    this.queue = []
    this.head = 0
    this.pendingWeight = 0
    const server = this.options.server
    for (let i = head; i < queue.length; i++) {
      const slot = queue[i]!
      if (slot.abandoned) continue
      slot.onFailure(error ?? connectionError(server, "connection closed", slot.key))
    }
    this.options.onClose(this, error, verdict)
  }
}
