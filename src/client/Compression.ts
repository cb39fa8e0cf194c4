/** Value compression: gzip through node:zlib by default, or the user's codec. */
import * as zlib from "node:zlib"
import { Effect } from "effect"
import type { CompressionCodec } from "../Options.js"
import { isBytes, render } from "./Inputs.js"

export const gzip: CompressionCodec = {
  compress: (data) => zlib.gzipSync(data),
  decompress: (data) => zlib.gunzipSync(data),
}

/** Runs one side of a codec, sync or effectful, catching what it throws; it must give bytes. */
export const runCodec = (
  f: (data: Uint8Array) => Uint8Array | Effect.Effect<Uint8Array, unknown>,
  data: Uint8Array,
): Effect.Effect<Uint8Array, unknown> =>
  Effect.suspend(() => {
    const out = f(data)
    return Effect.isEffect(out) ? out : Effect.succeed(out)
  }).pipe(
    Effect.flatMap((out: unknown) =>
      isBytes(out) ? Effect.succeed(out) : Effect.fail(new Error(`the codec returned ${render(out)}, not a Uint8Array`)),
    ),
    Effect.catchAllDefect((defect) => Effect.fail(defect)),
  )
