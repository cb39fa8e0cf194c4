/**
 * `npm run bench`: effect-memcache against memjs, memcache-client, memcached (npm) and memcache
 * (npm), a floor and a raw `node:net` ceiling, all facing one memcached in one run.
 *
 * - The floor is a minimal pipelined `node:net` meta client (scripts/bench/floor.ts):
 *   `floor/effect` calls it with one bare `Effect.async` per operation from N long-lived fibers
 *   (what no Effect client can beat); `floor/promise` with one Promise per operation.
 * - The ceiling is raw batches of 100 `mg`, no client at all; it runs only where it is a ceiling.
 * - Starts its own `memcached -t 1 -c 4096` on a free loopback port unless MEMCACHE_SERVERS is set
 *   (then the first server is used), and a second one with TLS (`-Z`, certificates made with
 *   openssl into a temporary directory) for `effect-memcache-tls`, which runs get c=50 and c=500
 *   against it (every selected scenario when BENCH_CLIENTS names it) to report TLS beside plaintext.
 * - After a warm-up, every scenario runs for every client in several rounds, in an order that
 *   rotates; medians are reported and rounds that disagree by more than 10% are flagged. Every call
 *   is checked (value length; the whole value, which encodes its key, on the sampled calls), and one
 *   call in 8 is timed for p50 / p99.
 * - Prints a table (throughput, ratios to the best peer and to floor/effect, latency, TLS, the
 *   targets of issue 13 as PASS/MISS with their ratios), writes bench/results.json and
 *   bench/results.svg.
 *
 * BENCH_QUICK=1: a short run, to check the script (not for numbers).
 * BENCH_CLIENTS / BENCH_SCENARIOS: comma-separated ids to run only some (e.g. for profiling).
 * effect-memcache is measured as it ships: the build in dist/ (see bench/package.ts); `npm run bench`
 * builds it first.
 * BENCH_BASELINE=<path to another checkout's dist/index.js>: adds that version of the client as
 * `effect-memcache-baseline`, to measure a change within one run (e.g. the cost of the reply
 * integrity checks against the commit before them). The checkout must resolve `effect` to this
 * one's (symlink its node_modules).
 * `effect-memcache-traced` (tracing: true, Effect's built-in tracer, no exporter) and
 * `effect-memcache-metrics` (metrics: true) measure the cost of observability; the report ends
 * with their ratios to the headline client. E.g. only those:
 *   BENCH_SCENARIOS=get-c50,get-c500 BENCH_CLIENTS=effect-memcache,effect-memcache-traced,effect-memcache-metrics
 * Such partial runs write their files to the temp directory, leaving bench/ alone.
 */
import { rmSync } from "node:fs"
import * as os from "node:os"
import { fileURLToPath, pathToFileURL } from "node:url"
import { makeTestCerts, type TestCerts, tlsArgs } from "../test/support/certs.js"
import { type EffectRunner, type EffectRunnerSpec, makeEffectRunner } from "./bench/effect.js"
import { loadClient } from "./bench/package.js"
import { floorRunner } from "./bench/floor.js"
import { collect, gcExposed, type Heap, heapCheck } from "./bench/heap.js"
import { memcacheClientRunner, memcachedRunner, memcacheRunner, memjsRunner } from "./bench/peers.js"
import { ceilingKind, memcachedVersion, rawRunner } from "./bench/raw.js"
import { formatRate, HEADLINE, NOISE_LIMIT, rate, renderReport, summarize, targetsOf, TLS, tlsOf } from "./bench/report.js"
import { writeResults } from "./bench/results.js"
import {
  KEY_COUNT,
  LARGE_KEY_COUNT,
  LARGE_VALUE_BYTES,
  MULTI_KEYS,
  type RunResult,
  type Runner,
  runs,
  type Scenario,
  scenarios as allScenarios,
  VALUE_BYTES,
} from "./bench/types.js"
import { type MemcachedProcess, startMemcached } from "./memcached.js"

const quick = process.env["BENCH_QUICK"] === "1"
const config = {
  quick,
  rounds: quick ? 2 : 3,
  durationMs: quick ? 400 : 1500,
  warmupMs: quick ? 100 : 300,
  keys: KEY_COUNT,
  valueBytes: VALUE_BYTES,
  largeKeys: LARGE_KEY_COUNT,
  largeValueBytes: LARGE_VALUE_BYTES,
  multiKeys: MULTI_KEYS,
  noiseLimit: NOISE_LIMIT,
}
const HEAP_GETS = quick ? 200_000 : 1_000_000
const HEAP_CONCURRENCY = 100
// -c 4096: one peer opens hundreds of connections at c=500; past the default 1,024 the server
// refuses everyone.
const MEMCACHED_ARGS = ["-t", "1", "-c", "4096"]

/** The ids in a comma-separated env var; undefined when unset (everything runs). */
const idsFromEnv = (name: string): ReadonlySet<string> | undefined => {
  const v = process.env[name]?.trim()
  return v === undefined || v === "" ? undefined : new Set(v.split(",").map((x) => x.trim()))
}
const onlyClients = idsFromEnv("BENCH_CLIENTS")
const onlyScenarios = idsFromEnv("BENCH_SCENARIOS")
const scenarios: ReadonlyArray<Scenario> = allScenarios.filter((s) => onlyScenarios?.has(s.id) ?? true)

const log = (line: string) => process.stderr.write(line + "\n")

interface ServerUnderTest {
  readonly address: string
  readonly args: string
  readonly process: MemcachedProcess | undefined
}

const serverUnderTest = async (): Promise<ServerUnderTest> => {
  const fromEnv = (process.env["MEMCACHE_SERVERS"] ?? "")
    .split(",")
    .map((s) => s.trim())
    .filter((s) => s.length > 0)
  if (fromEnv.length > 0) {
    if (fromEnv.length > 1) log(`MEMCACHE_SERVERS lists ${fromEnv.length} servers; using the first, ${fromEnv[0]}`)
    return { address: fromEnv[0]!, args: "external (MEMCACHE_SERVERS)", process: undefined }
  }
  const started = await startMemcached({ extraArgs: MEMCACHED_ARGS })
  return { address: started.address, args: `-l 127.0.0.1 -U 0 -m 64 ${MEMCACHED_ARGS.join(" ")}`, process: started }
}

// effect-memcache-tls runs get c=50 and c=500 unless BENCH_CLIENTS names it (then all selected).
const tlsScenario =
  onlyClients?.has(TLS) === true ? () => true : (s: Scenario) => s.id === "get-c50" || s.id === "get-c500"
const tlsWanted = (onlyClients?.has(TLS) ?? true) && scenarios.some(tlsScenario)

interface TlsServer extends ServerUnderTest {
  readonly certs: TestCerts
}

/** The TLS memcached, beside the plaintext one, with a throwaway CA. */
const tlsServer = async (): Promise<TlsServer> => {
  const certs = makeTestCerts()
  const started = await startMemcached({ extraArgs: [...MEMCACHED_ARGS, ...tlsArgs(certs)] })
  return { address: started.address, args: `-l 127.0.0.1 -U 0 -m 64 ${MEMCACHED_ARGS.join(" ")} -Z`, process: started, certs }
}

const client = await loadClient(fileURLToPath(new URL("../dist/index.js", import.meta.url)))
const baselineModule = process.env["BENCH_BASELINE"]
const baseline = baselineModule === undefined || baselineModule === "" ? undefined : await loadClient(baselineModule)

// Observability runners, compared with the headline in get scenarios.
const OBSERVED = ["effect-memcache-traced", "effect-memcache-metrics"] as const

/**
 * effect-memcache's runners against the plaintext server. `style` is the calling style: "fibers"
 * (Effect code), "runPromise" (plain async code calling `runtime.runPromise(op)`) or "promise"
 * (plain async code on the package's Promise client); the plain-async target takes the best of
 * the plain-async rows.
 */
const EFFECT_RUNNERS: ReadonlyArray<EffectRunnerSpec> = [
  { id: HEADLINE, label: "effect-memcache", column: "effect-memcache", space: "em", style: "fibers" },
  {
    id: "effect-memcache-plain",
    label: "effect-memcache, plain keys",
    column: "em plain keys",
    space: "ek",
    style: "fibers",
    disableBinaryEncodedKeys: true,
  },
  {
    id: OBSERVED[0],
    label: "effect-memcache, tracing on",
    column: "em traced",
    space: "et",
    style: "fibers",
    layerOptions: { tracing: true },
  },
  {
    id: OBSERVED[1],
    label: "effect-memcache, metrics on",
    column: "em metrics",
    space: "em2",
    style: "fibers",
    layerOptions: { metrics: true },
  },
  { id: "effect-memcache-async", label: "effect-memcache via runPromise", column: "em runPromise", space: "ea", style: "runPromise" },
  { id: "effect-memcache-promise", label: "effect-memcache Promise client", column: "em Promise", space: "ep", style: "promise" },
]

const makeRunners = (
  server: string,
  tls: TlsServer | undefined,
): { readonly headline: EffectRunner; readonly all: ReadonlyArray<Runner> } => {
  const ours = EFFECT_RUNNERS.map((spec) => makeEffectRunner(spec, server, client))
  const all = [
    ...ours,
    ...(tls === undefined
      ? []
      : [
          makeEffectRunner(
            {
              id: TLS,
              label: "effect-memcache over TLS",
              column: "em TLS",
              space: "es",
              style: "fibers",
              layerOptions: { tls: { ca: tls.certs.ca } },
              optionsNote: "tls: { ca } against memcached -Z",
              measures: tlsScenario,
            },
            tls.address,
            client,
          ),
        ]),
    ...(baseline === undefined
      ? []
      : [
          makeEffectRunner(
            { id: "effect-memcache-baseline", label: "effect-memcache (baseline)", column: "em baseline", space: "eb", style: "fibers" },
            server,
            baseline,
          ),
        ]),
    floorRunner(server, "effect"),
    floorRunner(server, "promise"),
    memjsRunner(server),
    memcacheClientRunner(server),
    memcachedRunner(server),
    memcacheRunner(server),
    rawRunner(server),
  ]
  return { headline: ours[0]!, all }
}

/** Lines "get c=50: tracing on 0.62× of off, metrics on 0.97×" from the medians. */
const observabilityRatios = (results: ReturnType<typeof summarize>): ReadonlyArray<string> => {
  const lines: Array<string> = []
  for (const s of scenarios) {
    if (s.kind !== "get") continue
    const row = results.get(s.id)
    const base = row?.get(HEADLINE)?.median
    if (base === undefined || base === 0) continue
    const parts = OBSERVED.flatMap((id) => {
      const m = row?.get(id)?.median
      return m === undefined ? [] : [`${id === OBSERVED[0] ? "tracing" : "metrics"} on ${(m / base).toFixed(3)}× of off`]
    })
    if (parts.length > 0) lines.push(`${s.label}: ${parts.join(", ")}`)
  }
  return lines
}

type Collected = Map<string, Map<string, Array<RunResult>>>

const WATCHDOG_MS = 15_000

/**
 * A run whose calls never all complete (a client lost a reply) would hang the benchmark: past
 * its duration plus WATCHDOG_MS it is given up and reported as an error. Its stuck workers stay.
 */
const withWatchdog = (run: Promise<RunResult>, durationMs: number): Promise<RunResult> => {
  let timer: NodeJS.Timeout | undefined
  const givenUp = new Promise<RunResult>((resolve) => {
    timer = setTimeout(
      () =>
        resolve({
          units: 0,
          elapsedMs: durationMs,
          errors: 1,
          firstError: `did not finish ${WATCHDOG_MS / 1000} s after its end: some call never completed`,
        }),
      durationMs + WATCHDOG_MS,
    )
  })
  return Promise.race([run, givenUp]).finally(() => clearTimeout(timer))
}

/** Warm-up, then the rounds: each runs every scenario for every client, in an order that rotates. */
const measure = async (runners: ReadonlyArray<Runner>): Promise<Collected> => {
  const collected: Collected = new Map(scenarios.map((s) => [s.id, new Map(runners.map((r) => [r.id, []]))]))
  const runOne = async (runner: Runner, scenario: Scenario, durationMs: number): Promise<RunResult> => {
    collect() // each run starts without the previous one's garbage
    const result = await withWatchdog(runner.run(scenario, durationMs), durationMs)
    await new Promise((resolve) => setTimeout(resolve, 20))
    return result
  }
  log(`warm-up: ${config.warmupMs} ms per scenario and client`)
  for (const s of scenarios)
    for (const r of runners) {
      if (!runs(r, s)) continue
      const result = await runOne(r, s, config.warmupMs)
      if (result.errors > 0) log(`warm-up  ${s.label} ${r.label}: ${result.errors} errors: ${result.firstError}`)
    }

  for (let round = 0; round < config.rounds; round++) {
    // The ceiling runs once per kind of work and round: getMulti's ceiling is the get one, in keys/s.
    const ceilings = new Map<string, RunResult>()
    for (const [si, s] of scenarios.entries()) {
      const order = runners.map((_, i) => runners[(i + round + si) % runners.length]!)
      for (const r of order) {
        if (!runs(r, s)) continue
        let result: RunResult
        if (r.group === "ceiling") {
          const kind = ceilingKind(s.kind)
          result = ceilings.get(kind) ?? (await runOne(r, s, config.durationMs))
          ceilings.set(kind, result)
        } else {
          result = await runOne(r, s, config.durationMs)
        }
        collected.get(s.id)!.get(r.id)!.push(result)
        const errors = result.errors > 0 ? `  (${result.errors} errors: ${result.firstError})` : ""
        const p99 = result.latency === undefined ? "" : `  p99 ${result.latency.p99.toFixed(0)}µs`
        log(
          `round ${round + 1}/${config.rounds}  ${s.label.padEnd(20)} ${r.label.padEnd(36)} ` +
            `${formatRate(rate(result)).padStart(7)} ${s.unit}${p99}${errors}`,
        )
      }
    }
  }
  return collected
}

const main = async () => {
  const load0 = os.loadavg()[0]!
  const server = await serverUnderTest()
  let tls: TlsServer | undefined
  // Interrupted (Ctrl-C, a timeout): the servers this run started go with it.
  for (const signal of ["SIGINT", "SIGTERM"] as const)
    process.once(signal, () => {
      server.process?.process.kill()
      tls?.process?.process.kill()
      if (tls !== undefined) rmSync(tls.certs.dir, { recursive: true, force: true })
      process.exit(130)
    })
  try {
    tls = tlsWanted ? await tlsServer() : undefined
    const version = await memcachedVersion(server.address)
    log(
      `memcached ${version} at ${server.address} (${server.args})` +
        (tls === undefined ? "" : `, with TLS at ${tls.address}`) +
        `; ${config.rounds} rounds of ${config.durationMs} ms per scenario and client` +
        (gcExposed ? "" : "; gc not exposed (run node with --expose-gc)"),
    )
    if (load0 > 1) log(`load average is ${load0.toFixed(2)}: other work on this machine will skew the numbers`)

    const { headline, all: everyRunner } = makeRunners(server.address, tls)
    const runners = everyRunner.filter((r) => (onlyClients?.has(r.id) ?? true) && scenarios.some((s) => runs(r, s)))
    try {
      for (const r of runners) await r.preload()
      const results = summarize(await measure(runners))
      let heap: Heap | undefined
      if (runners.includes(headline)) {
        log(`heap: ${HEAP_GETS.toLocaleString("en-US")} gets from ${HEAP_CONCURRENCY} fibers`)
        heap = await heapCheck(headline, HEAP_GETS, HEAP_CONCURRENCY)
      }
      const targets = targetsOf(results, runners, heap, HEAP_GETS)

      const cpus = os.cpus()
      const env = {
        date: new Date().toISOString(),
        node: process.version,
        platform: `${os.platform()} ${os.release()} ${os.arch()}`,
        cpu: { model: cpus[0]?.model ?? "unknown", cores: cpus.length },
        loadAverage: { start: load0, end: os.loadavg()[0]! },
        memcached: {
          version,
          address: server.address,
          args: server.args,
          ...(tls === undefined ? {} : { tls: { address: tls.address, args: tls.args } }),
        },
      }
      const header = [
        `effect-memcache benchmark, ${env.date}`,
        `node ${env.node}, ${env.cpu.model} (${env.cpu.cores} cores), ` +
          `load average ${load0.toFixed(2)} → ${env.loadAverage.end.toFixed(2)}`,
        `memcached ${version} (${server.args})` + (tls === undefined ? "" : `; TLS: a second one (${tls.args})`),
        `${KEY_COUNT} keys of ${VALUE_BYTES}-byte values and ${LARGE_KEY_COUNT} of ${LARGE_VALUE_BYTES / 1024} KiB, preloaded; ` +
          `median of ${config.rounds} rounds × ${config.durationMs} ms` +
          (quick ? " (BENCH_QUICK: a short run, numbers are rough)" : ""),
      ]
      process.stdout.write(renderReport({ header, scenarios, runners, results, heap, targets }) + "\n")
      const ratios = observabilityRatios(results)
      if (ratios.length > 0)
        process.stdout.write(`\nobservability cost (median ops/s ratio, same run):\n${ratios.map((l) => `  ${l}`).join("\n")}\n`)
      const partial = quick || onlyClients !== undefined || onlyScenarios !== undefined
      const dir = partial ? pathToFileURL(`${os.tmpdir()}/effect-memcache-bench/`) : new URL("../bench/", import.meta.url)
      const files = writeResults({ dir, env, config, scenarios, runners, results, heap, targets, tls: tlsOf(scenarios, results) })
      log(`wrote ${files.join(" and ")}`)
    } finally {
      for (const r of everyRunner) await r.close().catch(() => undefined)
    }
  } finally {
    await tls?.process?.stop()
    if (tls !== undefined) rmSync(tls.certs.dir, { recursive: true, force: true })
    await server.process?.stop()
  }
}

await main()
