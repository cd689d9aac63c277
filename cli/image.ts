/**
 * @module cli/image
 * `kinfer infer --image`: decodes a JPEG or PNG file to RGB pixels, picks the
 * model input to fill from its v2 metadata (name, datatype, layout, fixed
 * height/width), resizes bilinearly, normalises, and lays the pixels out as an
 * NCHW or NHWC tensor of FP32, FP16 or UINT8 with a batch dimension of 1.
 */
import jpeg from 'jpeg-js';
import { PNG } from 'pngjs';
import { asBuffer } from '../runtime/core/bytes.js';
import { toHalf } from '../runtime/core/datatypes.js';

export const IMAGE_FORMATS = 'JPEG (.jpg/.jpeg) and PNG (.png)';
export const IMAGE_DATATYPES = ['FP32', 'FP16', 'UINT8'] as const;
export type ImageDatatype = (typeof IMAGE_DATATYPES)[number];
export type Layout = 'NCHW' | 'NHWC';
export type Rgb = readonly [number, number, number];

/** The file cannot be read as an image, or the flags contradict each other: a usage error (exit 2). */
export class ImageUsageError extends Error {
  override name = 'ImageUsageError';
}

/** The model has no input an image can fill: the server's side of the problem (exit 1). */
export class ModelInputError extends Error {
  override name = 'ModelInputError';
}

/** Interleaved RGB, row-major (HWC), values 0..255 (fractional after a resize). */
export interface RgbImage {
  width: number;
  height: number;
  data: Float32Array;
}

/** Limits that keep a hostile or huge file from exhausting memory. */
const MAX_MEGAPIXELS = 100;
const MAX_JPEG_MEMORY_MB = 1024;

/** Decodes a JPEG or PNG (recognised by its signature, not its name); alpha is dropped, grey and palette images become RGB. */
export function decodeImage(bytes: Uint8Array, file: string): RgbImage {
  const isPng = bytes.length >= 8 && bytes[0] === 0x89 && bytes[1] === 0x50 && bytes[2] === 0x4e && bytes[3] === 0x47;
  const isJpeg = bytes.length >= 3 && bytes[0] === 0xff && bytes[1] === 0xd8 && bytes[2] === 0xff;
  if (!isPng && !isJpeg) throw new ImageUsageError(`${file}: not a supported image (supported formats: ${IMAGE_FORMATS})`);
  let width: number;
  let height: number;
  let rgba: Uint8Array;
  try {
    if (isPng) {
      // pngjs expands grey/palette to RGBA and scales 16-bit samples to 8 bits.
      const png = PNG.sync.read(asBuffer(bytes));
      ({ width, height } = png);
      if (width * height > MAX_MEGAPIXELS * 1e6) throw new Error(`larger than ${MAX_MEGAPIXELS} megapixels`);
      rgba = png.data;
    } else {
      const img = jpeg.decode(bytes, { useTArray: true, formatAsRGBA: true, maxResolutionInMP: MAX_MEGAPIXELS, maxMemoryUsageInMB: MAX_JPEG_MEMORY_MB });
      ({ width, height } = img);
      rgba = img.data;
    }
  } catch (err) {
    throw new ImageUsageError(`${file}: cannot decode as ${isPng ? 'PNG' : 'JPEG'}: ${(err as Error).message} (supported formats: ${IMAGE_FORMATS})`);
  }
  if (!(width > 0 && height > 0) || rgba.length < width * height * 4) {
    throw new ImageUsageError(`${file}: decoded to an empty or truncated image (${width}x${height})`);
  }
  const data = new Float32Array(width * height * 3);
  for (let i = 0, n = width * height; i < n; i++) {
    data[i * 3] = rgba[i * 4]!;
    data[i * 3 + 1] = rgba[i * 4 + 1]!;
    data[i * 3 + 2] = rgba[i * 4 + 2]!;
  }
  return { width, height, data };
}

/**
 * Bilinear resize with half-pixel centres and edge clamping (OpenCV
 * `INTER_LINEAR`, PyTorch `align_corners=False` without antialiasing).
 */
export function resizeBilinear(img: RgbImage, width: number, height: number): RgbImage {
  if (width === img.width && height === img.height) return img;
  const axis = (dst: number, src: number) => {
    const i0 = new Int32Array(dst);
    const i1 = new Int32Array(dst);
    const f = new Float64Array(dst);
    for (let d = 0; d < dst; d++) {
      const s = Math.max(0, ((d + 0.5) * src) / dst - 0.5);
      const lo = Math.min(Math.floor(s), src - 1);
      i0[d] = lo;
      i1[d] = Math.min(lo + 1, src - 1);
      f[d] = lo === src - 1 ? 0 : s - lo;
    }
    return { i0, i1, f };
  };
  const xs = axis(width, img.width);
  const ys = axis(height, img.height);
  const src = img.data;
  const sw = img.width * 3;
  const out = new Float32Array(width * height * 3);
  for (let y = 0; y < height; y++) {
    const r0 = ys.i0[y]! * sw;
    const r1 = ys.i1[y]! * sw;
    const fy = ys.f[y]!;
    for (let x = 0; x < width; x++) {
      const c0 = xs.i0[x]! * 3;
      const c1 = xs.i1[x]! * 3;
      const fx = xs.f[x]!;
      for (let c = 0; c < 3; c++) {
        const top = src[r0 + c0 + c]! * (1 - fx) + src[r0 + c1 + c]! * fx;
        const bottom = src[r1 + c0 + c]! * (1 - fx) + src[r1 + c1 + c]! * fx;
        out[(y * width + x) * 3 + c] = top * (1 - fy) + bottom * fy;
      }
    }
  }
  return { width, height, data: out };
}

export interface Normalisation {
  /** Multiplies the 0..255 pixel first. Default 1/255. */
  scale: number;
  /** Subtracted after scaling, per colour in R,G,B order (whatever `bgr` says). Default 0. */
  mean: Rgb;
  /** Divides last, per colour in R,G,B order. Default 1. */
  std: Rgb;
}

export const DEFAULT_NORMALISATION: Normalisation = { scale: 1 / 255, mean: [0, 0, 0], std: [1, 1, 1] };

/** Triton `image_client -s` presets: NONE raw pixels, INCEPTION to [-1,1], VGG mean subtraction. */
export const SCALING_PRESETS: Record<'NONE' | 'INCEPTION' | 'VGG', Normalisation> = {
  NONE: { scale: 1, mean: [0, 0, 0], std: [1, 1, 1] },
  INCEPTION: { scale: 1 / 127.5, mean: [1, 1, 1], std: [1, 1, 1] },
  VGG: { scale: 1, mean: [123, 117, 104], std: [1, 1, 1] },
};

export interface TensorLayoutOptions {
  layout: Layout;
  datatype: ImageDatatype;
  /** Prepend a batch dimension of 1. */
  batch: boolean;
  /** Channel order B,G,R instead of R,G,B. */
  bgr: boolean;
  /** Ignored for UINT8, which carries the (rounded) pixels themselves. */
  norm: Normalisation;
}

export interface ImageTensor {
  datatype: ImageDatatype;
  shape: number[];
  /** FP32: Float32Array; FP16: Uint16Array of half bits; UINT8: Uint8Array. */
  data: Float32Array | Uint16Array | Uint8Array;
}

/** `value = (pixel * scale - mean[colour]) / std[colour]`, laid out as asked. */
export function imageToTensor(img: RgbImage, opts: TensorLayoutOptions): ImageTensor {
  const { width: w, height: h } = img;
  const n = w * h;
  const shape = opts.layout === 'NCHW' ? [3, h, w] : [h, w, 3];
  if (opts.batch) shape.unshift(1);
  const data =
    opts.datatype === 'FP32' ? new Float32Array(n * 3) : opts.datatype === 'FP16' ? new Uint16Array(n * 3) : new Uint8Array(n * 3);
  const { scale, mean, std } = opts.norm;
  for (let ch = 0; ch < 3; ch++) {
    const colour = opts.bgr ? 2 - ch : ch;
    const m = mean[colour]!;
    const s = std[colour]!;
    for (let i = 0; i < n; i++) {
      const p = img.data[i * 3 + colour]!;
      const at = opts.layout === 'NCHW' ? ch * n + i : i * 3 + ch;
      if (opts.datatype === 'UINT8') data[at] = Math.min(255, Math.max(0, Math.round(p)));
      else {
        const v = (p * scale - m) / s;
        data[at] = opts.datatype === 'FP16' ? toHalf(v) : v;
      }
    }
  }
  return { datatype: opts.datatype, shape, data };
}

export interface InputMetadata {
  name: string;
  datatype: string;
  shape: number[];
}

export interface ImagePlan {
  name: string;
  datatype: ImageDatatype;
  layout: Layout;
  batch: boolean;
  /** Fixed by the model's metadata (positive dims only). */
  height?: number;
  width?: number;
}

/**
 * Chooses the input an image fills and how. `inputs` is the model metadata's
 * list (empty when the model declares none, as echo does: then `inputName`
 * is required and the defaults FP32/NCHW/batch apply).
 */
export function planImageInput(model: string, inputs: readonly InputMetadata[], opts: { inputName?: string; layout?: Layout }): ImagePlan {
  const names = inputs.map((i) => i.name).join(', ');
  let input: InputMetadata | undefined;
  if (opts.inputName !== undefined) {
    input = inputs.find((i) => i.name === opts.inputName);
    if (!input) {
      if (inputs.length) throw new ModelInputError(`model '${model}' has no input '${opts.inputName}' (inputs: ${names})`);
      return { name: opts.inputName, datatype: 'FP32', layout: opts.layout ?? 'NCHW', batch: true };
    }
  } else if (inputs.length === 0) {
    throw new ModelInputError(`model '${model}' declares no inputs in its metadata: name the image input with --input-name`);
  } else if (inputs.length === 1) {
    input = inputs[0]!;
  } else {
    const images = inputs.filter((i) => (i.shape.length === 3 || i.shape.length === 4) && layoutsOf(i.shape).length > 0);
    if (images.length !== 1) {
      throw new ImageUsageError(`model '${model}' has ${inputs.length} inputs (${names}): choose the image input with --input-name`);
    }
    input = images[0]!;
  }
  const where = `input '${input.name}' of model '${model}'`;
  if (!(IMAGE_DATATYPES as readonly string[]).includes(input.datatype)) {
    throw new ModelInputError(`${where} is ${input.datatype}: --image fills ${IMAGE_DATATYPES.join(', ')} inputs`);
  }
  const shape = input.shape;
  if (shape.length !== 3 && shape.length !== 4) {
    throw new ModelInputError(`${where} has shape [${shape.join(',')}]: an image input has rank 3 (CHW/HWC) or 4 (NCHW/NHWC)`);
  }
  const batch = shape.length === 4;
  if (batch && shape[0]! > 1) throw new ModelInputError(`${where} has a fixed batch of ${shape[0]}; --image sends one image`);
  const possible = layoutsOf(shape);
  let layout: Layout;
  if (opts.layout) {
    if (!possible.includes(opts.layout)) throw new ModelInputError(`--layout ${opts.layout} does not fit ${where}, shape [${shape.join(',')}]`);
    layout = opts.layout;
  } else if (possible.length === 0) {
    throw new ModelInputError(`${where} has shape [${shape.join(',')}]: no 3-channel dimension (channels first or last)`);
  } else {
    layout = possible[0]!;
  }
  const [a, b, c] = batch ? shape.slice(1) : shape;
  const [hd, wd] = layout === 'NCHW' ? [b!, c!] : [a!, b!];
  return { name: input.name, datatype: input.datatype as ImageDatatype, layout, batch, height: hd > 0 ? hd : undefined, width: wd > 0 ? wd : undefined };
}

/** Layouts a shape admits, the one whose channel dim is exactly 3 first (NCHW when both or neither are). */
function layoutsOf(shape: readonly number[]): Layout[] {
  const [a, , c] = shape.length === 4 ? shape.slice(1) : shape;
  const first = a === 3 || a === -1;
  const last = c === 3 || c === -1;
  if (first && last) return c === 3 && a !== 3 ? ['NHWC', 'NCHW'] : ['NCHW', 'NHWC'];
  return first ? ['NCHW'] : last ? ['NHWC'] : [];
}

/**
 * The size the image is resized to: `--size`, else the model's fixed H/W,
 * else the image's own size, rounded to the nearest multiple of `multipleOf`
 * (at least one multiple). At most MAX_MEGAPIXELS, as a decoded image: checked
 * here, before the resize allocates it.
 */
export function targetSize(
  plan: ImagePlan,
  img: { width: number; height: number },
  opts: { size?: { width: number; height: number }; multipleOf?: number },
): { width: number; height: number } {
  if (opts.size) {
    const { width, height } = opts.size;
    if ((plan.width !== undefined && plan.width !== width) || (plan.height !== undefined && plan.height !== height)) {
      throw new ImageUsageError(
        `--size ${width}x${height} does not fit input '${plan.name}', whose size is fixed at ${plan.width ?? 'any'}x${plan.height ?? 'any'}`,
      );
    }
    return checkTargetSize({ width, height }, `--size ${width}x${height}`, plan);
  }
  const round = (v: number) => (opts.multipleOf ? Math.max(opts.multipleOf, Math.round(v / opts.multipleOf) * opts.multipleOf) : v);
  const size = { width: plan.width ?? round(img.width), height: plan.height ?? round(img.height) };
  // --multiple-of is to blame only for a side it rounded; a size the model fixes on both is the model's.
  const rounded = opts.multipleOf && (plan.width === undefined || plan.height === undefined);
  return checkTargetSize(size, rounded ? `--multiple-of ${opts.multipleOf}` : undefined, plan);
}

function checkTargetSize(size: { width: number; height: number }, flag: string | undefined, plan: ImagePlan): { width: number; height: number } {
  if (size.width * size.height <= MAX_MEGAPIXELS * 1e6) return size;
  const what = `${size.width}x${size.height}, more than ${MAX_MEGAPIXELS} megapixels`;
  // Sizes from the command line are usage errors; a model's own fixed size is the model's.
  if (flag) throw new ImageUsageError(`${flag}: the image would be resized to ${what}`);
  throw new ModelInputError(`input '${plan.name}' has a fixed size of ${what}: --image does not build images that large`);
}
