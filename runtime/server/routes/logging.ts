/**
 * @module server/routes/logging
 * Triton's logging extension over REST: `GET /v2/logging` reads and
 * `POST /v2/logging` changes the running server's log settings
 * (`observability/log-settings.ts`; gRPC's LogSettings changes the same).
 */
import { Hono } from 'hono';
import * as z from 'zod';
import type { LogControl } from '../../observability/log-settings.js';
import { readJsonBody } from '../body.js';
import type { KinferEnv } from '../context.js';

const Body = z.record(z.string(), z.unknown());

export function loggingRoutes(logs: LogControl): Hono<KinferEnv> {
  const app = new Hono<KinferEnv>();
  app.get('/v2/logging', (c) => c.json(logs.get()));
  app.post('/v2/logging', async (c) => c.json(logs.update(await readJsonBody(c, Body, 'logging'))));
  return app;
}
