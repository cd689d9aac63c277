/**
 * @module cli/commands/infer
 * `kinfer infer <model> --input name[:DATATYPE[:shape]]=<value> ... [--image file]`:
 * builds the inputs from `.npy` files, JSON files, JSON literals or a JPEG/PNG
 * image (shaped after the model's metadata), sends one inference request, and
 * prints the outputs (truncated, or the top k classes of classifier-like outputs).
 */
import { readFile } from 'node:fs/promises';
import { Command, InvalidArgumentError, Option } from 'commander';
import type { KinferClient } from '../../client/kinfer-client.js';
import {
  DATATYPES,
  parseJsonExact,
  parseJsonLongIntegersAsStrings,
  toJsonValues,
  toNumbers,
  toTensor,
  type Datatype,
  type InferInput,
  type Tensor,
} from '../../client/tensors.js';
import type { InferResult } from '../../client/tensors.js';
import { readNpy, NpyError } from '../npy.js';
import {
  DEFAULT_NORMALISATION,
  IMAGE_FORMATS,
  ImageUsageError,
  SCALING_PRESETS,
  decodeImage,
  imageToTensor,
  planImageInput,
  resizeBilinear,
  targetSize,
  type Layout,
  type Normalisation,
  type Rgb,
} from '../image.js';
import { collect, makeClient, parseParams, positiveInt, runVerb, UsageError, withConnection, type ConnectionFlags } from './common.js';

interface InferFlags extends ConnectionFlags {
  input?: string[];
  output?: string[];
  binary?: boolean;
  topK?: number;
  labels?: string;
  id?: string;
  param?: string[];
  modelVersion?: string;
  maxValues: number;
  image?: string;
  inputName?: string;
  layout?: Layout;
  size?: { width: number; height: number };
  multipleOf?: number;
  scaling?: keyof typeof SCALING_PRESETS;
  scale?: number;
  mean?: Rgb;
  std?: Rgb;
  bgr?: boolean;
}

const SPEC_HELP = `
Input specs (repeat --input for each input):
  name:DATATYPE:shape=<value>   e.g. x:FP32:1,3=[[1,2,3]]; a name may hold colons (input_1:0:FP32=...)
  name:DATATYPE=<value>         shape from the nesting of the JSON (or the .npy file)
  name=@file.npy                datatype and shape from the .npy file
<value> is @file.npy, @file.json (a JSON array, or {"datatype","shape","data"}),
or a JSON literal; for BYTES a bare word is taken as one string.
Datatypes: ${DATATYPES.join(', ')}.

Images (--image, ${IMAGE_FORMATS}): the model's metadata gives the input's name
(--input-name when it has several), datatype (FP32, FP16 or UINT8) and shape.
Layout: NCHW, or NHWC when the channel dim (3) is last; --layout overrides.
Size: --size, else the model's fixed H/W, else the image's own (rounded to
--multiple-of). Bilinear resize; alpha dropped; RGB unless --bgr; batch of 1.
Values: (pixel * scale - mean) / std, default pixel/255; UINT8 gets raw pixels.

Examples:
  kinfer infer echo --input x:FP32:2,2=[[1,2],[3,4]]
  kinfer infer resnet50 --input input:FP32=@image.npy --top-k 5 --labels labels.txt
  kinfer infer echo --url http://$INGRESS --host echo.default.example.com --input s:BYTES=hello --json
  kinfer infer ocr-det --image page.png --multiple-of 32
  kinfer infer resnet50 --image cat.jpg --size 224x224 --mean 0.485,0.456,0.406 --std 0.229,0.224,0.225 -k 5`;

export function inferCommand(): Command {
  const cmd = new Command('infer')
    .description('send one inference request and print the outputs')
    .argument('<model>', 'model name')
    .option('-i, --input <spec>', 'an input (see below); repeatable', collect)
    .option('-o, --output <name>', 'return only this output; repeatable', collect)
    .option('--binary', 'send the binary tensor extension (default: only for large inputs)')
    .option('--no-binary', 'always send JSON')
    .option('-k, --top-k <n>', 'print the top n classes of each output (last dim = classes)', positiveInt)
    .option('--labels <file>', 'class labels for --top-k, one per line')
    .option('--id <id>', 'request id (echoed back)')
    .option('--param <key=value>', 'request parameter; repeatable', collect)
    .option('--model-version <v>', 'model version')
    .option('--max-values <n>', 'values printed per output (human output)', positiveInt, 16)
    .option('--image <file>', 'a JPEG or PNG image for the model\'s image input (see below)')
    .option('--input-name <name>', 'the input --image fills (needed when the model has several)')
    .option('--layout <layout>', 'NCHW or NHWC (default: from the metadata, else NCHW)', parseLayout)
    .option('--size <WxH>', 'resize the image to W x H (bilinear)', parseSize)
    .option('--multiple-of <n>', "round the image's own size to a multiple of n (e.g. 32 for ocr-det)", positiveInt)
    .addOption(new Option('-s, --scaling <preset>', 'Triton image_client presets: NONE (raw), INCEPTION ([-1,1]), VGG (minus 123,117,104)').choices(Object.keys(SCALING_PRESETS)))
    .option('--scale <f>', 'multiply pixels (0..255) by f first (default 1/255)', parseFiniteNumber)
    .option('--mean <r,g,b>', 'subtract after scaling, per colour (one value or three)', (v: string) => parseRgb(v, '--mean'))
    .option('--std <r,g,b>', 'divide by last, per colour (one value or three)', (v: string) => parseRgb(v, '--std', true))
    .option('--bgr', 'channel order B,G,R (--mean/--std stay in R,G,B order)')
    .addHelpText('after', SPEC_HELP);
  withConnection(cmd);
  return cmd.action(async (model: string, flags: InferFlags) => {
    await runVerb('infer', flags, async (out) => {
      if (!flags.input?.length && !flags.image) throw new UsageError('at least one --input (or --image) is needed');
      if (!flags.image) {
        const only = ['inputName', 'layout', 'size', 'multipleOf', 'scaling', 'scale', 'mean', 'std', 'bgr'] as const;
        const given = only.find((k) => flags[k] !== undefined);
        if (given) throw new UsageError(`--${given.replace(/[A-Z]/g, (c) => '-' + c.toLowerCase())} only applies with --image`);
      }
      const inputs = await Promise.all((flags.input ?? []).map(parseInputSpec));
      const pixels = flags.image ? await readImage(flags.image) : undefined;
      const labels = flags.labels ? await readLabels(flags.labels) : undefined;
      const client = makeClient(flags);
      try {
        if (pixels) {
          const image = await imageInput(client, model, pixels, flags);
          if (inputs.some((i) => i.name === image.name)) throw new UsageError(`input '${image.name}' is given by both --image and --input`);
          inputs.push(image);
          out.line(`image ${flags.image} (${pixels.width}x${pixels.height}) -> ${image.name}  ${image.datatype}  [${image.shape!.join(',')}]`);
        }
        const result = await client.infer(model, inputs, {
          binary: flags.binary,
          outputs: flags.output,
          id: flags.id,
          parameters: flags.param ? parseParams(flags.param) : undefined,
          version: flags.modelVersion,
        });
        printResult(out, result, flags, labels);
      } finally {
        client.close();
      }
    });
  });
}

async function readImage(file: string) {
  let bytes: Buffer;
  try {
    bytes = await readFile(file);
  } catch (err) {
    throw new UsageError(`--image: cannot read ${file}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message} (supported formats: ${IMAGE_FORMATS})`);
  }
  try {
    return decodeImage(bytes, file);
  } catch (err) {
    if (err instanceof ImageUsageError) throw new UsageError(`--image: ${err.message}`);
    throw err;
  }
}

/** Reads the model's metadata and turns the decoded image into the input it expects. */
async function imageInput(client: KinferClient, model: string, pixels: ReturnType<typeof decodeImage>, flags: InferFlags): Promise<InferInput> {
  const meta = await client.modelMetadata(model, { version: flags.modelVersion });
  try {
    const plan = planImageInput(model, meta.inputs ?? [], { inputName: flags.inputName, layout: flags.layout });
    const normalising = flags.scaling !== undefined || flags.scale !== undefined || flags.mean !== undefined || flags.std !== undefined;
    if (plan.datatype === 'UINT8' && normalising) {
      throw new ImageUsageError(`input '${plan.name}' is UINT8 and takes raw pixels: --scaling/--scale/--mean/--std do not apply`);
    }
    const base: Normalisation = flags.scaling ? SCALING_PRESETS[flags.scaling] : DEFAULT_NORMALISATION;
    const norm: Normalisation = { scale: flags.scale ?? base.scale, mean: flags.mean ?? base.mean, std: flags.std ?? base.std };
    const size = targetSize(plan, pixels, { size: flags.size, multipleOf: flags.multipleOf });
    const t = imageToTensor(resizeBilinear(pixels, size.width, size.height), {
      layout: plan.layout,
      datatype: plan.datatype,
      batch: plan.batch,
      bgr: Boolean(flags.bgr),
      norm,
    });
    return { name: plan.name, datatype: t.datatype, shape: t.shape, data: t.data };
  } catch (err) {
    if (err instanceof ImageUsageError) throw new UsageError(err.message);
    throw err;
  }
}

function parseLayout(v: string): Layout {
  const u = v.toUpperCase();
  if (u !== 'NCHW' && u !== 'NHWC') throw new InvalidArgumentError(`expected NCHW or NHWC, got '${v}'`);
  return u;
}

function parseSize(v: string): { width: number; height: number } {
  const m = /^(\d+)[x×](\d+)$/i.exec(v.trim());
  const width = Number(m?.[1]);
  const height = Number(m?.[2]);
  if (!m || !(width >= 1 && height >= 1 && width <= 65536 && height <= 65536)) throw new InvalidArgumentError(`expected WxH, e.g. 224x224, got '${v}'`);
  return { width, height };
}

function parseFiniteNumber(v: string): number {
  const n = Number(v);
  if (v.trim() === '' || !Number.isFinite(n) || n === 0) throw new InvalidArgumentError(`expected a non-zero number, got '${v}'`);
  return n;
}

function parseRgb(v: string, what: string, nonZero = false): Rgb {
  const parts = v.split(',').map((p) => p.trim());
  const nums = parts.map(Number);
  if ((parts.length !== 1 && parts.length !== 3) || parts.some((p) => p === '') || !nums.every(Number.isFinite) || (nonZero && nums.includes(0))) {
    throw new InvalidArgumentError(`${what}: expected one or three ${nonZero ? 'non-zero ' : ''}numbers (r,g,b), got '${v}'`);
  }
  return nums.length === 1 ? [nums[0]!, nums[0]!, nums[0]!] : [nums[0]!, nums[1]!, nums[2]!];
}

const isDatatype = (t: string): boolean => (DATATYPES as readonly string[]).includes(t.toUpperCase());

/**
 * Splits `name[:DATATYPE[:shape]]` from the right, so names with colons work (tf2onnx keeps
 * TensorFlow's `input_1:0`): `:shape` counts only after a datatype (or an empty one), and a last
 * part that looks like a misspelt datatype (letters, then digits) is refused rather than taken
 * into the name.
 */
function splitInputKey(spec: string, key: string): { name: string; dtText?: string; shapeText?: string } {
  const parts = key.split(':');
  if (parts.length >= 3 && (isDatatype(parts.at(-2)!) || parts.at(-2) === '')) {
    return { name: parts.slice(0, -2).join(':'), dtText: parts.at(-2), shapeText: parts.at(-1) };
  }
  const last = parts.at(-1)!;
  if (parts.length >= 2 && (isDatatype(last) || last === '')) return { name: parts.slice(0, -1).join(':'), dtText: last };
  const typo = (t: string) => /^[A-Za-z]+\d*$/.test(t);
  const shapeLike = /^\[?\d+(\s*,\s*\d+)*\]?$/.test(last);
  if (parts.length >= 2 && (typo(last) || (shapeLike && last.includes(',') && parts.length >= 3 && typo(parts.at(-2)!)))) {
    const bad = typo(last) ? last : parts.at(-2)!;
    throw new UsageError(`--input '${spec}': unknown datatype '${bad}' (one of ${DATATYPES.join(', ')}); a name with colons takes one after it, e.g. ${key}:FP32=...`);
  }
  // One number stays in the name (input_1:0); a list of dims is a shape given without a datatype.
  if (parts.length >= 2 && shapeLike && last.includes(',')) {
    throw new UsageError(`--input '${spec}': shape '${last}' needs a datatype before it: name:DATATYPE:shape, or name::shape to keep the value's own`);
  }
  return { name: key };
}

/** Parses `name[:DATATYPE[:shape]]=value` into an input (reading files it names). */
export async function parseInputSpec(spec: string): Promise<InferInput> {
  const eq = spec.indexOf('=');
  if (eq <= 0) throw new UsageError(`--input '${spec}': expected name[:DATATYPE[:shape]]=<value>`);
  const { name, dtText, shapeText } = splitInputKey(spec, spec.slice(0, eq));
  if (!name) throw new UsageError(`--input '${spec}': expected name[:DATATYPE[:shape]]=<value>`);
  const datatype = dtText ? (dtText.toUpperCase() as Datatype) : undefined;
  let shape: number[] | undefined;
  if (shapeText !== undefined && shapeText !== '') {
    const dims = shapeText.replace(/^\[|\]$/g, '').split(',').map((d) => d.trim());
    if (!dims.every((d) => /^\d+$/.test(d))) throw new UsageError(`--input '${name}': shape '${shapeText}' must be comma-separated non-negative integers`);
    shape = dims.map(Number);
  }
  const value = spec.slice(eq + 1);
  let input: InferInput;
  if (value.startsWith('@')) input = await fromFile(name, value.slice(1), datatype);
  else input = fromLiteral(name, value, datatype);
  // An f2 .npy arrives as half-float bits in a Uint16Array, which a relabel would send as numbers (and
  // a u2 file labelled FP16 the other way round); other dtypes convert by value.
  if (datatype && input.datatype && input.datatype !== datatype && ArrayBuffer.isView(input.data) && (input.datatype === 'FP16' || datatype === 'FP16')) {
    throw new UsageError(`--input '${name}': ${value.slice(1)} holds ${input.datatype}, not ${datatype}; drop the datatype or convert the file`);
  }
  if (datatype) input.datatype = datatype;
  if (shape) input.shape = shape;
  else if (input.shape === undefined && !Array.isArray(input.data) && !ArrayBuffer.isView(input.data)) input.shape = [1];
  if (!input.datatype && Array.isArray(input.data) && typeof input.data.flat(64)[0] === 'number') {
    throw new UsageError(`--input '${name}': give a datatype for numbers, e.g. ${name}:FP32=...`);
  }
  // Check now, so a bad value is a usage error naming the input rather than a failed request.
  try {
    toTensor(input);
  } catch (err) {
    throw new UsageError((err as Error).message);
  }
  return input;
}

async function fromFile(name: string, file: string, datatype: Datatype | undefined): Promise<InferInput> {
  let bytes: Buffer;
  try {
    bytes = await readFile(file);
  } catch (err) {
    throw new UsageError(`--input '${name}': cannot read ${file}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
  }
  if (/\.npy$/i.test(file)) {
    try {
      const a = readNpy(bytes, file);
      return { name, datatype: a.datatype, shape: a.shape, data: a.data };
    } catch (err) {
      if (err instanceof NpyError) throw new UsageError(`--input '${name}': ${err.message}`);
      throw err;
    }
  }
  if (/\.json$/i.test(file)) {
    let v: unknown;
    try {
      v = parseJsonValue(bytes.toString('utf8'), datatype);
    } catch (err) {
      throw new UsageError(`--input '${name}': ${file} is not valid JSON: ${(err as Error).message}`);
    }
    if (Array.isArray(v)) return { name, data: v };
    if (v && typeof v === 'object' && Array.isArray((v as { data?: unknown }).data)) {
      const o = v as { datatype?: Datatype; shape?: number[]; data: unknown[] };
      return { name, datatype: o.datatype, shape: o.shape, data: o.data as InferInput['data'] };
    }
    throw new UsageError(`--input '${name}': ${file} must hold a JSON array or an object with "data"`);
  }
  throw new UsageError(`--input '${name}': ${file}: only .npy and .json files are read (for a JPEG or PNG image use --image)`);
}

/**
 * JSON.parse keeping 64-bit integers exact: for an INT64/UINT64 input (the datatype given with
 * --input, else one a file's object declares), integer literals beyond 15 digits are read as
 * decimal strings, which the tensor takes as they are (a Number would round 2^53 + 1).
 */
function parseJsonValue(text: string, datatype: Datatype | undefined): unknown {
  if (datatype === 'INT64' || datatype === 'UINT64') return parseJsonLongIntegersAsStrings(text);
  return datatype === undefined ? parseJsonExact(text) : JSON.parse(text);
}

function fromLiteral(name: string, text: string, datatype: Datatype | undefined): InferInput {
  let v: unknown;
  try {
    v = parseJsonValue(text, datatype);
  } catch {
    if (datatype === 'BYTES' || datatype === undefined) return { name, datatype: 'BYTES', data: [text] };
    throw new UsageError(`--input '${name}': '${text}' is not a JSON value`);
  }
  if (Array.isArray(v)) return { name, data: v as InferInput['data'] };
  if (datatype === 'BYTES' && typeof v !== 'string') return { name, data: [text] };
  if (typeof v === 'number' || typeof v === 'boolean' || typeof v === 'string') return { name, data: [v] as InferInput['data'] };
  throw new UsageError(`--input '${name}': expected a JSON array, number, boolean or string`);
}

async function readLabels(file: string): Promise<string[]> {
  try {
    return (await readFile(file, 'utf8')).split(/\r?\n/).filter((l, i, all) => l !== '' || i < all.length - 1);
  } catch (err) {
    throw new UsageError(`--labels: cannot read ${file}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
  }
}

export interface TopK {
  index: number;
  score: number;
  label?: string;
}

/** Top `k` per row, the last dimension being the classes. At most 1000 rows. */
export function topK(t: Tensor, k: number, labels?: string[]): TopK[][] {
  const values = toNumbers(t);
  const classes = t.shape.length ? t.shape[t.shape.length - 1]! : values.length;
  if (classes === 0) return [];
  const rows = Math.min(values.length / classes, 1000);
  const out: TopK[][] = [];
  for (let r = 0; r < rows; r++) {
    const row = values.slice(r * classes, (r + 1) * classes).map((score, index) => ({ index, score }));
    row.sort((a, b) => (Number.isNaN(a.score) ? 1 : Number.isNaN(b.score) ? -1 : b.score - a.score) || a.index - b.index);
    out.push(row.slice(0, k).map((e) => (labels?.[e.index] !== undefined ? { ...e, label: labels[e.index] } : e)));
  }
  return out;
}

function printResult(out: { json: boolean; line(t: string): void; data(v: unknown): void }, r: InferResult, flags: InferFlags, labels?: string[]): void {
  const canRank = (t: Tensor) => t.datatype !== 'BYTES' && t.datatype !== 'BOOL';
  if (out.json) {
    const o: Record<string, unknown> = { model_name: r.modelName };
    if (r.modelVersion !== undefined) o.model_version = r.modelVersion;
    if (r.id !== undefined) o.id = r.id;
    if (r.parameters) o.parameters = r.parameters;
    o.outputs = r.outputs.map((t) => {
      const w: Record<string, unknown> = { name: t.name, datatype: t.datatype, shape: t.shape };
      if (t.parameters) w.parameters = t.parameters;
      w.data = toJsonValues(t);
      if (flags.topK && canRank(t)) w.top_k = topK(t, flags.topK, labels);
      return w;
    });
    out.data(o);
    return;
  }
  out.line(`model ${r.modelName}${r.modelVersion ? ` (version ${r.modelVersion})` : ''}${r.id ? `, id ${r.id}` : ''}`);
  for (const t of r.outputs) {
    out.line(`${t.name}  ${t.datatype}  [${t.shape.join(',')}]`);
    if (flags.topK && canRank(t)) {
      const rows = topK(t, flags.topK, labels);
      rows.slice(0, 32).forEach((row, i) => {
        if (rows.length > 1) out.line(`  row ${i}:`);
        for (const e of row) out.line(`  ${rows.length > 1 ? '  ' : ''}${String(e.index).padStart(6)}  ${fmt(e.score)}${e.label !== undefined ? `  ${e.label}` : ''}`);
      });
      if (rows.length > 32) out.line(`  ... ${rows.length - 32} more rows (use --json)`);
      continue;
    }
    const values = toJsonValues(t);
    const shown = values.slice(0, flags.maxValues).map((v) => (typeof v === 'number' ? fmt(v) : JSON.stringify(v)));
    const more = values.length > flags.maxValues ? `, ... (${values.length - flags.maxValues} more)` : '';
    out.line(`  [${shown.join(', ')}${more}]`);
  }
}

function fmt(v: number): string {
  return Number.isInteger(v) ? String(v) : String(Number(v.toPrecision(7)));
}
