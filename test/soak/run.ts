/**
 * `npm run soak`: the full soak (see soak.ts) — 64 workers for 60 s, the Vault double at 503 for
 * 10 s, 20 terminated backends — printing its figures. Exits 1 when an invariant is broken
 * (an untyped failure, a crash, a statement run twice, a secret in output).
 */
import * as NodeRuntime from "@effect/platform-node/NodeRuntime"
import * as Console from "effect/Console"
import * as Effect from "effect/Effect"
import * as Soak from "./soak.js"

const program = Effect.gen(function*() {
  const report = yield* Soak.run({ workers: 64, duration: "60 seconds", vaultOutage: "10 seconds", terminations: 20 })
  yield* Console.log(Soak.format(report))
  const broken = report.untyped + report.crashes + report.duplicates + report.leaks.length
  if (broken > 0) return yield* Effect.fail(`soak: ${broken} broken invariant(s)`)
}).pipe(Effect.scoped)

NodeRuntime.runMain(program, { disablePrettyLogger: true })
