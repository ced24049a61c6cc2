// Composes subgraph SDL files with @apollo/composition, as a supergraph build would:
//   node compose.cjs NAME=FILE NAME=FILE ...
// prints {"errors": [...], "hints": n, "types": {type: [fields]}} (the supergraph's object
// types, for the caller to check) and exits 0 whether or not composition failed.
"use strict";
const fs = require("node:fs");
const { parse } = require("graphql");
const { composeServices } = require("@apollo/composition");

const services = process.argv.slice(2).map((argument) => {
  const [name, file] = argument.split("=");
  return { name, url: `http://${name}.invalid/graphql`, typeDefs: parse(fs.readFileSync(file, "utf8")) };
});
const result = composeServices(services);
const types = {};
if (!result.errors) {
  const schema = result.schema.toAPISchema().toGraphQLJSSchema();
  for (const [name, type] of Object.entries(schema.getTypeMap())) {
    if (!name.startsWith("__") && typeof type.getFields === "function") {
      types[name] = Object.keys(type.getFields());
    }
  }
}
process.stdout.write(JSON.stringify({
  errors: (result.errors || []).map((error) => error.message),
  hints: (result.hints || []).length,
  types,
}));
