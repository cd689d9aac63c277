/**
 * @module knative/lines
 * Whole lines of a text stream as they arrive: `kinfer logs -f`'s pod logs and `kinfer dev`'s
 * function processes. Lines end at '\n'; one split across chunks comes once, whole; a last line
 * without its newline comes at `end()`.
 */
export function lineSplitter(onLine: (line: string) => void): { write(text: string): void; end(): void } {
  let partial = '';
  return {
    write(text) {
      const lines = (partial + text).split('\n');
      partial = lines.pop() ?? '';
      for (const line of lines) onLine(line);
    },
    end() {
      if (partial) onLine(partial);
      partial = '';
    },
  };
}
