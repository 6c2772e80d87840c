# The two set-up commands: `make up` and `make test`. Everything they need is installed by
# scripts/install-deps.sh.
BUILD_DIR   ?= build
RELEASE_DIR ?= build-release
DATA_DIR    ?= $(HOME)/.fulcrum
LISTEN      ?= 127.0.0.1:6443
JOBS        ?= $(shell nproc)

.PHONY: all deps build release up test test-fast bench fuzz format clean

all: build

deps:
	@bash scripts/install-deps.sh

$(BUILD_DIR)/build.ninja:
	cmake -S . -B $(BUILD_DIR) -G Ninja -DCMAKE_BUILD_TYPE=Debug

$(RELEASE_DIR)/build.ninja:
	cmake -S . -B $(RELEASE_DIR) -G Ninja -DCMAKE_BUILD_TYPE=Release

build: deps $(BUILD_DIR)/build.ninja
	cmake --build $(BUILD_DIR) -j $(JOBS)

release: deps $(RELEASE_DIR)/build.ninja
	cmake --build $(RELEASE_DIR) -j $(JOBS)

# All-in-one cluster in the foreground on the embedded store (API server, controllers, scheduler
# and an agent for this machine; runs containers, so as root); Ctrl-C stops it. The demo image is
# imported first so that the README's examples run with no registry.
up: release
	$(RELEASE_DIR)/cmd/fulcrum/fulcrum image import $(RELEASE_DIR)/demo-busybox.tar --root $(DATA_DIR)/agent
	@echo "fulcrum: starting; in another shell: export KUBECONFIG=$(DATA_DIR)/kubeconfig"
	$(RELEASE_DIR)/cmd/fulcrum/fulcrum up --data-dir $(DATA_DIR) --listen $(LISTEN)

# Every suite, slow ones included (Debug build: AddressSanitizer + UBSan).
test: build
	ctest --test-dir $(BUILD_DIR) --output-on-failure -j $(JOBS)

# Everything but the suites labelled slow.
test-fast: build
	ctest --test-dir $(BUILD_DIR) --output-on-failure -j $(JOBS) -LE slow

bench: release
	cmake --build $(RELEASE_DIR) --target benchmarks -j $(JOBS)
	bash bench/run.sh $(RELEASE_DIR)

fuzz: deps
	CC=clang CXX=clang++ cmake -S . -B build-fuzz -G Ninja -DCMAKE_BUILD_TYPE=Release -DFULCRUM_FUZZ=ON
	cmake --build build-fuzz -j $(JOBS)

format:
	find src cmd bench tests -name '*.cc' -o -name '*.h' | xargs clang-format -i

clean:
	rm -rf $(BUILD_DIR) $(RELEASE_DIR) build-fuzz
