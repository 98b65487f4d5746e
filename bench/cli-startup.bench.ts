/**
 * `takumi-db --help` start-up time: the compiled CLI as it ships (`bin/takumi-db.js` importing
 * `dist/main.js`, plain `node`, no TypeScript loader) against the way the CLI started before it
 * was compiled (tsx registered at run time, then `src/main.ts` transformed on the fly), measured
 * in the same run, rounds interleaved, per-round ratio tsx / compiled. Needs `npm run build`.
 *
 *   npx tsx bench/cli-startup.bench.ts [rounds=15]
 */
import { spawnSync } from "node:child_process"
import { existsSync } from "node:fs"
import { fileURLToPath } from "node:url"
import { performance } from "node:perf_hooks"
import { median } from "./internal/median.js"

const ROUNDS = Number(process.argv[2] ?? 15)
const root = fileURLToPath(new URL("..", import.meta.url))
const compiledBin = fileURLToPath(new URL("../packages/cli/bin/takumi-db.js", import.meta.url))
const source = fileURLToPath(new URL("../packages/cli/src/main.ts", import.meta.url))

const contenders = {
  compiled: [compiledBin, "--help"],
  // what the bin did before: `register()` from tsx/esm/api, then import("../src/main.ts")
  tsx: ["--conditions=@takumi/source", "--import", "tsx", source, "--help"]
} as const

/** Wall-clock milliseconds from spawn to exit, failing loudly if the command does. */
const time = (args: ReadonlyArray<string>): number => {
  const start = performance.now()
  const run = spawnSync(process.execPath, [...args], { cwd: root, encoding: "utf8" })
  const elapsed = performance.now() - start
  if (run.status !== 0 || !run.stdout.includes("takumi-db")) {
    throw new Error(`${args.join(" ")} failed (exit ${run.status}): ${run.stderr}`)
  }
  return elapsed
}

if (!existsSync(fileURLToPath(new URL("../packages/cli/dist/main.js", import.meta.url)))) {
  throw new Error("packages/cli/dist is missing: run `npm run build` first (`npm run bench` does)")
}
// one unmeasured run each: the first tsx start fills its transform cache
time(contenders.compiled)
time(contenders.tsx)

const samples = { compiled: [] as Array<number>, tsx: [] as Array<number>, ratio: [] as Array<number> }
for (let round = 0; round < ROUNDS; round++) {
  const compiled = time(contenders.compiled)
  const tsx = time(contenders.tsx)
  samples.compiled.push(compiled)
  samples.tsx.push(tsx)
  samples.ratio.push(tsx / compiled)
}

console.log(`takumi-db --help, ${ROUNDS} interleaved rounds on Node ${process.version} (median):`)
console.log(`  compiled (bin/takumi-db.js -> dist/main.js): ${median(samples.compiled).toFixed(0)} ms`)
console.log(`  tsx (src/main.ts, transformed at start):      ${median(samples.tsx).toFixed(0)} ms`)
console.log(
  `  tsx / compiled per round: median ${median(samples.ratio).toFixed(2)}x ` +
    `(min ${Math.min(...samples.ratio).toFixed(2)}, max ${Math.max(...samples.ratio).toFixed(2)})`
)
