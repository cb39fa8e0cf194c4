/**
 * bench/results.json (everything measured, with the machine and versions) and bench/results.svg.
 */
import { mkdirSync, readFileSync, writeFileSync } from "node:fs"
import { type ChartSeries, renderChart } from "./chart.js"
import type { Heap } from "./heap.js"
import { compare, FLOOR, type Results, type TargetResult, type TlsComparison } from "./report.js"
import { type Runner, type Scenario } from "./types.js"

export interface Environment {
  readonly date: string
  readonly node: string
  readonly platform: string
  readonly cpu: { readonly model: string; readonly cores: number }
  /** 1-minute load average when the run started and ended: other work on the machine skews numbers */
  readonly loadAverage: { readonly start: number; readonly end: number }
  readonly memcached: {
    readonly version: string
    readonly address: string
    readonly args: string
    /** the second server, for effect-memcache-tls */
    readonly tls?: { readonly address: string; readonly args: string }
  }
}

export interface RunConfig {
  readonly quick: boolean
  readonly rounds: number
  readonly durationMs: number
  readonly warmupMs: number
  readonly keys: number
  readonly valueBytes: number
  readonly largeKeys: number
  readonly largeValueBytes: number
  readonly multiKeys: number
  readonly noiseLimit: number
}

const SERIES: ReadonlyArray<ChartSeries> = [
  { id: "effect-memcache", label: "effect-memcache", color: "#1f5fbf" },
  { id: "effect-memcache-plain", label: "effect-memcache, plain keys", color: "#5b8fe0" },
  { id: "effect-memcache-async", label: "effect-memcache via runPromise", color: "#a8c4f0", darkText: true },
  { id: "effect-memcache-promise", label: "effect-memcache Promise client", color: "#7fb3d5", darkText: true },
  { id: "effect-memcache-tls", label: "effect-memcache over TLS", color: "#2a9d8f" },
  { id: "floor/effect", label: "floor: bare Effect.async", color: "#555555" },
  { id: "floor/promise", label: "floor: Promise", color: "#aaaaaa", darkText: true },
  { id: "memjs", label: "memjs", color: "#e39b3a" },
  { id: "memcache-client", label: "memcache-client", color: "#c4504b" },
  { id: "memcached", label: "memcached (npm)", color: "#8a6bb0" },
  { id: "memcache", label: "memcache (npm)", color: "#b5835a" },
]

const packageVersions = (): Record<string, string> => {
  const pkg = JSON.parse(readFileSync(new URL("../../package.json", import.meta.url), "utf8")) as {
    readonly dependencies?: Record<string, string>
    readonly devDependencies?: Record<string, string>
  }
  const deps = { ...pkg.dependencies, ...pkg.devDependencies }
  return Object.fromEntries(["effect", "memjs", "memcache-client", "memcached", "memcache"].map((n) => [n, deps[n] ?? "?"]))
}

const round3 = (x: number): number => Math.round(x * 1000) / 1000
const round1 = (x: number): number => Math.round(x * 10) / 10

/** Writes both files into `dir` (a directory URL) and returns their paths. */
export const writeResults = (input: {
  readonly dir: URL
  readonly env: Environment
  readonly config: RunConfig
  readonly scenarios: ReadonlyArray<Scenario>
  readonly runners: ReadonlyArray<Runner>
  readonly results: Results
  readonly heap: Heap | undefined
  readonly targets: ReadonlyArray<TargetResult>
  readonly tls: ReadonlyArray<TlsComparison>
}): ReadonlyArray<string> => {
  const { dir, env, config, scenarios, runners, results } = input
  mkdirSync(dir, { recursive: true })

  const json = {
    ...env,
    packages: packageVersions(),
    config,
    clients: runners.map((r) => ({ id: r.id, label: r.label, group: r.group, notes: r.notes })),
    scenarios: scenarios.map((s) => {
      const row = results.get(s.id)
      const { bestPeer, bestPeerP99, floor, ceiling } = compare(row, runners)
      return {
        ...s,
        bestPeer: bestPeer === undefined ? null : { id: bestPeer.id, rate: Math.round(bestPeer.rate) },
        bestPeerP99: bestPeerP99 === undefined ? null : { id: bestPeerP99.id, p99Micros: round1(bestPeerP99.p99) },
        floor: floor === undefined ? null : Math.round(floor),
        ceiling: ceiling === undefined ? null : Math.round(ceiling),
        results: Object.fromEntries(
          [...(row ?? [])].map(([id, c]) => [
            id,
            {
              median: Math.round(c.median),
              rounds: c.rounds.map(Math.round),
              spread: round3(c.spread),
              noisy: c.noisy,
              errors: c.errors,
              ...(c.firstError === undefined ? {} : { firstError: c.firstError }),
              p50Micros: c.p50 === undefined ? null : round1(c.p50),
              p99Micros: c.p99 === undefined ? null : round1(c.p99),
              vsBestPeer: bestPeer === undefined ? null : round3(c.median / bestPeer.rate),
              vsFloor: floor === undefined ? null : round3(c.median / floor),
              ofCeiling: ceiling === undefined ? null : round3(c.median / ceiling),
            },
          ]),
        ),
      }
    }),
    tls: input.tls.map((t) => ({
      scenario: t.scenario,
      tls: Math.round(t.tls),
      plaintext: Math.round(t.plaintext),
      ratio: round3(t.ratio),
      tlsP99Micros: t.tlsP99 === undefined ? null : round1(t.tlsP99),
      plaintextP99Micros: t.plaintextP99 === undefined ? null : round1(t.plaintextP99),
    })),
    heap: input.heap ?? null,
    targets: input.targets,
  }
  const jsonFile = new URL("results.json", dir)
  writeFileSync(jsonFile, JSON.stringify(json, null, 2) + "\n")

  const svg = renderChart({
    title: `effect-memcache vs Node memcached clients and the floor, median of ${config.rounds} rounds`,
    subtitle:
      `memcached ${env.memcached.version} (-t 1 -c 4096, loopback) · node ${env.node} · ${env.cpu.model}, ${env.cpu.cores} cores · ` +
      `${config.keys} keys of ${config.valueBytes} bytes, ${config.largeKeys} of ${config.largeValueBytes / 1024} KiB · ${env.date.slice(0, 10)}`,
    footnote:
      `~ the ${config.rounds} rounds spread more than ${config.noiseLimit * 100}% (noisy). ` +
      `Bars are ÷ ${FLOOR} (linear; the largest bar where it did not run). ` +
      `getMulti fetches ${config.multiKeys} keys per call and counts keys. Load average: ` +
      `${env.loadAverage.start.toFixed(1)} → ${env.loadAverage.end.toFixed(1)}.`,
    series: SERIES.filter((s) => runners.some((r) => r.id === s.id)),
    groups: scenarios.map((s) => {
      const row = results.get(s.id)
      const cells = [...(row ?? [])].filter(([id]) => runners.find((r) => r.id === id)?.group !== "ceiling")
      return {
        label: s.label,
        unit: s.unit,
        values: new Map(cells.map(([id, c]) => [id, c.median])),
        noisy: new Set(cells.filter(([, c]) => c.noisy).map(([id]) => id)),
        ceiling: compare(row, runners).ceiling,
        reference: compare(row, runners).floor,
      }
    }),
    referenceLabel: FLOOR,
  })
  const svgFile = new URL("results.svg", dir)
  writeFileSync(svgFile, svg)
  return [jsonFile.pathname, svgFile.pathname]
}
