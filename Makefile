# maskrcnn.c build. `make help` lists the targets and knobs.
#
# The CPU path is always built; the CUDA objects are built when nvcc is found (or CUDA=1).
# Library locations come from variables so the same Makefile works with Debian packages
# and with libraries unpacked into a private prefix (docs/gpu.md, scripts/gpu-check.sh).

SHELL := /bin/bash
.DEFAULT_GOAL := all

# ---- knobs -----------------------------------------------------------------------------
SANITIZE ?= 0
DEBUG ?= 0
PYTHON ?= python3
CUDA_ARCH ?= 90
JOBS ?= $(shell nproc 2>/dev/null || echo 2)

MULTIARCH := $(or $(shell $(CC) -print-multiarch 2>/dev/null),x86_64-linux-gnu)

# Libraries unpacked from Debian packages with `dpkg -x DEB PREFIX` (GPU machines without apt).
DEPS_PREFIX ?=
DEPS_INC := $(if $(DEPS_PREFIX),$(DEPS_PREFIX)/usr/include $(DEPS_PREFIX)/usr/include/$(MULTIARCH))
DEPS_LIB := $(if $(DEPS_PREFIX),$(DEPS_PREFIX)/usr/lib/$(MULTIARCH))
EXTRA_INC ?=
EXTRA_LIB ?=

# The OpenMP build of OpenBLAS, by path (DESIGN §1: never a plain -lopenblas through the
# alternatives links, which may resolve to the pthread build).
OPENBLAS_INC ?= $(if $(DEPS_PREFIX),$(DEPS_PREFIX))/usr/include/$(MULTIARCH)/openblas-openmp
OPENBLAS_LIB ?= $(if $(DEPS_PREFIX),$(DEPS_PREFIX))/usr/lib/$(MULTIARCH)/openblas-openmp

# CUDA: nvcc from CUDA_HOME, else from PATH.
NVCC_ON_PATH := $(shell command -v nvcc 2>/dev/null)
CUDA_HOME ?= $(if $(NVCC_ON_PATH),$(patsubst %/bin/nvcc,%,$(realpath $(NVCC_ON_PATH))),/usr/local/cuda)
NVCC := $(firstword $(wildcard $(CUDA_HOME)/bin/nvcc) $(NVCC_ON_PATH))
CUDNN_HOME ?= $(CUDA_HOME)
ifeq ($(SANITIZE),1)
  override CUDA := 0
endif
# With nvcc found the CUDA objects are always built (a broken kernel must fail the build
# even on a machine without a GPU); cuDNN or cuBLAS missing is then an error, and CUDA=0
# is the way to a CPU-only build.
CUDA ?= $(if $(NVCC),1,0)

# ---- finding headers and libraries -----------------------------------------------------
SYS_INC := /usr/include /usr/include/$(MULTIARCH) /usr/local/include
SYS_LIB := /usr/lib/$(MULTIARCH) /usr/lib /usr/local/lib
INC_DIRS := $(EXTRA_INC) $(DEPS_INC) $(SYS_INC)
LIB_DIRS := $(EXTRA_LIB) $(DEPS_LIB) $(SYS_LIB)
# $(call find_file,NAME,DIRS): first DIR/NAME that exists
find_file = $(firstword $(wildcard $(addsuffix /$(1),$(2))))
# $(call find_lib,NAME,DIRS): path of libNAME.so, libNAME.so.N or libNAME.a
find_lib = $(firstword $(foreach d,$(2),$(wildcard $(d)/lib$(1).so) $(wildcard $(d)/lib$(1).so.[0-9]*) $(wildcard $(d)/lib$(1).a)))

CJSON_H := $(call find_file,cjson/cJSON.h,$(INC_DIRS))
CJSON_L := $(call find_lib,cjson,$(LIB_DIRS))
TJ_H := $(call find_file,turbojpeg.h,$(INC_DIRS))
TJ_L := $(call find_lib,turbojpeg,$(LIB_DIRS))
BLAS_H := $(call find_file,cblas.h,$(OPENBLAS_INC))
BLAS_L := $(call find_lib,openblas,$(OPENBLAS_LIB))

ifeq ($(CUDA),1)
  # A toolkit from Debian's packages has CUDA_HOME=/usr and its libraries in the system folders.
  CUDA_LIBDIRS := $(CUDA_HOME)/lib64 $(CUDA_HOME)/lib $(CUDA_HOME)/targets/x86_64-linux/lib $(SYS_LIB)
  CUDNN_LIBDIRS := $(CUDNN_HOME)/lib64 $(CUDNN_HOME)/lib $(CUDA_LIBDIRS)
  CUDNN_H := $(call find_file,cudnn.h,$(CUDNN_HOME)/include $(CUDA_HOME)/include)
  CUDNN_L := $(call find_lib,cudnn,$(CUDNN_LIBDIRS))
  CUBLAS_L := $(call find_lib,cublas,$(EXTRA_LIB) $(CUDA_LIBDIRS))
  CUDART_L := $(call find_lib,cudart,$(CUDA_LIBDIRS))
endif

# Link flags for a found library path: -L DIR, an rpath to DIR, and -l:FILE (so a pip
# package's libcudnn.so.9 links without an unversioned symlink).
comma := ,
rpath_for = $(if $(filter $(SYS_LIB),$(1)),,-Wl$(comma)-rpath$(comma)$(1))
link_flags = $(if $(1),-L$(patsubst %/,%,$(dir $(1))) $(call rpath_for,$(patsubst %/,%,$(dir $(1)))) -l:$(notdir $(1)))

# ---- flags -------------------------------------------------------------------------------
ifeq ($(SANITIZE),1)
  BUILD := build/sanitize
else ifeq ($(DEBUG),1)
  BUILD := build/debug
else
  BUILD := build
endif

CFLAGS := -std=c11 -D_GNU_SOURCE -Wall -Wextra -Wno-format-zero-length -Wno-unused-parameter \
          -fopenmp -MMD -MP -Isrc -I$(OPENBLAS_INC) $(addprefix -I,$(EXTRA_INC) $(DEPS_INC))
LDFLAGS := -fopenmp -Wl,--disable-new-dtags
LDLIBS := $(call link_flags,$(BLAS_L)) $(call link_flags,$(CJSON_L)) $(call link_flags,$(TJ_L)) -lm
ifeq ($(DEBUG),1)
  CFLAGS += -O0 -g3 -DMRC_DEBUG
else
  CFLAGS += -O2 -g
endif
ifeq ($(SANITIZE),1)
  CFLAGS += -O1 -g -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=all
  LDFLAGS += -fsanitize=address,undefined
endif

NVCCFLAGS := -std=c++17 -O3 -lineinfo -Isrc -Ikernels \
             $(if $(filter /usr,$(CUDA_HOME)),,-I$(CUDA_HOME)/include) \
             $(if $(filter /usr/include/,$(dir $(CUDNN_H))),,$(if $(CUDNN_H),-I$(dir $(CUDNN_H)))) \
             $(addprefix -I,$(EXTRA_INC) $(DEPS_INC)) \
             -gencode arch=compute_$(CUDA_ARCH),code=sm_$(CUDA_ARCH) \
             -gencode arch=compute_$(CUDA_ARCH),code=compute_$(CUDA_ARCH) \
             -DMRC_CUDA=1 -DMRC_CUDA_ARCH=$(CUDA_ARCH) -Xcompiler -Wall,-Wno-unused-function,-Wno-format-zero-length \
             -MMD -MP
ifeq ($(DEBUG),1)
  NVCCFLAGS += -G -DMRC_DEBUG
endif
ifeq ($(CUDA),1)
  CFLAGS += -DMRC_CUDA=1
  LDLIBS += $(call link_flags,$(CUDNN_L)) $(call link_flags,$(CUBLAS_L)) $(call link_flags,$(CUDART_L)) -lstdc++
endif

# ---- sources -----------------------------------------------------------------------------
LIB_C := $(filter-out src/main.c,$(wildcard src/*/*.c))
ifeq ($(CUDA),1)
  LIB_C := $(filter-out src/core/gpu_none.c,$(LIB_C))
  LIB_CU := $(wildcard kernels/*.cu)
endif
LIB_OBJ := $(LIB_C:%.c=$(BUILD)/%.o) $(LIB_CU:%.cu=$(BUILD)/%.o)
TEST_C := $(wildcard tests/test_*.c)
TEST_CU := $(if $(filter 1,$(CUDA)),$(wildcard tests/test_*.cu))
TEST_BIN := $(TEST_C:tests/%.c=$(BUILD)/tests/%) $(TEST_CU:tests/%.cu=$(BUILD)/tests/%)
BENCH_C := $(wildcard tests/bench_*.c)
BENCH_BIN := $(BENCH_C:tests/%.c=$(BUILD)/bench/%)
BIN := $(BUILD)/maskrcnn

# The configuration string; objects are rebuilt when it changes (CUDA on/off, flags).
BUILD_CONFIG := CUDA=$(CUDA) SANITIZE=$(SANITIZE) DEBUG=$(DEBUG) CC=$(CC) NVCC=$(NVCC) CFLAGS=$(CFLAGS) NVCCFLAGS=$(NVCCFLAGS) LIBS=$(LDLIBS)
STAMP := $(BUILD)/.config
$(shell mkdir -p $(BUILD) && (test -f $(STAMP) && [ "$$(cat $(STAMP))" = '$(BUILD_CONFIG)' ] || echo '$(BUILD_CONFIG)' > $(STAMP)))

# ---- targets -----------------------------------------------------------------------------
.PHONY: all test bench demo deps clean help report check-deps run-tests run-bench

all: report check-deps $(BIN) $(TEST_BIN) $(BENCH_BIN)

report:
	@echo "maskrcnn.c build ($(BUILD)): CUDA=$(CUDA) SANITIZE=$(SANITIZE) DEBUG=$(DEBUG)"
	@echo "  nvcc      : $(or $(NVCC),not found (CPU-only build))"
	@echo "  cuDNN     : $(if $(filter 1,$(CUDA)),$(or $(CUDNN_L),not found under CUDNN_HOME=$(CUDNN_HOME)),not used)"
	@echo "  cuBLAS    : $(if $(filter 1,$(CUDA)),$(or $(CUBLAS_L),not found under CUDA_HOME=$(CUDA_HOME)),not used)"
	@echo "  OpenBLAS  : $(or $(BLAS_L),not found in OPENBLAS_LIB=$(OPENBLAS_LIB)) (OpenMP build)"
	@echo "  TurboJPEG : $(or $(TJ_L),not found)"
	@echo "  cJSON     : $(or $(CJSON_L),not found)"

# Stops the build with one line per missing library instead of a wall of compiler errors.
check-deps: report
	@missing=""; \
	[ -n "$(CJSON_H)" ] && [ -n "$(CJSON_L)" ] || missing="$$missing cJSON"; \
	[ -n "$(TJ_H)" ] && [ -n "$(TJ_L)" ] || missing="$$missing TurboJPEG"; \
	[ -n "$(BLAS_H)" ] && [ -n "$(BLAS_L)" ] || missing="$$missing OpenBLAS(OpenMP)"; \
	if [ "$(CUDA)" = 1 ]; then \
	  [ -n "$(NVCC)" ] || missing="$$missing nvcc(set CUDA_HOME)"; \
	  [ -n "$(CUDNN_H)" ] && [ -n "$(CUDNN_L)" ] || missing="$$missing cuDNN(set CUDNN_HOME)"; \
	  [ -n "$(CUBLAS_L)" ] && [ -n "$(CUDART_L)" ] || missing="$$missing cuBLAS/cudart"; \
	fi; \
	if [ -n "$$missing" ]; then \
	  echo "error: missing:$$missing. Run 'make deps', or point the build at them (EXTRA_INC, EXTRA_LIB, OPENBLAS_INC, OPENBLAS_LIB, DEPS_PREFIX, CUDA_HOME, CUDNN_HOME; CUDA=0 for a CPU-only build)." >&2; \
	  exit 1; \
	fi

deps:
	@bash scripts/deps.sh "$(CJSON_H)" "$(CJSON_L)" "$(TJ_H)" "$(TJ_L)" "$(BLAS_H)" "$(BLAS_L)"

# V=1 prints the full commands.
ifeq ($(V),1)
  Q :=
  say = @true
else
  Q := @
  say = @printf '  %-5s %s\n'
endif

$(BUILD)/%.o: %.c $(STAMP) | check-deps
	@mkdir -p $(dir $@)
	$(say) CC $<
	$(Q)$(CC) $(CFLAGS) -c $< -o $@

$(BUILD)/%.o: %.cu $(STAMP) | check-deps
	@mkdir -p $(dir $@)
	$(say) NVCC $<
	$(Q)$(NVCC) $(NVCCFLAGS) -c $< -o $@

$(BUILD)/libmaskrcnn.a: $(LIB_OBJ)
	@rm -f $@
	$(say) AR $@
	$(Q)ar rcs $@ $^

$(BIN): $(BUILD)/src/main.o $(BUILD)/libmaskrcnn.a
	$(say) LINK $@
	$(Q)$(CC) $(LDFLAGS) $^ -o $@ $(LDLIBS)

$(BUILD)/tests/%: $(BUILD)/tests/%.o $(BUILD)/libmaskrcnn.a
	$(say) LINK $@
	$(Q)$(CC) $(LDFLAGS) $^ -o $@ $(LDLIBS)

$(BUILD)/bench/%: $(BUILD)/tests/%.o $(BUILD)/libmaskrcnn.a
	@mkdir -p $(dir $@)
	$(say) LINK $@
	$(Q)$(CC) $(LDFLAGS) $^ -o $@ $(LDLIBS)

# Keep the test objects (they are intermediate files of the link rules above).
.SECONDARY:

# `make test` and `make demo` install what is missing first, then re-read this Makefile
# (a second make) so the build sees the freshly installed libraries.
test: deps
	@$(MAKE) --no-print-directory -j$(JOBS) all
	@$(MAKE) --no-print-directory run-tests

run-tests:
	@bash scripts/run-tests.sh $(BUILD)/tests $(TEST_BIN)

bench: deps
	@$(MAKE) --no-print-directory -j$(JOBS) all
	@$(MAKE) --no-print-directory run-bench

run-bench:
	@for b in $(BENCH_BIN); do echo "== $$b"; $$b || exit 1; done
	@if [ "$(LVIS_BENCH)" != 0 ]; then PYTHON="$(PYTHON)" bash scripts/bench-lvis.sh $(BIN); fi

demo: deps
	@$(MAKE) --no-print-directory -j$(JOBS) all
	@$(BIN) selfcheck

clean:
	rm -rf build

help:
	@echo "targets: all (default) test bench demo deps clean"
	@echo "knobs:   SANITIZE=1 (ASan+UBSan, implies CUDA=0)  DEBUG=1  CUDA=0|1  CUDA_ARCH=90  PYTHON=python3  V=1 (show commands)  LVIS_BENCH=0 (bench: skip the LVIS reader benchmark)"
	@echo "paths:   CUDA_HOME CUDNN_HOME OPENBLAS_INC OPENBLAS_LIB EXTRA_INC EXTRA_LIB DEPS_PREFIX"

-include $(LIB_OBJ:.o=.d) $(BUILD)/src/main.d $(TEST_BIN:%=%.d) $(BENCH_C:tests/%.c=$(BUILD)/tests/%.d)
