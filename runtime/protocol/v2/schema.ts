/**
 * @module protocol/v2/schema
 * Zod schemas of the KServe v2 / Open Inference Protocol REST wire types,
 * quoting the grammar of `required_api.md`. They check the envelope only:
 * tensor `data` is left as `unknown` here and converted by `decode.ts` in a
 * plain loop, because asking Zod to walk 150 000 numbers is slow.
 *
 * Leniency follows KServe: unknown fields are ignored (and dropped), optional
 * fields may be `null`. Wrong types are errors that name the field path.
 */
import * as z from 'zod';
import { DATATYPES } from '../../core/datatypes.js';
import { describe, InvalidArgument } from '../../core/errors.js';

/**
 * ```
 * $parameters = { $parameter, ... }
 * $parameter = $string : $string | $number | $boolean
 * ```
 */
export const parametersSchema = z.record(
  z.string(),
  z.union([z.string(), z.number(), z.boolean()], { error: 'expected a string, number or boolean' }),
  { error: 'expected an object of string, number or boolean values' },
);

const datatypeSchema = z.enum(DATATYPES, {
  error: (iss) => `expected one of ${DATATYPES.join(', ')}, got ${describe(iss.input)}`,
});

const dimSchema = z
  .number({ error: 'expected a non-negative integer' })
  .int({ error: 'expected a non-negative integer' })
  .nonnegative({ error: 'expected a non-negative integer' });

/**
 * ```
 * $request_input = {
 *   "name" : $string, "shape" : [ $number, ... ], "datatype" : $string,
 *   "parameters" : $parameters #optional, "data" : $tensor_data
 * }
 * ```
 * `data` is optional on the wire when `parameters.binary_data_size` says the
 * bytes follow the JSON header (binary tensor data extension).
 */
export const requestInputSchema = z.object({
  name: z.string({ error: 'expected a string' }),
  shape: z.array(dimSchema, { error: 'expected a list of non-negative integers' }),
  datatype: datatypeSchema,
  parameters: parametersSchema.nullish(),
  data: z.unknown().optional(),
});

/** `$request_output = { "name" : $string, "parameters" : $parameters #optional }` */
export const requestOutputSchema = z.object({
  name: z.string({ error: 'expected a string' }),
  parameters: parametersSchema.nullish(),
});

/**
 * ```
 * $inference_request = {
 *   "id" : $string #optional, "parameters" : $parameters #optional,
 *   "inputs" : [ $request_input, ... ], "outputs" : [ $request_output, ... ] #optional
 * }
 * ```
 */
export const inferenceRequestSchema = z.object(
  {
    id: z.string({ error: 'expected a string' }).nullish(),
    parameters: parametersSchema.nullish(),
    inputs: z.array(requestInputSchema, { error: (iss) => (iss.input === undefined ? 'required' : 'expected a list') }),
    outputs: z.array(requestOutputSchema, { error: 'expected a list' }).nullish(),
  },
  { error: 'expected a JSON object ($inference_request)' },
);

export type WireParameters = z.infer<typeof parametersSchema>;
export type WireRequestInput = z.infer<typeof requestInputSchema>;
export type WireRequestOutput = z.infer<typeof requestOutputSchema>;
export type WireInferenceRequest = z.infer<typeof inferenceRequestSchema>;

/**
 * ```
 * $response_output = {
 *   "name" : $string, "shape" : [ $number, ... ], "datatype" : $string,
 *   "parameters" : $parameters #optional, "data" : $tensor_data
 * }
 * ```
 * `data` is absent when the output travels in the binary section.
 */
export interface WireResponseOutput {
  name: string;
  datatype: string;
  shape: number[];
  parameters?: WireParameters;
  data?: unknown[];
}

/**
 * ```
 * $inference_response = {
 *   "model_name" : $string, "model_version" : $string #optional, "id" : $string,
 *   "parameters" : $parameters #optional, "outputs" : [ $response_output, ... ]
 * }
 * ```
 * `id` is sent only when the request had one.
 */
export interface WireInferenceResponse {
  model_name: string;
  model_version?: string;
  id?: string;
  parameters?: WireParameters;
  outputs: WireResponseOutput[];
}

/** Formats a Zod issue path as the client wrote it: `inputs[1].shape[0]`. */
export function formatPath(path: readonly PropertyKey[]): string {
  let out = '';
  for (const key of path) {
    if (typeof key === 'number') out += `[${key}]`;
    else out += out === '' ? String(key) : `.${String(key)}`;
  }
  return out === '' ? '(body)' : out;
}

/** Parses an already JSON-parsed value as `$inference_request`; errors name the field path. */
export function parseInferenceRequest(value: unknown): WireInferenceRequest {
  const result = inferenceRequestSchema.safeParse(value);
  if (result.success) return result.data;
  const issue = result.error.issues[0]!;
  throw new InvalidArgument(`${formatPath(issue.path)}: ${issue.message}`);
}
