import * as HttpRouter from "@effect/platform/HttpRouter"
import * as HttpServerResponse from "@effect/platform/HttpServerResponse"
import { HealthHttp } from "@takumi/observability"

const listOrders = HttpServerResponse.json([]) // your own routes

export const app = HttpRouter.empty.pipe(
  HttpRouter.get("/orders", listOrders),
  HttpRouter.concat(HealthHttp.router)        // or HttpRouter.mount("/ops", HealthHttp.router)
)
