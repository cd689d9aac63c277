/*
 * @module native/fake-vendor/fake_xrt
 * A fake XRT for tests: the subset of XRT's C API the addon resolves, with
 * XRT's signatures. No hardware: "devices" are heap objects. Behaviour is set
 * by the environment the test gives the process:
 *   FAKE_XRT_DEVICES    device count reported by xclProbe (default 1)
 *   FAKE_XRT_BDFS       comma list of BDFs xrtDeviceOpenByBDF accepts (default: any)
 *   FAKE_XRT_OPEN_FAIL  when set, every open fails with EIO
 *   FAKE_XRT_LOAD_FAIL  when set, every xclbin load fails with this code
 *   FAKE_XRT_GATE_DIR   when set, tests can hold calls and see where they are:
 *                       xclProbe appends a byte to <dir>/probe; xrtDeviceClose
 *                       and xrtDeviceLoadXclbinFile create <dir>/<op>.started
 *                       (op close or load), wait until <dir>/<op>.go exists
 *                       (at most 10 s), then create <dir>/<op>.done; and
 *                       <dir>/<op>.main-thread when called on the process's
 *                       main thread (Node's JS thread)
 * Built with -DFAKE_OMIT_LOAD_XCLBIN it lacks xrtDeviceLoadXclbinFile, for the
 * missing-symbol path; with -DFAKE_OMIT_PROBE it lacks xclProbe (no XRT device list).
 */
#define KINFER_VENDOR_ABI_ONLY
#include "../src/vendor.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#define FAKE_MAGIC 0x58525446u /* "FTRX" */

struct fake_device {
  unsigned magic;
  unsigned index;
};

static unsigned device_count(void) {
  const char* v = getenv("FAKE_XRT_DEVICES");
  return v != NULL ? (unsigned)strtoul(v, NULL, 10) : 1u;
}

/* Appends one byte to <FAKE_XRT_GATE_DIR>/<name> (creating it). */
static void gate_mark(const char* name) {
  const char* dir = getenv("FAKE_XRT_GATE_DIR");
  char path[512];
  if (dir == NULL) return;
  snprintf(path, sizeof(path), "%s/%s", dir, name);
  const int fd = open(path, O_WRONLY | O_APPEND | O_CREAT, 0644);
  if (fd < 0) return;
  if (write(fd, "x", 1) != 1) { /* the test waits for it and says so */ }
  close(fd);
}

/* <op>.started, then wait for <op>.go (bounded), then <op>.done. */
static void gate(const char* op) {
  const char* dir = getenv("FAKE_XRT_GATE_DIR");
  char name[64], go[512];
  if (dir == NULL) return;
  snprintf(name, sizeof(name), "%s.started", op);
  gate_mark(name);
  if ((pid_t)syscall(SYS_gettid) == getpid()) {
    snprintf(name, sizeof(name), "%s.main-thread", op);
    gate_mark(name);
  }
  snprintf(go, sizeof(go), "%s/%s.go", dir, op);
  for (int i = 0; i < 5000 && access(go, F_OK) != 0; i++) {
    struct timespec ts = {0, 2000000L};
    nanosleep(&ts, NULL);
  }
  snprintf(name, sizeof(name), "%s.done", op);
  gate_mark(name);
}

#ifndef FAKE_OMIT_PROBE
unsigned int xclProbe(void) {
  gate_mark("probe");
  return device_count();
}
#endif

xrtDeviceHandle xrtDeviceOpen(unsigned int index) {
  if (getenv("FAKE_XRT_OPEN_FAIL") != NULL) {
    errno = EIO;
    return NULL;
  }
  if (index >= device_count()) {
    errno = ENODEV;
    return NULL;
  }
  struct fake_device* d = (struct fake_device*)malloc(sizeof(*d));
  if (d == NULL) return NULL;
  d->magic = FAKE_MAGIC;
  d->index = index;
  return d;
}

xrtDeviceHandle xrtDeviceOpenByBDF(const char* bdf) {
  const char* list = getenv("FAKE_XRT_BDFS");
  if (bdf == NULL) {
    errno = EINVAL;
    return NULL;
  }
  if (list == NULL) return xrtDeviceOpen(0);
  unsigned index = 0;
  const char* p = list;
  size_t n = strlen(bdf);
  for (int guard = 0; guard < 1024 && *p != '\0'; guard++, index++) {
    const char* comma = strchr(p, ',');
    size_t len = comma != NULL ? (size_t)(comma - p) : strlen(p);
    if (len == n && strncmp(p, bdf, n) == 0) return xrtDeviceOpen(index);
    if (comma == NULL) break;
    p = comma + 1;
  }
  errno = ENODEV;
  return NULL;
}

int xrtDeviceClose(xrtDeviceHandle h) {
  struct fake_device* d = (struct fake_device*)h;
  if (d == NULL || d->magic != FAKE_MAGIC) return -EINVAL;
  gate("close");
  d->magic = 0;
  free(d);
  return 0;
}

#ifndef FAKE_OMIT_LOAD_XCLBIN
/* Accepts a file that starts with the axlf magic "xclbin2\0", as real xclbins do. */
int xrtDeviceLoadXclbinFile(xrtDeviceHandle h, const char* path) {
  struct fake_device* d = (struct fake_device*)h;
  const char* fail = getenv("FAKE_XRT_LOAD_FAIL");
  if (d == NULL || d->magic != FAKE_MAGIC) return -EINVAL;
  gate("load");
  if (fail != NULL) return atoi(fail);
  FILE* f = fopen(path, "rb");
  if (f == NULL) return -ENOENT;
  char magic[8] = {0};
  size_t got = fread(magic, 1, sizeof(magic), f);
  fclose(f);
  if (got != sizeof(magic) || memcmp(magic, "xclbin2", 8) != 0) return -EINVAL;
  return 0;
}
#endif
