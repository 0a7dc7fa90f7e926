//===- Passes.td - decoder -> upstream dialects ------------*- tablegen -*-===//

#ifndef DECC_CONVERSION_PASSES_TD
#define DECC_CONVERSION_PASSES_TD

include "mlir/Pass/PassBase.td"

def ConvertDecoderToCPU : Pass<"convert-decoder-to-cpu", "::mlir::ModuleOp"> {
  let summary = "Lower decoder ops to scf/vector/memref CPU kernels";
  let description = [{
    Replaces `func.func @forward` by `func.func @decc_forward`, the entry
    point of the runtime: weights become views into one arena, the KV cache
    two memrefs, and every decoder op a kernel of scf loops over memrefs
    with vector bodies whose outer loop is an `scf.parallel` (later an
    OpenMP worksharing loop). The layout of the weight arena is recorded as
    the module's `decc.manifest` (JSON).

    With `bf16-dot` (a CPU with AVX512-BF16), projections with bf16 weights
    round their input rows to bf16 once and take the dot products with
    `x86vector.avx512.dot` (vdpbf16ps: pairs of bf16 products accumulated
    in f32), as the reference implementation's bf16 run multiplies bf16
    activations; otherwise every bf16 weight is widened to f32 for an FMA.

    A prompt's projection keeps a block of tokens' inputs in L1 while a
    panel of weight rows in L2 serves them: where a block's rows exceed
    `slice-input-bytes`, the columns go in slices, each slice's sums kept
    for every token and row of the panel until the last slice adds its own
    and the epilogue runs; `slice-tokens` tokens at a time, so that the
    sums kept do not grow with the prompt.

    `quantized-lanes` is the width of the vectors quantized weights are
    widened into: 8 (a 256-bit register, AVX2), or 16 where the CPU has
    AVX-512 (one load of 16 int8, or of 32 int4 columns, a step).

    With `amx` (and `bf16-dot`: a CPU with AMX-BF16), a prompt's bf16
    projections are tile matmuls (`amx.tile_mulf`, tdpbf16ps), a chunk of
    `slice-tokens` tokens at a time: the weight rows are the left tiles as
    they lie in the arena, the chunk's inputs the right tiles, stored in
    pairs of columns by token (the layout tdpbf16ps reads its right operand
    in); the sums go to a buffer of [feature][token] that the projection's
    epilogue then reads (SwiGLU and the plain epilogues in 16 x 16 blocks
    transposed in registers). A decode step keeps the dot products.

    With `int16-dots`, int4 projections of fewer tokens than that (a decode
    step) round each input row to int16 once, one scale a group of the
    weights, and multiply the weights' nibbles with it in 16-bit pairs
    summed into i32 (vpmaddwd), a group's sum converted and scaled once:
    half the instructions a weight of f32 products, which bound the int4
    decode on AVX2. Its error is the inputs' rounding (a part in 2^15 of a
    group's largest |x|), well inside the f32 rule.

    A call of `dequantize-prompt-tokens` tokens or more (a prompt) first
    dequantizes each quantized projection's weights into an f32 buffer,
    with the arithmetic of the weights' own dot products, and runs the f32
    build's projection on it: a block of tokens then shares each weight
    vector without widening it again.
  }];
  let options = [
    Option<"bf16Dot", "bf16-dot", "bool", /*default=*/"false",
           "bf16 projections as AVX512-BF16 dot products on bf16 inputs">,
    Option<"quantizedLanes", "quantized-lanes", "int64_t", /*default=*/"8",
           "f32 lanes of the quantized dot products' vectors (8: AVX2, "
           "16: AVX-512)">,
    Option<"sliceInputBytes", "slice-input-bytes", "int64_t",
           /*default=*/"24576",
           "a prompt's projection whose block of tokens' input rows holds "
           "more bytes than this takes its columns in slices of about this "
           "many bytes, every block over one slice before the next">,
    Option<"sliceTokens", "slice-tokens", "int64_t", /*default=*/"512",
           "tokens whose sums of the slices a sliced projection keeps at a "
           "time (rounded down to whole blocks of tokens)">,
    Option<"amx", "amx", "bool", /*default=*/"false",
           "a prompt's bf16 projections as AMX tile matmuls (with bf16-dot)">,
    Option<"dequantizePromptTokens", "dequantize-prompt-tokens", "int64_t",
           /*default=*/"32",
           "a call of at least this many tokens dequantizes each quantized "
           "projection's weights to f32 once, before its dot products (0: "
           "never)">,
    Option<"int16Dots", "int16-dots", "bool", /*default=*/"false",
           "int4 dot products of a decode step or a short prompt on inputs "
           "rounded to int16 (one scale a group), multiplied in pairs into "
           "i32 sums (vpmaddwd: AVX2, or AVX512-BW with 16 lanes), where the "
           "weights' groups hold whole blocks of 4 x quantized-lanes columns">
  ];
  let dependentDialects = [
    "::mlir::amx::AMXDialect",
    "::mlir::arith::ArithDialect", "::mlir::func::FuncDialect",
    "::mlir::LLVM::LLVMDialect",
    "::mlir::math::MathDialect", "::mlir::memref::MemRefDialect",
    "::mlir::scf::SCFDialect", "::mlir::vector::VectorDialect",
    "::mlir::x86vector::X86VectorDialect"
  ];
}

def ConvertDecoderToGPU : Pass<"convert-decoder-to-gpu", "::mlir::ModuleOp"> {
  let summary = "Lower decoder ops to a kernel-only gpu.module and a launch plan";
  let description = [{
    Replaces `func.func @forward` by `gpu.module @decc_kernels`: one
    `gpu.func` kernel per step of the model (embedding, norm prologues,
    projections with their fused epilogues, RoPE tables, attention), taking
    bare pointers to flat buffers. The order of the launches, their grids and
    the buffers they bind are the launch plan, recorded with the weight
    arena's layout in the module's `decc.manifest` (JSON); the runtime runs
    it with the CUDA driver API. No host code is generated.

    With `tensor-cores` (the default), a prefill runs its projections as
    tensor-core matmuls (mma.sync) followed by an epilogue kernel, and flash
    attention as a tensor-core kernel; f32 builds split every operand into
    hi + lo to keep f32's accuracy. Decode steps keep the GEMV and the
    split-key attention kernel either way.

    Half-precision builds (bf16, f16 weights) round the activations to the
    weights' type for the matmul, one mma per product. With
    `warpgroup-mma` (sm_90a), prompts of 256 tokens and more run each
    projection as one warp-specialized kernel: TMA streams both operands
    into a ring of shared-memory stages, two consumer warpgroups multiply
    them with wgmma, and the projection's epilogue runs on the accumulators
    in registers. The plan's launches say which prompts they serve
    (`prefill_small`, `prefill_large`), and its `tensor_maps` the TMA
    descriptors the runtime encodes.

    With `programmatic-launch` (sm_90 and later), every kernel begins with
    `griddepcontrol.launch_dependents` then `griddepcontrol.wait`, and the
    plan asks the runtime for programmatic stream serialization: the next
    kernel's blocks are scheduled while this one drains, instead of after.

    With `decode-cluster` N > 1 (sm_90 and later; a power of two up to 16),
    the decode attention runs in thread-block clusters of N splits of a kv
    head: each block leaves its partial softmax in its shared memory, and
    after a cluster barrier every block merges a share of the features from
    all N (mapa, ld.shared::cluster). Only when a step has several clusters
    a kv head do their partials go through global memory to the last block
    done.

    With `trace`, every kernel takes one more argument, `trace`: the
    launch's record of when its first and last blocks started, when its
    wait on the previous kernel first returned, and when its first and
    last warps ended, read from %globaltimer by atomics (decc --gpu-trace;
    the runtime prints the last step's records). What programmatic
    launch overlaps shows there, which tools that serialize kernels do
    not.
  }];
  let options = [
    Option<"tensorCores", "tensor-cores", "bool", /*default=*/"true",
           "Run prefill projections and flash attention on tensor cores">,
    Option<"programmaticLaunch", "programmatic-launch", "bool",
           /*default=*/"false",
           "Kernels wait on their predecessor with griddepcontrol (sm_90+) "
           "so the runtime can launch each one before the last finishes">,
    Option<"warpgroupMma", "warpgroup-mma", "bool", /*default=*/"false",
           "Long prefills of half-precision builds run their projections as "
           "wgmma matmuls fed by TMA (sm_90a)">,
    Option<"decodeCluster", "decode-cluster", "int64_t", /*default=*/"1",
           "Blocks of a thread-block cluster (sm_90+) that merge a decode "
           "step's attention splits in distributed shared memory; 1: the "
           "splits merge through global memory">,
    Option<"fusedAppend", "fused-append", "bool", /*default=*/"true",
           "A quantized QKV decode GEMV on tensor cores rotates and appends "
           "its results itself (units of RoPE pairs); false: the decode step "
           "runs the prefill's epilogue kernel after it">,
    Option<"gemvUnitsPerBlock", "gemv-units-per-block", "int64_t",
           /*default=*/"0",
           "Units of several warps a block of a quantized decode GEMV on "
           "tensor cores, which build its x fragments once for all of them "
           "(a power of two, at most 16 warps a block); 0: as many as leave "
           "each thread at most two runs of 16 columns to build">,
    Option<"trace", "trace", "bool", /*default=*/"false",
           "Every kernel records in the launch's `trace` record when its "
           "first and last blocks start, when its wait first returns and "
           "when its first and last warps end (%globaltimer)">
  ];
  let dependentDialects = [
    "::mlir::arith::ArithDialect", "::mlir::gpu::GPUDialect",
    "::mlir::math::MathDialect", "::mlir::memref::MemRefDialect",
    "::mlir::nvgpu::NVGPUDialect", "::mlir::NVVM::NVVMDialect",
    "::mlir::LLVM::LLVMDialect",
    "::mlir::scf::SCFDialect", "::mlir::vector::VectorDialect"
  ];
}

def ApproximateVectorExp : Pass<"approximate-vector-exp"> {
  let summary = "Rewrite math.exp on f32 vectors as MLIR's polynomial approximation";
  let description = [{
    LLVM lowers an `llvm.exp` of a vector on x86 to one libm `expf` call a
    lane. This pass rewrites every `math.exp` of an f32 vector into MLIR's
    polynomial approximation (range reduction by ln 2, a polynomial, the
    exponent built in the integer bits: vector FMAs and shifts, within a
    few ulp of expf). Scalar `math.exp` is left alone: as a libm call it
    was measured no slower than the polynomial's scalar chain
    (docs/PERF.md). The CPU attention's blocked softmax makes its exps a
    vector at a time for this.
  }];
  let dependentDialects = [
    "::mlir::arith::ArithDialect", "::mlir::math::MathDialect",
    "::mlir::vector::VectorDialect"
  ];
}

#endif // DECC_CONVERSION_PASSES_TD
