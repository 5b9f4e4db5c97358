// Untrusted text (tensor names, metadata, kid, jku, file names from a header or a Hub listing) made safe
// to print on a terminal: control characters (C0, DEL, C1) would let a file set the terminal's title,
// move the cursor or overwrite lines, and bidirectional overrides would reorder what is shown. They are
// replaced by visible escapes (\x1b, \u202e). Used for every human-readable rendering of such text and
// for quoting it in error messages; `quote` and `toJson` give valid JSON that parses to the same strings.

// C0, DEL, C1; the line and paragraph separators; the bidi embeddings, overrides, isolates and marks.
// biome-ignore lint/suspicious/noControlCharactersInRegex: matching control characters is the point
const UNSAFE = /[\u0000-\u001f\u007f-\u009f\u061c\u200e\u200f\u2028\u2029\u202a-\u202e\u2066-\u2069]/gu;
// The same without C0, which JSON.stringify escapes already (and uses raw, as layout, outside strings).
const UNSAFE_IN_JSON = /[\u007f-\u009f\u061c\u200e\u200f\u2028\u2029\u202a-\u202e\u2066-\u2069]/gu;

const jsonEscape = (c: string) => `\\u${c.codePointAt(0)!.toString(16).padStart(4, "0")}`;

function escapeChar(c: string): string {
  const n = c.codePointAt(0)!;
  return n < 0x100 ? `\\x${n.toString(16).padStart(2, "0")}` : `\\u${n.toString(16).padStart(4, "0")}`;
}

/** `text` with every control or bidi-override character replaced by a visible escape (\x1b, \u202e). */
export function printable(text: string): string {
  return text.replace(UNSAFE, escapeChar);
}

/**
 * `text` with line breaks kept and every other control or bidi character escaped: the last guard where
 * the CLI writes to the terminal. Untrusted values must still go through `printable` where they are
 * rendered (a newline in a tensor name would otherwise start a fake line).
 */
export function printableLines(text: string): string {
  return text.split("\n").map(printable).join("\n");
}

/** `text` as a double-quoted JSON string literal in which no control or bidi character is left raw. */
export function quote(text: unknown): string {
  return toJson(text) ?? String(text);
}

/** JSON.stringify whose output holds no raw control or bidi character (C1 and bidi are \u-escaped too). */
export function toJson(value: unknown, indent?: number): string {
  return JSON.stringify(value, null, indent)?.replace(UNSAFE_IN_JSON, jsonEscape);
}
