// Builds the package: ESM with declarations in dist/, CommonJS with its own declarations in dist/cjs/.
import { execSync } from "node:child_process"
import { rmSync, writeFileSync } from "node:fs"

rmSync("dist", { recursive: true, force: true })
execSync("tsc -p tsconfig.build.json", { stdio: "inherit" })
execSync("tsc -p tsconfig.cjs.json", { stdio: "inherit" })
// The package is "type": "module"; this marks the CommonJS folder as such for Node.
writeFileSync("dist/cjs/package.json", '{ "type": "commonjs" }\n')
