/**
 * @module server/routes/trace
 * Triton's trace extension: `GET/POST /v2/trace/setting` for the server,
 * `/v2/models/{m}/trace/setting` for one model (a model the server knows).
 * The settings themselves are `observability/trace-settings.ts`.
 */
import { Hono, type Context } from 'hono';
import * as z from 'zod';
import { NotFound } from '../../core/errors.js';
import type { DataPlane } from '../../dataplane.js';
import type { TraceSettings } from '../../observability/trace-settings.js';
import { readJsonBody } from '../body.js';
import type { KinferEnv } from '../context.js';

const Update = z.record(z.string(), z.unknown());

export function traceRoutes(settings: TraceSettings, dp: DataPlane): Hono<KinferEnv> {
  const app = new Hono<KinferEnv>();
  const known = (c: Context<KinferEnv>): string => {
    const model = c.req.param('model')!;
    if (!dp.knows(model)) throw new NotFound(`model '${model}' is not found`);
    return model;
  };
  app.get('/v2/trace/setting', (c) => c.json(settings.get()));
  app.post('/v2/trace/setting', async (c) => c.json(settings.update(await readJsonBody(c, Update, 'trace setting'))));
  app.get('/v2/models/:model/trace/setting', (c) => c.json(settings.get(known(c))));
  app.post('/v2/models/:model/trace/setting', async (c) => {
    const model = known(c);
    return c.json(settings.update(await readJsonBody(c, Update, 'trace setting'), model));
  });
  return app;
}
