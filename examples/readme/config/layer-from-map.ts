import { DbConfig } from "@takumi/config"
import * as ConfigProvider from "effect/ConfigProvider"
import * as Layer from "effect/Layer"

export const config = DbConfig.layerFromEnvironment({ dotEnv: false }).pipe(
  Layer.provide(Layer.setConfigProvider(ConfigProvider.fromMap(new Map([
    ["NODE_ENV", "test"], ["DB_HOST", "127.0.0.1"], ["DB_USER", "app"], ["DB_PASSWORD", "test-only"]
  ]))))
)
