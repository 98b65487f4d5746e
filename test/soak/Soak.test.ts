/**
 * The soak (see soak.ts), short: 32 workers for 10 s with every fault of the 60 s run scaled
 * (two rotations, the Vault double at 503 for 2 s, a fast restart, a kill -9 of the postmaster,
 * 20 terminated backends). It asserts the invariants only — no untyped failure, no crash, no
 * statement run twice, no secret in any output — never counts or timings, which depend on the
 * machine. `npm run soak` runs the full 64 workers for 60 s and prints the figures.
 */
import { assert, describe, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as Soak from "./soak.js"

describe("Soak", () => {
  it.live(
    "under rotations, a Vault outage, a restart, a kill -9 and terminated backends: only typed failures, no crash, nothing run twice, no secret in any output",
    () =>
      Effect.gen(function*() {
        const report = yield* Soak.run({ workers: 32, duration: "10 seconds", vaultOutage: "2 seconds", terminations: 20 })
        process.stdout.write(`${Soak.format(report)}\n`)
        // the faults really happened: the outage refused reads, the kill -9 forced crash recovery, 20 backends went
        assert.isAbove(report.vaultReadsRefused, 0, "Vault reads answered 503")
        assert.isTrue(report.crashRecovered, "crash recovery after kill -9")
        assert.isTrue(report.faults.some((fault) => fault.endsWith("pg_terminate_backend #20")), "20 terminations")
        assert.isAbove(report.succeeded, 0)
        assert.isAbove(report.scanned.pieces, 0, "output scanned")
        assert.strictEqual(report.untyped, 0, "untyped failures")
        assert.strictEqual(report.crashes, 0, "crashes")
        assert.strictEqual(report.duplicates, 0, "non-idempotent statements run twice")
        assert.deepStrictEqual(report.leaks, [], "secrets in output")
      }).pipe(Effect.scoped),
    180_000
  )
})
