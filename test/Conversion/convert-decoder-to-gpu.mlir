// RUN: decc-opt %s --convert-decoder-to-gpu --split-input-file | FileCheck %s
// RUN: decc-opt %s --convert-decoder-to-gpu=warpgroup-mma=true --split-input-file | FileCheck %s --check-prefix=WGMMA
// RUN: decc-opt %s --split-input-file --pass-pipeline='builtin.module(convert-decoder-to-gpu,gpu.module(convert-scf-to-cf,convert-nvgpu-to-nvvm,convert-gpu-to-nvvm{use-bare-ptr-memref-call-conv=1},convert-vector-to-llvm,convert-ub-to-llvm))' | FileCheck %s --check-prefix=NVVM
// RUN: decc-opt %s --split-input-file --pass-pipeline='builtin.module(convert-decoder-to-gpu{warpgroup-mma=true},gpu.module(convert-scf-to-cf,convert-gpu-to-nvvm{use-bare-ptr-memref-call-conv=1},convert-nvvm-to-llvm,convert-vector-to-llvm,convert-ub-to-llvm))' | FileCheck %s --check-prefix=WGMMA-LLVM
// RUN: decc-opt %s --convert-decoder-to-gpu=decode-cluster=8 --split-input-file | FileCheck %s --check-prefix=CLUSTER
// RUN: not decc-opt %s --convert-decoder-to-gpu=decode-cluster=3 --split-input-file 2>&1 | FileCheck %s --check-prefix=BAD-CLUSTER
// RUN: decc-opt %s --convert-decoder-to-gpu=gemv-units-per-block=1 --split-input-file | FileCheck %s --check-prefix=UNITS1
// RUN: not decc-opt %s --convert-decoder-to-gpu=gemv-units-per-block=3 --split-input-file 2>&1 | FileCheck %s --check-prefix=BAD-UNITS
// RUN: decc-opt %s --convert-decoder-to-gpu='trace=true programmatic-launch=true' --split-input-file | FileCheck %s --check-prefix=TRACE
// RUN: decc-opt %s --convert-decoder-to-gpu='programmatic-launch=true' --split-input-file | FileCheck %s --check-prefix=JOINED

!cache = !decoder.kv_cache<layers = 1, kv_heads = 2, head_dim = 32, element = bf16>

// bf16 weights. The launch plan: buffers, then every launch with its grid
// and the buffers bound to its arguments, in order; the arena's layout
// beside it. A projection is a GEMV for a decode step and, for a prefill,
// the activations normalized and rounded to bf16 (as the reference
// implementation computes in bf16; attention's prompt kernels write the O
// projection's input in bf16 themselves, so it has no such kernel), a tensor-core matmul over tiles of 32
// tokens x 32 rows (token tiles in x, so blocks sharing a weight tile run
// together), and the epilogue. The LM head (one logits row) stays a GEMV,
// skipped by a batched decode step, which has the head as a matmul of its
// own writing the logits rows (a row a sequence) straight.
// A launch's arena_offset is where its kernel's weights begin (rounded
// down to 256 bytes): the kernel addresses them from there, so that layers
// alike share one kernel. The decode GEMVs of plain projections take their
// rows in pairs: the O projection's 256 rows are 128 units, the LM head's
// 512 rows 256. The QKV matmul's 256 rows are 8 tiles of 32, too few
// blocks for a call of one token tile: its blocks split the 256 columns in
// two shares (y = 8 x 2), each writing its own row of products, 512 floats
// a token (buf:5), which the epilogue adds; a longer call's second share
// of blocks stores nothing.
// CHECK: module attributes {decc.manifest = {arena_bytes =
// CHECK-SAME: {floats_per_token = 512 : i64, name = "buf:5"}
// CHECK-SAME: kernel = "embedding_0", when = "always"
// CHECK-SAME: kernel = "rope_table_1", when = "always"
// CHECK-SAME: kernel = "prepare_activations_2", when = "prefill"
// CHECK-SAME: args = ["arena", "step", "buf:4", "buf:5"], block = 128 : i64, grid = {per_block = 32 : i64, times = "tokens", units = 1 : i64, y = 16 : i64, y_tile = 1 : i64, y_times = "one"}, kernel = "matmul_3", when = "prefill"
// CHECK-SAME: block = 128 : i64, grid = {per_block = 1 : i64, resident = true, times = "one", units = 160 : i64, {{[^}]*}}}, kernel = "projection_4", when = "decode"
// CHECK-SAME: kernel = "epilogue_5", when = "prefill"
// CHECK-SAME: {args = ["arena", "step", "positions", "buf:3", "k_cache", "v_cache", "block_table", "[[ATTN_HALF:buf:[0-9]+]]"], {{[^}]*}}y_tile = 16 : i64, y_times = "tokens"}, kernel = "attention_flash_mma_6", skip_in_batched = true, when = "prefill_small"
// CHECK-SAME: y_tile = 64 : i64, y_times = "tokens"}, kernel = "attention_flash_tiled_7", skip_in_batched = true, when = "prefill_large"
// CHECK-SAME: {args = ["arena", "step", "positions", "buf:3", "k_cache", "v_cache", "block_table", "partials:6", "counters:7", "buf:4"], block = 128 : i64, grid = {per_block = 1 : i64, times = "one", units = 2 : i64, y = 1 : i64, y_tile = 1 : i64, y_times = "splits"}, kernel = "attention_decode_8", when = "decode"}
// CHECK-SAME: {args = ["arena", "step", "positions", "buf:3", "k_cache", "v_cache", "block_table", "partials:6", "counters:7", "[[ATTN_HALF]]"], block = 128 : i64, grid = {per_block = 1 : i64, times = "tokens", units = 2 : i64, y = 1 : i64, y_tile = 1 : i64, y_times = "splits"}, kernel = "attention_batched_9", when = "batched"}
// CHECK-SAME: {arena_offset = [[O_BASE:[0-9]+]] : i64, args = ["arena", "step", "[[ATTN_HALF]]", "{{[^"]+}}"], {{[^}]*}}}, kernel = "matmul_10", when = "prefill"
// CHECK-SAME: {arena_offset = [[O_BASE]] : i64, {{[^}]*}}units = 128 : i64{{[^}]*}}}, kernel = "projection_11", when = "decode"
// CHECK-SAME: kernel = "epilogue_12", when = "prefill"
// CHECK-SAME: args = ["arena", "step", "buf:8", "[[HEAD_IN:buf:[0-9]+]]"], {{[^}]*}}}, kernel = "prepare_activations_2", when = "batched"
// CHECK-SAME: {args = ["arena", "step", "[[HEAD_IN]]", "logits"], {{[^}]*}}y = 16 : i64{{[^}]*}}}, kernel = "matmul_14", when = "batched"
// CHECK-SAME: units = 256 : i64{{[^}]*}}}, kernel = "projection_15", skip_in_batched = true, when = "always"
// CHECK-SAME: {args = ["step", "logits", "argmax"], block = 1024 : i64, grid = {per_block = 1 : i64, times = "rows", {{[^}]*}}}, kernel = "logits_argmax_16", when = "batched"}
// CHECK-SAME: tensor_maps = []
// CHECK-SAME: target = "cuda", version = 2 : i64
// CHECK-SAME: gpu.container_module

// Kernels take bare pointers to flat buffers; weights are views of the arena.
// CHECK-LABEL: gpu.module @decc_kernels
// CHECK: gpu.func @embedding_0(%{{.*}}: memref<1099511627776xi8>, %{{.*}}: memref<1099511627776xi64>, %{{.*}}: memref<1099511627776xf32>) kernel
// CHECK: memref.view %{{.*}} : memref<1099511627776xi8> to memref<1099511627776xbf16>
// CHECK: arith.extf %{{.*}} : bf16 to f32

// The RoPE angles of this call, once.
// CHECK: gpu.func @rope_table_1(
// CHECK: math.cos

// Prefill: a block a token sums x and x.x (warps, then the block through
// shared memory), then writes the row normalized and rounded to bf16, four
// columns a thread; the matmul's inner loop is loads (16 bytes of packed
// bf16 pairs per activation row and per weight row) and one mma.sync
// m16n8k16 bf16 per tile, the block's four warps summed through shared
// memory. Its block's share of the columns is a half (a call of one token
// tile) or all of them.
// CHECK: gpu.func @prepare_activations_2({{.*}}%{{.*}}: memref<1099511627776xbf16>) workgroup(%{{.*}} : memref<8xf32, #gpu.address_space<workgroup>> {llvm.align = 16 : i64}) kernel
// CHECK: gpu.shuffle  xor
// CHECK: gpu.barrier
// CHECK: math.rsqrt
// CHECK: arith.truncf %{{.*}} : vector<4xf32> to vector<4xbf16>
// CHECK: vector.store %{{.*}} {alignment = 8 : i64} : memref<1099511627776xbf16>, vector<4xbf16>
// CHECK: gpu.func @matmul_3({{.*}}) workgroup(%[[SMEM:.*]] : memref<4096xf32, #gpu.address_space<workgroup>> {llvm.align = 16 : i64}) kernel
// CHECK: %[[MSHARES:.*]] = arith.select %{{.*}}, %c2, %c1{{.*}} : index
// CHECK: arith.divui %c256{{.*}}, %[[MSHARES]] : index
// CHECK: scf.for
// CHECK: vector.load %{{.*}} {alignment = 16 : i64} : memref<1099511627776xi32>, vector<4xi32>
// CHECK: nvvm.mma.sync A[{{.*}}] B[{{.*}}] C[{{.*}}] {layoutA = #nvvm.mma_layout<row>, layoutB = #nvvm.mma_layout<col>, multiplicandAPtxType = #nvvm.mma_type<bf16>, multiplicandBPtxType = #nvvm.mma_type<bf16>, shape = #nvvm.shape<m = 16, n = 8, k = 16>}
// CHECK: scf.yield
// CHECK: gpu.barrier

// Decode: the QKV GEMV with its RMSNorm fused: 128-bit loads of the weight
// (8 bf16), x.x gathered in the same loop, a shuffle tree per sum, then
// 1/sqrt(mean + eps); no normalized copy of x. 160 units are few: a block
// of 4 warps a unit (per_block 1 above), each taking every 4th step, their
// sums added through shared memory (4 warps x 8 sums). A row of 256 is 32
// vectors for the unit's 128 lanes: one predicated step, a lane past the
// row reading the row's last vector (the clamp) and zeroing its x and
// gamma (the selects), its weight loads issued before any arithmetic.
// Its grid is resident (above): a block strides over the units by the
// blocks the runtime launches. It asks for 4 blocks of 128 threads an SM
// where it would hold fewer (the driver's second lowering,
// compiler/Target/RegisterCaps.h), with no launch bounds of its own.
// CHECK: gpu.func @projection_4({{.*}}) workgroup(%{{.*}} : memref<32xf32, #gpu.address_space<workgroup>> {llvm.align = 16 : i64}) kernel attributes {decc.occupancy_request = array<i32: 128, 4>} {
// CHECK: %[[BLOCKS:.*]] = gpu.grid_dim  x
// CHECK-NEXT: %[[UNITS:.*]] = arith.constant 160 : index
// CHECK-NEXT: scf.for %{{.*}} = %{{.*}} to %[[UNITS]] step %[[BLOCKS]]
// CHECK: arith.minui %{{.*}}, %c248
// CHECK: vector.load %{{.*}} {alignment = 16 : i64} : memref<1099511627776xbf16>, vector<8xbf16>
// CHECK: arith.select %{{.*}} : vector<8xf32>
// CHECK: arith.select %{{.*}} : vector<8xf32>
// CHECK: vector.fma
// CHECK: gpu.shuffle  xor %{{.*}}, %c16_i32, %c32_i32 : f32
// CHECK: gpu.barrier
// CHECK: gpu.barrier
// CHECK: math.rsqrt

// The prefill epilogue reads the products: RoPE and the KV append, a lane
// a token, no reduction but the shares' sum: in a call of one token tile
// (32 tokens or fewer, a batched decode step) the matmul split the columns
// in two shares, the second's 256 floats after the first's; a longer
// call's matmul kept one.
// CHECK: gpu.func @epilogue_5(
// CHECK-NOT: gpu.shuffle
// CHECK: %[[ONE_TILE:.*]] = arith.cmpi ule, %{{.*}}, %c32{{.*}} : index
// CHECK: %[[SHARES:.*]] = arith.select %[[ONE_TILE]], %c2, %c1 : index
// CHECK: %[[SHARE0:.*]] = memref.load %[[PRODUCTS:.*]][%[[FIRST:.*]]] : memref<1099511627776xf32>
// CHECK: scf.for %[[I:.*]] = %{{.*}} to %[[SHARES]] step %{{.*}} iter_args(%[[SUM:.*]] = %[[SHARE0]]) -> (f32)
// CHECK: %[[OFFSET:.*]] = arith.muli %[[I]], %c256 : index
// CHECK: %[[AT:.*]] = arith.addi %[[FIRST]], %[[OFFSET]] : index
// CHECK: %[[SHARE:.*]] = memref.load %[[PRODUCTS]][%[[AT]]] : memref<1099511627776xf32>
// CHECK: arith.addf %[[SUM]], %[[SHARE]] : f32
// CHECK-NOT: gpu.shuffle

// Flash attention for a prompt on bf16 tensor cores (S = Q.K^T and P.V on
// mma.sync m16n8k16, the online softmax in f32 and base 2, one ex2 an
// exponential, reduced over the quad of lanes holding a row), a block's 4
// warps splitting the keys of 16 queries
// and merging through shared memory (4 warps x (4 stats + 4 feature tiles x
// 4) x 32 lanes = 2560 floats). A decode step: a block per (kv head, split
// of the keys) for the query group of the kv head (2 heads), the warps'
// softmax states merged through shared memory (4 warps x 2 heads x (32 + 2)
// floats + the last-block flag), written as the split's partial; a fence
// and a counter per kv head, and the last block merges the splits (no
// second kernel) and resets the counter.
// CHECK: gpu.func @attention_flash_mma_6({{.*}}) workgroup(%{{.*}} : memref<2560xf32, #gpu.address_space<workgroup>> {llvm.align = 16 : i64}) kernel
// CHECK: arith.truncf %{{.*}} : vector<4xf32> to vector<4xbf16>
// CHECK: scf.for
// CHECK: vector.load %{{.*}} : memref<1099511627776xbf16>, vector<4xbf16>
// CHECK: nvvm.mma.sync {{.*}}multiplicandAPtxType = #nvvm.mma_type<bf16>
// CHECK: gpu.shuffle  xor %{{.*}}, %c1_i32{{.*}}, %c32_i32{{.*}} : f32
// CHECK: llvm.inline_asm "ex2.approx.ftz.f32 $0, $1;", "=f,f" %{{.*}} : (f32) -> f32
// CHECK: arith.truncf %{{.*}} : vector<2xf32> to vector<2xbf16>
// CHECK: memref.load %{{.*}} : memref<1099511627776xbf16>
// CHECK: nvvm.mma.sync
// CHECK: scf.yield
// CHECK: gpu.barrier
// CHECK: llvm.inline_asm "ex2.approx.ftz.f32
// CHECK: gpu.barrier
// A long prompt (prefill_large): a block per 64 queries of a head, the
// keys in 64-key tiles copied by the block into shared memory (16-byte
// vectors; K rows padded to 48 elements, V rows to 40) between two
// barriers; S from 8-byte K loads, P.V's B fragments from ldmatrix.trans.
// CHECK: gpu.func @attention_flash_tiled_7({{.*}}) workgroup(%[[KT:.*]] : memref<3072xbf16, #gpu.address_space<workgroup>> {llvm.align = 16 : i64}, %[[VT:.*]] : memref<2560xbf16, #gpu.address_space<workgroup>> {llvm.align = 16 : i64}) kernel
// CHECK: gpu.grid_dim  y
// CHECK: scf.for
// CHECK: gpu.barrier
// CHECK: vector.store %{{.*}}, %[[KT]][%{{.*}}] {alignment = 16 : i64} : memref<3072xbf16, #gpu.address_space<workgroup>>, vector<8xbf16>
// CHECK: vector.store %{{.*}}, %[[VT]][%{{.*}}] {alignment = 16 : i64} : memref<2560xbf16, #gpu.address_space<workgroup>>, vector<8xbf16>
// CHECK: gpu.barrier
// CHECK: vector.load %[[KT]][%{{.*}}] {alignment = 8 : i64} : memref<3072xbf16, #gpu.address_space<workgroup>>, vector<4xbf16>
// CHECK: nvvm.mma.sync {{.*}}multiplicandAPtxType = #nvvm.mma_type<bf16>
// CHECK: llvm.inline_asm "ex2.approx.ftz.f32
// CHECK: nvgpu.ldmatrix %[[VT]][%{{.*}}] {numTiles = 4 : i32, transpose = true} : memref<2560xbf16, #gpu.address_space<workgroup>> -> vector<4x2xbf16>
// CHECK: nvvm.mma.sync
// CHECK: scf.yield
// A decode step's attention: a team of 4 lanes a key (head_dim 32 = four
// 16-byte pieces), eight keys a team a step with every K and V load issued
// first, software-pipelined: the loop carries a step's loads (bf16, as the
// cache holds them) and issues the next step's before this one's
// arithmetic; the score a butterfly over the team; a warp's 8 teams'
// softmaxes merged by shuffles (lanes 4, 8 and 16 apart), the 4 warps' in
// shared memory; the last block of the splits (a counter) merges them:
// a warp a head weighs the splits (their maxima and sums loaded at once, a
// whole-warp butterfly), then each thread adds 16 splits' 16-byte partial
// outputs a step, the block's two parts of the splits added in shared
// memory.
// CHECK: gpu.func @attention_decode_8({{.*}}) workgroup(%[[STATS:.*]] : memref<17xf32, #gpu.address_space<workgroup>> {llvm.align = 16 : i64}, %[[OUTS:.*]] : memref<256xf32, #gpu.address_space<workgroup>> {llvm.align = 16 : i64}, %[[WEIGHTS:.*]] : memref<256xf32, #gpu.address_space<workgroup>> {llvm.align = 16 : i64}, %[[PARTS:.*]] : memref<512xf32, #gpu.address_space<workgroup>> {llvm.align = 16 : i64}) kernel
// CHECK-COUNT-16: vector.load %{{.*}} {alignment = 16 : i64} : memref<1099511627776xbf16>, vector<8xbf16>
// CHECK: scf.for {{.*}} -> (f32, f32, vector<8xf32>, f32, f32, vector<8xf32>, index, {{.*}}, i1, {{.*}}, vector<8xbf16>)
// CHECK-COUNT-16: vector.load %{{.*}} {alignment = 16 : i64} : memref<1099511627776xbf16>, vector<8xbf16>
// CHECK: vector.fma
// CHECK: gpu.shuffle  xor %{{.*}}, %c2_i32
// CHECK: gpu.shuffle  xor %{{.*}}, %c1_i32
// CHECK: math.exp
// CHECK: scf.yield
// CHECK: gpu.shuffle  xor %{{.*}}, %c4_i32
// CHECK: math.exp
// CHECK: gpu.shuffle  xor %{{.*}}, %c8_i32
// CHECK: gpu.shuffle  xor %{{.*}}, %c16_i32
// CHECK: vector.store %{{.*}}, %[[OUTS]]
// CHECK: gpu.barrier
// CHECK: nvvm.memory.barrier <gpu>
// CHECK: gpu.barrier
// CHECK: memref.atomic_rmw addi %{{.*}}, %{{.*}} : (i32, memref<1099511627776xi32>) -> i32
// CHECK: gpu.barrier
// CHECK: gpu.shuffle  xor %{{.*}}, %c16_i32
// CHECK: math.exp
// CHECK: memref.store %{{.*}}, %[[WEIGHTS]]
// CHECK: gpu.barrier
// CHECK-COUNT-16: vector.load %{{.*}} {alignment = 16 : i64} : memref<1099511627776xf32>, vector<4xf32>
// CHECK: memref.load %[[WEIGHTS]]
// CHECK: vector.fma
// CHECK: memref.store %{{.*}}, %[[PARTS]]
// CHECK: gpu.barrier
// CHECK: vector.load %[[PARTS]]
// CHECK: memref.store %c0_i32{{.*}} : memref<1099511627776xi32>

// With programmatic launch the decode attention reads its first keys
// before it waits on the kernel that appended the step's newest key. A
// batched step that joins a prompt's tokens (step word 7, kStepJoined)
// appended their earlier keys itself: it waits before those loads.
// JOINED-LABEL: gpu.func @attention_decode_8(
// JOINED-NOT: memref.load %arg1[%c7]
// JOINED-LABEL: gpu.func @attention_batched_9(
// JOINED: %[[JOINED:.*]] = memref.load %arg1[%c7] : memref<1099511627776xi64>
// JOINED: arith.xori
// JOINED-NEXT: scf.if
// JOINED-NEXT: llvm.inline_asm has_side_effects "griddepcontrol.wait;"
// JOINED: vector.load %arg4[%{{.*}}] {alignment = 16 : i64} : memref<1099511627776xbf16>, vector<8xbf16>
// JOINED: llvm.inline_asm has_side_effects "griddepcontrol.wait;"

// Each logits row's greedy token, a block of 1024 threads a row: a
// thread's 8 loads of a step issued together, then its first largest of
// them in index order (out-of-row ones masked), then the warp's (the
// larger, the lower index on a tie), then the block's 32 warps' through
// shared memory.
// CHECK-LABEL: gpu.func @logits_argmax_16(
// CHECK-SAME: workgroup(%[[VALUES:.*]] : memref<32xf32, #gpu.address_space<workgroup>> {llvm.align = 16 : i64}, %[[INDICES:.*]] : memref<32xi32, #gpu.address_space<workgroup>> {llvm.align = 16 : i64}) kernel
// CHECK: scf.for %{{.*}} = %thread_id_x to %c512{{.*}} step %c8192 iter_args(%{{.*}} = %cst{{.*}}, %{{.*}} = %c0_i32) -> (f32, i32)
// CHECK-COUNT-8: memref.load %{{.*}} : memref<1099511627776xf32>
// CHECK: arith.cmpf ogt
// CHECK: arith.andi
// CHECK-COUNT-2: arith.select
// CHECK: gpu.shuffle  xor %{{.*}}, %c16_i32{{.*}} : f32
// CHECK: gpu.shuffle  xor %{{.*}}, %c16_i32{{.*}} : i32
// CHECK-NEXT: arith.cmpf ogt
// CHECK-NEXT: arith.cmpf oeq
// CHECK-NEXT: arith.cmpi slt
// CHECK: gpu.barrier
// CHECK-COUNT-31: memref.load %[[INDICES]]
// CHECK: arith.extsi %{{.*}} : i32 to i64
// CHECK: memref.store

// With decode-cluster=8 the decode attention's splits run in clusters of
// 8 blocks (the launch says so): each block's partial softmax ([head][d]
// outputs, then [head][max, sum]: 2 x 34 floats) stays in its shared
// memory; after a cluster barrier each block merges a share of the
// features from all 8 blocks' shared memory (mapa, loads of
// shared::cluster); a second barrier keeps every block's memory until all
// have read it. Only a step with several clusters a kv head goes on to the
// global merge.
// CLUSTER: block = 128 : i64, cluster = 8 : i64, grid = {per_block = 1 : i64, times = "one", units = 2 : i64, y = 1 : i64, y_tile = 1 : i64, y_times = "splits"}, kernel = "attention_decode_8"
// CLUSTER: gpu.func @attention_decode_8({{.*}}, %[[PARTIAL:.*]] : memref<68xf32, #gpu.address_space<workgroup>> {llvm.align = 16 : i64}) kernel
// CLUSTER: memref.store %{{.*}}, %[[PARTIAL]]
// CLUSTER: nvvm.cluster.arrive {aligned}
// CLUSTER-NEXT: nvvm.cluster.wait {aligned}
// CLUSTER-COUNT-8: nvvm.mapa %{{.*}}, %{{.*}} : !llvm.ptr<3> -> !llvm.ptr<7>
// CLUSTER-COUNT-24: llvm.load %{{.*}} {alignment = 4 : i64} : !llvm.ptr<7> -> f32
// CLUSTER: math.exp
// CLUSTER: nvvm.cluster.arrive {aligned}
// CLUSTER-NEXT: nvvm.cluster.wait {aligned}
// CLUSTER: nvvm.memory.barrier <gpu>
// CLUSTER: memref.atomic_rmw addi
// BAD-CLUSTER: error: decode-cluster must be a power of two from 1 to 16, not 3

// With trace=true every launch binds one more argument, its trace records:
// thread 0 of each of the first 4096 blocks writes into the block's own
// record (8 words at block x 8) the complement of its start time (word 0,
// by a maximum: the record starts zeroed) before the kernel lets its
// dependents launch, the complement of the wait's release after the wait
// (word 1), and each warp's lane 0 its end time (word 2).
// TRACE: {args = ["arena", "tokens", "buf:0", "trace"], block = 128 : i64, grid = {{.*}}, kernel = "embedding_0"
// TRACE: gpu.func @embedding_0({{.*}}, %[[REC:.*]]: memref<1099511627776xi64>) kernel
// TRACE: %[[START:.*]] = llvm.inline_asm has_side_effects "mov.u64 $0, %globaltimer;"
// TRACE: %[[BLOCK:.*]] = arith.addi %block_id_x, %{{.*}} : index
// TRACE: arith.cmpi ult, %[[BLOCK]], %c4096
// TRACE: %[[NOT:.*]] = arith.xori %[[START]], %c-1_i64
// TRACE: %[[AT:.*]] = arith.muli %[[BLOCK]], %c8
// TRACE: %[[AT0:.*]] = arith.addi %[[AT]], %c0
// TRACE: memref.atomic_rmw maxu %[[NOT]], %[[REC]][%[[AT0]]]
// TRACE: nvvm.griddepcontrol  launch_dependents
// TRACE-NEXT: llvm.inline_asm has_side_effects "griddepcontrol.wait;"
// TRACE-NEXT: %[[WAIT:.*]] = llvm.inline_asm has_side_effects "mov.u64 $0, %globaltimer;"
// TRACE: %[[NOTW:.*]] = arith.xori %[[WAIT]], %c-1_i64
// TRACE: arith.addi %{{.*}}, %c1
// TRACE: memref.atomic_rmw maxu %[[NOTW]], %[[REC]]
// TRACE: %[[END:.*]] = llvm.inline_asm has_side_effects "mov.u64 $0, %globaltimer;"
// TRACE: arith.remui %{{.*}}, %c32
// TRACE: arith.addi %{{.*}}, %c2
// TRACE: memref.atomic_rmw maxu %[[END]], %[[REC]]
// TRACE-NEXT: }
// TRACE-NEXT: gpu.return
// The decode attention marks its own points in words 3-6 (each warp's
// lane 0): its keys folded, its teams merged and partial written, its
// split counted (after the counter's atomic), the splits merged.
// TRACE: gpu.func @attention_decode_8(
// TRACE-COUNT-3: llvm.inline_asm has_side_effects "mov.u64 $0, %globaltimer;"
// TRACE: arith.constant 3 : index
// TRACE: llvm.inline_asm has_side_effects "mov.u64 $0, %globaltimer;"
// TRACE: arith.constant 4 : index
// TRACE: memref.atomic_rmw addi
// TRACE: llvm.inline_asm has_side_effects "mov.u64 $0, %globaltimer;"
// TRACE: arith.constant 5 : index
// TRACE: llvm.inline_asm has_side_effects "mov.u64 $0, %globaltimer;"
// TRACE: arith.constant 6 : index

// NVVM: gpu.module @decc_kernels
// NVVM: llvm.func @matmul_3(
// NVVM-SAME: nvvm.kernel
// NVVM: nvvm.mma.sync A[{{.*}}] B[{{.*}}] C[{{.*}}] {{.*}}multiplicandAPtxType = #nvvm.mma_type<bf16>
// NVVM: llvm.func @projection_4(
// NVVM: nvvm.shfl.sync  bfly
// NVVM: llvm.func @attention_flash_mma_6(
// NVVM: nvvm.mma.sync A[{{.*}}] B[{{.*}}] C[{{.*}}] {{.*}}multiplicandAPtxType = #nvvm.mma_type<bf16>

// sm_90a (warpgroup-mma): prompts of 256 tokens and more take the wgmma
// matmul, the epilogue fused; shorter ones keep the mma.sync matmul and its
// epilogue kernel. The QKV block holds whole heads (gcd(4 q, 2 kv heads) = 2
// heads of 32 = 64 rows); the TMA descriptors name the prepared activations
// (a context's tokens) and the weights (an arena offset), 64-element boxes.
// WGMMA: large_prefill_tokens = 256 : i64
// WGMMA-SAME: kernel = "prepare_activations_2", when = "prefill"
// WGMMA-SAME: kernel = "matmul_3", when = "prefill_small"
// WGMMA-SAME: kernel = "projection_4", when = "decode"
// WGMMA-SAME: kernel = "epilogue_5", when = "prefill_small"
// WGMMA-SAME: {args = ["arena", "step", "tmap:0", "tmap:1",
// WGMMA-SAME: block = 384 : i64, grid = {per_block = 128 : i64, times = "tokens", units = 1 : i64, y = 4 : i64, {{[^}]*}}}, kernel = "matmul_wgmma_6", shared_bytes = 197760 : i64, when = "prefill_large"
// A long prompt's attention on wgmma (FlashAttention-3's structure): 128
// queries of a head a block, K and V read through the layer's tensor maps
// of the caches (kv heads x context rows, boxes of 64 features x a block's
// 16 keys, eight a tile, each where the block table says) in place of the
// cache arguments; Q's 16 KiB (128 rows of 128 bytes) then
// four stages of K and V, 16 KiB each.
// WGMMA-SAME: {args = ["arena", "step", "positions", "{{buf:[0-9]+}}", "block_table", "{{buf:[0-9]+}}", "[[KMAP:tmap:[0-9]+]]", "[[VMAP:tmap:[0-9]+]]"], block = 384 : i64, grid = {per_block = 1 : i64, times = "one", units = 4 : i64, y = 1 : i64, y_tile = 128 : i64, y_times = "tokens"}, kernel = "attention_flash_wgmma_8", shared_bytes = 148544 : i64, skip_in_batched = true, when = "prefill_large"}
// WGMMA-SAME: tensor_maps = [{box = [64, 128], buffer = "[[PREPARED:buf:[0-9]+]]", dims = [256, -1], dtype = "bf16", name = "tmap:0", offset = 0 : i64}, {box = [64, 64], buffer = "arena", dims = [256, 256], dtype = "bf16", name = "tmap:1", offset = {{[0-9]+}} : i64}
// WGMMA-SAME: {box = [64, 16], buffer = "k_cache", cache_layer = 0 : i64, dims = [32, -2], dtype = "bf16", name = "[[KMAP]]", offset = 0 : i64}, {box = [64, 16], buffer = "v_cache", cache_layer = 0 : i64, dims = [32, -2], dtype = "bf16", name = "[[VMAP]]", offset = 0 : i64}

// Warp-specialized: the producer warpgroup gives up registers and its
// first thread fills the stages (wait until released, expect the stage's
// 24 KiB, two TMA boxes); the consumers take them, wait for each stage,
// multiply its 64 columns in four k16 steps (each descriptor + 2, 32 bytes),
// keep one group of wgmmas in flight and release the stage before.
// WGMMA-LABEL: gpu.module @decc_kernels
// WGMMA: gpu.func @matmul_wgmma_6({{.*}}) kernel attributes {nvvm.maxntid = array<i32: 384, 1, 1>, nvvm.minctasm = 1 : i32}
// WGMMA: llvm.mlir.addressof @decc_dynamic_shared : !llvm.ptr<3>
// WGMMA: nvvm.mbarrier.init %{{.*}}, %c1_i32 : !llvm.ptr<3>, i32
// WGMMA: nvvm.mbarrier.init %{{.*}}, %c256_i32 : !llvm.ptr<3>, i32
// WGMMA: nvvm.fence.mbarrier.init
// WGMMA: gpu.barrier
// WGMMA: nvvm.setmaxregister  decrease 40
// WGMMA: scf.for
// WGMMA: nvvm.mbarrier.try_wait.parity
// WGMMA: nvvm.mbarrier.arrive.expect_tx %{{.*}}, %c24576_i32
// WGMMA: nvvm.cp.async.bulk.tensor.shared.cluster.global %{{.*}}, %{{.*}}, %{{.*}}, box[%{{.*}}, %{{.*}}] : !llvm.ptr<7>, !llvm.ptr
// WGMMA: nvvm.cp.async.bulk.tensor.shared.cluster.global
// WGMMA: nvvm.setmaxregister  increase 232
// WGMMA: scf.for {{.*}} iter_args(%{{.*}} = %{{.*}}) -> (!llvm.struct<(f32, f32
// WGMMA: nvvm.mbarrier.try_wait.parity
// WGMMA: nvvm.wgmma.fence.aligned
// WGMMA-COUNT-4: nvvm.wgmma.mma_async {{.*}}, <m = 64, n = 64, k = 16>, D[<f32>, <one>], A[<bf16>, <one>, <row>], B[<bf16>, <one>, <col>]
// WGMMA: nvvm.wgmma.commit.group.sync.aligned
// WGMMA-NEXT: nvvm.wgmma.wait.group.sync.aligned 1
// WGMMA: nvvm.mbarrier.arrive
// WGMMA: nvvm.wgmma.wait.group.sync.aligned 0
// The epilogue in registers: q, k or v by the block's first row; RoPE on
// column pairs (i, i + 16) of one thread; q to its buffer, k and v to the
// cache, two features a store.
// WGMMA: scf.if
// WGMMA: %[[COS:.*]] = vector.load %{{.*}} {alignment = 8 : i64} : memref<1099511627776xf32>, vector<2xf32>
// WGMMA: %[[SIN:.*]] = vector.load %{{.*}} {alignment = 8 : i64} : memref<1099511627776xf32>, vector<2xf32>
// WGMMA: arith.mulf %{{.*}}, %[[COS]] : vector<2xf32>
// WGMMA: arith.mulf %{{.*}}, %[[SIN]] : vector<2xf32>
// WGMMA: arith.subf
// WGMMA: vector.store %{{.*}} {alignment = 8 : i64} : memref<1099511627776xf32>, vector<2xf32>
// The producer streams both boxes of a tile on one mbarrier (32 KiB); each
// consumer writes its 64 rows of Q swizzled (16-byte stores), fences them
// for the async proxy and syncs its warpgroup; the second consumer hands
// the first the first turn. A turn issues S_i = Q.K_i^T (m64n128k16 from
// shared memory, the first step overwriting) with O += P_(i-1).V_(i-1)
// (P from registers, V transposed), waits for S only, runs the softmax in
// base 2, then waits for P.V, frees the stage and rescales O.
// WGMMA: gpu.func @attention_flash_wgmma_8({{.*}}) kernel attributes {nvvm.maxntid = array<i32: 384, 1, 1>, nvvm.minctasm = 1 : i32}
// WGMMA: nvvm.setmaxregister  decrease 24
// WGMMA: nvvm.mbarrier.arrive.expect_tx %{{.*}}, %c32768_i32
// WGMMA: nvvm.cp.async.bulk.tensor.shared.cluster.global
// WGMMA: nvvm.cp.async.bulk.tensor.shared.cluster.global
// WGMMA: nvvm.setmaxregister  increase 240
// WGMMA: llvm.store %{{.*}} {alignment = 16 : i64} : vector<8xbf16>, !llvm.ptr<3>
// WGMMA: nvvm.fence.proxy {kind = #nvvm.proxy_kind<async.shared>, space = #nvvm.shared_space<cta>}
// WGMMA: nvvm.barrier id = %{{.*}} number_of_threads = %c128_i32
// WGMMA: nvvm.barrier.arrive id = %{{.*}} number_of_threads = %c256_i32
// WGMMA: nvvm.barrier id = %{{.*}} number_of_threads = %c256_i32
// WGMMA: nvvm.wgmma.mma_async {{.*}}, <m = 64, n = 128, k = 16>, D[<f32>, <zero>], A[<bf16>, <one>, <row>], B[<bf16>, <one>, <col>]
// WGMMA: nvvm.wgmma.mma_async {{.*}}, <m = 64, n = 128, k = 16>, D[<f32>, <one>]
// WGMMA: nvvm.wgmma.commit.group.sync.aligned
// WGMMA: scf.for
// WGMMA: nvvm.mbarrier.try_wait.parity
// WGMMA: nvvm.barrier id
// WGMMA: nvvm.wgmma.fence.aligned
// WGMMA-COUNT-2: nvvm.wgmma.mma_async {{.*}}, <m = 64, n = 128, k = 16>
// WGMMA: nvvm.wgmma.commit.group.sync.aligned
// WGMMA-COUNT-8: llvm.inline_asm has_side_effects "wgmma.mma_async.sync.aligned.m64n32k16.f32.bf16.bf16 {{.*}}, 1, 1, 1, 1;"
// WGMMA: nvvm.wgmma.commit.group.sync.aligned
// WGMMA: nvvm.barrier.arrive
// WGMMA: nvvm.wgmma.wait.group.sync.aligned 1
// WGMMA: llvm.inline_asm "ex2.approx.ftz.f32 $0, $1;"
// WGMMA: nvvm.wgmma.wait.group.sync.aligned 0
// WGMMA: nvvm.mbarrier.arrive
// WGMMA: scf.yield
// The O projection: 256 rows in blocks of 64, the residual added in
// registers.
// WGMMA: gpu.func @matmul_wgmma_14(
// WGMMA: nvvm.wgmma.mma_async
// WGMMA: vector.load %{{.*}} {alignment = 8 : i64} : memref<1099511627776xf32>, vector<2xf32>
// WGMMA: arith.addf %{{.*}} : vector<2xf32>
// WGMMA: vector.store

// WGMMA-LLVM: llvm.mlir.global external @decc_dynamic_shared() {addr_space = 3 : i32, alignment = 1024 : i64} : !llvm.array<0 x i8>
// WGMMA-LLVM: llvm.func @matmul_wgmma_6(
// WGMMA-LLVM: nvvm.setmaxregister  decrease 40
// WGMMA-LLVM: llvm.inline_asm has_side_effects asm_dialect = att "{\0A.reg .pred p;\0Asetp.ne.b32 p, $66, 0;\0Awgmma.mma_async.sync.aligned.m64n64k16.f32.bf16.bf16
func.func @forward(%tokens: tensor<?xi64>, %pos: tensor<?xi64>, %c: !cache) -> tensor<?x512xf32> {
  %e = decoder.weight "embed.weight" : tensor<512x256xbf16>
  %h = decoder.embedding %tokens, %e : tensor<?xi64>, tensor<512x256xbf16> -> tensor<?x256xf32>
  %g = decoder.weight "norm.weight" : tensor<256xbf16>
  %w = decoder.weight "qkv.weight" : tensor<256x256xbf16>
  %q = decoder.fused_linear %h, %w norm(%g) append(%pos, %c) {norm = #decoder.norm<rms>, norm_epsilon = 1.0e-05 : f64, layer = 0 : i64, rope = #decoder.rope<kind = default, theta = 10000.0, rotary_dim = 32>} : (tensor<?x256xf32>, tensor<256x256xbf16>, tensor<256xbf16>, tensor<?xi64>, !cache) -> tensor<?x4x32xf32>
  %a = decoder.cached_attention %q, %pos, %c {layer = 0 : i64, config = #decoder.attention<num_heads = 4, num_kv_heads = 2, head_dim = 32, softmax_scale = 0.1767766952966369>} : tensor<?x4x32xf32>, tensor<?xi64>, !cache -> tensor<?x4x32xf32>
  %wo = decoder.weight "o.weight" : tensor<256x128xbf16>
  %r = decoder.fused_linear %a, %wo residual %h : (tensor<?x4x32xf32>, tensor<256x128xbf16>, tensor<?x256xf32>) -> tensor<?x256xf32>
  %l = decoder.fused_linear %r, %e norm(%g) {norm = #decoder.norm<rms>, norm_epsilon = 1.0e-05 : f64} : (tensor<?x256xf32>, tensor<512x256xbf16>, tensor<256xbf16>) -> tensor<?x512xf32>
  return %l : tensor<?x512xf32>
}

// -----

// Groups of 8 heads (num_heads 8, one kv head, head_dim 64: teams of 8
// lanes, 4 keys a warp, 16 teams): a warp's teams merge by shuffles (lanes
// 8 and 16 apart) before the block's shared-memory merge walks a state a
// warp (stats 4 x 8 x 2 + the flag, outputs 4 x 8 x 64); and the last
// block of the kv head loads both of a warp's heads' split maxima and sums
// (16 loads) before the first shuffle of their weights, one round of L2
// loads where a round a head was two.
// CHECK: gpu.func @attention_decode_8({{.*}}) workgroup(%{{.*}} : memref<65xf32, #gpu.address_space<workgroup>> {llvm.align = 16 : i64}, %[[OUTS8:.*]] : memref<2048xf32, #gpu.address_space<workgroup>>
// CHECK: gpu.shuffle  xor %{{.*}}, %c8_i32
// CHECK: gpu.shuffle  xor %{{.*}}, %c16_i32
// CHECK: vector.store %{{.*}}, %[[OUTS8]]
// CHECK: memref.atomic_rmw addi
// CHECK-NOT: gpu.shuffle
// CHECK-COUNT-16: memref.load %{{.*}} : memref<1099511627776xf32>
// CHECK-NOT: memref.load %{{.*}} : memref<1099511627776xf32>
// CHECK: gpu.shuffle  xor %{{.*}}, %c16_i32
!cache = !decoder.kv_cache<layers = 1, kv_heads = 1, head_dim = 64, element = bf16>
func.func @forward(%tokens: tensor<?xi64>, %pos: tensor<?xi64>, %c: !cache) -> tensor<?x512xf32> {
  %e = decoder.weight "embed.weight" : tensor<512x256xbf16>
  %h = decoder.embedding %tokens, %e : tensor<?xi64>, tensor<512x256xbf16> -> tensor<?x256xf32>
  %g = decoder.weight "norm.weight" : tensor<256xbf16>
  %w = decoder.weight "qkv.weight" : tensor<640x256xbf16>
  %q = decoder.fused_linear %h, %w norm(%g) append(%pos, %c) {norm = #decoder.norm<rms>, norm_epsilon = 1.0e-05 : f64, layer = 0 : i64, rope = #decoder.rope<kind = default, theta = 10000.0, rotary_dim = 64>} : (tensor<?x256xf32>, tensor<640x256xbf16>, tensor<256xbf16>, tensor<?xi64>, !cache) -> tensor<?x8x64xf32>
  %a = decoder.cached_attention %q, %pos, %c {layer = 0 : i64, config = #decoder.attention<num_heads = 8, num_kv_heads = 1, head_dim = 64, softmax_scale = 0.125>} : tensor<?x8x64xf32>, tensor<?xi64>, !cache -> tensor<?x8x64xf32>
  %wo = decoder.weight "o.weight" : tensor<256x512xbf16>
  %r = decoder.fused_linear %a, %wo residual %h : (tensor<?x8x64xf32>, tensor<256x512xbf16>, tensor<?x256xf32>) -> tensor<?x256xf32>
  %l = decoder.fused_linear %r, %e norm(%g) {norm = #decoder.norm<rms>, norm_epsilon = 1.0e-05 : f64} : (tensor<?x256xf32>, tensor<512x256xbf16>, tensor<256xbf16>) -> tensor<?x512xf32>
  return %l : tensor<?x512xf32>
}

// -----

// f32 weights keep f32's accuracy: the norm statistics, the activations
// split into bf16 hi + lo (x - hi, rounded again), stored in groups of four
// [hi x 4, lo x 4], and the matmul (16 bytes of pairs per activation row
// two mma.sync per tile: lo, then hi), with no wgmma on sm_90a either.
// Tensor cores need an input width that is a multiple of 8: the 36-wide
// projection keeps the GEMV for prefill too ("always", no statistics or
// matmul before it); the 40-wide one gets the matmul, its last 8 columns a
// masked step (steps are 16 columns).
// CHECK: kernel = "embedding_0"
// CHECK-SAME: kernel = "projection_1", when = "always"
// CHECK-SAME: kernel = "split_activations_2", when = "prefill"
// CHECK-SAME: kernel = "matmul_3", when = "prefill"
// CHECK-SAME: kernel = "projection_4", when = "decode"
// CHECK-SAME: kernel = "epilogue_5", when = "prefill"
// CHECK-LABEL: gpu.func @split_activations_2(
// CHECK: %[[HI:.*]] = arith.truncf %{{.*}} : vector<4xf32> to vector<4xbf16>
// CHECK: %[[WIDE:.*]] = arith.extf %[[HI]] : vector<4xbf16> to vector<4xf32>
// CHECK: %[[REST:.*]] = arith.subf %{{.*}}, %[[WIDE]] : vector<4xf32>
// CHECK: %[[LO:.*]] = arith.truncf %[[REST]] : vector<4xf32> to vector<4xbf16>
// CHECK: vector.shuffle %[[HI]], %[[LO]] [0, 1, 2, 3, 4, 5, 6, 7]
// CHECK: gpu.func @matmul_3(
// CHECK: scf.for
// CHECK: vector.load %{{.*}} {alignment = 16 : i64} : memref<1099511627776xi32>, vector<4xi32>
// CHECK: nvvm.mma.sync
// CHECK: nvvm.mma.sync
// CHECK: scf.yield
// CHECK: arith.select %{{.*}}, %{{.*}}, %c0_i32 : i32
// CHECK: nvvm.mma.sync
// CHECK: gpu.barrier
// WGMMA-LABEL: kernel = "split_activations_2", when = "prefill"
// WGMMA-NOT: wgmma
!cache = !decoder.kv_cache<layers = 1, kv_heads = 1, head_dim = 4, element = f32>
func.func @forward(%tokens: tensor<?xi64>, %pos: tensor<?xi64>, %c: !cache) -> tensor<?x64xf32> {
  %e = decoder.weight "embed.weight" : tensor<64x36xf32>
  %h = decoder.embedding %tokens, %e : tensor<?xi64>, tensor<64x36xf32> -> tensor<?x36xf32>
  %g = decoder.weight "norm.weight" : tensor<36xf32>
  %w = decoder.weight "up.weight" : tensor<40x36xf32>
  %u = decoder.fused_linear %h, %w norm(%g) {norm = #decoder.norm<rms>, norm_epsilon = 1.0e-05 : f64} : (tensor<?x36xf32>, tensor<40x36xf32>, tensor<36xf32>) -> tensor<?x40xf32>
  %w2 = decoder.weight "down.weight" : tensor<36x40xf32>
  %r = decoder.fused_linear %u, %w2 residual %h : (tensor<?x40xf32>, tensor<36x40xf32>, tensor<?x36xf32>) -> tensor<?x36xf32>
  %l = decoder.fused_linear %r, %e : (tensor<?x36xf32>, tensor<64x36xf32>) -> tensor<?x64xf32>
  return %l : tensor<?x64xf32>
}

// -----

// An int4 decode GEMV on tensor cores whose units have several warps takes
// as many units a block as leave each thread at most two runs of 16
// columns of x to build B from (one load round each): up's 1024 units of
// 2 warps (4096 columns: 256 runs) two a block of 128 threads, down's 256
// units of 8 warps (16384 columns) two a block of 512; gemv-units-per-block
// =1 keeps a unit a block.
// CHECK-LABEL: block = 128 : i64, grid = {per_block = 2 : i64, times = "one", units = 1024 : i64, {{[^}]*}}}, kernel = "projection_{{[0-9]+}}", shared_bytes = {{[0-9]+}} : i64, when = "decode"
// CHECK-SAME: block = 512 : i64, grid = {per_block = 2 : i64, times = "one", units = 256 : i64, {{[^}]*}}}, kernel = "projection_{{[0-9]+}}", shared_bytes = {{[0-9]+}} : i64, when = "decode"
// UNITS1-LABEL: block = 64 : i64, grid = {per_block = 1 : i64, times = "one", units = 1024 : i64, {{[^}]*}}}, kernel = "projection_{{[0-9]+}}", shared_bytes = {{[0-9]+}} : i64, when = "decode"
// UNITS1-SAME: block = 256 : i64, grid = {per_block = 1 : i64, times = "one", units = 256 : i64, {{[^}]*}}}, kernel = "projection_{{[0-9]+}}", shared_bytes = {{[0-9]+}} : i64, when = "decode"
// BAD-UNITS: error: gemv-units-per-block must be 0 or a power of two up to 16, not 3
!cache = !decoder.kv_cache<layers = 1, kv_heads = 1, head_dim = 4, element = f32>
func.func @forward(%tokens: tensor<?xi64>, %pos: tensor<?xi64>, %c: !cache) -> tensor<?x64xf32> {
  %e = decoder.weight "embed.weight" : tensor<64x4096xf32>
  %h = decoder.embedding %tokens, %e : tensor<?xi64>, tensor<64x4096xf32> -> tensor<?x4096xf32>
  %w = decoder.weight "up.weight" : tensor<16384x4096xi4, #decoder.quantized<bits = 4, group_size = 128>>
  %u = decoder.fused_linear %h, %w : (tensor<?x4096xf32>, tensor<16384x4096xi4, #decoder.quantized<bits = 4, group_size = 128>>) -> tensor<?x16384xf32>
  %w2 = decoder.weight "down.weight" : tensor<4096x16384xi4, #decoder.quantized<bits = 4, group_size = 128>>
  %r = decoder.fused_linear %u, %w2 residual %h : (tensor<?x16384xf32>, tensor<4096x16384xi4, #decoder.quantized<bits = 4, group_size = 128>>, tensor<?x4096xf32>) -> tensor<?x4096xf32>
  %l = decoder.fused_linear %r, %e : (tensor<?x4096xf32>, tensor<64x4096xf32>) -> tensor<?x64xf32>
  return %l : tensor<?x64xf32>
}
