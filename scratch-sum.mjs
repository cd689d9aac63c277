import { readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { readProfile, renderProfile, summarizeProfile } from './dist/test/bench/profile.js';
const dir = process.argv[2];
for (const f of (await readdir(dir)).filter((f) => f.endsWith('.cpuprofile'))) console.log(renderProfile(f, summarizeProfile(await readProfile(join(dir, f)), '/work/main', 30)));
