# decc: make deps | build | check | demo
#
# Everything installs from Debian's packages; `make check` works on a fresh
# machine (run as root, or with sudo available).

BUILD  ?= build
SHARED ?= $(abspath ../shared)
JOBS   ?= 2

APT_PACKAGES := cmake ninja-build clang-22 libclang-rt-22-dev llvm-22-dev llvm-22-tools \
                libmlir-22-dev mlir-22-tools libomp-22-dev nlohmann-json3-dev libgtest-dev \
                libsentencepiece-dev libpcre2-dev libutf8proc-dev python3-jinja2 \
                libjpeg62-turbo-dev libpng-dev libcpp-httplib-dev pkgconf curl python3-venv \
                openmpi-bin

CMAKE_FLAGS := -G Ninja -DCMAKE_BUILD_TYPE=Release \
               -DMLIR_DIR=/usr/lib/llvm-22/lib/cmake/mlir \
               -DCMAKE_C_COMPILER=clang-22 -DCMAKE_CXX_COMPILER=clang++-22 \
               -DDECC_SHARED_DIR=$(SHARED)

.PHONY: deps configure build check demo fuzz check-sanitize clean

deps:
	@missing=$$(for p in $(APT_PACKAGES); do \
	    dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q 'install ok installed' || echo $$p; \
	  done); \
	if [ -n "$$missing" ]; then \
	  echo "deps: installing$$(echo $$missing | sed 's/^/ /')"; \
	  sudo=$$([ "$$(id -u)" = 0 ] || echo sudo); \
	  $$sudo apt-get update -q && \
	  DEBIAN_FRONTEND=noninteractive $$sudo apt-get install -y -q --no-install-recommends $$missing; \
	fi

$(BUILD)/build.ninja:
	cmake -S . -B $(BUILD) $(CMAKE_FLAGS)

configure: deps $(BUILD)/build.ninja

build: configure
	ninja -C $(BUILD) -j$(JOBS)

# The tests' Python packages from PyPI (the openai client, which
# test/E2E/serve-openai.test drives the server with), in a venv of the build.
PYENV_PACKAGES := openai
define pyenv
	@$(1)/pyenv/bin/python -c 'import openai' 2>/dev/null || \
	  { python3 -m venv $(1)/pyenv && \
	    $(1)/pyenv/bin/pip install -q --disable-pip-version-check $(PYENV_PACKAGES); }
endef

check: build
	$(call pyenv,$(BUILD))
	@bash test/run-all.sh $(BUILD) $(JOBS)

demo: build
	$(BUILD)/bin/decc models/stories260K/config.json -o $(BUILD)/stories260K
	$(BUILD)/stories260K --weights models/stories260K --max-new-tokens 256

# The readers' libFuzzer harnesses with ASan and UBSan, each fuzzed for
# FUZZ_SECONDS (corpora and findings in $(FUZZ_BUILD)); `make check` only
# replays their seeds and the known hostile inputs.
FUZZ_BUILD   ?= build-fuzz
FUZZ_SECONDS ?= 60
FUZZ_TARGETS := decc-fuzz-config decc-fuzz-safetensors decc-fuzz-tokenizer-json decc-fuzz-tokenize decc-fuzz-image \
  decc-fuzz-sentencepiece decc-fuzz-chat-format decc-fuzz-command-line

fuzz: deps
	cmake -S . -B $(FUZZ_BUILD) $(CMAKE_FLAGS) -DCMAKE_BUILD_TYPE=RelWithDebInfo \
	  "-DCMAKE_CXX_FLAGS=-fsanitize=fuzzer-no-link,address,undefined -fno-sanitize-recover=undefined"
	ninja -C $(FUZZ_BUILD) -j$(JOBS) $(FUZZ_TARGETS)
	bash fuzz/run.sh $(FUZZ_BUILD) $(SHARED) $(FUZZ_SECONDS)

# Everything the project compiles with ASan + UBSan (the emitted models'
# runtime and host program too, through DECC_LINK_FLAGS), the code decc
# generates for each model with ASan (DECC_SANITIZE=address; its
# instrumented bf16 code calls __truncsfbf2, from compiler-rt's builtins),
# then the lit and unit tests.
SAN_BUILD ?= build-sanitize
SAN_FLAGS := -fsanitize=address,undefined -fno-sanitize=vptr -fno-sanitize-recover=undefined -fno-omit-frame-pointer

check-sanitize: deps
	cmake -S . -B $(SAN_BUILD) $(CMAKE_FLAGS) -DCMAKE_BUILD_TYPE=RelWithDebInfo \
	  "-DCMAKE_CXX_FLAGS=$(SAN_FLAGS)" "-DCMAKE_EXE_LINKER_FLAGS=$(SAN_FLAGS)"
	ninja -C $(SAN_BUILD) -j$(JOBS)
	$(call pyenv,$(SAN_BUILD))
	DECC_SANITIZE=address \
	DECC_LINK_FLAGS="$(SAN_FLAGS) $$(clang++-22 -print-libgcc-file-name -rtlib=compiler-rt)" \
	  ASAN_OPTIONS=detect_leaks=0:detect_container_overflow=0:allow_user_poisoning=0 \
	  UBSAN_OPTIONS=print_stacktrace=1 bash test/run-all.sh $(SAN_BUILD) $(JOBS)

clean:
	rm -rf $(BUILD)
