/**
 * The core (`effect-memcache`: src/index.ts and every module it reaches) imports only `effect` and
 * `node:` modules, types included, so an app needs no optional peer to use it. The one exception is
 * the MessagePack codec's `import("msgpackr")`, made only when that codec is used. The adapter
 * subpaths (`effect-memcache/KeyValueStore`, `effect-memcache/Persistence`) are not reachable from it.
 */
import { readFileSync } from "node:fs"
import { dirname, join, relative, resolve } from "node:path"
import { fileURLToPath } from "node:url"
import ts from "typescript"
import { describe, expect, it } from "vitest"

const src = resolve(dirname(fileURLToPath(import.meta.url)), "../src")

/** Every specifier a file imports or re-exports, statically, dynamically or as a type (`import("…")`). */
const specifiersOf = (file: string): ReadonlyArray<string> =>
  ts.preProcessFile(readFileSync(file, "utf8"), true, true).importedFiles.map((f) => f.fileName)

/** The modules reachable from `entry` (paths relative to src/), and the bare specifiers they import. */
const walk = (entry: string) => {
  const files = new Set<string>()
  const bare = new Map<string, string>()
  const visit = (file: string) => {
    const name = relative(src, file)
    if (files.has(name)) return
    files.add(name)
    for (const specifier of specifiersOf(file)) {
      if (specifier.startsWith(".")) visit(join(dirname(file), specifier.replace(/\.js$/, ".ts")))
      else bare.set(specifier, name)
    }
  }
  visit(join(src, entry))
  return { files, bare }
}

const isCore = (specifier: string) => specifier === "effect" || specifier.startsWith("effect/") || specifier.startsWith("node:")
const isPeer = (specifier: string) => specifier.startsWith("@effect/")

describe("the core's imports", () => {
  it("src/index.ts reaches only effect and node: modules", () => {
    const { files, bare } = walk("index.ts")
    // The walk follows the whole layering, down to the protocol.
    expect(files).toContain("McClient.ts")
    expect(files).toContain("client/Client.ts")
    expect(files).toContain("layers/tcp.ts")
    expect(files).toContain("protocol/Reply.ts")
    const foreign = [...bare].filter(([specifier]) => !isCore(specifier)).map(([s, file]) => `${s} (in ${file})`)
    expect(foreign).toEqual(["msgpackr (in Codec.ts)"])
    expect(bare.has("effect")).toBe(true)
  })

  it("msgpackr is only imported on demand, never statically", () => {
    const codec = readFileSync(join(src, "Codec.ts"), "utf8")
    expect(codec).toContain('import("msgpackr")')
    expect(codec).not.toMatch(/^\s*(import|export)\b[^;]*from\s*["']msgpackr["']/m)
    expect(codec).not.toMatch(/^\s*import\s*["']msgpackr["']/m)
  })

  it("the adapters are not reachable from it", () => {
    const { files } = walk("index.ts")
    expect(files).not.toContain("KeyValueStore.ts")
    expect(files).not.toContain("Persistence.ts")
  })

  it("the walk sees an adapter's peer imports (the check can fail)", () => {
    expect([...walk("KeyValueStore.ts").bare.keys()].filter(isPeer)).toEqual([
      "@effect/platform/Error",
      "@effect/platform/KeyValueStore",
    ])
    expect([...walk("Persistence.ts").bare.keys()].filter(isPeer)).toEqual(["@effect/experimental/Persistence"])
  })
})
