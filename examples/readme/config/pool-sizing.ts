import { PoolSizing } from "@takumi/config"

PoolSizing.maxPoolSize({ maxConnections: 200, instances: 4 }) // Either.right(40)
PoolSizing.maxPoolSize({ maxConnections: 200, instances: 0 }) // Either.left(InvalidPoolSizing { field: "instances" })
