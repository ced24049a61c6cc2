// Apollo Client 4 with automatic persisted queries (hashed queries over GET) against a live
// server: a query (a miss, then its registration), the same query again (hash only), two
// mutations (the first registers, the second is hash only) and the query once more.
// usage: node apollo_persisted_queries.mjs <url> <api key>
// prints one JSON object: {results, requests} (every HTTP request the link made, in order)
import { createHash } from "node:crypto";
import { ApolloClient, HttpLink, InMemoryCache, gql } from "@apollo/client";
import { createPersistedQueryLink } from "@apollo/client/link/persisted-queries";

const [url, apiKey] = process.argv.slice(2);
const requests = [];

async function recordingFetch(input, init = {}) {
  const seen = { method: init.method ?? "GET", url: String(input), body: init.body ?? null };
  requests.push(seen);
  const response = await fetch(input, init);
  seen.status = response.status;
  seen.contentType = response.headers.get("content-type");
  return response;
}

const sha256 = (text) => createHash("sha256").update(text).digest("hex");
const client = new ApolloClient({
  cache: new InMemoryCache(),
  link: createPersistedQueryLink({ sha256, useGETForHashedQueries: true }).concat(
    new HttpLink({ uri: url, headers: { authorization: `Bearer ${apiKey}` }, fetch: recordingFetch }),
  ),
});

const LIST = gql`
  query List($n: Int) {
    assistants(orgId: "c", first: $n) {
      totalCount
      nodes { id name }
    }
  }
`;
const CREATE = gql`
  mutation Create($name: String!) {
    createAssistant(orgId: "c", input: { name: $name }) { id name }
  }
`;

const list = () => client.query({ query: LIST, variables: { n: 10 }, fetchPolicy: "network-only" });
const results = {};
results.firstList = (await list()).data;
results.secondList = (await list()).data;
results.created = (await client.mutate({ mutation: CREATE, variables: { name: "First" } })).data;
results.createdAgain = (await client.mutate({ mutation: CREATE, variables: { name: "Second" } })).data;
results.lastList = (await list()).data;
process.stdout.write(JSON.stringify({ results, requests }) + "\n");
