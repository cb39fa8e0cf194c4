/**
 * Fuzzing the incremental reply parser with over a million streams.
 *
 * - Valid streams come from a model (every reply code, random flags, values of 0..6 KB full of
 *   CR/LF bytes and protocol look-alikes). Each must parse to exactly the model's replies, and the
 *   same stream split at random points must parse to the same replies as unsplit.
 * - Mutated streams (bytes flipped, inserted, deleted, duplicated, truncated), token soup and raw
 *   random bytes must give either replies or a typed `CorruptResponse`: never a throw, never a
 *   different answer depending on where the stream was split.
 *
 * A seeded PRNG keeps it fast (fast-check's per-run overhead would not fit a million runs in
 * seconds); the seed is printed and can be replayed with `FUZZ_SEED=<n>`.
 */
import { afterAll, describe, expect, it } from "@effect/vitest"
import { opaqueValue, Reply, ReplyParser } from "../../src/protocol/Reply.js"

const SEED = process.env["FUZZ_SEED"] === undefined ? (Date.now() ^ (process.pid << 16)) >>> 0 : Number(process.env["FUZZ_SEED"])

/** mulberry32: tiny, fast, good enough for fuzzing. */
const prng = (seed: number) => {
  let a = seed >>> 0
  const next = (): number => {
    a = (a + 0x6d2b79f5) >>> 0
    let t = a
    t = Math.imul(t ^ (t >>> 15), t | 1)
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61)
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296
  }
  const int = (n: number): number => Math.floor(next() * n) // 0 .. n-1
  const pick = <A>(xs: ReadonlyArray<A>): A => xs[int(xs.length)]!
  return { next, int, pick, chance: (p: number) => next() < p }
}
type Rng = ReturnType<typeof prng>

// ---------------------------------------------------------------------------------------------
// The model: replies as plain data, their wire bytes, and comparison with what the parser gives.

// The model is a `Reply` built by hand: the same plain data the parser fills in.
type Model = Reply

const withMessage = (code: Reply["code"], message: string): Model => {
  const m = new Reply(code)
  m.message = message
  return m
}

const FLAG_CODES = ["HD", "VA", "EN", "NS", "EX", "NF"] as const
const PRINTABLE = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789+/=:_-.!#$%&*()[]{}<>?@^~|"

const printable = (rng: Rng, min: number, max: number): string => {
  let s = ""
  const n = min + rng.int(max - min + 1)
  for (let i = 0; i < n; i++) s += PRINTABLE[rng.int(PRINTABLE.length)]
  return s
}

/** Free text of an error or debug line: spaces, lone CRs and latin1 bytes allowed, no LF. */
const lineText = (rng: Rng, max: number): string => {
  let s = ""
  const n = rng.int(max + 1)
  for (let i = 0; i < n; i++) {
    const r = rng.int(20)
    s += r === 0 ? " " : r === 1 ? String.fromCharCode(0xa0 + rng.int(0x60)) : r === 2 && i > 0 && i < n - 1 ? "\r" : PRINTABLE[rng.int(PRINTABLE.length)]
  }
  return s
}

const digits = (rng: Rng, maxLen: number): string => {
  const n = 1 + rng.int(maxLen)
  let s = String(1 + rng.int(9))
  for (let i = 1; i < n; i++) s += String(rng.int(10))
  return rng.chance(0.1) ? "0" : s
}

// Value bytes come from a pool that is dense in CR, LF, spaces and reply look-alikes.
const POOL = (() => {
  const rng = prng(SEED ^ 0x5eed)
  const parts: Array<Buffer> = []
  let size = 0
  const lookAlikes = ["\r\n", "\r", "\n", "VA 3\r\n", "HD\r\n", "EN\r\n", "MN\r\n", "\r\n\r\n", "END\r\n", " "]
  while (size < 256 * 1024) {
    const b = rng.chance(0.15) ? Buffer.from(rng.pick(lookAlikes), "latin1") : Buffer.from([rng.int(256)])
    parts.push(b)
    size += b.length
  }
  return Buffer.concat(parts)
})()

const valueOf = (rng: Rng): Buffer => {
  const r = rng.next()
  const size = r < 0.1 ? 0 : r < 0.5 ? 1 + rng.int(16) : r < 0.85 ? rng.int(257) : r < 0.97 ? rng.int(2049) : 2048 + rng.int(4097)
  const at = rng.int(POOL.length - size)
  return POOL.subarray(at, at + size)
}

/** One reply of the model and its bytes. */
const modelReply = (rng: Rng): { model: Model; bytes: Array<Buffer> } => {
  const r = rng.int(100)
  if (r < 5) return { model: new Reply("MN"), bytes: [Buffer.from("MN\r\n")] }
  if (r < 9) {
    const message = printable(rng, 0, 12) + (rng.chance(0.7) ? " exp=-1 la=3 cas=7 fetch=no cls=1 size=63" : "")
    return { model: withMessage("ME", message), bytes: [Buffer.from(`ME ${message}\r\n`, "utf8")] }
  }
  if (r < 11) return { model: withMessage("ERROR", "ERROR"), bytes: [Buffer.from("ERROR\r\n")] }
  if (r < 14) {
    const text = lineText(rng, 60)
    const code = rng.chance(0.5) ? "CLIENT_ERROR" : "SERVER_ERROR"
    const line = text === "" && rng.chance(0.5) ? code : `${code} ${text}`
    return { model: withMessage(code, text), bytes: [Buffer.from(`${line}\r\n`, "latin1")] }
  }
  if (r < 16) {
    const text = `1.${rng.int(10)}.${rng.int(40)}${rng.chance(0.3) ? "-" + printable(rng, 1, 6) : ""}`
    return { model: withMessage("VERSION", text), bytes: [Buffer.from(`VERSION ${text}\r\n`)] }
  }
  const code = r < 50 ? "VA" : FLAG_CODES[rng.int(FLAG_CODES.length)]!
  const model = new Reply(code)
  let line: string = code
  let value: Buffer | undefined
  if (code === "VA") {
    value = valueOf(rng)
    model.value = value
    line += ` ${value.length}`
  }
  // Each flag at most once, in random order.
  const flags: Array<string> = []
  if (rng.chance(0.4)) {
    const n = digits(rng, 20)
    model.cas = BigInt(n)
    flags.push("c" + n)
  }
  if (rng.chance(0.6)) {
    const n = rng.chance(0.2) ? 0xffffffff - rng.int(3) : rng.int(70000)
    model.clientFlags = n
    flags.push("f" + n)
  }
  if (rng.chance(0.2)) {
    model.hit = rng.chance(0.5)
    flags.push(model.hit ? "h1" : "h0")
  }
  if (rng.chance(0.2)) {
    model.lastAccess = Number(digits(rng, 9))
    flags.push("l" + model.lastAccess)
  }
  if (rng.chance(0.3)) {
    model.ttl = rng.chance(0.3) ? -1 : Number(digits(rng, 9))
    flags.push("t" + model.ttl)
  }
  if (rng.chance(0.2)) {
    model.size = Number(digits(rng, 9))
    flags.push("s" + model.size)
  }
  if (rng.chance(0.3)) {
    model.key = printable(rng, 1, 60)
    flags.push("k" + model.key)
  }
  if (rng.chance(0.2)) {
    model.base64 = true
    flags.push("b")
  }
  if (rng.chance(0.3)) {
    // Mostly decimal, as this client sends them (read as numbers); other tokens stay text.
    const token = rng.chance(0.5) ? String(rng.int(2 ** 40)) : printable(rng, 0, 32)
    model.opaque = opaqueValue(token)
    flags.push("O" + token)
  }
  if (rng.chance(0.1)) {
    model.won = true
    flags.push("W")
  }
  if (rng.chance(0.1)) {
    model.stale = true
    flags.push("X")
  }
  if (rng.chance(0.1)) {
    model.winSent = true
    flags.push("Z")
  }
  // Flags this client never asks for are tolerated (newer servers may send them).
  if (rng.chance(0.1)) flags.push(rng.pick(["q", "u", "N30", "R5", "T0", "P", "L", "E12345"]))
  for (let i = flags.length - 1; i > 0; i--) {
    const j = rng.int(i + 1)
    ;[flags[i], flags[j]] = [flags[j]!, flags[i]!]
  }
  for (const f of flags) line += " " + f
  const bytes: Array<Buffer> = [Buffer.from(line + "\r\n", "latin1")]
  if (value !== undefined) bytes.push(value, Buffer.from("\r\n"))
  return { model, bytes }
}

// Streams are drawn from a library of modelled replies (generating each reply afresh would cost
// more than parsing it): 60,000 replies make ~10^27 distinct streams of six.
const LIBRARY = (() => {
  const rng = prng(SEED ^ 0x11b)
  return Array.from({ length: 60_000 }, () => {
    const { model, bytes } = modelReply(rng)
    return { model, bytes: Buffer.concat(bytes) }
  })
})()

const validStream = (rng: Rng, maxReplies: number): { models: Array<Model>; stream: Buffer } => {
  const n = 1 + rng.int(maxReplies)
  const models: Array<Model> = new Array(n)
  const parts: Array<Buffer> = new Array(n)
  for (let i = 0; i < n; i++) {
    const { model, bytes } = LIBRARY[rng.int(LIBRARY.length)]!
    models[i] = model
    parts[i] = bytes
  }
  return { models, stream: Buffer.concat(parts) }
}

const sameBytes = (a: Uint8Array | undefined, b: Uint8Array | undefined): boolean =>
  a === undefined || b === undefined ? a === b : Buffer.compare(a, b) === 0

/** The first difference between two replies (parsed or modelled), or undefined. */
const diff = (got: Reply | Model, want: Reply | Model): string | undefined => {
  if (got.code !== want.code) return `code ${got.code} != ${want.code}`
  if (got.message !== want.message) return `message ${JSON.stringify(got.message)} != ${JSON.stringify(want.message)}`
  if (!sameBytes(got.value, want.value)) return "value"
  if (got.cas !== want.cas) return "cas"
  if (got.clientFlags !== want.clientFlags) return "clientFlags"
  if (got.hit !== want.hit) return "hit"
  if (got.lastAccess !== want.lastAccess) return "lastAccess"
  if (got.ttl !== want.ttl) return "ttl"
  if (got.size !== want.size) return "size"
  if (got.key !== want.key) return "key"
  if (got.base64 !== want.base64) return "base64"
  if (!Object.is(got.opaque, want.opaque)) return "opaque"
  if (got.won !== want.won || got.stale !== want.stale || got.winSent !== want.winSent) return "W/X/Z"
  return undefined
}

// ---------------------------------------------------------------------------------------------
// Running the parser.

interface Outcome {
  readonly replies: Array<Reply>
  /** "ok" (all consumed or waiting for more), "corrupt", or "threw: …" */
  readonly status: string
}

const KNOWN_CODES = new Set(["HD", "VA", "EN", "NS", "EX", "NF", "MN", "ME", "ERROR", "CLIENT_ERROR", "SERVER_ERROR", "VERSION"])

const run = (chunks: ReadonlyArray<Buffer>): Outcome => {
  const replies: Array<Reply> = []
  const parser = new ReplyParser((r) => replies.push(r))
  try {
    for (const c of chunks) {
      const err = parser.push(c)
      if (err !== undefined) {
        if (err._tag !== "CorruptResponse" || typeof err.reason !== "string") return { replies, status: `bad error ${String(err)}` }
        // A failed parser stays failed.
        if (parser.push(Buffer.from("HD\r\n")) !== err) return { replies, status: "did not stay failed" }
        return { replies, status: "corrupt" }
      }
    }
    return { replies, status: "ok" }
  } catch (e) {
    return { replies, status: `threw: ${e instanceof Error ? e.stack : String(e)}` }
  }
}

/** Cuts `buf` at 1..6 random points (sometimes into single bytes). */
const randomSplit = (rng: Rng, buf: Buffer): Array<Buffer> => {
  if (buf.length <= 1) return [buf]
  if (buf.length < 400 && rng.chance(0.02)) return Array.from({ length: buf.length }, (_, i) => buf.subarray(i, i + 1))
  const cuts = new Set<number>()
  const n = 1 + rng.int(6)
  for (let i = 0; i < n; i++) cuts.add(1 + rng.int(buf.length - 1))
  const sorted = [...cuts].sort((a, b) => a - b)
  const out: Array<Buffer> = []
  let from = 0
  for (const c of sorted) {
    out.push(buf.subarray(from, c))
    from = c
  }
  out.push(buf.subarray(from))
  return out
}

const MUTATION_BYTES = [13, 10, 32, 48, 57, 45, 65, 86, 72, 68, 77, 78, 0, 255]
const TOKENS = [
  "HD", "VA", "EN", "NS", "EX", "NF", "MN", "ME", "ERROR", "CLIENT_ERROR", "SERVER_ERROR", "VERSION", "END",
  " ", "  ", "\r\n", "\r", "\n", "f1", "f4294967296", "c123", "c", "t-1", "t-2", "t", "h1", "h2", "l", "s5", "k", "kx",
  "O", "Oab", "b", "W", "X", "Z", "0", "5", "-", "-1", "99999999999999999", "VA 3\r\n", "VA 0\r\n", "abc", "\u0001", "\u00ff",
]

const mutate = (rng: Rng, src: Buffer): Buffer => {
  let buf = Buffer.from(src)
  const n = 1 + rng.int(3)
  for (let m = 0; m < n; m++) {
    const at = rng.int(buf.length + 1)
    switch (rng.int(7)) {
      case 0: // overwrite one byte
        if (buf.length > 0) buf[Math.min(at, buf.length - 1)] = rng.chance(0.5) ? rng.pick(MUTATION_BYTES) : rng.int(256)
        break
      case 1: // insert a token
        buf = Buffer.concat([buf.subarray(0, at), Buffer.from(rng.pick(TOKENS), "latin1"), buf.subarray(at)])
        break
      case 2: // delete a range
        buf = Buffer.concat([buf.subarray(0, at), buf.subarray(at + 1 + rng.int(8))])
        break
      case 3: // duplicate a range
        buf = Buffer.concat([buf.subarray(0, at), buf.subarray(at, at + 1 + rng.int(32)), buf.subarray(at)])
        break
      case 4: // truncate
        buf = buf.subarray(0, at)
        break
      case 5: // change a size or number: a digit becomes another digit
        for (let i = at; i < buf.length; i++) {
          if (buf[i]! >= 48 && buf[i]! <= 57) {
            buf[i] = 48 + rng.int(10)
            break
          }
        }
        break
      default: // drop a CR or an LF
        for (let i = at; i < buf.length; i++) {
          if (buf[i] === 13 || buf[i] === 10) {
            buf = Buffer.concat([buf.subarray(0, i), buf.subarray(i + 1)])
            break
          }
        }
    }
  }
  return buf
}

const tokenSoup = (rng: Rng): Buffer => {
  let s = ""
  const n = 1 + rng.int(24)
  for (let i = 0; i < n; i++) s += rng.chance(0.9) ? rng.pick(TOKENS) : String.fromCharCode(rng.int(256))
  return Buffer.from(s, "latin1")
}

const randomBytes = (rng: Rng): Buffer => {
  const b = Buffer.allocUnsafe(rng.int(300))
  for (let i = 0; i < b.length; i++) b[i] = rng.chance(0.1) ? rng.pick(MUTATION_BYTES) : rng.int(256)
  return b
}

// The parser rejects a header line longer than 8 KB only while it is still unterminated, so a stream
// holding such a line may legitimately parse differently when split; the split check skips those.
const hasLongLine = (buf: Buffer): boolean => {
  let last = -1
  for (;;) {
    const lf = buf.indexOf(10, last + 1)
    if ((lf === -1 ? buf.length : lf) - last > 8000) return true
    if (lf === -1) return false
    last = lf
  }
}

const sameOutcome = (a: Outcome, b: Outcome): boolean =>
  a.status === b.status && a.replies.length === b.replies.length && a.replies.every((r, i) => diff(r, b.replies[i]!) === undefined)

/** Checks an arbitrary stream; returns the problem, if any, and the unsplit outcome. */
const checkArbitrary = (rng: Rng, stream: Buffer): { readonly problem: string | undefined; readonly whole: Outcome } => {
  const whole = run([stream])
  const problem = (() => {
    if (whole.status !== "ok" && whole.status !== "corrupt") return whole.status
    for (const r of whole.replies) if (!KNOWN_CODES.has(r.code)) return `unknown code ${r.code}`
    const split = run(randomSplit(rng, stream))
    if (split.status !== "ok" && split.status !== "corrupt") return split.status
    if (!hasLongLine(stream) && !sameOutcome(whole, split)) {
      return `split differs: ${whole.status}/${whole.replies.length} vs ${split.status}/${split.replies.length}`
    }
    return undefined
  })()
  return { problem, whole }
}

const show = (buf: Buffer) => JSON.stringify(buf.subarray(0, 300).toString("latin1"))

interface Tally {
  streams: number
  corrupt: number
  failures: Array<string>
}

const fuzz = (name: string, count: number, seed: number, one: (rng: Rng, tally: Tally) => void) => {
  const rng = prng(seed)
  const tally: Tally = { streams: 0, corrupt: 0, failures: [] }
  const start = performance.now()
  // Errors built by the parser would capture a stack each; that cost is not what is measured here.
  const limit = Error.stackTraceLimit
  Error.stackTraceLimit = 0
  try {
    for (let i = 0; i < count && tally.failures.length < 5; i++) one(rng, tally)
  } finally {
    Error.stackTraceLimit = limit
  }
  const ms = performance.now() - start
  console.log(
    `ReplyFuzz ${name}: ${tally.streams} streams (${tally.corrupt} corrupt) in ${ms.toFixed(0)} ms, seed ${SEED}`,
  )
  total += tally.streams
  expect(tally.failures, `seed ${SEED}`).toEqual([])
  expect(tally.streams).toBe(count)
}

const COUNTS = { valid: 300_000, mutated: 400_000, soup: 300_000 }
let total = 0

describe("ReplyParser fuzz", { timeout: 60_000 }, () => {
  it("valid streams from the model: parsed as modelled, unsplit and split at random points", () => {
    fuzz("valid", COUNTS.valid, SEED, (rng, tally) => {
      const { models, stream } = validStream(rng, 6)
      tally.streams++
      const whole = run([stream])
      const problem =
        whole.status !== "ok"
          ? `status ${whole.status}`
          : whole.replies.length !== models.length
            ? `${whole.replies.length} replies, model has ${models.length}`
            : whole.replies.map((r, i) => diff(r, models[i]!)).find((d) => d !== undefined)
      if (problem !== undefined) {
        tally.failures.push(`${problem}: ${show(stream)}`)
        return
      }
      const chunks = randomSplit(rng, stream)
      const split = run(chunks)
      if (!sameOutcome(whole, split)) {
        tally.failures.push(`split at ${chunks.map((c) => c.length).join("+")} differs (${split.status}): ${show(stream)}`)
      }
    })
  })

  it("mutated valid streams: replies or CorruptResponse, the same however split", () => {
    fuzz("mutated", COUNTS.mutated, SEED + 1, (rng, tally) => {
      const stream = mutate(rng, validStream(rng, 4).stream)
      tally.streams++
      const { problem, whole } = checkArbitrary(rng, stream)
      if (problem !== undefined) tally.failures.push(`${problem}: ${show(stream)}`)
      else if (whole.status === "corrupt") tally.corrupt++
    })
  })

  it("token soup and random bytes: replies or CorruptResponse, the same however split", () => {
    fuzz("soup+random", COUNTS.soup, SEED + 2, (rng, tally) => {
      const stream = rng.chance(0.7) ? tokenSoup(rng) : randomBytes(rng)
      tally.streams++
      const { problem, whole } = checkArbitrary(rng, stream)
      if (problem !== undefined) tally.failures.push(`${problem}: ${show(stream)}`)
      else if (whole.status === "corrupt") tally.corrupt++
    })
  })

  it("plans at least a million streams", () => {
    expect(COUNTS.valid + COUNTS.mutated + COUNTS.soup).toBeGreaterThanOrEqual(1_000_000)
  })

  afterAll(() => console.log(`ReplyFuzz total: ${total} streams checked, seed ${SEED}`))
})
