/*
 * @module native/fake-vendor/fake_vart
 * A fake of the kinfer VART shim ABI (src/vendor.h) for tests. No DPU runs:
 * the "xmodel" is a small text file and the "subgraph" computes, per batch row,
 *   output 0 = saturate(input * scale + bias)   (same type and shape as the input)
 *   output 1 = sum of the input row as FP32, shape [1]   (optional)
 * so tests can check every number that comes back. File format:
 *
 *   kinfer-fake-xmodel 1
 *   batch 4
 *   input data INT8 3 8        (name, type INT8|FP32, dims after the batch dim)
 *   output scaled INT8 3 8
 *   output rowsum FP32 1
 *   scale 2
 *   bias 1
 *   sleep_ms 0                 (each run sleeps; shows the JS thread stays free)
 *   fail_run 0                 (1: every run fails, as a DPU timeout would)
 *   fail_value -7              (optional: a run fails when its first input element is this)
 *   count_file /tmp/runs       (optional: each run appends one byte, so tests can count runs)
 *
 * Built with -DFAKE_OMIT_RUN it lacks kinfer_vart_runner_run (missing symbol).
 * kinfer_xrt_device_name answers FAKE_XRT_NAME when set.
 */
#define KINFER_VENDOR_ABI_ONLY
#include "../src/vendor.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

struct kinfer_vart_runner {
  int batch;
  kinfer_vart_tensor_info input;
  kinfer_vart_tensor_info outputs[2];
  int n_outputs;
  double scale, bias;
  int sleep_ms;
  int fail_run;
  int has_fail_value;
  double fail_value;
  char count_file[256];
  long runs;
};

static void set_err(char* err, size_t len, const char* fmt, const char* a, const char* b) {
  if (err != NULL && len > 0) snprintf(err, len, fmt, a, b);
}

static int parse_dtype(const char* s) {
  if (strcmp(s, "INT8") == 0) return KINFER_DT_INT8;
  if (strcmp(s, "FP32") == 0) return KINFER_DT_FP32;
  return 0;
}

static inline size_t elem_size(int dtype) { return dtype == KINFER_DT_FP32 ? 4 : 1; }

static size_t row_elems(const kinfer_vart_tensor_info* t) {
  size_t n = 1;
  for (int i = 1; i < t->ndim; i++) n *= (size_t)t->shape[i];
  return n;
}

/* "name TYPE d1 d2 ..." → tensor with shape [batch, d1, d2, ...]. */
static int parse_tensor(char* rest, int batch, kinfer_vart_tensor_info* t) {
  char* save = NULL;
  char* name = strtok_r(rest, " \t\n", &save);
  char* type = strtok_r(NULL, " \t\n", &save);
  if (name == NULL || type == NULL || (t->dtype = parse_dtype(type)) == 0) return -1;
  snprintf(t->name, sizeof(t->name), "%s", name);
  t->shape[0] = batch;
  t->ndim = 1;
  for (char* d; (d = strtok_r(NULL, " \t\n", &save)) != NULL;) {
    if (t->ndim >= KINFER_VART_MAX_DIMS || atol(d) <= 0) return -1;
    t->shape[t->ndim++] = atol(d);
  }
  return 0;
}

int kinfer_vart_abi_version(void) { return KINFER_VART_ABI_VERSION; }

int kinfer_vart_runner_create(const char* path, const char* bdf, unsigned int index, kinfer_vart_runner** out, char* err,
                              size_t errlen) {
  (void)index;
  if (path == NULL || bdf == NULL || out == NULL) {
    set_err(err, errlen, "%s%s", "null argument", "");
    return -EINVAL;
  }
  FILE* f = fopen(path, "r");
  if (f == NULL) {
    set_err(err, errlen, "cannot open %s: %s", path, strerror(errno));
    return -ENOENT;
  }
  char line[512];
  if (fgets(line, sizeof(line), f) == NULL || strncmp(line, "kinfer-fake-xmodel 1", 20) != 0) {
    fclose(f);
    set_err(err, errlen, "%s is not a kinfer-fake-xmodel file%s (the fake VART reads only those; no DPU here)", path, "");
    return -EINVAL;
  }
  kinfer_vart_runner* r = (kinfer_vart_runner*)calloc(1, sizeof(*r));
  if (r == NULL) {
    fclose(f);
    return -ENOMEM;
  }
  r->batch = 1;
  r->scale = 1;
  int have_input = 0, bad = 0;
  for (int guard = 0; guard < 256 && fgets(line, sizeof(line), f) != NULL; guard++) {
    char key[32] = {0};
    int off = 0;
    if (sscanf(line, "%31s %n", key, &off) < 1 || key[0] == '#') continue;
    char* rest = line + off;
    if (strcmp(key, "batch") == 0) r->batch = atoi(rest);
    else if (strcmp(key, "scale") == 0) r->scale = atof(rest);
    else if (strcmp(key, "bias") == 0) r->bias = atof(rest);
    else if (strcmp(key, "sleep_ms") == 0) r->sleep_ms = atoi(rest);
    else if (strcmp(key, "fail_run") == 0) r->fail_run = atoi(rest);
    else if (strcmp(key, "fail_value") == 0) r->has_fail_value = 1, r->fail_value = atof(rest);
    else if (strcmp(key, "count_file") == 0) bad |= sscanf(rest, "%255s", r->count_file) != 1;
    else if (strcmp(key, "input") == 0) bad |= have_input++ || parse_tensor(rest, r->batch, &r->input) != 0;
    else if (strcmp(key, "output") == 0) bad |= r->n_outputs >= 2 || parse_tensor(rest, r->batch, &r->outputs[r->n_outputs++]) != 0;
    else bad = 1;
  }
  fclose(f);
  if (!bad && r->n_outputs > 0) {
    const kinfer_vart_tensor_info* o = &r->outputs[0];
    bad = o->dtype != r->input.dtype || row_elems(o) != row_elems(&r->input);
  }
  if (!bad && r->n_outputs > 1) bad = r->outputs[1].dtype != KINFER_DT_FP32 || row_elems(&r->outputs[1]) != 1;
  if (bad || !have_input || r->n_outputs == 0 || r->batch <= 0) {
    free(r);
    set_err(err, errlen, "%s: malformed fake xmodel%s", path, "");
    return -EINVAL;
  }
  *out = r;
  return 0;
}

int kinfer_vart_runner_tensor_count(const kinfer_vart_runner* r, int is_output) { return is_output ? r->n_outputs : 1; }

int kinfer_vart_runner_tensor_info(const kinfer_vart_runner* r, int is_output, int index, kinfer_vart_tensor_info* out) {
  if (is_output ? index < 0 || index >= r->n_outputs : index != 0) return -EINVAL;
  *out = is_output ? r->outputs[index] : r->input;
  return 0;
}

#ifndef FAKE_OMIT_RUN
int kinfer_vart_runner_run(kinfer_vart_runner* r, const void* const* inputs, const size_t* input_bytes, int n_inputs,
                           void* const* outputs, const size_t* output_bytes, int n_outputs, char* err, size_t errlen) {
  const size_t row = row_elems(&r->input);
  const size_t total = row * (size_t)r->batch;
  if (n_inputs != 1 || n_outputs != r->n_outputs || input_bytes[0] != total * elem_size(r->input.dtype) ||
      output_bytes[0] != input_bytes[0] || (n_outputs > 1 && output_bytes[1] != (size_t)r->batch * 4)) {
    set_err(err, errlen, "%s%s", "buffer count or size does not match the runner's tensors", "");
    return -EINVAL;
  }
  if (r->sleep_ms > 0) {
    struct timespec ts = {r->sleep_ms / 1000, (long)(r->sleep_ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
  }
  r->runs++;
  if (r->count_file[0] != '\0') {
    const int fd = open(r->count_file, O_WRONLY | O_APPEND | O_CREAT, 0644);
    if (fd >= 0) {
      if (write(fd, "r", 1) != 1) { /* the count comes out short; the test says so */ }
      close(fd);
    }
  }
  if (r->fail_run) {
    set_err(err, errlen, "%s%s", "fake DPU run timed out (fail_run is set in the fake xmodel)", "");
    return -ETIMEDOUT;
  }
  if (r->has_fail_value) {
    const double first = r->input.dtype == KINFER_DT_INT8 ? ((const int8_t*)inputs[0])[0] : ((const float*)inputs[0])[0];
    if (first == r->fail_value) {
      set_err(err, errlen, "%s%s", "fake DPU run failed (its first input element is fail_value)", "");
      return -EIO;
    }
  }
  float* sums = n_outputs > 1 ? (float*)outputs[1] : NULL;
  for (int b = 0; b < r->batch; b++) {
    double sum = 0;
    for (size_t i = 0; i < row; i++) {
      const size_t k = (size_t)b * row + i;
      if (r->input.dtype == KINFER_DT_INT8) {
        const int8_t x = ((const int8_t*)inputs[0])[k];
        double y = x * r->scale + r->bias;
        y = y > 127 ? 127 : y < -128 ? -128 : y;
        ((int8_t*)outputs[0])[k] = (int8_t)y;
        sum += x;
      } else {
        const float x = ((const float*)inputs[0])[k];
        ((float*)outputs[0])[k] = (float)(x * r->scale + r->bias);
        sum += x;
      }
    }
    if (sums != NULL) sums[b] = (float)sum;
  }
  return 0;
}
#endif

void kinfer_vart_runner_destroy(kinfer_vart_runner* r) { free(r); }

int kinfer_xrt_device_name(unsigned int index, char* buf, size_t len) {
  const char* name = getenv("FAKE_XRT_NAME");
  (void)index;
  if (name == NULL || len == 0) return -1;
  snprintf(buf, len, "%s", name);
  return 0;
}
