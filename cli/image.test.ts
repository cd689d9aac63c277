/**
 * @module cli/image.test
 * Image → tensor for `kinfer infer --image`: PNG and JPEG files built here
 * with the pngjs/jpeg-js encoders, decoded and laid out, with exact values for
 * PNG and JPEG's tolerance; bilinear resize on hand-computed cases; the
 * normalisation; and how the model metadata picks input, layout and size.
 */
import jpeg from 'jpeg-js';
import { PNG } from 'pngjs';
import { describe, expect, it } from 'vitest';
import { fromHalf } from '../runtime/core/datatypes.js';
import {
  DEFAULT_NORMALISATION,
  ImageUsageError,
  ModelInputError,
  SCALING_PRESETS,
  decodeImage,
  imageToTensor,
  planImageInput,
  resizeBilinear,
  targetSize,
  type RgbImage,
} from './image.js';

/** RGBA pixels, row-major; pixel i = [r, g, b, a]. */
function png(width: number, height: number, pixels: number[][], colorType: 0 | 2 | 6 = 6): Buffer {
  const img = new PNG({ width, height });
  pixels.forEach((p, i) => img.data.set(p, i * 4));
  return PNG.sync.write(img, { colorType });
}

// 3 wide, 2 high, with alpha that must be ignored.
const PIXELS = [
  [255, 0, 0, 255],
  [0, 255, 0, 128],
  [0, 0, 255, 0],
  [10, 20, 30, 255],
  [200, 100, 50, 255],
  [1, 2, 254, 7],
];

const fp32 = (v: number) => Math.fround(v);

describe('decodeImage', () => {
  it('PNG: exact RGB pixels, alpha dropped', () => {
    const img = decodeImage(png(3, 2, PIXELS), 'a.png');
    expect([img.width, img.height]).toEqual([3, 2]);
    expect(Array.from(img.data)).toEqual(PIXELS.flatMap((p) => p.slice(0, 3)));
  });

  it('greyscale PNG becomes three equal channels', () => {
    const grey = [[0, 0, 0, 255], [77, 77, 77, 255], [255, 255, 255, 255], [128, 128, 128, 255]];
    const img = decodeImage(png(2, 2, grey, 0), 'g.png');
    expect(Array.from(img.data)).toEqual(grey.flatMap((p) => [p[0], p[0], p[0]]));
  });

  it('JPEG: pixels within the codec tolerance', () => {
    // Four flat 8x8 blocks (one per JPEG block), so quality 100 reproduces them closely.
    const colours = [[200, 30, 40], [20, 180, 60], [30, 60, 220], [128, 128, 128]];
    const w = 16;
    const data = Buffer.alloc(w * w * 4);
    for (let y = 0; y < w; y++) {
      for (let x = 0; x < w; x++) {
        const c = colours[(y < 8 ? 0 : 2) + (x < 8 ? 0 : 1)]!;
        data.set([...c, 255], (y * w + x) * 4);
      }
    }
    const file = jpeg.encode({ width: w, height: w, data }, 100).data;
    const img = decodeImage(file, 'a.jpg');
    expect([img.width, img.height]).toEqual([16, 16]);
    let worst = 0;
    for (let i = 0; i < w * w; i++) {
      const y = Math.floor(i / w);
      const x = i % w;
      const c = colours[(y < 8 ? 0 : 2) + (x < 8 ? 0 : 1)]!;
      for (let k = 0; k < 3; k++) worst = Math.max(worst, Math.abs(img.data[i * 3 + k]! - c[k]!));
    }
    expect(worst).toBeLessThanOrEqual(4);
  });

  it('refuses other formats and broken files, naming the file and the supported formats', () => {
    expect(() => decodeImage(Buffer.from('GIF89a....'), 'x.gif')).toThrow(ImageUsageError);
    expect(() => decodeImage(Buffer.from('GIF89a....'), 'x.gif')).toThrow(/x\.gif: not a supported image \(supported formats: JPEG .* PNG/);
    const truncated = png(3, 2, PIXELS).subarray(0, 40);
    expect(() => decodeImage(truncated, 'cut.png')).toThrow(/cut\.png: cannot decode as PNG: .*supported formats/);
    const badJpeg = Buffer.from([0xff, 0xd8, 0xff, 0xe0, 0, 0, 1, 2, 3]);
    expect(() => decodeImage(badJpeg, 'bad.jpg')).toThrow(/bad\.jpg: cannot decode as JPEG/);
  });
});

describe('imageToTensor', () => {
  const img = decodeImage(png(3, 2, PIXELS), 'a.png');
  const plane = (c: number) => PIXELS.map((p) => p[c]!);

  it('NCHW FP32 with a batch of 1, pixel/255 by default', () => {
    const t = imageToTensor(img, { layout: 'NCHW', datatype: 'FP32', batch: true, bgr: false, norm: DEFAULT_NORMALISATION });
    expect(t.shape).toEqual([1, 3, 2, 3]);
    expect(t.data).toBeInstanceOf(Float32Array);
    expect(Array.from(t.data)).toEqual([...plane(0), ...plane(1), ...plane(2)].map((p) => fp32(p / 255)));
  });

  it('NHWC, BGR, no batch dimension', () => {
    const t = imageToTensor(img, { layout: 'NHWC', datatype: 'FP32', batch: false, bgr: true, norm: SCALING_PRESETS.NONE });
    expect(t.shape).toEqual([2, 3, 3]);
    expect(Array.from(t.data)).toEqual(PIXELS.flatMap((p) => [p[2], p[1], p[0]]));
  });

  it('mean/std per colour, and they follow the colour when channels are BGR', () => {
    const norm = { scale: 1 / 255, mean: [0.485, 0.456, 0.406] as const, std: [0.229, 0.224, 0.225] as const };
    const rgb = imageToTensor(img, { layout: 'NCHW', datatype: 'FP32', batch: true, bgr: false, norm });
    const bgr = imageToTensor(img, { layout: 'NCHW', datatype: 'FP32', batch: true, bgr: true, norm });
    const expected = (c: number) => plane(c).map((p) => fp32((p / 255 - norm.mean[c]!) / norm.std[c]!));
    const n = PIXELS.length;
    for (let c = 0; c < 3; c++) {
      Array.from(rgb.data.subarray(c * n, (c + 1) * n)).forEach((v, i) => expect(v).toBeCloseTo(expected(c)[i]!, 6));
      Array.from(bgr.data.subarray((2 - c) * n, (3 - c) * n)).forEach((v, i) => expect(v).toBeCloseTo(expected(c)[i]!, 6));
    }
    const inception = imageToTensor(img, { layout: 'NHWC', datatype: 'FP32', batch: true, bgr: false, norm: SCALING_PRESETS.INCEPTION });
    expect(inception.data[0]).toBeCloseTo(1, 6); // red 255 → 1
    expect(inception.data[1]).toBeCloseTo(-1, 6); // green 0 → -1
  });

  it('UINT8 carries the pixels; FP16 carries half bits of the normalised value', () => {
    const u8 = imageToTensor(img, { layout: 'NHWC', datatype: 'UINT8', batch: true, bgr: false, norm: DEFAULT_NORMALISATION });
    expect(u8.data).toBeInstanceOf(Uint8Array);
    expect(Array.from(u8.data)).toEqual(PIXELS.flatMap((p) => p.slice(0, 3)));
    const f16 = imageToTensor(img, { layout: 'NHWC', datatype: 'FP16', batch: true, bgr: false, norm: DEFAULT_NORMALISATION });
    expect(f16.data).toBeInstanceOf(Uint16Array);
    Array.from(f16.data).forEach((bits, i) => expect(fromHalf(bits)).toBeCloseTo(u8.data[i]! / 255, 3));
    expect(fromHalf(f16.data[0]!)).toBe(1);
  });
});

describe('resizeBilinear (half-pixel centres, clamped edges)', () => {
  const grey = (w: number, h: number, v: number[]): RgbImage => ({ width: w, height: h, data: Float32Array.from(v.flatMap((x) => [x, x, x])) });
  const channel = (img: RgbImage, c = 0) => Array.from({ length: img.width * img.height }, (_, i) => img.data[i * 3 + c]);

  it('2x2 → 4x4: [a, ¾a+¼b, ¼a+¾b, b] on both axes', () => {
    const [a, b, c, d] = [0, 16, 32, 64];
    const out = resizeBilinear(grey(2, 2, [a, b, c, d]), 4, 4);
    const mix = (p: number, q: number) => [p, 0.75 * p + 0.25 * q, 0.25 * p + 0.75 * q, q];
    const top = mix(a, b);
    const bottom = mix(c, d);
    const rows = mix(0, 1).map((fy) => top.map((t, x) => t * (1 - fy) + bottom[x]! * fy));
    expect([out.width, out.height]).toEqual([4, 4]);
    expect(channel(out)).toEqual(rows.flat());
    expect(channel(out).slice(0, 4)).toEqual([0, 4, 12, 16]);
    expect(channel(out).slice(12)).toEqual([32, 40, 56, 64]);
  });

  it('4x2 → 2x1 averages 2x2 blocks; channels stay apart; same size is a no-op', () => {
    const img: RgbImage = { width: 4, height: 2, data: Float32Array.from([1, 2, 3, 5, 6, 7, 9, 10, 11, 13, 14, 15, 17, 18, 19, 21, 22, 23, 25, 26, 27, 29, 30, 31]) };
    const out = resizeBilinear(img, 2, 1);
    // Block (0..1, 0..1): red values 1, 5, 17, 21 → 11; block (2..3): 9, 13, 25, 29 → 19.
    expect(channel(out, 0)).toEqual([11, 19]);
    expect(channel(out, 1)).toEqual([12, 20]);
    expect(channel(out, 2)).toEqual([13, 21]);
    expect(resizeBilinear(img, 4, 2)).toBe(img);
  });
});

describe('planImageInput and targetSize', () => {
  const fp32In = (shape: number[], name = 'x', datatype = 'FP32') => ({ name, datatype, shape });

  it('ocr-det style [-1,3,-1,-1]: NCHW, batch, any size', () => {
    expect(planImageInput('ocr-det', [fp32In([-1, 3, -1, -1])], {})).toEqual({ name: 'x', datatype: 'FP32', layout: 'NCHW', batch: true, height: undefined, width: undefined });
  });

  it('channels last with a fixed size: NHWC, and H/W from the metadata', () => {
    const plan = planImageInput('m', [fp32In([-1, 224, 320, 3], 'images', 'UINT8')], {});
    expect(plan).toMatchObject({ name: 'images', datatype: 'UINT8', layout: 'NHWC', batch: true, height: 224, width: 320 });
    expect(targetSize(plan, { width: 640, height: 480 }, {})).toEqual({ width: 320, height: 224 });
    expect(() => targetSize(plan, { width: 640, height: 480 }, { size: { width: 100, height: 100 } })).toThrow(/--size 100x100 does not fit input 'images', whose size is fixed at 320x224/);
  });

  it('rank 3 (no batch), ambiguous shapes, and --layout', () => {
    expect(planImageInput('m', [fp32In([3, 224, 224])], {})).toMatchObject({ layout: 'NCHW', batch: false, height: 224, width: 224 });
    expect(planImageInput('m', [fp32In([-1, 3, 8, 3])], {})).toMatchObject({ layout: 'NCHW', height: 8, width: 3 });
    expect(planImageInput('m', [fp32In([-1, 3, 8, 3])], { layout: 'NHWC' })).toMatchObject({ layout: 'NHWC', height: 3, width: 8 });
    expect(planImageInput('m', [fp32In([-1, -1, -1, 3])], {})).toMatchObject({ layout: 'NHWC' });
    expect(() => planImageInput('m', [fp32In([-1, 3, 32, 32])], { layout: 'NHWC' })).toThrow(/--layout NHWC does not fit input 'x' of model 'm', shape \[-1,3,32,32\]/);
  });

  it('picks the input by --input-name or the one image among several; undeclared inputs get the defaults', () => {
    const inputs = [fp32In([-1, 2], 'im_shape'), fp32In([-1, 3, 608, 608], 'image')];
    expect(planImageInput('yolo', inputs, {}).name).toBe('image');
    expect(planImageInput('yolo', inputs, { inputName: 'image' }).width).toBe(608);
    const two = [fp32In([-1, 3, -1, -1], 'a'), fp32In([-1, 3, -1, -1], 'b')];
    expect(() => planImageInput('m', two, {})).toThrow(ImageUsageError);
    expect(() => planImageInput('m', two, {})).toThrow(/2 inputs \(a, b\): choose the image input with --input-name/);
    expect(() => planImageInput('m', two, { inputName: 'c' })).toThrow(/model 'm' has no input 'c' \(inputs: a, b\)/);
    expect(planImageInput('echo', [], { inputName: 'img' })).toEqual({ name: 'img', datatype: 'FP32', layout: 'NCHW', batch: true });
    expect(() => planImageInput('echo', [], {})).toThrow(/model 'echo' declares no inputs in its metadata/);
  });

  it('models without a usable image input: a ModelInputError with the reason', () => {
    const cases: [ReturnType<typeof fp32In>, RegExp][] = [
      [fp32In([-1, 3, -1, -1], 'x', 'INT64'), /input 'x' of model 'm' is INT64: --image fills FP32, FP16, UINT8 inputs/],
      [fp32In([-1, 1, 28, 28]), /shape \[-1,1,28,28\]: no 3-channel dimension/],
      [fp32In([-1, 10]), /shape \[-1,10\]: an image input has rank 3 .* or 4/],
      [fp32In([4, 3, 32, 32]), /fixed batch of 4/],
    ];
    for (const [input, message] of cases) {
      let err: unknown;
      try {
        planImageInput('m', [input], {});
      } catch (e) {
        err = e;
      }
      expect(err).toBeInstanceOf(ModelInputError);
      expect((err as Error).message).toMatch(message);
    }
  });

  it('--multiple-of rounds the image size to the nearest multiple, at least one', () => {
    const plan = planImageInput('ocr-det', [fp32In([-1, 3, -1, -1])], {});
    expect(targetSize(plan, { width: 70, height: 50 }, { multipleOf: 32 })).toEqual({ width: 64, height: 64 });
    expect(targetSize(plan, { width: 10, height: 100 }, { multipleOf: 32 })).toEqual({ width: 32, height: 96 });
    expect(targetSize(plan, { width: 70, height: 50 }, {})).toEqual({ width: 70, height: 50 });
    expect(targetSize(plan, { width: 70, height: 50 }, { size: { width: 33, height: 17 } })).toEqual({ width: 33, height: 17 });
  });

  it('a target size over 100 megapixels (--multiple-of, --size, the model) is refused before anything is allocated', () => {
    const plan = planImageInput('ocr-det', [fp32In([-1, 3, -1, -1])], {});
    expect(() => targetSize(plan, { width: 2, height: 2 }, { multipleOf: 20000 })).toThrow(ImageUsageError);
    expect(() => targetSize(plan, { width: 2, height: 2 }, { multipleOf: 20000 })).toThrow(/--multiple-of 20000: the image would be resized to 20000x20000, more than 100 megapixels/);
    expect(() => targetSize(plan, { width: 2, height: 2 }, { size: { width: 65536, height: 65536 } })).toThrow(ImageUsageError);
    expect(targetSize(plan, { width: 2, height: 2 }, { size: { width: 10000, height: 10000 } })).toEqual({ width: 10000, height: 10000 });
    const huge = planImageInput('big', [fp32In([1, 3, 20000, 20000])], {});
    expect(() => targetSize(huge, { width: 2, height: 2 }, {})).toThrow(ModelInputError);
    // The model fixes both sides: --multiple-of rounded nothing, the size is the model's.
    expect(() => targetSize(huge, { width: 2, height: 2 }, { multipleOf: 32 })).toThrow(ModelInputError);
  });
});
