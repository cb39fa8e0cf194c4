/**
 * The published package, as a consumer gets it: build, `npm pack`, then install the tarball into
 * scratch projects and use it from ESM, CommonJS and TypeScript (node16, nodenext and bundler
 * resolution, without @types/node), the adapter subpaths `effect-memcache/KeyValueStore` and
 * `effect-memcache/Persistence` included, beside their optional peers. A second app on an older
 * Effect 3, without those peers, must end up with one copy of effect. arethetypeswrong and publint
 * must pass on the tarball.
 *
 * Needs the npm registry (for effect); the repo's own TypeScript is called by path.
 */
import { execFile } from "node:child_process"
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs"
import { tmpdir } from "node:os"
import { dirname, join, resolve } from "node:path"
import { fileURLToPath } from "node:url"
import { afterAll, beforeAll, describe, expect, it } from "vitest"

const root = resolve(dirname(fileURLToPath(import.meta.url)), "../..")
const bin = (name: string) => join(root, "node_modules", ".bin", name)
const tsc = join(root, "node_modules", "typescript", "bin", "tsc")

/**
 * effect as the test app pins it (the repo's dev version), and the oldest release the peer range
 * admits: the declarations name `effect/Types`' VoidIfEmpty (in Data.TaggedError), new in 3.20.0.
 */
const pkg = JSON.parse(readFileSync(join(root, "package.json"), "utf8"))
const effectCurrent: string = pkg.devDependencies.effect
// The adapters' optional peers, as the repo pins them.
const adapterPeers = ["@effect/platform", "@effect/experimental"].map((name) => `${name}@${pkg.devDependencies[name]}`)
const effectOldest = (/^>=(\d+\.\d+\.\d+) <4$/.exec(pkg.peerDependencies.effect) ?? [])[1]
if (effectOldest === undefined) throw new Error(`peer range of effect not of the form ">=3.x.y <4": ${pkg.peerDependencies.effect}`)

// The parent `npm test` leaks its own package's settings into the environment; keep them out of
// the scratch projects' npm.
const env = Object.fromEntries(
  Object.entries(process.env).filter(
    ([k]) => !/^(npm_package_|npm_lifecycle_|npm_config_(local_|global_)?prefix$|INIT_CWD$)/i.test(k),
  ),
)

interface Run {
  readonly code: number
  readonly stdout: string
  /** the command line, stdout and stderr, for failure messages */
  readonly out: string
}

/** Runs a command; resolves with its exit code and combined output (never rejects). */
const run = (cmd: string, args: ReadonlyArray<string>, cwd: string, timeoutMs = 120_000): Promise<Run> =>
  new Promise((done) => {
    execFile(cmd, args, { cwd, env, timeout: timeoutMs, maxBuffer: 16 * 1024 * 1024, encoding: "utf8" }, (err, stdout, stderr) => {
      const code = err === null ? 0 : typeof err.code === "number" ? err.code : -1
      done({ code, stdout, out: `$ ${cmd} ${args.join(" ")}\n${stdout}${stderr}${err !== null && code === -1 ? String(err) : ""}` })
    })
  })

/** Runs a command that must succeed; fails the test with its output otherwise. */
const ok = async (cmd: string, args: ReadonlyArray<string>, cwd: string, timeoutMs?: number): Promise<string> => {
  const r = await run(cmd, args, cwd, timeoutMs)
  if (r.code !== 0) throw new Error(`exit ${r.code}\n${r.out}`)
  return r.stdout
}

const write = (dir: string, files: Record<string, string>) => {
  for (const [name, text] of Object.entries(files)) {
    mkdirSync(dirname(join(dir, name)), { recursive: true })
    writeFileSync(join(dir, name), text)
  }
}

const smokeEsm = `
import { Effect } from "effect"
import * as Api from "effect-memcache"
import { CacheMiss, McClient, valueText } from "effect-memcache"

const program = Effect.gen(function* () {
  yield* McClient.set({ key: "k", value: "v" })
  const hit = valueText(yield* McClient.get("k"))
  const miss = yield* Effect.flip(McClient.get("absent"))
  return { hit, miss: miss instanceof CacheMiss && miss._tag === "CacheMiss", internal: "withoutStack" in Api }
}).pipe(Effect.provide(McClient.layerMemory()))

console.log(JSON.stringify(await Effect.runPromise(program)))
`

const smokeCjs = `
const { Effect } = require("effect")
const Api = require("effect-memcache")
const { CacheMiss, McClient, valueText } = Api

const program = Effect.gen(function* () {
  yield* McClient.set({ key: "k", value: "v" })
  const hit = valueText(yield* McClient.get("k"))
  const miss = yield* Effect.flip(McClient.get("absent"))
  return { hit, miss: miss instanceof CacheMiss && miss._tag === "CacheMiss", internal: "withoutStack" in Api }
}).pipe(Effect.provide(McClient.layerMemory()))

Effect.runPromise(program).then((r) => console.log(JSON.stringify(r)))
`

const expectedSmoke = { hit: "v", miss: true, internal: false }

/** Runs a smoke script and parses the JSON line it prints. */
const smoke = async (dir: string, script: string) => JSON.parse((await ok("node", [script], dir)).trim())

/** Uses the public types; fails to compile if an internal helper is exported. */
const consumer = (form: "esm" | "cjs") => `
import { Effect, Layer } from "effect"
import { CacheMiss, InvalidOption, McClient, NoServers, valueText, type Item, type McClientOptions, type McError } from "effect-memcache"

type Api = typeof import("effect-memcache")
export const noInternals: "withoutStack" extends keyof Api ? false : true = true

const options: McClientOptions = { servers: ["127.0.0.1:11211"] }
export const tcp: Layer.Layer<McClient, NoServers | InvalidOption> = McClient.layer(options)

export const program: Effect.Effect<string, McError | InvalidOption> = Effect.gen(function* () {
  yield* McClient.set({ key: "k", value: new Uint8Array([118]) })
  const item: Item = yield* McClient.get("k")
  const bytes: Uint8Array = item.value
  return valueText(item) + bytes.length
}).pipe(
  Effect.catchTag("CacheMiss", (e: CacheMiss) => Effect.succeed("miss " + e.key)),
  Effect.catchTag("DecodeError", (e) => Effect.succeed(e.reason)),
  Effect.provide(McClient.layerMemory()),
)
export const form = "${form}"
`

/** The adapter subpaths at run time: a KeyValueStore, and a PersistedCache hit after its in-memory cache is gone. */
const adapterProgram = (im: (module: string) => string) => `
const { Effect, Layer, Option, PrimaryKey, Schema } = ${im("effect")}
const KeyValueStore = ${im("@effect/platform/KeyValueStore")}
const PersistedCache = ${im("@effect/experimental/PersistedCache")}
const { McClient } = ${im("effect-memcache")}
const McKeyValueStore = ${im("effect-memcache/KeyValueStore")}
const McPersistence = ${im("effect-memcache/Persistence")}

class Req extends Schema.TaggedRequest()("Req", { failure: Schema.String, success: Schema.String, payload: { id: Schema.Number } }) {
  [PrimaryKey.symbol]() { return "Req:" + this.id }
}

let calls = 0
const cache = PersistedCache.make({
  storeId: "smoke",
  lookup: (req) => Effect.sync(() => { calls++; return "value of " + req.id }),
  timeToLive: () => "1 minute",
})

const program = Effect.gen(function* () {
  const kv = yield* KeyValueStore.KeyValueStore
  yield* kv.set("k", "value of k")
  const got = Option.getOrNull(yield* kv.get("k"))
  const first = yield* (yield* cache).get(new Req({ id: 1 }))
  const second = yield* (yield* cache).get(new Req({ id: 1 }))
  return { kv: got, persisted: [first, second], calls }
}).pipe(
  Effect.scoped,
  Effect.provide(Layer.mergeAll(McKeyValueStore.layer(), McPersistence.layerResult()).pipe(Layer.provideMerge(McClient.layerMemory()))),
)

Effect.runPromise(program).then((r) => console.log(JSON.stringify(r)))
`
const smokeAdaptersEsm = adapterProgram((m) => `await import("${m}")`)
const smokeAdaptersCjs = adapterProgram((m) => `require("${m}")`)
const expectedAdapters = { kv: "value of k", persisted: ["value of 1", "value of 1"], calls: 1 }

/** The adapters' public types. */
const adapterConsumer = `
import type * as KeyValueStore from "@effect/platform/KeyValueStore"
import type * as Persistence from "@effect/experimental/Persistence"
import type { Layer } from "effect"
import type { McClient } from "effect-memcache"
import * as McKeyValueStore from "effect-memcache/KeyValueStore"
import * as McPersistence from "effect-memcache/Persistence"

export const kv: Layer.Layer<KeyValueStore.KeyValueStore, never, McClient> = McKeyValueStore.layer({ namespace: "app", expiration: "1 hour" })
export const backing: Layer.Layer<Persistence.BackingPersistence, never, McClient> = McPersistence.layer()
export const result: Layer.Layer<Persistence.ResultPersistence, never, McClient> = McPersistence.layerResult({ namespace: "app" })
`

const tsconfig = (module: string, moduleResolution: string, files: ReadonlyArray<string>) =>
  JSON.stringify(
    {
      compilerOptions: {
        target: "ES2022",
        // DOM, as TypeScript's default lib has it: effect's own declarations use AbortSignal, URL and
        // ReadableStream. Buffer and NodeJS come only from @types/node, which is not installed.
        lib: ["ES2022", "DOM"],
        module,
        moduleResolution,
        strict: true,
        noEmit: true,
        skipLibCheck: false,
        types: [],
      },
      files,
    },
    null,
    2,
  )

describe("package", { timeout: 240_000 }, () => {
  let work = ""
  let tarball = ""

  /** A scratch app with the tarball and the given effect installed. */
  const app = async (name: string, effect: string, extra: ReadonlyArray<string> = []): Promise<string> => {
    const dir = join(work, name)
    write(dir, { "package.json": JSON.stringify({ name, version: "0.0.0", private: true, type: "module" }, null, 2) })
    await ok("npm", ["install", "--no-audit", "--no-fund", "--ignore-scripts", "--save-exact", tarball, `effect@${effect}`, ...extra], dir, 180_000)
    return dir
  }

  beforeAll(async () => {
    work = mkdtempSync(join(tmpdir(), "effect-memcache-package-"))
    await ok("npm", ["run", "build"], root, 180_000)
    const packed = await ok("npm", ["pack", "--ignore-scripts", "--json", "--pack-destination", work], root)
    const filename: string = JSON.parse(packed.slice(packed.indexOf("[")))[0].filename
    tarball = join(work, filename)
    expect(existsSync(tarball)).toBe(true)
  }, 240_000)

  afterAll(() => {
    if (work !== "") rmSync(work, { recursive: true, force: true })
  })

  it("passes arethetypeswrong and publint", async () => {
    const attw = await run(bin("attw"), [tarball, "--format", "ascii"], work)
    expect(attw.code, attw.out).toBe(0)
    expect(attw.out).toContain("No problems found")
    const publint = await run(bin("publint"), ["--strict", tarball], work)
    expect(publint.code, publint.out).toBe(0)
    expect(publint.out).toContain("All good")
  })

  it(`works from ESM, CommonJS and TypeScript (node16, nodenext, bundler) on effect ${effectCurrent}, adapters included`, async () => {
    const dir = await app("current", effectCurrent, adapterPeers)
    expect(existsSync(join(dir, "node_modules", "@types", "node")), "the scratch app must not have @types/node").toBe(false)
    const typed = ["consumer.ts", "consumer-cjs.cts", "adapters.ts", "adapters-cjs.cts"]
    write(dir, {
      "smoke.mjs": smokeEsm,
      "smoke.cjs": smokeCjs,
      "smoke-adapters.mjs": smokeAdaptersEsm,
      "smoke-adapters.cjs": smokeAdaptersCjs,
      "consumer.ts": consumer("esm"),
      "consumer-cjs.cts": consumer("cjs"),
      "adapters.ts": adapterConsumer,
      "adapters-cjs.cts": adapterConsumer,
      "tsconfig.node16.json": tsconfig("node16", "node16", typed),
      "tsconfig.nodenext.json": tsconfig("nodenext", "nodenext", typed),
      "tsconfig.bundler.json": tsconfig("esnext", "bundler", ["consumer.ts", "adapters.ts"]),
    })
    expect(await smoke(dir, "smoke.mjs")).toEqual(expectedSmoke)
    expect(await smoke(dir, "smoke.cjs")).toEqual(expectedSmoke)
    expect(await smoke(dir, "smoke-adapters.mjs")).toEqual(expectedAdapters)
    expect(await smoke(dir, "smoke-adapters.cjs")).toEqual(expectedAdapters)
    for (const config of ["node16", "nodenext", "bundler"]) {
      const r = await run("node", [tsc, "-p", `tsconfig.${config}.json`], dir)
      expect(r.code, r.out).toBe(0)
    }
  })

  it(`shares one copy of effect with an app on effect ${effectOldest}`, async () => {
    const dir = await app("oldest", effectOldest)
    expect(existsSync(join(dir, "node_modules", "effect-memcache", "node_modules", "effect"))).toBe(false)
    // The core needs none of the adapters' optional peers: npm installs none of them.
    expect(existsSync(join(dir, "node_modules", "@effect", "platform"))).toBe(false)
    expect(existsSync(join(dir, "node_modules", "@effect", "experimental"))).toBe(false)
    const ls = JSON.parse(await ok("npm", ["ls", "effect", "--all", "--json"], dir))
    const versions = new Set<string>()
    const walk = (deps: Record<string, { version?: string; dependencies?: Record<string, unknown> }> | undefined) => {
      for (const [name, dep] of Object.entries(deps ?? {})) {
        if (name === "effect" && dep.version !== undefined) versions.add(dep.version)
        walk(dep.dependencies as never)
      }
    }
    walk(ls.dependencies)
    expect([...versions]).toEqual([effectOldest])
    write(dir, {
      "smoke.mjs": smokeEsm,
      "smoke.cjs": smokeCjs,
      "consumer.ts": consumer("esm"),
      "consumer-cjs.cts": consumer("cjs"),
      "tsconfig.node16.json": tsconfig("node16", "node16", ["consumer.ts", "consumer-cjs.cts"]),
    })
    expect(await smoke(dir, "smoke.mjs")).toEqual(expectedSmoke)
    expect(await smoke(dir, "smoke.cjs")).toEqual(expectedSmoke)
    const r = await run("node", [tsc, "-p", "tsconfig.node16.json"], dir)
    expect(r.code, r.out).toBe(0)
  })
})
