// Makes sure the memcached binary the tests run is there before they start, and prints its version.
// That binary is MEMCACHED_BIN when set (e.g. the build of scripts/memcached-source.sh), else
// `memcached` on PATH. Only in the second case, as root on a machine without it, does this install
// Debian's package; otherwise it explains what to do.
import { execFileSync, execSync, spawnSync } from "node:child_process"

const explicit = process.env.MEMCACHED_BIN !== undefined && process.env.MEMCACHED_BIN !== ""
const bin = explicit ? process.env.MEMCACHED_BIN : "memcached"

const has = () => spawnSync(bin, ["-V"], { stdio: "ignore" }).status === 0

if (!has()) {
  if (explicit) {
    console.error(`MEMCACHED_BIN=${bin} does not run (\`${bin} -V\` failed). Point it at a memcached binary, or unset it.`)
    process.exit(1)
  }
  const isRoot = typeof process.getuid === "function" && process.getuid() === 0
  if (!isRoot) {
    console.error("memcached is not installed. Install it (e.g. `sudo apt-get install -y memcached`) and run `npm test` again.")
    process.exit(1)
  }
  console.log("memcached not found: installing Debian's package…")
  const env = { ...process.env, DEBIAN_FRONTEND: "noninteractive" }
  try {
    execSync("apt-get install -y memcached", { stdio: "inherit", env })
  } catch {
    execSync("apt-get update && apt-get install -y memcached", { stdio: "inherit", env })
  }
  if (!has()) {
    console.error("memcached could not be installed.")
    process.exit(1)
  }
}
// The package starts a system instance on 11211; the tests start their own on free ports and do not need it.
console.log(`${execFileSync(bin, ["-V"]).toString().trim()} (${explicit ? `MEMCACHED_BIN=${bin}` : "memcached on PATH"})`)
