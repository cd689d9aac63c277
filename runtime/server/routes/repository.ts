/**
 * @module server/routes/repository
 * The model repository extension (Triton / KServe agent): index, load, unload;
 * and the original Xilinx server's `POST /v2/hardware`.
 */
import { Hono, type Context } from 'hono';
import * as z from 'zod';
import type { DataPlane } from '../../dataplane.js';
import { InvalidArgument } from '../../core/errors.js';
import { readBody } from '../body.js';
import type { KinferEnv } from '../context.js';

const Param = z.union([z.string(), z.number(), z.boolean()]);
// Triton's load body: {"parameters": {"config": "<json>", ...}}; KServe's agent sends {}.
const LoadBody = z.object({ parameters: z.record(z.string(), Param).optional() });
const IndexBody = z.object({ ready: z.boolean().optional() });
const HardwareBody = z.object({ name: z.string().min(1), num: z.number().int().nonnegative().default(1) });

export interface RepositoryRouteOptions {
  dataplane: DataPlane;
  /** Answers `POST /v2/hardware`: are `num` devices named `name` present? */
  hasHardware: (name: string, num: number) => boolean;
}

async function jsonBody<T extends z.ZodType>(c: Context, schema: T, what: string): Promise<z.infer<T>> {
  const bytes = await readBody(c, 1024 * 1024);
  const text = new TextDecoder().decode(bytes).trim();
  let value: unknown = {};
  if (text !== '') {
    try {
      value = JSON.parse(text);
    } catch (err) {
      throw new InvalidArgument(`${what} body is not valid JSON: ${(err as Error).message}`);
    }
  }
  const parsed = schema.safeParse(value);
  if (!parsed.success) {
    const issue = parsed.error.issues[0]!;
    throw new InvalidArgument(`${what} body: ${issue.path.join('.') || '(root)'}: ${issue.message}`);
  }
  return parsed.data;
}

export function repositoryRoutes(opts: RepositoryRouteOptions): Hono<KinferEnv> {
  const dp = opts.dataplane;
  const app = new Hono<KinferEnv>();

  app.post('/v2/repository/index', async (c) => {
    const { ready } = await jsonBody(c, IndexBody, 'repository index');
    return c.json(await dp.repositoryIndex(ready));
  });

  app.post('/v2/repository/models/:model/load', async (c) => {
    const model = c.req.param('model');
    c.set('model', model);
    const { parameters } = await jsonBody(c, LoadBody, 'load');
    await dp.load(model, parameters);
    return c.json({ name: model, load: true });
  });

  app.post('/v2/repository/models/:model/unload', async (c) => {
    const model = c.req.param('model');
    c.set('model', model);
    await jsonBody(c, LoadBody, 'unload');
    await dp.unload(model);
    return c.json({ name: model, unload: true });
  });

  app.post('/v2/hardware', async (c) => {
    const { name, num } = await jsonBody(c, HardwareBody, 'hardware');
    const found = opts.hasHardware(name, num);
    return found
      ? c.json({ name, num, found: true })
      : c.json({ error: `fewer than ${num} device(s) named '${name}' found` }, 404);
  });

  return app;
}
