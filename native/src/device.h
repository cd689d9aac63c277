/**
 * @module native/src/device
 * Device enumeration (sysfs PCI vendor 0x10ee, plus XRT's list when XRT
 * loads) and the per-process exclusive device lock (flock on a lock file per
 * device). Nothing here touches JS: callable from worker threads.
 */
#ifndef KINFER_DEVICE_H_
#define KINFER_DEVICE_H_

#include <atomic>
#include <memory>
#include <string>
#include <vector>

#include "vendor.h"

namespace kinfer {

struct DeviceEntry {
  /** XRT index (user-PF order), -1 when XRT does not know the device. */
  int index = -1;
  std::string bdf;
  std::string vendorId;
  std::string deviceId;
  std::string subsystemId;
  std::string driver;
  std::string shell;
  std::string name;
  int numaNode = -1;
  bool fromSysfs = false;
  bool fromXrt = false;
};

struct Enumeration {
  std::vector<DeviceEntry> devices;
  std::string sysfsDir;
  /** Empty when XRT loaded (its count is then in xrtCount); else why not. */
  std::string xrtError;
  int xrtCount = -1;
};

/** Never fails: absent sysfs or XRT gives an empty list plus the reasons. */
Enumeration Enumerate();

/** One opened, locked device, shared by every handle in this process. The
 *  destructor closes the XRT handle and releases the lock. */
class DeviceState {
 public:
  ~DeviceState();
  std::string key;  // lock key: BDF, or "xrt<index>" when no BDF is known
  std::string bdf;
  int index = -1;
  std::string lockPath;
  std::string xclbin;
  int lockFd = -1;
  const XrtApi* xrt = nullptr;
  xrtDeviceHandle handle = nullptr;
};

/**
 * Opens device `selector` (a decimal XRT index, a BDF, or "" for the first one
 * not locked by another process), locks it, and loads `xclbin` when not
 * empty. A second open in this process of the same device shares the state.
 */
Status OpenDevice(const std::string& selector, const std::string& xclbin,
                  std::shared_ptr<DeviceState>* out);

/** Keys (BDF, or "xrt<index>") of the devices this process holds open. Never
 *  waits for an open in progress: safe on the JS thread. */
std::vector<std::string> OpenDeviceKeys();

/** sharp-style counters, readable from JS at any time. */
struct Counters {
  std::atomic<int> devicesOpen{0};
  std::atomic<int> runnersAlive{0};
  std::atomic<int> queued{0};
  std::atomic<int> running{0};
};
Counters& GlobalCounters();

}  // namespace kinfer

#endif  // KINFER_DEVICE_H_
