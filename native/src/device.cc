/**
 * @module native/src/device
 * Enumeration from sysfs and XRT; open + exclusive lock. The lock is an
 * flock on `$KINFER_LOCK_DIR/kinfer-fpga-<bdf>.lock` (default /var/lock): the
 * kernel drops it when the process dies, so a crashed server frees its device.
 */
#include "device.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <climits>
#include <condition_variable>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <map>
#include <mutex>
#include <set>
#include <sstream>

namespace kinfer {
namespace {

// Recursive: a DeviceState may be destroyed (and unregister itself) while
// OpenDevice holds the lock on the same thread.
std::recursive_mutex g_registryMutex;
// An expired entry is a device whose state is being destroyed: closed and
// unlocked, then erased (and this notified) by ~DeviceState.
std::map<std::string, std::weak_ptr<DeviceState>> g_registry;
std::condition_variable_any g_registryErased;
// Keys of the devices held open, for counters(): under their own mutex, never
// held across a vendor call (the registry's is, for a whole open + xclbin load).
std::mutex g_openKeysMutex;
std::set<std::string> g_openKeys;

std::string Env(const char* name, const char* fallback) {
  const char* v = std::getenv(name);
  return v != nullptr && v[0] != '\0' ? std::string(v) : std::string(fallback);
}

std::string Trim(std::string s) {
  const char* ws = " \t\r\n";
  s.erase(0, s.find_first_not_of(ws));
  const auto end = s.find_last_not_of(ws);
  s.erase(end == std::string::npos ? 0 : end + 1);
  return s;
}

std::string ReadFile(const std::string& path) {
  std::ifstream in(path);
  if (!in) return "";
  std::stringstream ss;
  ss << in.rdbuf();
  return Trim(ss.str());
}

std::string ReadLinkBase(const std::string& path) {
  char buf[4096];
  const ssize_t n = readlink(path.c_str(), buf, sizeof(buf) - 1);
  if (n <= 0) return "";
  buf[n] = '\0';
  const char* slash = std::strrchr(buf, '/');
  return slash != nullptr ? std::string(slash + 1) : std::string(buf);
}

std::vector<std::string> ListDir(const std::string& dir) {
  std::vector<std::string> names;
  DIR* d = opendir(dir.c_str());
  if (d == nullptr) return names;
  // Bounded: a PCI tree has at most 65536 functions per domain; stop well past that.
  for (int i = 0; i < 1 << 20; i++) {
    dirent* e = readdir(d);
    if (e == nullptr) break;
    if (e->d_name[0] != '.') names.emplace_back(e->d_name);
  }
  closedir(d);
  std::sort(names.begin(), names.end());
  return names;
}

/** The shell name xocl/xclmgmt expose in a `rom*` child folder, if any. */
std::string ReadShell(const std::string& devDir) {
  for (const auto& child : ListDir(devDir)) {
    if (child.rfind("rom", 0) != 0) continue;
    std::string vbnv = ReadFile(devDir + "/" + child + "/VBNV");
    if (!vbnv.empty()) return vbnv;
  }
  return "";
}

std::string NormaliseBdf(const std::string& s) {
  // "3b:00.1" → "0000:3b:00.1"; lower-case hex as sysfs names it.
  std::string out = s;
  std::transform(out.begin(), out.end(), out.begin(), [](unsigned char c) { return std::tolower(c); });
  if (std::count(out.begin(), out.end(), ':') == 1) out = "0000:" + out;
  return out;
}

bool IsDecimal(const std::string& s) {
  return !s.empty() && s.size() < 9 && std::all_of(s.begin(), s.end(), [](unsigned char c) { return std::isdigit(c); });
}

std::string LockPathFor(const std::string& key) {
  std::string safe = key;
  for (char& c : safe) {
    if (!std::isalnum(static_cast<unsigned char>(c)) && c != '.') c = '_';
  }
  return Env("KINFER_LOCK_DIR", "/var/lock") + "/kinfer-fpga-" + safe + ".lock";
}

std::string Describe(const DeviceEntry& e) {
  if (!e.bdf.empty()) return e.bdf;
  return "XRT index " + std::to_string(e.index);
}

/**
 * Opens the lock file, never through a link (the lock dir is shared: a planted link could name any
 * file) and never blocking. Creates it 0666 whatever the umask, so other users' processes can lock
 * the device after this one. A file another user left that this one may not write is opened
 * read-only: flock works on it, only the pid hint cannot be written (*writable false).
 */
Status OpenLockFile(const std::string& path, int* fd, bool* writable) {
  const int flags = O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC;
  int f = -1;
  for (int attempt = 0; attempt < 8 && f < 0; attempt++) {
    *writable = true;
    f = open(path.c_str(), O_RDWR | flags);
    if (f < 0 && (errno == EACCES || errno == EPERM || errno == EROFS)) {
      *writable = false;
      f = open(path.c_str(), O_RDONLY | flags);
    }
    if (f < 0 && errno == ENOENT) {
      *writable = true;
      f = open(path.c_str(), O_RDWR | O_CREAT | O_EXCL | flags, 0666);
      if (f >= 0 && fchmod(f, 0666) != 0) {
        // Others may not get the device after this process; the lock still works here.
      }
      if (f < 0 && errno == EEXIST) continue;  // created by another process in between: open that one
    }
    if (f < 0) break;
  }
  if (f < 0) {
    if (errno == ELOOP) {
      return Status::Error("LOCK_FAILED", "lock file " + path + " is a symbolic link: refused (a link in the lock dir could name " +
                                              "any file; remove it, or set KINFER_LOCK_DIR to a dir only trusted users write)");
    }
    return Status::Error("LOCK_FAILED", "cannot open lock file " + path + " (set KINFER_LOCK_DIR): " + std::strerror(errno));
  }
  struct stat st {};
  std::string bad;
  if (fstat(f, &st) != 0) {
    bad = std::string("cannot stat it: ") + std::strerror(errno);
  } else if (!S_ISREG(st.st_mode)) {
    bad = "is not a regular file: refused (remove it)";
  } else if (st.st_nlink != 1) {
    bad = "has " + std::to_string(st.st_nlink) + " hard links: refused (it may be another file; remove it)";
  }
  if (!bad.empty()) {
    close(f);
    return Status::Error("LOCK_FAILED", "lock file " + path + " " + bad);
  }
  *fd = f;
  return Status::Ok();
}

/** Takes the per-device flock; on success *fd holds it. */
Status Lock(const std::string& path, const std::string& what, int* fd) {
  const std::string dir = path.substr(0, path.rfind('/'));
  if (mkdir(dir.c_str(), 01777) == 0) {
    // Shared by every user's servers, sticky as /tmp (mkdir's mode went through the umask).
    if (chmod(dir.c_str(), 01777) != 0) {
      // Other users may not create lock files here; this process still can.
    }
  } else if (errno != EEXIST) {
    return Status::Error("LOCK_FAILED", "cannot create lock dir " + dir + " (set KINFER_LOCK_DIR): " + std::strerror(errno));
  }
  int f = -1;
  bool writable = true;
  Status st = OpenLockFile(path, &f, &writable);
  if (!st.ok()) return st;
  if (flock(f, LOCK_EX | LOCK_NB) != 0) {
    const int err = errno;
    char buf[32] = {0};
    const ssize_t n = pread(f, buf, sizeof(buf) - 1, 0);
    close(f);
    if (err == EWOULDBLOCK) {
      std::string holder = n > 0 ? Trim(std::string(buf, static_cast<size_t>(n))) : "";
      return Status::Error("BUSY", "FPGA " + what + " is busy: locked by another process" +
                                       (holder.empty() ? std::string() : " (pid " + holder + ")") + " through " + path);
    }
    return Status::Error("LOCK_FAILED", "cannot lock " + path + ": " + std::strerror(err));
  }
  const std::string pid = std::to_string(getpid()) + "\n";
  if (writable && (ftruncate(f, 0) != 0 || pwrite(f, pid.data(), pid.size(), 0) < 0)) {
    // The pid is only a hint for the busy message; the flock is what counts.
  }
  *fd = f;
  return Status::Ok();
}

void Unlock(int fd) {
  if (fd < 0) return;
  if (ftruncate(fd, 0) != 0) {
    // Hint only, as above.
  }
  flock(fd, LOCK_UN);
  close(fd);
}

Status OpenEntry(const DeviceEntry& entry, const std::string& xclbin, std::shared_ptr<DeviceState>* out) {
  const std::string key = entry.bdf.empty() ? "xrt" + std::to_string(entry.index) : entry.bdf;
  const std::string what = Describe(entry);
  std::unique_lock<std::recursive_mutex> guard(g_registryMutex);
  for (auto it = g_registry.find(key); it != g_registry.end(); it = g_registry.find(key)) {
    std::shared_ptr<DeviceState> alive = it->second.lock();
    if (!alive) {
      // Its last holder let go and its destructor still holds the flock: wait for the unlock,
      // or this process would find the device "locked by another process" (itself).
      g_registryErased.wait(guard);
      continue;
    }
    if (!xclbin.empty() && !alive->xclbin.empty() && xclbin != alive->xclbin) {
      return Status::Error("BUSY", "FPGA " + what + " is already open in this process with xclbin " + alive->xclbin +
                                       ", cannot load " + xclbin);
    }
    // Loading an xclbin reprograms the device under the holder's runners, which run on what
    // was loaded when they were made: refuse, as for a different xclbin.
    if (!xclbin.empty() && alive->xclbin.empty()) {
      return Status::Error("BUSY", "FPGA " + what + " is already open in this process without an xclbin (its runners use the one " +
                                       "loaded before), cannot load " + xclbin + " under them");
    }
    *out = alive;
    return Status::Ok();
  }
  const XrtApi* xrt = nullptr;
  Status st = LoadXrt(&xrt);
  if (!st.ok()) return st;
  const std::string lockPath = LockPathFor(key);
  int fd = -1;
  st = Lock(lockPath, what, &fd);
  if (!st.ok()) return st;
  errno = 0;
  xrtDeviceHandle h = entry.bdf.empty() ? xrt->open(static_cast<unsigned>(entry.index)) : xrt->openByBdf(entry.bdf.c_str());
  if (h == nullptr) {
    const int err = errno;
    Unlock(fd);
    return Status::Error("OPEN_FAILED", std::string(entry.bdf.empty() ? "xrtDeviceOpen" : "xrtDeviceOpenByBDF") + "(" + what +
                                            ") failed" + (err != 0 ? std::string(": ") + std::strerror(err) : std::string()));
  }
  if (!xclbin.empty()) {
    const int rc = xrt->loadXclbinFile(h, xclbin.c_str());
    if (rc != 0) {
      xrt->close(h);
      Unlock(fd);
      return Status::Error("XCLBIN_FAILED", "xrtDeviceLoadXclbinFile(" + xclbin + ") on FPGA " + what +
                                                " failed with code " + std::to_string(rc));
    }
  }
  auto state = std::make_shared<DeviceState>();
  state->key = key;
  state->bdf = entry.bdf;
  state->index = entry.index;
  state->lockPath = lockPath;
  state->xclbin = xclbin;
  state->lockFd = fd;
  state->xrt = xrt;
  state->handle = h;
  GlobalCounters().devicesOpen++;
  {
    std::lock_guard<std::mutex> keys(g_openKeysMutex);
    g_openKeys.insert(key);
  }
  g_registry[key] = state;
  *out = std::move(state);
  return Status::Ok();
}

}  // namespace

Counters& GlobalCounters() {
  static Counters counters;
  return counters;
}

DeviceState::~DeviceState() {
  // Outside the registry mutex: opens of other devices go on meanwhile; one of this device waits
  // in OpenEntry for the erase below.
  if (handle != nullptr && xrt != nullptr) xrt->close(handle);
  Unlock(lockFd);
  GlobalCounters().devicesOpen--;
  {
    // Before the erase below: a waiting open of this key inserts it again only after that.
    std::lock_guard<std::mutex> keys(g_openKeysMutex);
    g_openKeys.erase(key);
  }
  std::lock_guard<std::recursive_mutex> guard(g_registryMutex);
  auto it = g_registry.find(key);
  if (it != g_registry.end() && it->second.expired()) g_registry.erase(it);
  g_registryErased.notify_all();
}

Enumeration Enumerate() {
  Enumeration result;
  result.sysfsDir = Env("KINFER_SYSFS_ROOT", "/sys") + "/bus/pci/devices";
  for (const auto& bdf : ListDir(result.sysfsDir)) {
    const std::string dir = result.sysfsDir + "/" + bdf;
    if (ReadFile(dir + "/vendor") != "0x10ee") continue;
    DeviceEntry e;
    e.bdf = bdf;
    e.vendorId = "0x10ee";
    e.deviceId = ReadFile(dir + "/device");
    e.subsystemId = ReadFile(dir + "/subsystem_device");
    e.driver = ReadLinkBase(dir + "/driver");
    e.shell = ReadShell(dir);
    const std::string numa = ReadFile(dir + "/numa_node");
    e.numaNode = numa.empty() ? -1 : std::atoi(numa.c_str());
    e.fromSysfs = true;
    result.devices.push_back(e);
  }

  const XrtApi* xrt = nullptr;
  Status st = LoadXrt(&xrt);
  if (!st.ok()) {
    result.xrtError = st.message;
  } else if (xrt->probe == nullptr) {
    result.xrtError = "XRT runtime " + xrt->path + " does not export xclProbe";
  } else {
    const unsigned n = xrt->probe();
    if (n > static_cast<unsigned>(INT_MAX)) {
      // Cast to int it read as "XRT did not load", with no reason given.
      result.xrtError = "XRT runtime " + xrt->path + ": xclProbe returned " + std::to_string(n) + ", not a device count";
    } else {
      result.xrtCount = static_cast<int>(n);
    }
  }

  if (result.xrtCount > 0) {
    // XRT numbers user physical functions (driver xocl) in BDF order.
    std::vector<DeviceEntry*> userPfs;
    for (auto& e : result.devices) {
      if (e.driver == "xocl") userPfs.push_back(&e);
    }
    if (userPfs.empty()) {
      for (auto& e : result.devices) userPfs.push_back(&e);
    }
    const VartApi* vart = nullptr;
    const bool haveVart = LoadVart(&vart).ok() && vart->deviceName != nullptr;
    const int count = std::min(result.xrtCount, 1024);
    for (int i = 0; i < count; i++) {
      DeviceEntry* e = nullptr;
      if (static_cast<size_t>(i) < userPfs.size()) {
        e = userPfs[static_cast<size_t>(i)];
      } else {
        result.devices.emplace_back();
        e = &result.devices.back();
        // emplace_back may move earlier entries; userPfs is not used past here for them.
      }
      e->index = i;
      e->fromXrt = true;
      if (haveVart) {
        char name[256] = {0};
        if (vart->deviceName(static_cast<unsigned>(i), name, sizeof(name)) == 0 && name[0] != '\0') e->name = name;
      }
    }
  }
  for (auto& e : result.devices) {
    if (e.name.empty()) e.name = !e.shell.empty() ? e.shell : "xilinx_fpga" + (e.deviceId.empty() ? "" : "_" + e.deviceId.substr(e.deviceId.rfind('x') + 1));
  }
  return result;
}

Status OpenDevice(const std::string& selector, const std::string& xclbin, std::shared_ptr<DeviceState>* out) {
  Enumeration en = Enumerate();
  std::vector<const DeviceEntry*> targets;
  if (selector.empty()) {
    // Devices XRT numbers (user PFs) first; without XRT's list, xocl-bound functions; else all.
    for (const auto& e : en.devices) {
      if (e.index >= 0) targets.push_back(&e);
    }
    if (targets.empty()) {
      for (const auto& e : en.devices) {
        if (e.driver == "xocl") targets.push_back(&e);
      }
    }
    if (targets.empty()) {
      for (const auto& e : en.devices) targets.push_back(&e);
    }
  } else if (IsDecimal(selector)) {
    const int index = std::atoi(selector.c_str());
    for (const auto& e : en.devices) {
      if (e.index == index) targets.push_back(&e);
    }
    if (targets.empty() && !en.devices.empty()) {
      return Status::Error("NO_DEVICE", "no Xilinx FPGA with XRT index " + selector + " (XRT " +
                                            (en.xrtError.empty() ? "reports " + std::to_string(en.xrtCount) + " device(s)" : "not loaded: " + en.xrtError) + ")");
    }
  } else if (selector.find(':') != std::string::npos) {
    const std::string bdf = NormaliseBdf(selector);
    for (const auto& e : en.devices) {
      if (e.bdf == bdf) targets.push_back(&e);
    }
    if (targets.empty() && !en.devices.empty()) {
      return Status::Error("NO_DEVICE", "no Xilinx FPGA at PCI address " + bdf + " under " + en.sysfsDir);
    }
  } else {
    return Status::Error("INVALID", "device: expected an XRT index (e.g. \"0\") or a PCI BDF (e.g. \"0000:3b:00.1\"), got \"" + selector + "\"");
  }
  if (targets.empty()) {
    return Status::Error("NO_DEVICE", "no Xilinx FPGA found (sysfs: no PCI device with vendor 0x10ee under " + en.sysfsDir +
                                          "; XRT: " + (en.xrtError.empty() ? "reports " + std::to_string(en.xrtCount) + " device(s)" : en.xrtError) + ")");
  }
  std::vector<std::string> busy;
  for (const DeviceEntry* e : targets) {
    Status st = OpenEntry(*e, xclbin, out);
    if (st.ok()) return st;
    if (st.code != "BUSY" || !selector.empty()) return st;
    busy.push_back(st.message);
  }
  std::string msg = "all " + std::to_string(targets.size()) + " Xilinx FPGA(s) are busy:";
  for (const auto& b : busy) msg += " " + b + ";";
  msg.pop_back();
  return Status::Error("BUSY", msg);
}

std::vector<std::string> OpenDeviceKeys() {
  std::lock_guard<std::mutex> guard(g_openKeysMutex);
  return std::vector<std::string>(g_openKeys.begin(), g_openKeys.end());
}

}  // namespace kinfer
