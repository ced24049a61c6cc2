// The server audit of the `graphql-http` package against a live server.
// usage: node graphql_http_audit.mjs <url> <api key>
// prints one JSON array: {id, name, status, reason} for each audit
import { auditServer } from "graphql-http";

const [url, apiKey] = process.argv.slice(2);

// every audit's request, with the API key (the audits call fetchFn(url, init?))
function fetchFn(input, init = {}) {
  const headers = { ...(init.headers ?? {}), authorization: `Bearer ${apiKey}` };
  return fetch(input, { ...init, headers });
}

const results = await auditServer({ url, fetchFn });
const report = results.map((result) => ({
  id: result.id,
  name: result.name,
  status: result.status,
  reason: result.status === "ok" ? null : result.reason,
}));
process.stdout.write(JSON.stringify(report) + "\n");
