import { DbHealth } from "@takumi/db"
import * as Effect from "effect/Effect"

// readiness: DatabaseUnavailable while the primary is down -> take the instance out of rotation
export const ready = DbHealth.readiness.pipe(
  Effect.as(200),
  Effect.catchTag("DatabaseUnavailable", () => Effect.succeed(503))
)
// liveness: fails only if the supervisor itself stopped. Never tie liveness to the database:
// restarting the process does not bring the database back, it adds a restart storm.
export const live = DbHealth.liveness.pipe(
  Effect.as(200),
  Effect.catchTag("HealthSupervisorStopped", () => Effect.succeed(500))
)
