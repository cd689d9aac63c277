/**
 * @module knative/validate
 * Validate manifests against the CRDs' openAPIV3Schema with ajv, rejecting
 * unknown fields the way the API server does: every object schema that lists
 * `properties` and is not `x-kubernetes-preserve-unknown-fields` gets
 * `additionalProperties: false`; apiVersion, kind and metadata are always allowed
 * at the root; `x-kubernetes-int-or-string` accepts an integer or a string.
 * Not emulated: CEL rules (`x-kubernetes-validations`) and the admission
 * webhooks of Knative and KServe (e.g. reserved env names, annotation values).
 */
import { existsSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { join, relative, sep } from 'node:path';
import { Ajv, type ErrorObject, type ValidateFunction } from 'ajv';
import { parse, parseAllDocuments } from 'yaml';
import { InvalidArgument, NotFound } from '../runtime/core/errors.js';
import { listFiles } from './generate.js';
import { CRD_FILES, defaultSpecsDir } from './specs.js';

type Schema = Record<string, unknown>;

/** ObjectMeta as far as a manifest author writes it; the rest of ObjectMeta is server-set. */
const OBJECT_META: Schema = {
  type: 'object',
  required: ['name'],
  properties: {
    name: { type: 'string', pattern: '^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$', maxLength: 253 },
    namespace: { type: 'string', pattern: '^[a-z0-9]([-a-z0-9]*[a-z0-9])?$', maxLength: 63 },
    labels: { type: 'object', additionalProperties: { type: 'string', maxLength: 63 } },
    annotations: { type: 'object', additionalProperties: { type: 'string' } },
    generateName: { type: 'string' },
    finalizers: { type: 'array', items: { type: 'string' } },
    ownerReferences: { type: 'array', items: { type: 'object' } },
  },
  additionalProperties: false,
};

/** Copy of a CRD schema with the API server's unknown-field rule made explicit. */
export function structural(schema: Schema, root = true): Schema {
  const out: Schema = {};
  for (const [k, v] of Object.entries(schema)) {
    if (k === 'properties' && v && typeof v === 'object') {
      out.properties = Object.fromEntries(Object.entries(v as Record<string, Schema>).map(([p, s]) => [p, structural(s, false)]));
    } else if ((k === 'items' || k === 'additionalProperties' || k === 'not') && v && typeof v === 'object') {
      out[k] = structural(v as Schema, false);
    } else if ((k === 'anyOf' || k === 'allOf' || k === 'oneOf') && Array.isArray(v)) {
      out[k] = v.map((s: Schema) => structural(s, false));
    } else {
      out[k] = v;
    }
  }
  if (out['x-kubernetes-int-or-string'] === true && !out.anyOf && !out.type) out.anyOf = [{ type: 'integer' }, { type: 'string' }];
  if (root) {
    const props = { ...((out.properties as Record<string, Schema>) ?? {}) };
    props.apiVersion = { type: 'string' };
    props.kind = { type: 'string' };
    props.metadata = OBJECT_META;
    out.properties = props;
    out.required = [...new Set([...((out.required as string[]) ?? []), 'apiVersion', 'kind', 'metadata'])];
  }
  if (out.properties && out['x-kubernetes-preserve-unknown-fields'] !== true && out.additionalProperties === undefined)
    out.additionalProperties = false;
  return out;
}

const INT32 = 2 ** 31;

function newAjv(): Ajv {
  const ajv = new Ajv({ allErrors: true, strict: false, validateSchema: false });
  ajv.addFormat('int32', { type: 'number', validate: (n: number) => Number.isInteger(n) && n >= -INT32 && n < INT32 });
  ajv.addFormat('int64', { type: 'number', validate: (n: number) => Number.isSafeInteger(n) });
  ajv.addFormat('date-time', { type: 'string', validate: (s: string) => !Number.isNaN(Date.parse(s)) });
  ajv.addFormat('-', true);
  return ajv;
}

interface CrdVersion {
  key: string;
  file: string;
  schema: Schema;
}

export interface Validator {
  /** Errors of one object, empty when valid. */
  validate(obj: unknown): string[];
  /** `group/version Kind` pairs the validator knows. */
  kinds(): string[];
}

/** A validator over the CRDs in `specsDir`; schemas compile lazily, once per kind. */
export async function createValidator(specsDir = defaultSpecsDir()): Promise<Validator> {
  const versions = new Map<string, CrdVersion>();
  for (const rel of CRD_FILES) {
    const file = join(specsDir, rel);
    if (!existsSync(file)) throw new NotFound(`CRD spec ${file} not found (set KINFER_SPECS_DIR or check ../shared/specs)`);
    const crd = parse(await readFile(file, 'utf8')) as {
      spec: { group: string; names: { kind: string }; versions: Array<{ name: string; schema?: { openAPIV3Schema?: Schema } }> };
    };
    for (const v of crd.spec.versions) {
      if (!v.schema?.openAPIV3Schema) continue;
      const key = `${crd.spec.group}/${v.name} ${crd.spec.names.kind}`;
      versions.set(key, { key, file: rel, schema: v.schema.openAPIV3Schema });
    }
  }
  const ajv = newAjv();
  const compiled = new Map<string, ValidateFunction>();
  return {
    kinds: () => [...versions.keys()].sort(),
    validate(obj: unknown): string[] {
      if (typeof obj !== 'object' || obj === null || Array.isArray(obj)) return ['(root): expected an object'];
      const { apiVersion, kind } = obj as { apiVersion?: unknown; kind?: unknown };
      if (typeof apiVersion !== 'string' || typeof kind !== 'string') return ['(root): apiVersion and kind must be strings'];
      const key = `${apiVersion} ${kind}`;
      const crd = versions.get(key);
      if (!crd) return [`no CRD schema for ${key} (known: ${[...versions.keys()].sort().join(', ')})`];
      let fn = compiled.get(key);
      if (!fn) {
        fn = ajv.compile(structural(crd.schema));
        compiled.set(key, fn);
      }
      return fn(obj) ? [] : (fn.errors ?? []).map(formatError);
    },
  };
}

function formatError(e: ErrorObject): string {
  const at = e.instancePath || '(root)';
  if (e.keyword === 'additionalProperties')
    return `${at}: unknown field ${JSON.stringify((e.params as { additionalProperty: string }).additionalProperty)}`;
  return `${at}: ${e.message ?? e.keyword}`;
}

export interface ValidationResult {
  files: number;
  documents: number;
  /** "<file>: <Kind>/<name>: <path>: <problem>" */
  errors: string[];
}

/** Validate every YAML document under `dir` (recursively). JSON files (the dashboard) are not Kubernetes objects and are skipped. */
export async function validateManifests(dir: string, opts: { specsDir?: string } = {}): Promise<ValidationResult> {
  if (!existsSync(dir)) throw new InvalidArgument(`manifests directory ${dir} does not exist`);
  const validator = await createValidator(opts.specsDir);
  const result: ValidationResult = { files: 0, documents: 0, errors: [] };
  for (const file of await listFiles(dir)) {
    if (!/\.ya?ml$/.test(file)) continue;
    result.files++;
    const rel = relative(dir, file).split(sep).join('/');
    for (const doc of parseAllDocuments(await readFile(file, 'utf8'))) {
      if (doc.errors.length > 0) {
        result.errors.push(`${rel}: YAML: ${doc.errors[0]!.message}`);
        continue;
      }
      const obj = doc.toJS() as { kind?: string; metadata?: { name?: string } } | null;
      if (obj === null) continue;
      result.documents++;
      const what = `${obj.kind ?? '?'}/${obj.metadata?.name ?? '?'}`;
      for (const err of validator.validate(obj)) result.errors.push(`${rel}: ${what}: ${err}`);
    }
  }
  return result;
}
