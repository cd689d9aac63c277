/**
 * @module server/routes/shared-memory
 * Triton's shared-memory extension, REST side: register, unregister and list
 * system shared-memory regions (`/v2/systemsharedmemory/...`). CUDA regions
 * (`/v2/cudasharedmemory/...`) list as none and refuse registration: this
 * server has no GPU. Without `--allow-client-shm` the status is empty and a
 * registration is refused, as in Triton.
 */
import { Hono } from 'hono';
import * as z from 'zod';
import { allowedRegions, noCudaRegions, type SystemSharedMemory } from '../../shared-memory/system-shared-memory.js';
import { readJsonBody } from '../body.js';
import type { KinferEnv } from '../context.js';

const Register = z.object({ key: z.string(), offset: z.number().int().nonnegative().default(0), byte_size: z.number().int().nonnegative() }).strict();
const Empty = z.object({}).strict();

/** `shm` undefined: client shared memory is not allowed on this server. */
export function sharedMemoryRoutes(shm: SystemSharedMemory | undefined): Hono<KinferEnv> {
  const app = new Hono<KinferEnv>();
  const allowed = () => allowedRegions(shm);

  app.get('/v2/systemsharedmemory/status', (c) => c.json(shm?.status() ?? []));
  app.get('/v2/systemsharedmemory/region/:name/status', (c) => c.json(allowed().status(c.req.param('name'))));
  app.post('/v2/systemsharedmemory/region/:name/register', async (c) => {
    const regions = allowed();
    const { key, offset, byte_size } = await readJsonBody(c, Register, 'system shared memory register');
    regions.register(c.req.param('name'), key, offset, byte_size);
    return c.json({});
  });
  app.post('/v2/systemsharedmemory/region/:name/unregister', async (c) => {
    await readJsonBody(c, Empty, 'system shared memory unregister');
    allowed().unregister(c.req.param('name'));
    return c.json({});
  });
  app.post('/v2/systemsharedmemory/unregister', async (c) => {
    await readJsonBody(c, Empty, 'system shared memory unregister');
    shm?.unregister();
    return c.json({});
  });

  app.get('/v2/cudasharedmemory/status', (c) => c.json([]));
  app.get('/v2/cudasharedmemory/region/:name/status', noCudaRegions);
  app.post('/v2/cudasharedmemory/region/:name/register', noCudaRegions);
  app.post('/v2/cudasharedmemory/region/:name/unregister', (c) => c.json({}));
  app.post('/v2/cudasharedmemory/unregister', (c) => c.json({}));
  return app;
}
