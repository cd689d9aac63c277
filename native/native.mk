# native/native.mk — the FPGA addon's targets; included by the top Makefile.
#   make native        build native/build/Release/kinfer_native.node (incremental)
#   make native-test   addon + xmodel backend tests against the fake vendor libraries
#   make native-leak   valgrind run of the addon's open/run/close cycles and error paths
# No FPGA hardware runs in any of them.

NATIVE_DIR        ?= native
NATIVE_LEAK_CYCLES ?= 50
NATIVE_VALGRIND   ?= valgrind --leak-check=full --show-leak-kinds=definite --errors-for-leak-kinds=definite \
                     --error-exitcode=1 --num-callers=30 --suppressions=$(NATIVE_DIR)/valgrind.supp

.PHONY: native native-fake native-test native-leak

native:
	node $(NATIVE_DIR)/build.mjs --strict

native-fake:
	node $(NATIVE_DIR)/fake-vendor/build.mjs

native-test: native native-fake
	npx vitest run $(NATIVE_DIR)/device.test.ts runtime/backends/xmodel.test.ts

# --jitless keeps valgrind's run short and its reports about our code, not JIT stubs.
native-leak: native native-fake
	$(NATIVE_VALGRIND) node --expose-gc --jitless $(NATIVE_DIR)/leak-check.mjs $(NATIVE_LEAK_CYCLES)
