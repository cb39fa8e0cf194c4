/**
 * Medians, noise, ratios and targets, and the text report printed on stdout.
 */
import type { Heap } from "./heap.js"
import { MULTI_KEYS, type RunResult, type Runner, type Scenario } from "./types.js"

/** Rounds whose spread ((max - min) / median) exceeds this are flagged as noisy. */
export const NOISE_LIMIT = 0.1

/** The client the targets are about: effect-memcache's default config, from fibers. */
export const HEADLINE = "effect-memcache"

export interface Cell {
  /** rate per round, units per second */
  readonly rounds: ReadonlyArray<number>
  readonly median: number
  readonly spread: number
  readonly noisy: boolean
  readonly errors: number
  readonly firstError?: string | undefined
}

/** Per scenario id, per runner id. */
export type Results = ReadonlyMap<string, ReadonlyMap<string, Cell>>

export const rate = (r: RunResult): number => (r.units / r.elapsedMs) * 1000

export const median = (xs: ReadonlyArray<number>): number => {
  const s = [...xs].sort((a, b) => a - b)
  const m = s.length >> 1
  return s.length === 0 ? Number.NaN : s.length % 2 === 1 ? s[m]! : (s[m - 1]! + s[m]!) / 2
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
  readonly bestPeer: { readonly id: string; readonly rate: number } | undefined
  readonly ceiling: number | undefined
}

export const compare = (row: ReadonlyMap<string, Cell> | undefined, runners: ReadonlyArray<Runner>): Comparison => {
  let bestPeer: { id: string; rate: number } | undefined
  let ceiling: number | undefined
  for (const r of runners) {
    const cell = row?.get(r.id)
    if (cell === undefined) continue
    if (r.group === "peer" && (bestPeer === undefined || cell.median > bestPeer.rate))
      bestPeer = { id: r.id, rate: cell.median }
    if (r.group === "ceiling") ceiling = cell.median
  }
  return { bestPeer, ceiling }
}

export const formatRate = (x: number): string => {
  if (!Number.isFinite(x)) return "–"
  if (x >= 1e6) return `${(x / 1e6).toFixed(2)}M`
  if (x >= 1e5) return `${(x / 1e3).toFixed(0)}k`
  if (x >= 1e3) return `${(x / 1e3).toFixed(1)}k`
  return x.toFixed(0)
}

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
  const header = ["scenario", "unit", ...runners.map((r) => r.column), "× best peer", "of ceiling"]
  const rows = scenarios.map((s) => {
    const row = results.get(s.id)
    const { bestPeer, ceiling } = compare(row, runners)
    const ours = row?.get(HEADLINE)?.median
    return [
      s.label,
      s.unit,
      ...runners.map((r) => {
        const c = row?.get(r.id)
        return c === undefined ? "–" : formatRate(c.median) + (c.noisy ? "~" : "") + (c.errors > 0 ? "!" : "")
      }),
      formatRatio(ratio(ours, bestPeer?.rate)),
      formatPercent(ratio(ours, ceiling)),
    ]
  })
  return table(header, rows, 2)
}

/** Each of our variants against the best peer and the ceiling. */
const variantsTable = (scenarios: ReadonlyArray<Scenario>, runners: ReadonlyArray<Runner>, results: Results): string => {
  const ours = runners.filter((r) => r.group === "ours")
  const header = ["scenario", "best peer", ...ours.flatMap((r) => [`${r.column} × best peer`, "of ceiling"])]
  const rows = scenarios.map((s) => {
    const row = results.get(s.id)
    const { bestPeer, ceiling } = compare(row, runners)
    return [
      s.label,
      bestPeer === undefined ? "–" : `${bestPeer.id} ${formatRate(bestPeer.rate)}`,
      ...ours.flatMap((r) => {
        const m = row?.get(r.id)?.median
        return [formatRatio(ratio(m, bestPeer?.rate)), formatPercent(ratio(m, ceiling))]
      }),
    ]
  })
  return table(header, rows, 2)
}

export interface TargetResult {
  readonly name: string
  readonly status: "PASS" | "MISS" | "SKIP"
  readonly actual: string
  readonly goal: string
}

export const targetsOf = (
  results: Results,
  runners: ReadonlyArray<Runner>,
  heap: Heap | undefined,
  heapGets: number,
): Array<TargetResult> => {
  const skip = (name: string, goal: string): TargetResult => ({ name, status: "SKIP", actual: "not measured", goal })
  const vsPeer = (scenario: string, goal: number, name: string): TargetResult => {
    const row = results.get(scenario)
    const ours = row?.get(HEADLINE)?.median
    const { bestPeer } = compare(row, runners)
    const want = `≥ ${goal.toFixed(1)}× best peer`
    if (ours === undefined || bestPeer === undefined) return skip(name, want)
    const r = ours / bestPeer.rate
    return {
      name,
      status: r >= goal ? "PASS" : "MISS",
      actual: `${formatRatio(r)} (${formatRate(ours)} vs ${bestPeer.id} ${formatRate(bestPeer.rate)})`,
      goal: want,
    }
  }
  const vsCeiling = (scenario: string, goal: number, name: string): TargetResult => {
    const row = results.get(scenario)
    const ours = row?.get(HEADLINE)?.median
    const { ceiling } = compare(row, runners)
    const want = `≥ ${formatPercent(goal)} of ceiling`
    if (ours === undefined || ceiling === undefined) return skip(name, want)
    return {
      name,
      status: ours / ceiling >= goal ? "PASS" : "MISS",
      actual: `${formatPercent(ours / ceiling)} (${formatRate(ours)} vs ${formatRate(ceiling)})`,
      goal: want,
    }
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
  return [
    vsPeer("get-c500", 4, "get c=500 vs best peer"),
    vsCeiling("get-c500", 0.4, "get c=500 vs raw ceiling"),
    vsPeer("get-c1", 1, "get c=1 vs best peer"),
    vsPeer("set-c50", 3, "set c=50 vs best peer"),
    vsPeer("multi-c10", 3, `getMulti(${MULTI_KEYS}) c=10 vs best peer, keys/s`),
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
    `~ rounds spread more than ${NOISE_LIMIT * 100}% (noisy); ! errors during the run (listed below).`,
    `× best peer and of ceiling: ${HEADLINE}, the default config (binary keys) from N fibers.`,
    `"em plain keys" adds disableBinaryEncodedKeys; "em runPromise" is the default config called from`,
    `N plain async workers (await runtime.runPromise(op)).`,
    "",
    variantsTable(scenarios, runners, results),
  ]
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
