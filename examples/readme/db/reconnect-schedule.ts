import { ReconnectSchedule, SecureSqlClient } from "@takumi/db"
import * as Layer from "effect/Layer"

export const client = SecureSqlClient.layer.pipe(
  Layer.provideMerge(ReconnectSchedule.layer({ base: "200 millis", cap: "10 seconds", budget: "20 seconds" }))
)
