/**
 * @since 0.1.0
 */
import * as Context from "effect/Context"
import type { DbSettings } from "./DbSettings.js"

/**
 * The validated database configuration of the running program.
 *
 * @since 0.1.0
 * @category tags
 */
export class DbConfig extends Context.Tag("@takumi/config/DbConfig")<DbConfig, DbSettings>() {}
