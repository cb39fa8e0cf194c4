/**
 * Medians, noise, ratios and targets, and the text report printed on stdout.
 */
import type { Heap } from "./heap.js"
import { MULTI_KEYS, type RunResult, type Runner, type Scenario } from "./types.js"

/** Rounds whose spread ((max - min) / median) exceeds this are flagged as noisy. */
export const NOISE_LIMIT = 0.1

/** The client the targets are about: effect-memcache's default config, from fibers. */
export const HEADLINE = "effect-memcache"
/** What no Effect client can beat: one bare Effect.async per call on a minimal socket. */
export const FLOOR = "floor/effect"
/** effect-memcache over TLS, compared with HEADLINE (plaintext) in the same scenarios. */
export const TLS = "effect-memcache-tls"

export interface Cell {
  /** rate per round, units per second */
  readonly rounds: ReadonlyArray<number>
  readonly median: number
  readonly spread: number
  readonly noisy: boolean
  readonly errors: number
  readonly firstError?: string | undefined
  /** per-call latency in microseconds, the median over rounds of each round's percentile */
  readonly p50: number | undefined
  readonly p99: number | undefined
}

/** Per scenario id, per runner id. */
export type Results = ReadonlyMap<string, ReadonlyMap<string, Cell>>

export const rate = (r: RunResult): number => (r.units / r.elapsedMs) * 1000

export const median = (xs: ReadonlyArray<number>): number => {
  const s = [...xs].sort((a, b) => a - b)
  const m = s.length >> 1
  return s.length === 0 ? Number.NaN : s.length % 2 === 1 ? s[m]! : (s[m - 1]! + s[m]!) / 2
}

const medianOf = (xs: ReadonlyArray<number | undefined>): number | undefined => {
  const defined = xs.filter((x): x is number => x !== undefined)
  return defined.length === 0 ? undefined : median(defined)
}

const makeCell = (runs: ReadonlyArray<RunResult>): Cell => {
  const rounds = runs.map(rate)
  const m = median(rounds)
  const spread = rounds.length < 2 || m === 0 ? 0 : (Math.max(...rounds) - Math.min(...rounds)) / m
  return {
    rounds,
    median: m,
    spread,
    noisy: spread > NOISE_LIMIT,
    errors: runs.reduce((n, r) => n + r.errors, 0),
    firstError: runs.find((r) => r.firstError !== undefined)?.firstError,
    p50: medianOf(runs.map((r) => r.latency?.p50)),
    p99: medianOf(runs.map((r) => r.latency?.p99)),
  }
}

export const summarize = (collected: ReadonlyMap<string, ReadonlyMap<string, ReadonlyArray<RunResult>>>): Results =>
  new Map(
    [...collected].map(([sid, row]) => [
      sid,
      new Map([...row].filter(([, runs]) => runs.length > 0).map(([rid, runs]) => [rid, makeCell(runs)])),
    ]),
  )

export interface Comparison {
  /** the peer with the highest throughput */
  readonly bestPeer: { readonly id: string; readonly rate: number } | undefined
  /** the peer with the lowest p99 */
  readonly bestPeerP99: { readonly id: string; readonly p99: number } | undefined
  readonly floor: number | undefined
  readonly ceiling: number | undefined
}

export const compare = (row: ReadonlyMap<string, Cell> | undefined, runners: ReadonlyArray<Runner>): Comparison => {
  let bestPeer: { id: string; rate: number } | undefined
  let bestPeerP99: { id: string; p99: number } | undefined
  let floor: number | undefined
  let ceiling: number | undefined
  for (const r of runners) {
    const cell = row?.get(r.id)
    if (cell === undefined) continue
    if (r.group === "peer") {
      if (bestPeer === undefined || cell.median > bestPeer.rate) bestPeer = { id: r.id, rate: cell.median }
      if (cell.p99 !== undefined && (bestPeerP99 === undefined || cell.p99 < bestPeerP99.p99))
        bestPeerP99 = { id: r.id, p99: cell.p99 }
    }
    if (r.id === FLOOR) floor = cell.median
    if (r.group === "ceiling") ceiling = cell.median
  }
  return { bestPeer, bestPeerP99, floor, ceiling }
}

export const formatRate = (x: number): string => {
  if (!Number.isFinite(x)) return "–"
  if (x >= 1e6) return `${(x / 1e6).toFixed(2)}M`
  if (x >= 1e5) return `${(x / 1e3).toFixed(0)}k`
  if (x >= 1e3) return `${(x / 1e3).toFixed(1)}k`
  return x.toFixed(0)
}

/** Microseconds, or milliseconds from 10 ms up. */
export const formatMicros = (us: number | undefined): string =>
  us === undefined || !Number.isFinite(us) ? "–" : us >= 10_000 ? `${(us / 1000).toFixed(0)}ms` : `${us.toFixed(0)}µs`

const formatRatio = (x: number | undefined): string => (x === undefined || !Number.isFinite(x) ? "–" : `${x.toFixed(2)}×`)
const formatPercent = (x: number | undefined): string =>
  x === undefined || !Number.isFinite(x) ? "–" : `${(x * 100).toFixed(0)}%`
const ratio = (a: number | undefined, b: number | undefined): number | undefined =>
  a === undefined || b === undefined ? undefined : a / b

const table = (header: ReadonlyArray<string>, rows: ReadonlyArray<ReadonlyArray<string>>, rightFrom: number): string => {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)))
  const line = (cells: ReadonlyArray<string>) =>
    "| " + cells.map((c, i) => (i >= rightFrom ? c.padStart(widths[i]!) : c.padEnd(widths[i]!))).join(" | ") + " |"
  const rule = "|" + widths.map((w, i) => (i >= rightFrom ? "-".repeat(w + 1) + ":" : "-".repeat(w + 2))).join("|") + "|"
  return [line(header), rule, ...rows.map(line)].join("\n")
}

/** One row per scenario, one column per runner, then the headline's ratios. */
const mainTable = (scenarios: ReadonlyArray<Scenario>, runners: ReadonlyArray<Runner>, results: Results): string => {
  const header = ["scenario", "unit", ...runners.map((r) => r.column), "÷ best peer", "÷ floor/effect", "of ceiling"]
  const rows = scenarios.map((s) => {
    const row = results.get(s.id)
    const { bestPeer, floor, ceiling } = compare(row, runners)
    const ours = row?.get(HEADLINE)?.median
    return [
      s.label,
      s.unit,
      ...runners.map((r) => {
        const c = row?.get(r.id)
        return c === undefined ? "–" : formatRate(c.median) + (c.noisy ? "~" : "") + (c.errors > 0 ? "!" : "")
      }),
      formatRatio(ratio(ours, bestPeer?.rate)),
      formatRatio(ratio(ours, floor)),
      formatPercent(ratio(ours, ceiling)),
    ]
  })
  return table(header, rows, 2)
}

/** p50 / p99 per call, per scenario and runner. */
const latencyTable = (scenarios: ReadonlyArray<Scenario>, runners: ReadonlyArray<Runner>, results: Results): string => {
  const header = ["p50 / p99 per call", ...runners.map((r) => r.column)]
  const rows = scenarios.map((s) => [
    s.label,
    ...runners.map((r) => {
      const c = results.get(s.id)?.get(r.id)
      return c === undefined || c.p50 === undefined ? "–" : `${formatMicros(c.p50)} / ${formatMicros(c.p99)}`
    }),
  ])
  return table(header, rows, 1)
}

/** Each of our variants against the best peer and the floor. */
const variantsTable = (scenarios: ReadonlyArray<Scenario>, runners: ReadonlyArray<Runner>, results: Results): string => {
  const ours = runners.filter((r) => r.group === "ours")
  const header = ["scenario", "best peer", ...ours.flatMap((r) => [`${r.column} ÷ best peer`, "÷ floor"])]
  const rows = scenarios.map((s) => {
    const row = results.get(s.id)
    const { bestPeer, floor } = compare(row, runners)
    return [
      s.label,
      bestPeer === undefined ? "–" : `${bestPeer.id} ${formatRate(bestPeer.rate)}`,
      ...ours.flatMap((r) => {
        const m = row?.get(r.id)?.median
        return [formatRatio(ratio(m, bestPeer?.rate)), formatRatio(ratio(m, floor))]
      }),
    ]
  })
  return table(header, rows, 2)
}

export interface TlsComparison {
  readonly scenario: string
  readonly tls: number
  readonly plaintext: number
  readonly ratio: number
  readonly tlsP99: number | undefined
  readonly plaintextP99: number | undefined
}

/** effect-memcache over TLS against plaintext, in every scenario both ran. */
export const tlsOf = (scenarios: ReadonlyArray<Scenario>, results: Results): ReadonlyArray<TlsComparison> =>
  scenarios.flatMap((s) => {
    const tls = results.get(s.id)?.get(TLS)
    const plain = results.get(s.id)?.get(HEADLINE)
    return tls === undefined || plain === undefined
      ? []
      : [{ scenario: s.id, tls: tls.median, plaintext: plain.median, ratio: tls.median / plain.median, tlsP99: tls.p99, plaintextP99: plain.p99 }]
  })

export interface TargetResult {
  readonly name: string
  readonly status: "PASS" | "MISS" | "SKIP"
  readonly actual: string
  readonly goal: string
  /** the ratio the target is judged on */
  readonly ratio?: number
}

/** The targets of issue 13, each a ratio within this run. */
export const targetsOf = (
  results: Results,
  runners: ReadonlyArray<Runner>,
  heap: Heap | undefined,
  heapGets: number,
): Array<TargetResult> => {
  const skip = (name: string, goal: string): TargetResult => ({ name, status: "SKIP", actual: "not measured", goal })
  const judged = (name: string, goal: string, r: number, pass: boolean, detail: string): TargetResult => ({
    name,
    status: pass ? "PASS" : "MISS",
    actual: `${formatRatio(r)} (${detail})`,
    goal,
    ratio: Math.round(r * 1000) / 1000,
  })
  const vsPeer = (sid: string, goal: number, name: string, oursIds: ReadonlyArray<string> = [HEADLINE]): TargetResult => {
    const row = results.get(sid)
    const { bestPeer } = compare(row, runners)
    const best = oursIds
      .map((id) => ({ id, m: row?.get(id)?.median }))
      .filter((x): x is { id: string; m: number } => x.m !== undefined)
      .sort((a, b) => b.m - a.m)[0]
    const want = `≥ ${goal.toFixed(1)}× best peer`
    if (best === undefined || bestPeer === undefined) return skip(name, want)
    const r = best.m / bestPeer.rate
    return judged(name, want, r, r >= goal, `${best.id} ${formatRate(best.m)} vs ${bestPeer.id} ${formatRate(bestPeer.rate)}`)
  }
  const vsFloor = (sid: string, goal: number, name: string): TargetResult => {
    const row = results.get(sid)
    const ours = row?.get(HEADLINE)?.median
    const { floor } = compare(row, runners)
    const want = `≥ ${goal.toFixed(2)}× ${FLOOR}`
    if (ours === undefined || floor === undefined) return skip(name, want)
    const r = ours / floor
    return judged(name, want, r, r >= goal, `${formatRate(ours)} vs ${formatRate(floor)}`)
  }
  const p99 = (sid: string, name: string): TargetResult => {
    const row = results.get(sid)
    const ours = row?.get(HEADLINE)?.p99
    const { bestPeerP99 } = compare(row, runners)
    const want = "≤ 1.00× the best peer's p99"
    if (ours === undefined || bestPeerP99 === undefined) return skip(name, want)
    const r = ours / bestPeerP99.p99
    return judged(name, want, r, r <= 1, `${formatMicros(ours)} vs ${bestPeerP99.id} ${formatMicros(bestPeerP99.p99)}`)
  }
  const heapTarget = (): TargetResult => {
    const name = `heap over ${heapGets.toLocaleString("en-US")} gets`
    if (heap === undefined) return skip(name, "flat ± 10 MB")
    const sign = heap.deltaMB >= 0 ? "+" : ""
    return {
      name,
      status: !heap.gcExposed ? "SKIP" : Math.abs(heap.deltaMB) <= 10 ? "PASS" : "MISS",
      actual:
        `${sign}${heap.deltaMB.toFixed(1)} MB (${heap.beforeMB.toFixed(1)} → ${heap.afterMB.toFixed(1)} MB)` +
        (heap.gcExposed ? "" : ", gc not exposed: run node with --expose-gc"),
      goal: "flat ± 10 MB",
    }
  }
  // From plain async code: the best of our plain-async runners (runPromise per call, a facade).
  const plainAsync = runners.filter((r) => r.group === "ours" && r.callingStyle === "plain-async" && r.id !== TLS).map((r) => r.id)
  return [
    vsFloor("get-c50", 0.85, "get c=50 vs floor"),
    vsFloor("get-c500", 0.85, "get c=500 vs floor"),
    vsFloor("set-c50", 0.85, "set c=50 vs floor"),
    vsFloor("get16k-c50", 0.95, "get 16 KiB c=50 vs floor"),
    vsPeer("get-c1", 1, "get c=1 vs best peer"),
    vsPeer("multi-c10", 2, `getMulti(${MULTI_KEYS}) c=10 vs best peer, keys/s`),
    vsFloor("multi-c10", 0.5, `getMulti(${MULTI_KEYS}) c=10 vs its floor, keys/s`),
    p99("get-c500", "p99 at get c=500 vs best peer's"),
    vsPeer("get-c50", 1, "plain async code, get c=50 vs best peer", plainAsync),
    vsPeer("get-c500", 1, "plain async code, get c=500 vs best peer", plainAsync),
    heapTarget(),
  ]
}

/** The whole text report. */
export const renderReport = (input: {
  readonly header: ReadonlyArray<string>
  readonly scenarios: ReadonlyArray<Scenario>
  readonly runners: ReadonlyArray<Runner>
  readonly results: Results
  readonly heap: Heap | undefined
  readonly targets: ReadonlyArray<TargetResult>
}): string => {
  const { scenarios, runners, results, heap } = input
  const out: Array<string> = [
    "",
    ...input.header,
    "",
    mainTable(scenarios, runners, results),
    "",
    `~ rounds spread more than ${NOISE_LIMIT * 100}% (noisy); ! errors during the run (listed below); – not run.`,
    `÷ best peer, ÷ floor/effect and of ceiling: ${HEADLINE}, the default config (binary keys) from N fibers.`,
    `"em plain keys" adds disableBinaryEncodedKeys; "em runPromise" is the default config called from`,
    `N plain async workers (await runtime.runPromise(op)). The ceiling runs only where it is one (see Clients).`,
    "",
    latencyTable(scenarios, runners, results),
    "",
    "Latency: one call in 8 timed (performance.now() around it); median over rounds of each round's p50 / p99.",
    "",
    variantsTable(scenarios, runners, results),
  ]
  const tls = tlsOf(scenarios, results)
  if (tls.length > 0)
    out.push(
      "",
      "TLS (memcached -Z, tls: { ca }) vs plaintext, effect-memcache from fibers:",
      ...tls.map((t) => {
        const s = scenarios.find((x) => x.id === t.scenario)!
        return (
          `  ${s.label}: TLS ${formatRate(t.tls)} vs plaintext ${formatRate(t.plaintext)} ${s.unit}, ${formatRatio(t.ratio)}; ` +
          `p99 ${formatMicros(t.tlsP99)} vs ${formatMicros(t.plaintextP99)}`
        )
      }),
    )
  const noisy: Array<string> = []
  const errors: Array<string> = []
  for (const s of scenarios)
    for (const r of runners) {
      const c = results.get(s.id)?.get(r.id)
      if (c === undefined) continue
      const rounds = c.rounds.map(formatRate).join(", ")
      if (c.noisy) noisy.push(`  ${s.label} / ${r.label}: ${rounds} (spread ${formatPercent(c.spread)})`)
      if (c.errors > 0) errors.push(`  ${s.label} / ${r.label}: ${c.errors} errors, first: ${c.firstError}`)
    }
  if (noisy.length > 0) out.push("", "Noisy (rounds):", ...noisy)
  if (errors.length > 0) out.push("", "Errors:", ...errors)
  if (heap !== undefined) {
    const mb = (x: number) => `${x.toFixed(1)} MB`
    out.push(
      "",
      `Heap: ${heap.gets.toLocaleString("en-US")} gets from ${heap.concurrency} fibers at ${formatRate(heap.opsPerSecond)} ops/s;`,
      `  heapUsed ${mb(heap.beforeMB)} → ${mb(heap.afterMB)}${heap.gcExposed ? " after gc()" : " (gc not exposed)"}, ` +
        `peak ${mb(heap.peakMB)} during the run; rss ${mb(heap.rssBeforeMB)} → ${mb(heap.rssAfterMB)}`,
    )
  }
  out.push(
    "",
    "Clients:",
    ...runners.map((r) => `  ${r.label}: ${r.notes}`),
    "",
    "Targets:",
    ...input.targets.map((t) => `${t.status.padEnd(4)}  ${t.name}: ${t.actual}; target ${t.goal}`),
    "",
  )
  return out.join("\n")
}
