/** Reading test outcomes: the typed failure of an Exit, or its tag. */
import { Cause, Exit, Option } from "effect"

/** The expected (typed) failure of an exit, if any. */
export const failureOf = <A, E>(exit: Exit.Exit<A, E>): E | undefined =>
  Exit.isFailure(exit) ? Option.getOrUndefined(Cause.failureOption(exit.cause)) : undefined

/** "Success", the failure's `_tag`, or "Defect"/"Interrupt" when the exit did not fail with one. */
export const failureTag = <A, E extends { readonly _tag: string }>(exit: Exit.Exit<A, E>): string =>
  Exit.isSuccess(exit)
    ? "Success"
    : (failureOf(exit)?._tag ?? (Exit.isInterrupted(exit) ? "Interrupt" : "Defect"))
