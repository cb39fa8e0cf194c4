/**
 * The seed's examples (kinescope/mc's example_test.go), in order, then ours (getOrSet). Each runs
 * on its own with `npx tsx examples/<file>.ts`; `npm start` runs them all.
 */
import type { Effect } from "effect"
import type { McClient } from "../src/index.js"
import * as Add from "./add.js"
import * as AppendAutovivify from "./append-autovivify.js"
import * as Append from "./append.js"
import * as CasConsistency from "./cas-consistency.js"
import * as CasOverride from "./cas-override.js"
import * as CompareAndSwap from "./compare-and-swap.js"
import * as Dec from "./dec.js"
import * as Del from "./del.js"
import * as GetMulti from "./get-multi.js"
import * as GetOrSet from "./getOrSet.js"
import * as HotKeyCacheInvalidation from "./hot-key-cache-invalidation.js"
import * as Inc from "./inc.js"
import * as MinUses from "./min-uses.js"
import * as New from "./new.js"
import * as OpaqueValues from "./opaque-values.js"
import * as Prepend from "./prepend.js"
import * as ProbabilisticHotCache from "./probabilistic-hot-cache.js"
import * as PurgeNamespace from "./purge-namespace.js"
import * as Replace from "./replace.js"
import * as ServeStale from "./serve-stale.js"
import * as StampedingHerdHandling from "./stampeding-herd-handling.js"
import * as WithCas from "./with-cas.js"
import * as WithCompression from "./with-compression.js"
import * as WithEarlyRecache from "./with-early-recache.js"
import * as WithLastAccess from "./with-last-access.js"

export interface Example {
  readonly name: string
  readonly program: Effect.Effect<void, unknown, McClient>
}

export const examples: ReadonlyArray<Example> = [
  { name: "New", program: New.program },
  { name: "Add", program: Add.program },
  { name: "Append", program: Append.program },
  { name: "Append (autovivify)", program: AppendAutovivify.program },
  { name: "Prepend", program: Prepend.program },
  { name: "Replace", program: Replace.program },
  { name: "CompareAndSwap", program: CompareAndSwap.program },
  { name: "CAS conflict retry", program: CasConsistency.program },
  { name: "CAS override", program: CasOverride.program },
  { name: "Inc with initial value", program: Inc.program },
  { name: "Dec", program: Dec.program },
  { name: "Del", program: Del.program },
  { name: "GetMulti", program: GetMulti.program },
  { name: "Opaque values", program: OpaqueValues.program },
  { name: "PurgeNamespace", program: PurgeNamespace.program },
  { name: "Compression", program: WithCompression.program },
  { name: "Min uses", program: MinUses.program },
  { name: "CAS token", program: WithCas.program },
  { name: "Last access", program: WithLastAccess.program },
  { name: "Early recache", program: WithEarlyRecache.program },
  { name: "Hot key cache invalidation", program: HotKeyCacheInvalidation.program },
  { name: "Probabilistic hot cache", program: ProbabilisticHotCache.program },
  { name: "Serve stale", program: ServeStale.program },
  { name: "Stampeding herd handling", program: StampedingHerdHandling.program },
  { name: "Read-through (getOrSet): a stampede, one lookup", program: GetOrSet.program },
]
