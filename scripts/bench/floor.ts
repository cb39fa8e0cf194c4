/**
 * The floor: a minimal pipelined meta client on one `node:net` socket, the least a client can do
 * per operation and still be one. Requests are built per call and coalesced into one write per
 * tick (as effect-memcache's Connection does); replies go to FIFO callbacks through a minimal
 * parser of `VA <n> …` / `HD` / `EN` / `NS` (anything else is an error). No timeouts, no routing,
 * no reply checks beyond that.
 *
 * - `floor/effect`: N long-lived fibers, each call one bare `Effect.async` (nothing else around
 *   it); getMulti is the batch's 100 `mg` lines with one `Effect.async` for the batch. No Effect
 *   client can beat it.
 * - `floor/promise`: the same socket, one Promise per call from N async workers.
 */
import * as net from "node:net"
import { Data, Effect } from "effect"
import { LatencyRecorder } from "./latency.js"
import {
  type AsyncOps,
  checkValue,
  isMixedSet,
  KEY_COUNT,
  LARGE_KEY_COUNT,
  makeWorkload,
  MULTI_KEYS,
  preloadWith,
  type RunResult,
  type Runner,
  runAsyncScenario,
  sameValue,
  type Scenario,
  startIndex,
  runFiberLoops,
  type Counters,
  type StopFlag,
  type Workload,
} from "./types.js"

/** A reply: the value of a `VA`, nothing for `HD`/`EN`, or the line of anything else as `error`. */
type Callback = (value: Buffer | undefined, error: string | undefined) => void

const LF = 10
const CR = 13

export const splitAddress = (address: string): [string, number] => {
  const i = address.lastIndexOf(":")
  return [address.slice(0, i), Number(address.slice(i + 1))]
}

export class MinimalMetaSocket {
  private outText = ""
  private outChunks: Array<string | Buffer> = []
  private flushScheduled = false
  private readonly callbacks: Array<Callback> = []
  private head = 0
  private carry: Buffer | undefined = undefined

  private constructor(private readonly socket: net.Socket) {
    socket.setNoDelay(true)
    socket.on("data", (chunk: Buffer) => this.onData(chunk))
    socket.on("error", (e) => this.failAll(e.message))
    socket.on("close", () => this.failAll("connection closed"))
  }

  static open(address: string): Promise<MinimalMetaSocket> {
    const [host, port] = splitAddress(address)
    return new Promise((resolve, reject) => {
      const socket = net.createConnection({ host, port })
      socket.once("connect", () => {
        socket.off("error", reject)
        resolve(new MinimalMetaSocket(socket))
      })
      socket.once("error", reject)
    })
  }

  get(key: string, cb: Callback): void {
    this.callbacks.push(cb)
    this.write("mg " + key + " v\r\n")
  }

  /** One `mg` per key, all pipelined; `cb` gets every reply in turn. */
  getBatch(keys: ReadonlyArray<string>, cb: Callback): void {
    let text = ""
    for (const key of keys) {
      this.callbacks.push(cb)
      text += "mg " + key + " v\r\n"
    }
    this.write(text)
  }

  set(key: string, value: Buffer, cb: Callback): void {
    this.callbacks.push(cb)
    this.outChunks.push(this.outText + "ms " + key + " " + value.length + "\r\n", value)
    this.outText = ""
    this.write("\r\n")
  }

  close(): void {
    this.socket.destroy()
  }

  private write(text: string): void {
    this.outText += text
    if (!this.flushScheduled) {
      this.flushScheduled = true
      process.nextTick(this.flush)
    }
  }

  private readonly flush = (): void => {
    this.flushScheduled = false
    if (this.outChunks.length === 0) {
      this.socket.write(this.outText, "latin1")
    } else {
      this.outChunks.push(this.outText)
      this.socket.write(Buffer.concat(this.outChunks.map((c) => (typeof c === "string" ? Buffer.from(c, "latin1") : c))))
      this.outChunks = []
    }
    this.outText = ""
  }

  private reply(value: Buffer | undefined, error: string | undefined): void {
    const cb = this.callbacks[this.head++]
    if (this.head === this.callbacks.length) {
      this.callbacks.length = 0
      this.head = 0
    } else if (this.head >= 4096) {
      this.callbacks.splice(0, this.head)
      this.head = 0
    }
    if (cb === undefined) throw new Error(`a reply nobody asked for: ${error ?? "value"}`)
    cb(value, error)
  }

  private failAll(reason: string): void {
    while (this.head < this.callbacks.length) this.reply(undefined, reason)
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
      const lf = buf.indexOf(LF, pos)
      if (lf === -1) break
      const c0 = buf[pos]
      const c1 = buf[pos + 1]
      if (c0 === 86 /* V */ && c1 === 65 /* A */) {
        let size = 0
        for (let p = pos + 3; p < lf; p++) {
          const d = buf[p]! - 48
          if (d < 0 || d > 9) break
          size = size * 10 + d
        }
        const end = lf + 1 + size
        if (end + 2 > len) break // the value is not all here yet
        if (buf[end] !== CR) {
          this.reply(undefined, "value block without its \\r\\n")
        } else {
          this.reply(buf.subarray(lf + 1, end), undefined)
        }
        pos = end + 2
        continue
      }
      if ((c0 === 72 /* H */ && c1 === 68) /* D */ || (c0 === 69 /* E */ && c1 === 78) /* N */) {
        this.reply(undefined, undefined)
      } else {
        this.reply(undefined, buf.toString("latin1", pos, lf).trim())
      }
      pos = lf + 1
    }
    if (pos < len) this.carry = buf.subarray(pos)
  }
}

class FloorError extends Data.TaggedError("FloorError")<{ readonly reason: string }> {}

const getEffect = (s: MinimalMetaSocket, key: string) =>
  Effect.async<Buffer | undefined, FloorError>((resume) => {
    s.get(key, (value, error) => resume(error === undefined ? Effect.succeed(value) : Effect.fail(new FloorError({ reason: error }))))
  })

const setEffect = (s: MinimalMetaSocket, key: string, value: Buffer) =>
  Effect.async<void, FloorError>((resume) => {
    s.set(key, value, (_, error) => resume(error === undefined ? Effect.void : Effect.fail(new FloorError({ reason: error }))))
  })

/** The batch's values in key order (undefined for a miss), or the first error. */
const getBatch = (s: MinimalMetaSocket, keys: ReadonlyArray<string>, cb: (values: Array<Buffer | undefined>, error: string | undefined) => void) => {
  const values = new Array<Buffer | undefined>(keys.length)
  let n = 0
  let firstError: string | undefined
  s.getBatch(keys, (value, error) => {
    values[n++] = value
    firstError ??= error
    if (n === keys.length) cb(values, firstError)
  })
}

const getBatchEffect = (s: MinimalMetaSocket, keys: ReadonlyArray<string>) =>
  Effect.async<Array<Buffer | undefined>, FloorError>((resume) => {
    getBatch(s, keys, (values, error) => resume(error === undefined ? Effect.succeed(values) : Effect.fail(new FloorError({ reason: error }))))
  })

const countFound = (values: ReadonlyArray<Buffer | undefined>): number => {
  let n = 0
  for (const v of values) if (v !== undefined) n++
  return n
}

/** One fiber's loop; sampled calls are timed and their whole value checked. */
const fiberLoop = (s: MinimalMetaSocket, data: Workload, scenario: Scenario, stop: StopFlag, c: Counters, lat: LatencyRecorder, w: number) => {
  const { keys, values, texts, largeKeys, largeValues, largeTexts, batches } = data
  return Effect.gen(function* () {
    let i = startIndex(w)
    while (stop.running) {
      const t0 = lat.start()
      switch (scenario.kind) {
        case "get": {
          const k = i % KEY_COUNT
          const v = yield* getEffect(s, keys[k]!)
          if (checkValue(v, values[k]!, texts[k]!, lat.end(t0)) === 1) c.units++
          else c.bad++
          break
        }
        case "getLarge": {
          const k = i % LARGE_KEY_COUNT
          const v = yield* getEffect(s, largeKeys[k]!)
          if (checkValue(v, largeValues[k]!, largeTexts[k]!, lat.end(t0)) === 1) c.units++
          else c.bad++
          break
        }
        case "set": {
          const k = i % KEY_COUNT
          yield* setEffect(s, keys[k]!, values[k]!)
          lat.end(t0)
          c.units++
          break
        }
        case "getMulti": {
          const b = i % batches.length
          const found = yield* getBatchEffect(s, batches[b]!)
          const n = lat.end(t0) ? countRight(found, data, b) : countFound(found)
          c.units += n
          if (n !== MULTI_KEYS) c.bad++
          break
        }
        case "mixed": {
          const k = i % KEY_COUNT
          if (isMixedSet(i)) {
            yield* setEffect(s, keys[k]!, values[k]!)
            lat.end(t0)
            c.units++
          } else {
            const v = yield* getEffect(s, keys[k]!)
            if (checkValue(v, values[k]!, texts[k]!, lat.end(t0)) === 1) c.units++
            else c.bad++
          }
          break
        }
      }
      i++
    }
  })
}

/** Keys of batch b whose whole value is right. */
const countRight = (found: ReadonlyArray<Buffer | undefined>, data: Workload, b: number): number => {
  let ok = 0
  for (let j = 0; j < found.length; j++) {
    const k = b * MULTI_KEYS + j
    if (sameValue(found[j], data.values[k]!, data.texts[k]!)) ok++
  }
  return ok
}

const runFloorFibers = (s: MinimalMetaSocket, data: Workload, scenario: Scenario, durationMs: number): Promise<RunResult> =>
  Effect.runPromise(runFiberLoops(scenario.concurrency, durationMs, (stop, c, lat, w) => fiberLoop(s, data, scenario, stop, c, lat, w)))

const promiseOps = (s: MinimalMetaSocket): AsyncOps<Buffer | undefined, Array<Buffer | undefined>> => ({
  get: (key) =>
    new Promise((resolve, reject) => s.get(key, (value, error) => (error === undefined ? resolve(value) : reject(new Error(error))))),
  value: (v) => v,
  set: (key, value) =>
    new Promise<void>((resolve, reject) => s.set(key, value, (_, error) => (error === undefined ? resolve() : reject(new Error(error))))),
  getMulti: (keys) =>
    new Promise((resolve, reject) => getBatch(s, keys, (values, error) => (error === undefined ? resolve(values) : reject(new Error(error))))),
  found: countFound,
  multiValue: (values, _, j) => values[j],
})

export const floorRunner = (server: string, style: "effect" | "promise"): Runner => {
  const data = makeWorkload(style === "effect" ? "fe" : "fp")
  let socket: MinimalMetaSocket | undefined
  return {
    id: `floor/${style}`,
    label: `floor: minimal socket, ${style === "effect" ? "Effect.async" : "Promise"}`,
    column: `floor/${style}`,
    group: "floor",
    notes:
      "one node:net socket, writes coalesced per tick, FIFO callbacks, minimal VA/HD/EN/NS parser; " +
      (style === "effect"
        ? "N fibers, one bare Effect.async per call (getMulti: 100 pipelined mg, one Effect.async per batch)"
        : "N async workers, one Promise per call (getMulti: 100 pipelined mg, one Promise per batch)"),
    preload: async () => {
      socket = await MinimalMetaSocket.open(server)
      const ops = promiseOps(socket)
      await preloadWith(ops.set, data)
    },
    run: (scenario, durationMs) =>
      style === "effect" ? runFloorFibers(socket!, data, scenario, durationMs) : runAsyncScenario(promiseOps(socket!), data, scenario, durationMs),
    close: async () => socket?.close(),
  }
}
