// Writes the option tables of docs/options.md from the options schemas (src/options.ts):
//   node_modules/.bin/deno run -A scripts/options_doc.ts
// tests/options.test.ts fails when the file and the schemas disagree.
import { readFileSync, writeFileSync } from "node:fs";
import { DISPATCHER_SCHEMA } from "../src/dispatcher/options.ts";
import { optionTable, type Schema } from "../src/options.ts";
import { POOL_SCHEMA } from "../src/pool_options.ts";

/** The schemas whose tables the docs carry, by the marker name in the file. */
export const TABLES: Record<string, Schema> = { Dispatcher: DISPATCHER_SCHEMA, WorkerPool: POOL_SCHEMA };

/** `doc` with the text between each `<!-- options:NAME -->` and `<!-- /options -->` replaced by NAME's table. */
export function renderTables(doc: string): string {
  return doc.replace(
    /(<!-- options:(\w+) -->\n)[\s\S]*?(<!-- \/options -->)/g,
    (_all, open: string, name: string, close: string) => {
      const schema = TABLES[name];
      if (schema === undefined) throw new Error(`docs name an unknown options table "${name}"`);
      return open + optionTable(schema) + "\n" + close;
    },
  );
}

/** docs/options.md as it is. */
export const DOC_URL: URL = new URL("../docs/options.md", import.meta.url);

if (import.meta.main) {
  writeFileSync(DOC_URL, renderTables(readFileSync(DOC_URL, "utf8")));
}
