/**
 * effect-memcache as it ships: the package's build (`dist/`, made by `npm run build`), imported as
 * the peers' published code is. Run from `src/` through tsx, the client would be measured with
 * tsx's transforms, which users never run: its `keepNames` wraps every named closure in a
 * `defineProperty` call when the closure is made (measured: getMulti at 1.26–1.31M keys/s from
 * `src/` against 1.53M from `dist/`, same session).
 */
import { existsSync } from "node:fs"
import { pathToFileURL } from "node:url"
import type * as Package from "../../src/index.js"

export type ClientApi = Pick<typeof Package, "McClient" | "makePromiseClient">

/** The package entry at `entry` (a checkout's `dist/index.js`). */
export const loadClient = async (entry: string): Promise<ClientApi> => {
  if (!existsSync(entry)) throw new Error(`${entry} does not exist: build the package first (npm run build)`)
  return (await import(pathToFileURL(entry).href)) as ClientApi
}
