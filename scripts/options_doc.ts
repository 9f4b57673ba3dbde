// Writes the option tables of docs/options.md from the options schemas (src/options.ts):
//   node_modules/.bin/deno run -A scripts/options_doc.ts
// tests/options.test.ts fails when the file and the schemas disagree.
import { readFileSync, writeFileSync } from "node:fs";
import { DISPATCHER_SCHEMA } from "../src/dispatcher/options.ts";
import { optionTable, type Schema } from "../src/options.ts";
import { POOL_SCHEMA } from "../src/pool_options.ts";

/** The schemas whose tables the docs carry, by the marker name in the file. */
export const TABLES: Record<string, Schema> = { Dispatcher: DISPATCHER_SCHEMA, WorkerPool: POOL_SCHEMA };

/** Every command-line flag, from the schemas: flag, option, default. */
export function flagTable(): string {
  const rows = ["| flag | sets | what it does |", "|---|---|---|"];
  for (const [owner, schema] of Object.entries(TABLES)) {
    for (const [name, spec] of Object.entries(schema)) {
      if (spec.flags === undefined) continue;
      const value = spec.type === "integer" ? " N" : spec.type === "string" ? " VALUE" : "";
      const flags = spec.flags.map((f, i) => `\`${f}${i === 0 ? value : ""}\``).join(", ");
      const scope = owner === "WorkerPool" ? " (every pool)" : "";
      rows.push(`| ${flags} | \`${owner}\` \`${name}\`${scope} | ${spec.doc} |`);
    }
  }
  return rows.join("\n");
}

/**
 * `doc` with the text between each `<!-- options:NAME -->` and `<!-- /options -->` replaced by NAME's table
 * (`flags`: the command line's flags).
 */
export function renderTables(doc: string): string {
  return doc.replace(
    /(<!-- options:(\w+) -->\n)[\s\S]*?(<!-- \/options -->)/g,
    (_all, open: string, name: string, close: string) => {
      if (name === "flags") return open + flagTable() + "\n" + close;
      const schema = TABLES[name];
      if (schema === undefined) throw new Error(`docs name an unknown options table "${name}"`);
      return open + optionTable(schema) + "\n" + close;
    },
  );
}

/** The docs that carry generated tables. */
export const DOC_URLS: URL[] = [
  new URL("../docs/options.md", import.meta.url),
  new URL("../docs/cli.md", import.meta.url),
];

if (import.meta.main) {
  for (const url of DOC_URLS) writeFileSync(url, renderTables(readFileSync(url, "utf8")));
}
