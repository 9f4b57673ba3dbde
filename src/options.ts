/**
 * Option schemas: each class's options (name, type, default, range, one-line
 * doc) written once. Validation at construction, the config file's keys, the
 * command line's flags and the option tables in `docs/options.md` all come
 * from them.
 *
 * @module
 */

/** An option's kind of value; `custom` options are checked by their class. */
export type OptionType = "integer" | "boolean" | "string" | "custom";

/** One option. */
export interface OptionSpec {
  /** Kind of value. */
  type: OptionType;
  /** What it does, in one line (the docs' tables). */
  doc: string;
  /** The default: a value, or the name of another option of the same schema whose value it takes. */
  default?: number | boolean | string | { same: string };
  /** How the default reads in the docs, when the value alone does not say it. */
  defaultDoc?: string;
  /** Smallest value (integers): a number or the name of an option resolved before this one. */
  min?: number | string;
  /** Largest value (integers): a number or the name of an option resolved before this one. */
  max?: number | string;
  /** For `string` options: the values it takes. */
  choices?: readonly string[];
  /** For `custom` options: how the value is written in the docs' type column. */
  typeDoc?: string;
  /** The command line's default, in `--help`, where it differs from the option's (`forkyard serve` logs access). */
  cliDefault?: string;
  /** The command-line flag that sets it (`--port`), with its aliases after it. */
  flags?: readonly string[];
  /**
   * The value of a flag given without one (`--retry-idempotent`, `--access-log`); such a flag takes a value only as
   * `--flag=value`, and `--no-<flag>` sets `false`.
   */
  flagDefault?: unknown;
  /** For `custom` options: a flag's text as the option's value; throws an error saying what it takes (`needs ...`). */
  fromFlag?: (text: string) => unknown;
  /** Whether `--no-<flag>` sets `false` although the flag itself takes a value. */
  negatable?: boolean;
  /** How the config file takes it: as it is (`"plain"`, the default), or read by the command line (`"structured"`). */
  config?: "plain" | "structured" | "none";
}

/** A class's options, in the order its docs list them. */
export type Schema = Readonly<Record<string, OptionSpec>>;

/** Milliseconds as JavaScript timers accept them. */
export const MAX_MS: number = 2 ** 31 - 1;

/** Throws `TypeError` for keys of `options` that `schema` does not have. */
export function checkKeys(what: string, options: object, schema: Schema): void {
  for (const key of Object.keys(options)) {
    if (!Object.hasOwn(schema, key)) {
      throw new TypeError(`Unknown ${what} option "${key}": expected one of ${Object.keys(schema).join(", ")}`);
    }
  }
}

function bound(value: number | string | undefined, resolved: Record<string, unknown>, fallback: number): number {
  if (value === undefined) return fallback;
  return typeof value === "number" ? value : resolved[value] as number;
}

/** Returns `value` (or the option's default) after checking it against `spec`; `custom` options are returned as given. */
export function resolveOption(
  what: string,
  name: string,
  spec: OptionSpec,
  value: unknown,
  resolved: Record<string, unknown> = {},
): unknown {
  if (value === undefined) {
    const d = spec.default;
    return typeof d === "object" && d !== null ? resolved[d.same] : d;
  }
  const bad = (expected: string, error: ErrorConstructor = TypeError) =>
    new error(`Invalid ${what} option "${name}": ${JSON.stringify(value)} (expected ${expected})`);
  switch (spec.type) {
    case "integer": {
      const min = bound(spec.min, resolved, 0);
      const max = bound(spec.max, resolved, Number.MAX_SAFE_INTEGER);
      if (typeof value !== "number" || !Number.isInteger(value) || value < min || value > max) {
        throw bad(`an integer ${max === Number.MAX_SAFE_INTEGER ? `>= ${min}` : `from ${min} to ${max}`}`, RangeError);
      }
      return value;
    }
    case "boolean":
      if (typeof value !== "boolean") throw bad("true or false");
      return value;
    case "string":
      if (spec.choices !== undefined && !spec.choices.includes(value as string)) {
        const quoted = spec.choices.map((c) => JSON.stringify(c));
        throw bad(`${quoted.slice(0, -1).join(", ")} or ${quoted[quoted.length - 1]}`);
      }
      if (typeof value !== "string") throw bad("a string");
      return value;
    default:
      return value;
  }
}

/**
 * Checks `options` against `schema` (unknown keys, types, ranges) and returns every non-custom option with its
 * default applied, in schema order, so that an option may take its default or bounds from one before it.
 */
export function resolveOptions(
  what: string,
  schema: Schema,
  options: Record<string, unknown>,
): Record<string, unknown> {
  checkKeys(what, options, schema);
  const resolved: Record<string, unknown> = {};
  for (const [name, spec] of Object.entries(schema)) {
    if (spec.type === "custom") continue;
    resolved[name] = resolveOption(what, name, spec, options[name], resolved);
  }
  return resolved;
}

/** The keys a config file takes as they are (passed to the class, which checks them). */
export function plainConfigKeys(schema: Schema): string[] {
  return Object.entries(schema).filter(([, spec]) => (spec.config ?? "plain") === "plain").map(([name]) => name);
}

/** The keys a config file takes for `schema`'s class, plain and structured. */
export function configKeys(schema: Schema): string[] {
  return Object.entries(schema).filter(([, spec]) => spec.config !== "none").map(([name]) => name);
}

function describeDefault(spec: OptionSpec): string {
  if (spec.defaultDoc !== undefined) return spec.defaultDoc;
  const d = spec.default;
  if (d === undefined) return "none";
  if (typeof d === "object") return `\`${d.same}\``;
  return `\`${JSON.stringify(d)}\``;
}

function describeType(spec: OptionSpec): string {
  if (spec.type === "custom") return spec.typeDoc ?? "object";
  if (spec.choices !== undefined) return spec.choices.map((c) => `\`"${c}"\``).join(", ");
  if (spec.type !== "integer") return spec.type;
  const min = spec.min ?? 0;
  if (spec.max === undefined || spec.max === MAX_MS) return `integer ≥ ${min}`;
  return `integer ${min}–${spec.max}`;
}

/** The schema as a Markdown table: option, type and range, default, flag, what it does. */
export function optionTable(schema: Schema): string {
  const rows = ["| option | type | default | flag | what it does |", "|---|---|---|---|---|"];
  for (const [name, spec] of Object.entries(schema)) {
    const flag = spec.flags?.[0] ? spec.flags.map((f) => `\`${f}\``).join(", ") : "";
    rows.push(`| \`${name}\` | ${describeType(spec)} | ${describeDefault(spec)} | ${flag} | ${spec.doc} |`);
  }
  return rows.join("\n");
}
