/**
 * The read side: the marts over HTTP for Power BI, Excel and Tableau — the seeds' REST endpoints
 * and exports, OData v4 feeds, API keys — and the read-only Postgres login it runs as.
 */
export { keysCommand, READ_POOL_SIZE, readerConnection, readerLoginCommand, serveApiCommand, streamsFor } from "./cli.ts"
export { exportEndpoints, exportQuery, type ExportEndpoint } from "./exports.ts"
export { type Feed, findFeed, martFeeds, marts } from "./feeds.ts"
export { ALL_MARTS, authenticate, createApiKey, ensureApiKeys, listApiKeys, revokeApiKey } from "./keys.ts"
export { ensureReaderLogin, ensureReaderRole } from "./roles.ts"
export { ALL_ROWS, parseRowScope, type RowScope } from "./row-scope.ts"
export { readApi, type ReadApiOptions, serveReadApi } from "./server.ts"
