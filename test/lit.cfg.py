# -*- Python -*-
import os

import lit.formats
from lit.llvm import llvm_config

config.name = "DECC"
config.test_format = lit.formats.ShTest(not llvm_config.use_lit_shell)
config.suffixes = [".mlir", ".test"]
config.test_source_root = os.path.dirname(__file__)
config.test_exec_root = os.path.join(config.decc_obj_root, "test")
config.excludes = ["CMakeLists.txt", "lit.cfg.py", "lit.site.cfg.py", "unit", "run-all.sh",
                   "Inputs"]

llvm_config.use_default_substitutions()
# make check-sanitize links the emitted executables with the sanitizers.
llvm_config.with_system_environment(["DECC_LINK_FLAGS", "DECC_SANITIZE", "ASAN_OPTIONS",
                                   "UBSAN_OPTIONS"])
llvm_config.with_environment("PATH", config.llvm_tools_dir, append_path=True)
llvm_config.add_tool_substitutions(
    ["decc", "decc-opt", "decc-compare"], [os.path.join(config.decc_obj_root, "bin")])

# E2E helper scripts call the tools by name.
llvm_config.with_environment("PATH", os.path.join(config.decc_obj_root, "bin"),
                             append_path=True)

# Goldens and real configs live in ../shared beside the checkout (CI has it
# too). Tests read it directly: a missing shared/ fails them, never skips them.
config.substitutions.append(("%shared", os.path.abspath(config.decc_shared_dir)))
config.substitutions.append(("%models", os.path.join(config.decc_src_root, "models")))
# The interpreter with the tests' PyPI packages (the openai client), a venv
# `make check` makes in the build; without it those tests fail.
config.substitutions.append(("%pyenv-python",
                             os.path.join(config.decc_obj_root, "pyenv", "bin", "python")))

# Open MPI's launcher for the tensor-parallel executables' ranks (make deps
# installs openmpi-bin): as root in CI, more ranks than cores, one host's
# shared memory (ob1 over vader, whatever network devices the machine has)
# without the cross-memory attach that containers forbid.
config.substitutions.append(("%mpirun",
    "mpirun --allow-run-as-root --oversubscribe --mca pml ob1 --mca btl self,vader "
    "--mca btl_vader_single_copy_mechanism none"))

# The CUDA toolkit's ptxas checks the PTX decc emits (CI has the toolkit but
# no GPU; the kernels run for real in bench/gpu-check.sh).
import shutil
ptxas = shutil.which("ptxas") or os.path.join(
    os.environ.get("CUDA_HOME", "/usr/local/cuda"), "bin", "ptxas")
config.substitutions.append(("%ptxas", ptxas))

# Hosts whose CPU has AVX512-BF16 run the goldens on its dot products too,
# and those with AMX on its tile matmuls.
try:
    with open("/proc/cpuinfo") as cpuinfo:
        flags = cpuinfo.read().split()
        if "avx512_bf16" in flags:
            config.available_features.add("avx512bf16")
        if "avx512f" in flags:
            config.available_features.add("avx512f")
        if "amx_bf16" in flags and "amx_tile" in flags:
            config.available_features.add("amx")
except OSError:
    pass
