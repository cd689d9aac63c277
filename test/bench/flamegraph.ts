/**
 * @module test/bench/flamegraph
 * Flame graphs from a V8 `.cpuprofile`, written beside it by
 * `npm run bench -- --profile DIR`:
 * - `<profile>.folded`: one line per distinct stack, `root;…;leaf <µs>` (the
 *   folded format that flamegraph.pl, inferno and speedscope read);
 * - `<profile>.svg`: a self-contained flame graph (no script; hover a frame
 *   for its name, time and share), coloured by owner as clinic does: the
 *   project, packages, Node internals, native/V8.
 * Idle samples are left out, so widths are shares of busy time; GC and
 * `(program)` stay in as frames of their own.
 */
import { frameLocation, selfTimes, type CpuProfile } from './profile.js';

/** Self time per stack, root first, in µs. Frame names are `function file:line` (file relative to `root`). */
export function foldStacks(profile: CpuProfile, root: string): Map<string, number> {
  const byId = new Map(profile.nodes.map((n) => [n.id, n]));
  const parent = new Map<number, number>();
  for (const n of profile.nodes) for (const c of n.children ?? []) parent.set(c, n.id);
  const out = new Map<string, number>();
  for (const [id, us] of selfTimes(profile)) {
    if (us <= 0 || byId.get(id)?.callFrame.functionName === '(idle)') continue;
    const frames: string[] = [];
    // Bounded by the node count: a malformed profile with a parent cycle cannot loop forever.
    for (let cur: number | undefined = id, n = 0; cur !== undefined && n <= profile.nodes.length; cur = parent.get(cur), n++) {
      const f = byId.get(cur)?.callFrame;
      if (!f || f.functionName === '(root)') continue;
      frames.push(frameName(f, root));
    }
    const key = frames.reverse().join(';');
    out.set(key, (out.get(key) ?? 0) + us);
  }
  return out;
}

function frameName(f: CpuProfile['nodes'][number]['callFrame'], root: string): string {
  const where = frameLocation(f, root);
  // ';' separates frames in the folded format.
  return `${f.functionName || '(anonymous)'}${where ? ` ${where}` : ''}`.replaceAll(';', ',');
}

/** The folded stacks as text, largest first. */
export function renderFolded(folded: Map<string, number>): string {
  return [...folded].sort((a, b) => b[1] - a[1]).map(([stack, us]) => `${stack} ${Math.round(us)}`).join('\n') + '\n';
}

interface Frame {
  name: string;
  us: number;
  children: Map<string, Frame>;
}

const ROW = 17;
/** Frames narrower than this many pixels are dropped (and their children with them). */
const MIN_PX = 0.3;
/** At most this many frames are drawn, widest first by construction (parents before children). */
const MAX_FRAMES = 20_000;

/**
 * A frame's colour from where its name says it lives (the last word of
 * `frameName`): `node:…:line` Node, `file.js:line` the project (a path with an
 * extension), `pkg:line` a package (its name, no extension), none native/V8.
 */
function colorOf(name: string): string {
  if (name.startsWith('(garbage collector)')) return '#c00000';
  const where = / (\S+):\d+$/.exec(name)?.[1];
  if (!where) return '#a5a5a5';
  if (where.startsWith('node:')) return '#70ad47';
  if (/\.[cm]?[jt]s$/.test(where)) return '#e0803c';
  return '#5b9bd5';
}

function escapeXml(s: string): string {
  return s.replace(/[<>&"']/g, (c) => ({ '<': '&lt;', '>': '&gt;', '&': '&amp;', '"': '&quot;', "'": '&apos;' })[c]!);
}

/** An SVG flame graph of the folded stacks: the root at the bottom, widths proportional to time. */
export function flameGraphSvg(folded: Map<string, number>, title: string, width = 1200): string {
  const root: Frame = { name: 'all', us: 0, children: new Map() };
  let depth = 0;
  for (const [stack, us] of folded) {
    let node = root;
    node.us += us;
    const frames = stack.split(';');
    depth = Math.max(depth, frames.length);
    for (const name of frames) {
      let child = node.children.get(name);
      if (!child) node.children.set(name, (child = { name, us: 0, children: new Map() }));
      child.us += us;
      node = child;
    }
  }
  const height = (depth + 1) * ROW + 40;
  const scale = root.us > 0 ? width / root.us : 0;
  const rects: string[] = [];
  // Breadth-first so that, if MAX_FRAMES cuts, it cuts the deepest and narrowest frames.
  const queue: { f: Frame; x: number; level: number }[] = [{ f: root, x: 0, level: 0 }];
  for (let i = 0; i < queue.length && rects.length < MAX_FRAMES; i++) {
    const { f, x, level } = queue[i]!;
    const w = f.us * scale;
    const y = height - (level + 1) * ROW - 10;
    const label = `${f.name} (${(f.us / 1000).toFixed(1)} ms, ${((100 * f.us) / Math.max(root.us, 1)).toFixed(1)}%)`;
    const text = w > 40 ? `<text x="${(x + 3).toFixed(1)}" y="${y + 12}">${escapeXml(fit(f.name, w))}</text>` : '';
    rects.push(`<g><title>${escapeXml(label)}</title><rect x="${x.toFixed(1)}" y="${y}" width="${w.toFixed(1)}" height="${ROW - 1}" fill="${level ? colorOf(f.name) : '#d9d9d9'}"/>${text}</g>`);
    let cx = x;
    for (const c of [...f.children.values()].sort((a, b) => a.name.localeCompare(b.name))) {
      if (c.us * scale >= MIN_PX) queue.push({ f: c, x: cx, level: level + 1 });
      cx += c.us * scale;
    }
  }
  return [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" font-family="monospace" font-size="11">`,
    `<text x="4" y="14" font-size="13">${escapeXml(title)}: ${(root.us / 1000).toFixed(0)} ms busy; hover a frame for its time</text>`,
    ...rects,
    '</svg>',
    '',
  ].join('\n');
}

/** The name cut to about what fits in `px` at 11 px monospace (~6.6 px per character). */
function fit(name: string, px: number): string {
  const n = Math.floor((px - 6) / 6.6);
  return name.length <= n ? name : `${name.slice(0, Math.max(0, n - 1))}…`;
}
