/**
 * @module server/routes/repository
 * The model repository extension (Triton / KServe agent): index, load, unload;
 * and the original Xilinx server's `POST /v2/hardware`.
 */
import { Hono } from 'hono';
import * as z from 'zod';
import type { DataPlane } from '../../dataplane.js';
import { InvalidArgument } from '../../core/errors.js';
import { readJsonBody } from '../body.js';
import { decodeFileParameters } from '../../repository/override-files.js';
import type { KinferEnv } from '../context.js';

const Param = z.union([z.string(), z.number(), z.boolean()]);
// Triton's load body: {"parameters": {"config": "<json>", ...}}; KServe's agent sends {}.
const LoadBody = z.object({ parameters: z.record(z.string(), Param).optional() });
const IndexBody = z.object({ ready: z.boolean().optional() });
/** Triton's unload parameters: `unload_dependents` (a bool); other keys are ignored, except `file:` ones (refused). */
const UnloadBody = z.object({ parameters: z.record(z.string(), Param).and(z.object({ unload_dependents: z.boolean().optional() })).optional() });
const HardwareBody = z.object({ name: z.string().min(1), num: z.number().int().nonnegative().default(1) });

export interface RepositoryRouteOptions {
  dataplane: DataPlane;
  /** Answers `POST /v2/hardware`: are `num` devices named `name` present? */
  hasHardware: (name: string, num: number) => boolean;
  /** A load body's limit: it may carry the model's files (`file:` parameters). KINFER_MAX_JSON_BYTES. */
  maxLoadBytes: number;
}

export function repositoryRoutes(opts: RepositoryRouteOptions): Hono<KinferEnv> {
  const dp = opts.dataplane;
  const app = new Hono<KinferEnv>();

  app.post('/v2/repository/index', async (c) => {
    const { ready } = await readJsonBody(c, IndexBody, 'repository index');
    return c.json(await dp.repositoryIndex(ready));
  });

  app.post('/v2/repository/models/:model/load', async (c) => {
    const model = c.req.param('model');
    c.set('model', model);
    const body = await readJsonBody(c, LoadBody, 'load', { bytes: opts.maxLoadBytes, setting: 'KINFER_MAX_JSON_BYTES' });
    // Triton's `file:<path>` parameters carry model files as base64.
    const { parameters, files } = decodeFileParameters(body.parameters);
    await dp.load(model, parameters, files);
    return c.json({ name: model, load: true });
  });

  app.post('/v2/repository/models/:model/unload', async (c) => {
    const model = c.req.param('model');
    c.set('model', model);
    const { parameters } = await readJsonBody(c, UnloadBody, 'unload');
    if (Object.keys(parameters ?? {}).some((k) => k.startsWith('file:'))) throw new InvalidArgument('unload: file:<path> parameters are for loads');
    await dp.unload(model, { unloadDependents: parameters?.unload_dependents === true });
    return c.json({ name: model, unload: true });
  });

  app.post('/v2/hardware', async (c) => {
    const { name, num } = await readJsonBody(c, HardwareBody, 'hardware');
    const found = opts.hasHardware(name, num);
    return found
      ? c.json({ name, num, found: true })
      : c.json({ error: `fewer than ${num} device(s) named '${name}' found` }, 404);
  });

  return app;
}
