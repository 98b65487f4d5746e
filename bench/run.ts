/**
 * `npm run bench`: runs every `bench/*.bench.ts` one after the other, each in its own process so
 * that one benchmark's servers and warm caches do not disturb the next. Each prints its own
 * baseline and ratios; nothing here is a pass/fail test. The benches import the packages as users
 * get them (`dist/`, which `npm run bench` builds first), not the sources: tsx's `keepNames` would
 * wrap every closure of the library in `__name` and charge it to the hot path.
 *
 *   npm run bench               # all
 *   npm run bench -- secrets    # those whose file name contains "secrets"
 */
import { spawnSync } from "node:child_process"
import { readdirSync } from "node:fs"
import { dirname, join } from "node:path"
import { fileURLToPath } from "node:url"

const here = dirname(fileURLToPath(import.meta.url))
const filter = process.argv[2] ?? ""
const benches = readdirSync(here).filter((name) => name.endsWith(".bench.ts") && name.includes(filter)).sort()

let failed = 0
for (const name of benches) {
  console.log(`\n=== ${name} ===`)
  const run = spawnSync(process.execPath, ["--import", "tsx", join(here, name)], { stdio: "inherit" })
  if (run.status !== 0) failed++
}
if (failed > 0) {
  console.error(`${failed} benchmark(s) failed`)
  process.exitCode = 1
}
