/**
 * The ceiling: one raw `node:net` socket pipelining meta commands in batches of 100 (one batch in
 * flight), request bytes prebuilt, replies only counted (`VA`/`EN`/`HD` lines, value bytes skipped).
 * No client does less work per operation than this in the same process.
 *
 * It measures only the scenarios whose work it does: gets, sets and the mix of 100-byte values at
 * concurrency above 1, and getMulti (its batch is getMulti's 100 `mg` lines, in keys/s). At c=1
 * one request at a time is bound by the round trip, which a batch of 100 does not pay, and it
 * never fetches 16 KiB values: there it is no ceiling, so it has no figure.
 */
import * as net from "node:net"
import { splitAddress } from "./floor.js"
import { LatencyRecorder } from "./latency.js"
import { KEY_COUNT, makeWorkload, type RunResult, type Runner, type Scenario, type ScenarioKind, VALUE_BYTES } from "./types.js"

const BATCH = 100
const LF = 10

/** The ceiling for a scenario: getMulti is keys fetched, i.e. the get ceiling. */
export const ceilingKind = (kind: ScenarioKind): Exclude<ScenarioKind, "getMulti"> => (kind === "getMulti" ? "get" : kind)

const measured = (s: Scenario): boolean => s.kind !== "getLarge" && s.concurrency > 1

const requestFor = (kind: "get" | "set" | "mixed", key: string, value: Buffer, i: number): Buffer =>
  kind === "get" || (kind === "mixed" && i % 10 !== 9)
    ? Buffer.from(`mg ${key} v\r\n`, "latin1")
    : Buffer.concat([Buffer.from(`ms ${key} ${value.length}\r\n`, "latin1"), value, Buffer.from("\r\n", "latin1")])

/** A connected socket with a reply counter. */
class RawConnection {
  private carry: Buffer | undefined = undefined
  /** value bytes (plus \r\n) still to skip */
  private skip = 0
  private inValue = false
  replies = 0
  errors = 0
  firstError: string | undefined = undefined
  private waiter: { readonly count: number; readonly resolve: () => void } | undefined = undefined

  private constructor(private readonly socket: net.Socket) {
    socket.setNoDelay(true)
    socket.on("data", (chunk: Buffer) => this.onData(chunk))
  }

  static open(address: string): Promise<RawConnection> {
    const [host, port] = splitAddress(address)
    return new Promise((resolve, reject) => {
      const socket = net.createConnection({ host, port })
      socket.once("connect", () => resolve(new RawConnection(socket)))
      socket.once("error", reject)
    })
  }

  /** Writes the bytes and resolves once `count` more replies have come. */
  roundTrip(bytes: Buffer, count: number): Promise<void> {
    return new Promise((resolve) => {
      this.waiter = { count: this.replies + count, resolve }
      this.socket.write(bytes)
    })
  }

  close(): void {
    this.socket.destroy()
  }

  private reply(ok: boolean, what: string): void {
    this.replies++
    if (!ok) {
      this.errors++
      this.firstError ??= what
    }
    if (this.waiter !== undefined && this.replies >= this.waiter.count) {
      const w = this.waiter
      this.waiter = undefined
      w.resolve()
    }
  }

  private onData(chunk: Buffer): void {
    let buf = chunk
    if (this.carry !== undefined) {
      buf = Buffer.concat([this.carry, chunk])
      this.carry = undefined
    }
    const len = buf.length
    let pos = 0
    while (pos < len) {
      if (this.skip > 0) {
        const n = Math.min(this.skip, len - pos)
        this.skip -= n
        pos += n
        if (this.skip === 0 && this.inValue) {
          this.inValue = false
          this.reply(true, "")
        }
        continue
      }
      const lf = buf.indexOf(LF, pos)
      if (lf === -1) {
        this.carry = buf.subarray(pos)
        return
      }
      const c0 = buf[pos]
      const c1 = buf[pos + 1]
      if (c0 === 86 /* V */ && c1 === 65 /* A */) {
        let size = 0
        for (let p = pos + 3; p < lf; p++) {
          const d = buf[p]! - 48
          if (d < 0 || d > 9) break
          size = size * 10 + d
        }
        if (size !== VALUE_BYTES) {
          this.errors++
          this.firstError ??= `value of ${size} bytes`
        }
        this.skip = size + 2
        this.inValue = true
      } else if (c0 === 72 /* H */ && c1 === 68 /* D */) {
        this.reply(true, "")
      } else {
        this.reply(false, buf.toString("latin1", pos, lf).trim())
      }
      pos = lf + 1
    }
  }
}

/** The server's `version` line, e.g. "1.6.18". */
export const memcachedVersion = async (address: string): Promise<string> => {
  const [host, port] = splitAddress(address)
  return new Promise((resolve, reject) => {
    const socket = net.createConnection({ host, port })
    let text = ""
    socket.on("data", (d: Buffer) => {
      text += d.toString("latin1")
      const end = text.indexOf("\r\n")
      if (end >= 0) {
        socket.destroy()
        resolve(text.slice(0, end).replace(/^VERSION /, ""))
      }
    })
    socket.once("error", reject)
    socket.write("version\r\n")
  })
}

export const rawRunner = (server: string): Runner => {
  const { keys, values } = makeWorkload("rw")
  // Prebuilt batches: batch b holds keys b*100 .. b*100+99.
  const batches = (kind: "get" | "set" | "mixed"): ReadonlyArray<Buffer> =>
    Array.from({ length: KEY_COUNT / BATCH }, (_, b) =>
      Buffer.concat(
        Array.from({ length: BATCH }, (_, j) => requestFor(kind, keys[b * BATCH + j]!, values[b * BATCH + j]!, b * BATCH + j)),
      ),
    )
  const prebuilt = { get: batches("get"), set: batches("set"), mixed: batches("mixed") }
  let conn: RawConnection | undefined

  const loop = async (kind: "get" | "set" | "mixed", durationMs: number): Promise<RunResult> => {
    const c = conn!
    const bufs = prebuilt[kind]
    const startReplies = c.replies
    const startErrors = c.errors
    const start = performance.now()
    const deadline = start + durationMs
    const latency = new LatencyRecorder()
    // Its latency is a batch's round trip (it reads the clock per batch anyway).
    for (let b = 0, t = start; t < deadline; b++) {
      await c.roundTrip(bufs[b % bufs.length]!, BATCH)
      const now = performance.now()
      latency.record(now - t)
      t = now
    }
    return {
      units: c.replies - startReplies,
      elapsedMs: performance.now() - start,
      errors: c.errors - startErrors,
      firstError: c.firstError,
      latency: latency.summary(),
    }
  }

  return {
    id: "raw",
    label: "raw node:net (ceiling)",
    column: "raw ceiling",
    group: "ceiling",
    notes:
      "one socket, `mg <key> v` / `ms <key> 100` in prebuilt batches of 100, one batch in flight, replies only counted; " +
      "latency per batch; not run at c=1 nor with 16 KiB values",
    measures: measured,
    preload: async () => {
      conn = await RawConnection.open(server)
      for (const bytes of prebuilt.set) await conn.roundTrip(bytes, BATCH)
    },
    run: (scenario: Scenario, durationMs: number) => {
      const kind = ceilingKind(scenario.kind)
      if (kind === "getLarge" || !measured(scenario)) throw new Error(`the raw ceiling does not run ${scenario.id}`)
      return loop(kind, durationMs)
    },
    close: async () => conn?.close(),
  }
}
