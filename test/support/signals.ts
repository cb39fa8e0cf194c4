/** Pausing a server process for stall tests. */
import * as fs from "node:fs"

/** Whether the process is stopped (state `T` in /proc/<pid>/stat). */
const isStopped = (pid: number): boolean => {
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, "utf8")
    // The state follows the command name, which is in parentheses and may hold spaces.
    return stat.slice(stat.lastIndexOf(")") + 2).startsWith("T")
  } catch {
    return false
  }
}

/**
 * SIGSTOPs the process and returns once the kernel has stopped it. The signal is delivered
 * asynchronously: a request sent right after `kill` can still be answered, so a test that
 * means "the server is stopped" must wait for it.
 */
export const stopProcess = (pid: number): void => {
  process.kill(pid, "SIGSTOP")
  const until = Date.now() + 2000
  while (!isStopped(pid)) {
    if (Date.now() > until) throw new Error(`process ${pid} did not stop within 2 s of SIGSTOP`)
  }
}
