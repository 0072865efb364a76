/** Shell quoting for the bash scripts Ferry puts in pod commands. */

/** Quotes one word for bash (single quotes unless the word is plainly safe). */
export function shQuote(word: string): string {
  if (/^[A-Za-z0-9_@%+=:,./-]+$/.test(word)) return word;
  return `'${word.replace(/'/g, `'\\''`)}'`;
}

/** Quotes an argv for bash. */
export function shJoin(argv: string[]): string {
  return argv.map(shQuote).join(' ');
}
