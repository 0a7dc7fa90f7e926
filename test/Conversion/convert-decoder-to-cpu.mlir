// RUN: decc-opt %s --convert-decoder-to-cpu --split-input-file | FileCheck %s
// RUN: decc-opt %s --convert-decoder-to-cpu=bf16-dot=true --split-input-file | FileCheck %s --check-prefix=BF16DOT
// RUN: decc-opt %s --convert-decoder-to-cpu --split-input-file | FileCheck %s --check-prefix=PREFETCH
// RUN: decc-opt %s --convert-decoder-to-cpu --split-input-file | FileCheck %s --check-prefix=PANELS
// RUN: decc-opt %s --convert-decoder-to-cpu=quantized-lanes=16 --split-input-file | FileCheck %s --check-prefix=AVX512
// RUN: decc-opt %s "--convert-decoder-to-cpu=bf16-dot=true quantized-lanes=16" --split-input-file | FileCheck %s --check-prefix=AVX512BF16
// RUN: decc-opt %s --convert-decoder-to-cpu=slice-input-bytes=1024 --split-input-file | FileCheck %s --check-prefix=SLICE
// RUN: decc-opt %s "--convert-decoder-to-cpu=bf16-dot=true amx=true" --split-input-file | FileCheck %s --check-prefix=AMX
// RUN: decc-opt %s --convert-decoder-to-cpu=int16-dots=true --split-input-file | FileCheck %s --check-prefix=INT16
// RUN: decc-opt %s "--convert-decoder-to-cpu=int16-dots=true quantized-lanes=16" --split-input-file | FileCheck %s --check-prefix=INT16-512

!cache = !decoder.kv_cache<layers = 1, kv_heads = 2, head_dim = 32, element = f32>

// The manifest records each weight's place in the arena and its parts.
// CHECK: module attributes {decc.manifest = {arena_bytes =
// CHECK-SAME: target = "cpu", version = 2 : i64
// CHECK-SAME: parts = [{shape = [256, 128], tensor = "qkv.weight"}]

// Every decoder op becomes a kernel function of its own, taking what it
// reads and writes as arguments (noinline: LLVM keeps one copy however many
// layers call it).
//
// The embedding gathers rows in parallel; bf16 is widened in vector
// registers.
// CHECK-LABEL: func.func private @decc_kernel_0(%{{.*}}: memref<?xi64>, %{{.*}}: memref<512x128xbf16>, %{{.*}}: memref<?x128xf32>, %{{.*}}: index) attributes {passthrough = ["noinline"]}
// CHECK: scf.parallel
// CHECK: vector.load %{{.*}} : memref<512x128xbf16>, vector<16xbf16>
// CHECK: arith.extf %{{.*}} : vector<16xbf16> to vector<16xf32>
//
// The QKV projection with its RMSNorm prologue, dot products with vector FMAs,
// q stored and k / v written into the caches (the layer an argument); the K
// cache as tiles of 16 keys, a feature of a tile's keys contiguous. A dot
// product's lanes are summed in any order (a tree, not 16 dependent adds).
// On AVX2 the normalized rows are stored with each 16 columns' even ones
// first, then the odd ones, the order 16 bf16 weights of a row widen in as
// 8 words: the low halves shifted up 16, the high halves masked (one
// shuffle-free op each, where vpmovzxwd and a shift widened every 8).
// CHECK-LABEL: func.func private @decc_kernel_1(
// CHECK-SAME: %[[K1:[a-z0-9]+]]: memref<1x2x?x32xf32>, %{{[a-z0-9]+}}: index, %{{[a-z0-9]+}}: memref<1x2x?x32xf32>) attributes {passthrough = ["noinline"]}
// CHECK: %[[PAIRED:.*]] = memref.alloc(%{{.*}}) {alignment = 64 : i64} : memref<?x128xf32>
// CHECK: math.rsqrt
// CHECK: vector.shuffle %{{.*}}, %{{.*}} [0, 2, 4, 6, 8, 10, 12, 14] : vector<8xf32>, vector<8xf32>
// CHECK: vector.store %{{.*}}, %[[PAIRED]]
// CHECK: vector.shuffle %{{.*}}, %{{.*}} [1, 3, 5, 7, 9, 11, 13, 15] : vector<8xf32>, vector<8xf32>
// CHECK: %[[W:.*]] = vector.load %{{.*}} : memref<256x128xbf16>, vector<16xbf16>
// CHECK: %[[WORDS:.*]] = vector.bitcast %[[W]] : vector<16xbf16> to vector<8xi32>
// CHECK: arith.shli %[[WORDS]], %{{.*}} : vector<8xi32>
// CHECK: arith.andi %[[WORDS]], %{{.*}} : vector<8xi32>
// CHECK: vector.load %[[PAIRED]]{{.*}} : memref<?x128xf32>, vector<8xf32>
// CHECK: vector.fma {{.*}} : vector<8xf32>
// CHECK: vector.reduction <add>, %{{[^ ]*}} fastmath<reassoc>
// CHECK: %[[TILES1:.*]] = memref.reinterpret_cast %[[K1]] to offset: [0], sizes: [1, 2, %{{.*}}, 32, 16], strides: [%{{.*}}, %{{.*}}, 512, 16, 1]
// CHECK: memref.store %{{.*}}, %[[TILES1]][%{{.*}}, %{{.*}}, %{{.*}}, %{{.*}}, %{{.*}}] : memref<1x2x?x32x16xf32, strided<[?, ?, 512, 16, 1]>>
//
// A prompt's panels are a multiple of the threads in number
// (omp_get_max_threads, asked once a call) and about equal, so that the
// loop over panels gives each thread as many: here the 64 units of 2 rows
// fit one panel of at most 64, dealt out as ceil(64 / threads) a panel.
// PANELS-LABEL: func.func private @decc_kernel_1(
// PANELS: %[[SHARE:.*]] = arith.divui %{{.*}}, %[[THREADS:arg[0-9]+]] : index
// PANELS-NEXT: %[[PANELS:.*]] = arith.muli %[[SHARE]], %[[THREADS]] : index
// PANELS: %[[PER:.*]] = arith.divui %{{.*}}, %[[PANELS]] : index
// PANELS-NEXT: %{{.*}} = arith.constant 1 : index
// PANELS-NEXT: arith.select %{{.*}}, %[[PER]], %{{.*}} : index
// PANELS-LABEL: func.func @decc_forward(
// PANELS: call @omp_get_max_threads() : () -> i32
//
// A decode step prefetches its float and half-precision weight rows as far
// ahead as the runtime chooses for the CPU it runs on (decc_prefetch_bytes,
// asked once a call, in the weight's elements here), and not at all where
// that is 0: an invariant test in the loop, which LLVM takes out of it.
// PREFETCH-LABEL: func.func private @decc_kernel_1(
// PREFETCH-SAME: %[[BYTES:arg[0-9]+]]: index, %{{[a-z0-9]+}}: index, %{{[a-z0-9]+}}: memref<256x128xbf16>
// PREFETCH: %[[AHEAD:.*]] = arith.divui %[[BYTES]], %c2 : index
// PREFETCH: %[[ON:.*]] = arith.cmpi ne, %[[AHEAD]], %{{.*}} : index
// PREFETCH-NEXT: scf.if %[[ON]] {
// PREFETCH-NEXT: %[[AT:.*]] = arith.addi %{{.*}}, %[[AHEAD]] : index
// PREFETCH-NEXT: memref.prefetch %{{.*}}[%{{.*}}, %[[AT]]], read, locality<3>, data : memref<256x128xbf16>
// PREFETCH-LABEL: func.func private @decc_kernel_2(
// PREFETCH: memref.prefetch %{{.*}}, read, locality<3>, data : memref<128x128xbf16>
// PREFETCH-LABEL: func.func @decc_forward(
// PREFETCH: call @decc_prefetch_bytes() : () -> i64
//
// With bf16-dot the normalized rows are rounded to bf16 once, and each
// token x row product is an AVX512-BF16 dot of 32 elements a step.
// BF16DOT-LABEL: func.func private @decc_kernel_1(
// BF16DOT: math.rsqrt
// BF16DOT: arith.truncf %{{.*}} : vector<16xf32> to vector<16xbf16>
// BF16DOT: vector.load %[[ROUNDED:[a-z0-9_]+]][%{{.*}}] : memref<?x128xbf16>, vector<32xbf16>
// BF16DOT: vector.load %{{.*}} : memref<256x128xbf16>, vector<32xbf16>
// BF16DOT: x86vector.avx512.dot %{{.*}} : vector<32xbf16> -> vector<16xf32>
// BF16DOT-NOT: vector.fma
// BF16DOT: vector.reduction <add>
// BF16DOT: memref.dealloc %[[ROUNDED]]
//
// With AMX, a prompt (more tokens than a block) goes a chunk of
// slice-tokens (512) tokens at a time: its rounded inputs stored as
// [column pair][token] 32-bit pairs (rows of 512 + 16: a tile's rows do not
// meet in a few L1 sets), then 2 x 2 tiles: two of 16 weight rows (as they
// lie in the arena) by two of 16 tokens' pairs, the 128 columns unrolled
// in steps of 32 (each step's operands loaded under the last one's
// products), the sums stored as [feature][token] for the epilogue; a
// decode step keeps the AVX512-BF16 dot products.
// AMX-LABEL: func.func private @decc_kernel_1(
// AMX: %[[ROUNDED:[a-z0-9_]+]] = memref.alloc(%{{.*}}) {alignment = 64 : i64} : memref<?x128xbf16>
// AMX: scf.if
// AMX: %[[RAW:[a-z0-9_]+]] = memref.alloc() {alignment = 64 : i64} : memref<135168xi8>
// AMX: %[[PAIRS:[a-z0-9_]+]] = memref.view %[[RAW]]{{.*}} to memref<64x528xi32>
// AMX: %[[TILES:[a-z0-9_]+]] = memref.view %[[RAW]]{{.*}} to memref<64x1056xbf16>
// AMX: %[[SUMS:[a-z0-9_]+]] = memref.alloc() {alignment = 64 : i64} : memref<256x528xf32>
// AMX: scf.for %{{.*}} = %{{.*}} to %{{.*}} step %c512
// AMX: scf.parallel
// AMX: vector.load %[[ROUNDED]]{{.*}} : memref<?x128xbf16>, vector<32xbf16>
// AMX: vector.bitcast %{{.*}} : vector<32xbf16> to vector<16xi32>
// AMX: memref.store %{{.*}}, %[[PAIRS]]
// AMX: scf.parallel
// AMX-COUNT-4: amx.tile_zero : !amx.tile<16x16xf32>
// AMX: amx.tile_load %{{.*}} : memref<256x128xbf16> into !amx.tile<16x32xbf16>
// AMX: amx.tile_load %[[TILES]]{{.*}} : memref<64x1056xbf16> into !amx.tile<16x32xbf16>
// AMX: amx.tile_load %{{.*}} : memref<256x128xbf16> into !amx.tile<16x32xbf16>
// AMX: amx.tile_load %[[TILES]]{{.*}} : memref<64x1056xbf16> into !amx.tile<16x32xbf16>
// AMX-COUNT-16: amx.tile_mulf
// AMX-NOT: amx.tile_mulf
// AMX-COUNT-4: amx.tile_store %[[SUMS]]
// AMX: memref.load %[[SUMS]]
// AMX: memref.dealloc %[[SUMS]]
// AMX: memref.dealloc %[[RAW]]
// AMX: } else {
// AMX: x86vector.avx512.dot
// AMX: memref.dealloc %[[ROUNDED]]
// The LM head's logits keep the dot products.
// AMX-LABEL: func.func private @decc_kernel_4(
// AMX-NOT: amx.
// AMX: x86vector.avx512.dot
// BF16DOT-LABEL: func.func private @decc_kernel_2(
//
// On AVX-512 (quantized-lanes=16: 32 vector registers) a prompt's block
// of 4 tokens takes 4 rows of the O projection together: 16 accumulators
// of 16 lanes, each weight vector loaded once for 4 FMAs and each input
// vector once for 4. A call of a block of tokens or fewer (a decode step)
// takes units of 2 rows instead, u and u + 64: a decode step streamed its
// weights 25% slower in units of the prompt's 4 rows.
// AVX512-LABEL: func.func private @decc_kernel_3(
// AVX512: %[[MANY:.*]] = arith.cmpi ugt, %{{.*}}, %c4 : index
// AVX512: scf.if %[[MANY]] {
// AVX512: scf.for %{{.*}} step %c4
// AVX512: scf.for {{.*}} iter_args({{.*}}) -> (vector<16xf32>, vector<16xf32>, vector<16xf32>, vector<16xf32>, vector<16xf32>, vector<16xf32>, vector<16xf32>, vector<16xf32>, vector<16xf32>, vector<16xf32>, vector<16xf32>, vector<16xf32>, vector<16xf32>, vector<16xf32>, vector<16xf32>, vector<16xf32>) {
// AVX512-COUNT-4: vector.load %{{.*}} : memref<?x128xf32>, vector<16xf32>
// AVX512-COUNT-4: vector.load %{{.*}} : memref<128x128xbf16>, vector<16xbf16>
// AVX512-COUNT-16: vector.fma %{{.*}} : vector<16xf32>
// AVX512: scf.for {{.*}} iter_args({{.*}}) -> (vector<16xf32>, vector<16xf32>, vector<16xf32>, vector<16xf32>) {
// AVX512: } else {
// AVX512: scf.parallel
// AVX512: scf.for %{{.*}} step %c4
// AVX512: scf.for %[[UNIT:[a-z0-9]+]] =
// AVX512-NEXT: %[[C64:.*]] = arith.constant 64 : index
// AVX512-NEXT: arith.addi %[[UNIT]], %[[C64]] : index
// AVX512: scf.for {{.*}} iter_args({{.*}}) -> (vector<16xf32>, vector<16xf32>, vector<16xf32>, vector<16xf32>, vector<16xf32>, vector<16xf32>, vector<16xf32>, vector<16xf32>) {
// AVX512-COUNT-2: vector.load %{{.*}} : memref<128x128xbf16>, vector<16xbf16>
// AVX512-NOT: vector.load %{{.*}} : memref<128x128xbf16>, vector<16xbf16>
// AVX512: vector.fma
//
// With AVX512-BF16 pairs the block is 6 tokens x 4 rows: 24 accumulators
// of 16 lanes, each weight vector serving 6 dots.
// AVX512BF16-LABEL: func.func private @decc_kernel_3(
// AVX512BF16: scf.for %{{.*}} step %c6
// AVX512BF16: %{{.*}}:24 = scf.for
// AVX512BF16-COUNT-6: vector.load %{{.*}} : memref<?x128xbf16>, vector<32xbf16>
// AVX512BF16-COUNT-4: vector.load %{{.*}} : memref<128x128xbf16>, vector<32xbf16>
// AVX512BF16-COUNT-24: x86vector.avx512.dot
// AVX512-LABEL: func.func private @decc_kernel_4(
//
// Flash attention: the decode step (one token) splits the keys; a prompt
// takes the row-parallel path. Both take the keys a tile of 16 at a time:
// the scores one vector, FMAs of the query's features with the tile's rows
// (four partial sums), the keys outside the range at -inf; the max and the
// sum as trees, the exps one vector, one pass of FMAs over the accumulator.
// No key is left to a scalar loop. The prompt's iteration i takes token
// i / 2, or T - 1 - i / 2 when i is odd, so that each thread's contiguous
// share of the iterations has early (few keys) and late (many keys) tokens
// alike.
// CHECK-LABEL: func.func private @decc_kernel_2(
// CHECK: scf.if
// CHECK: scf.parallel
// CHECK: %[[TILES:.*]] = memref.reinterpret_cast
// CHECK: scf.for %{{.*}} step %c16
// CHECK: scf.for {{.*}} step %c4{{.*}} -> (vector<16xf32>, vector<16xf32>, vector<16xf32>, vector<16xf32>)
// CHECK: vector.load %[[TILES]][{{.*}}] : memref<1x2x?x32x16xf32, strided<[?, ?, 512, 16, 1]>>, vector<16xf32>
// CHECK: vector.fma %{{.*}} : vector<16xf32>
// CHECK: %[[M:.*]] = arith.select %{{.*}} : vector<16xi1>, vector<16xf32>
// CHECK: vector.reduction <maxnumf>, %[[M]] fastmath<nnan> : vector<16xf32> into f32
// CHECK: math.exp %{{.*}} : vector<16xf32>
// CHECK: vector.reduction <add>, %{{.*}} fastmath<reassoc> : vector<16xf32> into f32
// CHECK-COUNT-16: vector.fma %{{.*}} : vector<16xf32>
// CHECK: } else {
// CHECK: scf.parallel (%[[I:.*]], %{{.*}}) = (%c0, %c0) to (%[[T:.*]], %c4)
// CHECK: %[[HALF:.*]] = arith.divui %[[I]], %c2 : index
// CHECK: %[[REM:.*]] = arith.remui %[[I]], %c2{{.*}} : index
// CHECK: %[[ODD:.*]] = arith.cmpi ne, %[[REM]], %c0{{.*}} : index
// CHECK: %[[LASTTOK:.*]] = arith.subi %[[T]], %c1{{.*}} : index
// CHECK: %[[MIRROR:.*]] = arith.subi %[[LASTTOK]], %[[HALF]] : index
// CHECK: %[[TOK:.*]] = arith.select %[[ODD]], %[[MIRROR]], %[[HALF]] : index
// CHECK: memref.load %{{.*}}[%[[TOK]]] : memref<?xi64>
// CHECK: vector.reduction <maxnumf>, %{{.*}} fastmath<nnan> : vector<16xf32> into f32
//
// The output projection adds the residual; the LM head writes the logits.
// A prompt of more than 6 tokens takes the units in panels (here the whole
// projection's 64 pairs of rows, 32 KiB of weights, under the 256 KiB a
// panel may have, dealt out over the threads as the PANELS checks show),
// every block of 6 tokens over each panel's units, so the
// panel's rows stay in L2 and the block's inputs in L1; a decode step, a
// unit a panel. The AVX2 tile: 6 tokens x 2 rows, 12 accumulators of 8
// lanes (of 16 registers). A unit's two rows are u and u + 64 (the two
// halves of the weight: two streams a thread). The tokens past the blocks
// go in pairs (4 accumulators), then one alone; every loop takes the bf16
// rows 16 columns a step (the paired order).
// CHECK-LABEL: func.func private @decc_kernel_3(
// CHECK: %[[MANY:.*]] = arith.cmpi ugt, %{{.*}}, %c6 : index
// CHECK: %[[PANEL:.*]] = arith.select %[[MANY]], %{{.*}}, %c1{{[_0-9]*}} : index
// CHECK: scf.parallel
// CHECK: scf.for %{{.*}} = %{{.*}} to %{{.*}} step %c6
// CHECK: scf.for %[[UNIT:[a-z0-9]+]] =
// CHECK: arith.addi %[[UNIT]], %c64{{.*}} : index
// CHECK: scf.for {{.*}} -> (vector<8xf32>, vector<8xf32>, vector<8xf32>, vector<8xf32>, vector<8xf32>, vector<8xf32>, vector<8xf32>, vector<8xf32>, vector<8xf32>, vector<8xf32>, vector<8xf32>, vector<8xf32>)
// CHECK: scf.for %{{.*}} = %{{.*}} to %{{.*}} step %c2
// CHECK: scf.for
// CHECK: scf.for {{.*}} step %c16{{.*}} -> (vector<8xf32>, vector<8xf32>, vector<8xf32>, vector<8xf32>)
// CHECK: scf.for %{{.*}} = %{{.*}} to %{{.*}} step %c1
//
// With slice-input-bytes below a block's input rows (6 tokens x 128 f32 =
// 3 KB), a prompt goes over the columns in slices of 64: every block of
// tokens over one slice before the next, each slice's sums kept for every
// token and row of the panel in a buffer of the panel's, zeroed first; the
// last slice adds them to its own and runs the epilogue. A decode step
// keeps whole rows.
// SLICE-LABEL: func.func private @decc_kernel_3(
// SLICE: scf.if
// SLICE: scf.parallel
// SLICE: %[[PARTIALS:.*]] = memref.alloc(%{{.*}}) : memref<?xf32>
// SLICE: memref.store %{{.*}}, %[[PARTIALS]][%{{.*}}] : memref<?xf32>
// SLICE: scf.for %[[BEGIN:[a-z0-9]+]] = %{{.*}} to %c64{{.*}} step %c64
// SLICE: scf.for %{{.*}} = %{{.*}} to %{{.*}} step %c6
// SLICE: scf.for
// SLICE: vector.load %{{.*}}[%{{.*}}, %{{.*}}] : memref<?x128xf32>, vector<8xf32>
// SLICE: memref.load %[[PARTIALS]]
// SLICE: memref.store %{{.*}}, %[[PARTIALS]]
// SLICE: memref.load %[[PARTIALS]]
// SLICE: memref.store %{{.*}}, %{{.*}}[%{{.*}}, %{{.*}}] : memref<?x128xf32>
// SLICE: memref.dealloc %[[PARTIALS]] : memref<?xf32>
// SLICE: } else {
// SLICE-NOT: memref.alloc(
// SLICE-LABEL: func.func private @decc_kernel_4(
// CHECK-LABEL: func.func private @decc_kernel_4(
// CHECK-SAME: %[[L4:[a-z0-9]+]]: memref<?x512xf32>
// CHECK: memref.store %{{.*}}, %[[L4]]
//
// The entry point the runtime calls: weight arena, tokens, positions, K and
// V caches, RoPE state, logits of the last rows, image rows (as wide as the
// embedding; read only by an InternVL model's), the paged cache's block
// table, which the KV append and the attention read. It holds the weight views
// (fixed offsets of the arena), the RoPE angles of the call (a constant
// table of inverse frequencies), the buffers, and the kernels' calls.
// CHECK-LABEL: func.func @decc_forward(
// CHECK-SAME: %[[ARENA:[a-z0-9]+]]: memref<?xi8>, %[[TOK:[a-z0-9]+]]: memref<?xi64>, %[[POS:[a-z0-9]+]]: memref<?xi64>,
// CHECK-SAME: %[[K:[a-z0-9]+]]: memref<1x2x?x32xf32>, %[[V:[a-z0-9]+]]: memref<1x2x?x32xf32>, %{{.*}}: memref<?xi64>,
// CHECK-SAME: %[[LOGITS:[a-z0-9]+]]: memref<?x512xf32>, %{{.*}}: memref<?x128xf32>, %[[TABLE:[a-z0-9]+]]: memref<?x?xi32>) attributes {llvm.emit_c_interface}
// CHECK-DAG: memref.view %[[ARENA]][%{{.*}}][] : memref<?xi8> to memref<512x128xbf16>
// CHECK-DAG: memref.view %[[ARENA]][%{{.*}}][] : memref<?xi8> to memref<256x128xbf16>
// CHECK-DAG: memref.view %[[ARENA]][%{{.*}}][] : memref<?xi8> to memref<128xbf16>
// CHECK-DAG: memref.get_global @rope_inv_freq_{{[0-9]+}} : memref<16xf32>
// CHECK-DAG: math.cos
// CHECK-DAG: math.sin
// CHECK: call @decc_kernel_0(%[[TOK]],
// CHECK: call @decc_kernel_1({{.*}}%[[POS]], %[[TABLE]], %[[K]], %{{.*}}, %[[V]])
// CHECK: call @decc_kernel_2({{.*}}%[[TABLE]]
// CHECK: call @decc_kernel_3(
// CHECK: call @decc_kernel_4(%[[LOGITS]],
// CHECK: return
func.func @forward(%tokens: tensor<?xi64>, %pos: tensor<?xi64>, %c: !cache) -> tensor<?x512xf32> {
  %e = decoder.weight "embed.weight" : tensor<512x128xbf16>
  %h = decoder.embedding %tokens, %e : tensor<?xi64>, tensor<512x128xbf16> -> tensor<?x128xf32>
  %g = decoder.weight "norm.weight" : tensor<128xbf16>
  %w = decoder.weight "qkv.weight" : tensor<256x128xbf16>
  %q = decoder.fused_linear %h, %w norm(%g) append(%pos, %c) {norm = #decoder.norm<rms>, norm_epsilon = 1.0e-05 : f64, layer = 0 : i64, rope = #decoder.rope<kind = default, theta = 10000.0, rotary_dim = 32>} : (tensor<?x128xf32>, tensor<256x128xbf16>, tensor<128xbf16>, tensor<?xi64>, !cache) -> tensor<?x4x32xf32>
  %a = decoder.cached_attention %q, %pos, %c {layer = 0 : i64, config = #decoder.attention<num_heads = 4, num_kv_heads = 2, head_dim = 32, softmax_scale = 0.1767766952966369>} : tensor<?x4x32xf32>, tensor<?xi64>, !cache -> tensor<?x4x32xf32>
  %wo = decoder.weight "o.weight" : tensor<128x128xbf16>
  %r = decoder.fused_linear %a, %wo residual %h : (tensor<?x4x32xf32>, tensor<128x128xbf16>, tensor<?x128xf32>) -> tensor<?x128xf32>
  %l = decoder.lm_head %r, %e : tensor<?x128xf32>, tensor<512x128xbf16> -> tensor<?x512xf32>
  return %l : tensor<?x512xf32>
}

// -----

// Two layers of the same shapes: one kernel each for the projection and
// the attention, called once per layer with that layer's weights and its
// index into the cache.
!cache = !decoder.kv_cache<layers = 2, kv_heads = 1, head_dim = 16, element = f32>
// CHECK-LABEL: func.func private @decc_kernel_0(
// CHECK-LABEL: func.func private @decc_kernel_1(
// CHECK-LABEL: func.func private @decc_kernel_2(
// CHECK-LABEL: func.func private @decc_kernel_3(
// CHECK-LABEL: func.func private @decc_kernel_4(
// CHECK-LABEL: func.func @decc_forward(
// CHECK: %[[L1:[a-z0-9_]+]] = arith.constant 1 : index
// CHECK: %[[W1:[a-z0-9_]+]] = memref.view %{{.*}}[%{{.*}}][] : memref<?xi8> to memref<48x16xf32>
// CHECK: %[[L0:[a-z0-9_]+]] = arith.constant 0 : index
// CHECK: %[[W0:[a-z0-9_]+]] = memref.view %{{.*}}[%{{.*}}][] : memref<?xi8> to memref<48x16xf32>
// CHECK: call @decc_kernel_0(
// CHECK: call @decc_kernel_1(%{{.*}}, %{{.*}}, %[[W0]], {{.*}}, %[[L0]], %{{.*}})
// CHECK: call @decc_kernel_2({{.*}}, %[[L0]], %{{.*}}, %{{.*}})
// CHECK: call @decc_kernel_1(%{{.*}}, %{{.*}}, %[[W1]], {{.*}}, %[[L1]], %{{.*}})
// CHECK: call @decc_kernel_2({{.*}}, %[[L1]], %{{.*}}, %{{.*}})
// CHECK: call @decc_kernel_3(
// CHECK: call @decc_kernel_4(
// CHECK-NOT: decc_kernel_5
func.func @forward(%tokens: tensor<?xi64>, %pos: tensor<?xi64>, %c: !cache) -> tensor<?x64xf32> {
  %e = decoder.weight "embed.weight" : tensor<64x16xf32>
  %h = decoder.embedding %tokens, %e : tensor<?xi64>, tensor<64x16xf32> -> tensor<?x16xf32>
  %w0 = decoder.weight "layers.0.qkv.weight" : tensor<48x16xf32>
  %q0 = decoder.fused_linear %h, %w0 append(%pos, %c) {layer = 0 : i64} : (tensor<?x16xf32>, tensor<48x16xf32>, tensor<?xi64>, !cache) -> tensor<?x1x16xf32>
  %a0 = decoder.cached_attention %q0, %pos, %c {layer = 0 : i64, config = #decoder.attention<num_heads = 1, num_kv_heads = 1, head_dim = 16, softmax_scale = 0.25>} : tensor<?x1x16xf32>, tensor<?xi64>, !cache -> tensor<?x1x16xf32>
  %w1 = decoder.weight "layers.1.qkv.weight" : tensor<48x16xf32>
  %q1 = decoder.fused_linear %a0, %w1 append(%pos, %c) {layer = 1 : i64} : (tensor<?x1x16xf32>, tensor<48x16xf32>, tensor<?xi64>, !cache) -> tensor<?x1x16xf32>
  %a1 = decoder.cached_attention %q1, %pos, %c {layer = 1 : i64, config = #decoder.attention<num_heads = 1, num_kv_heads = 1, head_dim = 16, softmax_scale = 0.25>} : tensor<?x1x16xf32>, tensor<?xi64>, !cache -> tensor<?x1x16xf32>
  %wo = decoder.weight "o.weight" : tensor<16x16xf32>
  %o = decoder.fused_linear %a1, %wo : (tensor<?x1x16xf32>, tensor<16x16xf32>) -> tensor<?x16xf32>
  %l = decoder.lm_head %o, %e : tensor<?x16xf32>, tensor<64x16xf32> -> tensor<?x64xf32>
  return %l : tensor<?x64xf32>
}

// -----

// Unfused decoder ops (what decoder-opt leaves when a fusion does not
// apply), a bf16 KV cache, eager attention with ALiBi. Each op is a kernel;
// projections of the same shape share one (k and v here).
//
// RMSNorm: a token a parallel iteration, the sum of squares in vector
// chunks, then the row scaled.
// CHECK-LABEL: func.func private @decc_kernel_1(%{{.*}}: memref<?x128xf32>, %{{.*}}: memref<128xf32>, %{{.*}}: memref<?x128xf32>, %{{.*}}: index)
// CHECK: scf.parallel
// CHECK: vector.reduction <add>, %{{.*}} : vector<16xf32> into f32
// CHECK: math.rsqrt
// CHECK-LABEL: func.func private @decc_kernel_2(%{{.*}}: index, %{{.*}}: memref<?x128xf32>, %{{.*}}: memref<128x128xf32>, %{{.*}}: memref<?x128xf32>)
// CHECK-LABEL: func.func private @decc_kernel_3(%{{.*}}: index, %{{.*}}: memref<?x128xf32>, %{{.*}}: memref<64x128xf32>, %{{.*}}: memref<?x64xf32>)
//
// RoPE of q (4 heads) and of k (2 heads): pairs rotated by this call's
// cos / sin tables.
// CHECK-LABEL: func.func private @decc_kernel_4(%{{.*}}: memref<?x128xf32>, %{{.*}}: memref<?x128xf32>, %{{.*}}: memref<?x16xf32>, %{{.*}}: memref<?x16xf32>, %{{.*}}: index)
// CHECK: scf.parallel (%{{.*}}, %{{.*}}) = (%{{.*}}, %{{.*}}) to (%{{.*}}, %c4)
// CHECK: arith.subf
// CHECK-LABEL: func.func private @decc_kernel_5(%{{.*}}: memref<?x64xf32>, %{{.*}}: memref<?x64xf32>,
// CHECK: to (%{{.*}}, %c2)
//
// Eager attention: k and v appended to the bf16 cache (rounded: v a vector
// of features, k a feature at a time into its tile), then per (token,
// head) a tile of scores at a time with ALiBi's distance bias, those of
// the range materialized, their max, the exponents, and the weighted sum
// of the widened values.
// CHECK-LABEL: func.func private @decc_kernel_6(
// CHECK-SAME: memref<1x2x?x32xbf16>
// CHECK: arith.truncf %{{.*}} : vector<16xf32> to vector<16xbf16>
// CHECK: arith.truncf %{{.*}} : f32 to bf16
// CHECK: memref.store %{{.*}} : memref<1x2x?x32x16xbf16, strided<[?, ?, 512, 16, 1]>>
// CHECK: scf.parallel
// CHECK: vector.load {{.*}} : memref<1x2x?x32x16xbf16, strided<[?, ?, 512, 16, 1]>>, vector<16xbf16>
// CHECK: arith.extf %{{.*}} : vector<16xbf16> to vector<16xf32>
// CHECK: arith.sitofp
// CHECK: arith.subf %{{.*}} : vector<16xf32>
// CHECK: scf.if
// CHECK: memref.store %{{.*}} : memref<?x4x?xf32>
// CHECK: vector.reduction <maxnumf>
// CHECK: math.exp
// CHECK: arith.extf %{{.*}} : vector<16xbf16> to vector<16xf32>
//
// The residual add, then LayerNorm (mean, variance, the row centred,
// scaled and shifted).
// CHECK-LABEL: func.func private @decc_kernel_7(
// CHECK: arith.addf
// CHECK-LABEL: func.func private @decc_kernel_8(%{{.*}}: memref<?x128xf32>, %{{.*}}: memref<128xf32>, %{{.*}}: memref<128xf32>, %{{.*}}: memref<?x128xf32>, %{{.*}}: index)
// CHECK: math.rsqrt
// CHECK: arith.subf %{{.*}} : vector<16xf32>
//
// gate and up as one projection with two results, silu(gate) * up, GELU
// (tanh), the down projection, the LM head.
// CHECK-LABEL: func.func private @decc_kernel_9(%{{.*}}: index, %{{.*}}: memref<?x128xf32>, %{{.*}}: memref<512x128xf32>, %{{.*}}: memref<?x256xf32>, %{{.*}}: memref<?x256xf32>)
// CHECK-LABEL: func.func private @decc_kernel_10(
// CHECK: arith.negf %{{.*}} : vector<16xf32>
// CHECK: math.exp %{{.*}} : vector<16xf32>
// CHECK: arith.divf
// CHECK-LABEL: func.func private @decc_kernel_11(
// CHECK: math.tanh %{{.*}} : vector<16xf32>
// CHECK-LABEL: func.func private @decc_kernel_12(
// CHECK-LABEL: func.func private @decc_kernel_13(
// CHECK-LABEL: func.func @decc_forward(
// CHECK: call @decc_kernel_0(
// CHECK: call @decc_kernel_1(
// CHECK: call @decc_kernel_2(
// CHECK: call @decc_kernel_3(
// CHECK: call @decc_kernel_3(
// CHECK: call @decc_kernel_4(
// CHECK: call @decc_kernel_5(
// CHECK: call @decc_kernel_6(
// CHECK: call @decc_kernel_2(
// CHECK: call @decc_kernel_7(
// CHECK: call @decc_kernel_8(
// CHECK: call @decc_kernel_9(
// CHECK: call @decc_kernel_10(
// CHECK: call @decc_kernel_11(
// CHECK: call @decc_kernel_12(
// CHECK: call @decc_kernel_13(
// CHECK-NOT: call
// CHECK: return
!cache = !decoder.kv_cache<layers = 1, kv_heads = 2, head_dim = 32, element = bf16>
func.func @forward(%tokens: tensor<?xi64>, %pos: tensor<?xi64>, %c: !cache) -> tensor<?x256xf32> {
  %e = decoder.weight "embed.weight" : tensor<256x128xf32>
  %h = decoder.embedding %tokens, %e : tensor<?xi64>, tensor<256x128xf32> -> tensor<?x128xf32>
  %g = decoder.weight "norm.weight" : tensor<128xf32>
  %n = decoder.rms_norm %h, %g {epsilon = 1.0e-05 : f64} : tensor<?x128xf32>, tensor<128xf32>
  %wq = decoder.weight "q.weight" : tensor<128x128xf32>
  %q = decoder.linear %n, %wq : tensor<?x128xf32>, tensor<128x128xf32> -> tensor<?x4x32xf32>
  %wk = decoder.weight "k.weight" : tensor<64x128xf32>
  %k = decoder.linear %n, %wk : tensor<?x128xf32>, tensor<64x128xf32> -> tensor<?x2x32xf32>
  %wv = decoder.weight "v.weight" : tensor<64x128xf32>
  %v = decoder.linear %n, %wv : tensor<?x128xf32>, tensor<64x128xf32> -> tensor<?x2x32xf32>
  %qr = decoder.rope %q, %pos {rope = #decoder.rope<kind = default, theta = 10000.0, rotary_dim = 32>} : tensor<?x4x32xf32>, tensor<?xi64>
  %kr = decoder.rope %k, %pos {rope = #decoder.rope<kind = default, theta = 10000.0, rotary_dim = 32>} : tensor<?x2x32xf32>, tensor<?xi64>
  %a = decoder.attention %qr, %kr, %v, %pos, %c {layer = 0 : i64, config = #decoder.attention<num_heads = 4, num_kv_heads = 2, head_dim = 32, softmax_scale = 0.1767766952966369, alibi_bias_max = 8.0, backend = eager>} : tensor<?x4x32xf32>, tensor<?x2x32xf32>, tensor<?x2x32xf32>, tensor<?xi64>, !cache -> tensor<?x4x32xf32>
  %wo = decoder.weight "o.weight" : tensor<128x128xf32>
  %o = decoder.linear %a, %wo : tensor<?x4x32xf32>, tensor<128x128xf32> -> tensor<?x128xf32>
  %r = decoder.add %h, %o : tensor<?x128xf32>
  %g2 = decoder.weight "norm2.weight" : tensor<128xf32>
  %b2 = decoder.weight "norm2.bias" : tensor<128xf32>
  %n2 = decoder.layer_norm %r, %g2, %b2 {epsilon = 1.0e-05 : f64} : tensor<?x128xf32>, tensor<128xf32>, tensor<128xf32>
  %wgu = decoder.weight "gate_up.weight" : tensor<512x128xf32>
  %gate, %up = decoder.linear %n2, %wgu : tensor<?x128xf32>, tensor<512x128xf32> -> tensor<?x256xf32>, tensor<?x256xf32>
  %s = decoder.swiglu %gate, %up : tensor<?x256xf32>
  %gl = decoder.gelu %s {approximate = #decoder.gelu_approximation<tanh>} : tensor<?x256xf32>
  %wd = decoder.weight "down.weight" : tensor<128x256xf32>
  %d = decoder.linear %gl, %wd : tensor<?x256xf32>, tensor<128x256xf32> -> tensor<?x128xf32>
  %l = decoder.lm_head %d, %e : tensor<?x128xf32>, tensor<256x128xf32> -> tensor<?x256xf32>
  return %l : tensor<?x256xf32>
}

// -----

// A vision encoder beside the language model: a second entry point,
// decc_vision(arena, pixels, out), its weights in the same arena (one
// manifest, with the encoder's shape). Its rows are tiles x 5 (the class
// token and 4 patches of 14 pixels) until the pixel shuffle, tiles x 1
// after; the shuffle folds the 2 x 2 grid into one row of 4 x 8 features.
!cache = !decoder.kv_cache<layers = 1, kv_heads = 1, head_dim = 8, element = f32>
// CHECK: vision = {channels = 3 : i64, hidden = 16 : i64, image_size = 28 : i64, max_tiles = 1 : i64, min_tiles = 1 : i64, thumbnail = false, tokens_per_tile = 1 : i64}
// CHECK-LABEL: func.func @decc_vision(
// CHECK-SAME: %[[ARENA:[a-z0-9]+]]: memref<?xi8>, %[[PIXELS:[a-z0-9]+]]: memref<?x3x28x28xf32>, %[[OUT:[a-z0-9]+]]: memref<?x16xf32>) attributes {llvm.emit_c_interface}
// CHECK: %[[TILES:.*]] = memref.dim %[[PIXELS]], %{{.*}} : memref<?x3x28x28xf32>
// CHECK: %[[FIVE:.*]] = arith.constant 5 : index
// CHECK: arith.muli %[[TILES]], %[[FIVE]] : index
// CHECK: memref.view %[[ARENA]]{{.*}} to memref<8x3x14x14xf32>
// CHECK: %[[ONE:.*]] = arith.constant 1 : index
// CHECK: arith.muli %[[TILES]], %[[ONE]] : index
// CHECK: return
func.func @forward(%tokens: tensor<?xi64>, %pos: tensor<?xi64>, %c: !cache) -> tensor<?x64xf32> {
  %e = decoder.weight "embed.weight" : tensor<64x16xf32>
  %h = decoder.embedding %tokens, %e : tensor<?xi64>, tensor<64x16xf32> -> tensor<?x16xf32>
  %l = decoder.lm_head %h, %e : tensor<?x16xf32>, tensor<64x16xf32> -> tensor<?x64xf32>
  return %l : tensor<?x64xf32>
}
func.func @vision(%pixels: tensor<?x3x28x28xf32>) -> tensor<?x16xf32> {
  %w = decoder.weight "vision_model.embeddings.patch_embedding.weight" : tensor<8x3x14x14xf32>
  %b = decoder.weight "vision_model.embeddings.patch_embedding.bias" : tensor<8xf32>
  %cls = decoder.weight "vision_model.embeddings.class_embedding" : tensor<1x1x8xf32>
  %pos = decoder.weight "vision_model.embeddings.position_embedding" : tensor<1x5x8xf32>
  %x = decoder.patch_embedding %pixels, %w, %b, %cls, %pos : tensor<?x3x28x28xf32>, tensor<8x3x14x14xf32>, tensor<8xf32>, tensor<1x1x8xf32>, tensor<1x5x8xf32> -> tensor<?x8xf32>
  %wqkv = decoder.weight "qkv.weight" : tensor<24x8xf32>
  %q, %k, %v = decoder.linear %x, %wqkv : tensor<?x8xf32>, tensor<24x8xf32> -> tensor<?x2x4xf32>, tensor<?x2x4xf32>, tensor<?x2x4xf32>
  %a = decoder.encoder_attention %q, %k, %v {sequence = 5 : i64, softmax_scale = 0.5 : f64} : tensor<?x2x4xf32>
  %wo = decoder.weight "proj.weight" : tensor<8x8xf32>
  %o = decoder.linear %a, %wo : tensor<?x2x4xf32>, tensor<8x8xf32> -> tensor<?x8xf32>
  %ls = decoder.weight "ls1" : tensor<8xf32>
  %s = decoder.layer_scale %o, %ls : tensor<?x8xf32>, tensor<8xf32>
  %r = decoder.add %x, %s : tensor<?x8xf32>
  %p = decoder.pixel_shuffle %r {sequence = 5 : i64, skip = 1 : i64, ratio = 0.5 : f64} : tensor<?x8xf32> -> tensor<?x32xf32>
  %wm = decoder.weight "mlp1.1.weight" : tensor<16x32xf32>
  %m = decoder.linear %p, %wm : tensor<?x32xf32>, tensor<16x32xf32> -> tensor<?x16xf32>
  return %m : tensor<?x16xf32>
}

// -----

// Tensor parallelism's collectives become calls of the runtime's
// (contract::kAllReduceFunction, kAllGatherFunction) with the buffers'
// addresses: the all-reduce over tokens x 16 floats; the LM head's share
// of the vocabulary computed for the caller's rows only (dim(%logits, 0),
// as a whole head is) and gathered into %logits. The manifest keeps each
// shard's ranges.
!cache = !decoder.kv_cache<layers = 1, kv_heads = 1, head_dim = 8, element = f32>
// CHECK: parts = [{shape = [32, 16], shard = {dim = 0 : i64, ranges = [0, 32, 32, 64]}, tensor = "head.weight"}]
// CHECK-LABEL: func.func private @decc_kernel_{{[0-9]+}}(%{{.*}}: index, %{{.*}}: memref<?x16xf32>, %{{.*}}: memref<?x16xf32>)
// CHECK: %[[N:.*]] = arith.muli %{{.*}}, %c16 : index
// CHECK: %[[COUNT:.*]] = arith.index_cast %[[N]] : index to i64
// CHECK: memref.extract_aligned_pointer_as_index %arg1
// CHECK: memref.extract_aligned_pointer_as_index %arg2
// CHECK: call @decc_all_reduce(%{{.*}}, %{{.*}}, %[[COUNT]]) : (i64, i64, i64) -> ()
// CHECK-LABEL: func.func private @decc_kernel_{{[0-9]+}}(%{{.*}}: memref<?x32xf32>, %{{.*}}: memref<?x64xf32>)
// CHECK: %[[ROWS:.*]] = memref.dim %arg0
// CHECK: %[[R:.*]] = arith.index_cast %[[ROWS]] : index to i64
// CHECK: %[[COLS:.*]] = arith.constant 32 : i64
// CHECK: call @decc_all_gather(%{{.*}}, %{{.*}}, %[[R]], %[[COLS]]) : (i64, i64, i64, i64) -> ()
// CHECK-LABEL: func.func @decc_forward(
// CHECK-SAME: %[[LOGITS:[a-z0-9]+]]: memref<?x64xf32>
// CHECK: %[[CALLER:.*]] = memref.dim %[[LOGITS]], %{{.*}} : memref<?x64xf32>
// CHECK: memref.alloc(%[[CALLER]]) {{.*}} : memref<?x32xf32>
// CHECK: func.func private @decc_all_reduce(i64, i64, i64)
// CHECK: func.func private @decc_all_gather(i64, i64, i64, i64)
func.func @forward(%tokens: tensor<?xi64>, %pos: tensor<?xi64>, %c: !cache) -> tensor<?x64xf32> {
  %e = decoder.weight "embed.weight" : tensor<64x16xf32>
  %h = decoder.embedding %tokens, %e : tensor<?xi64>, tensor<64x16xf32> -> tensor<?x16xf32>
  %r = decoder.all_reduce %h {ranks = 2 : i64} : tensor<?x16xf32>
  %w = decoder.weight "head.weight" {shard_dim = 0 : i64, shard_ranges = array<i64: 0, 32, 32, 64>} : tensor<32x16xf32>
  %l = decoder.lm_head %r, %w : tensor<?x16xf32>, tensor<32x16xf32> -> tensor<?x32xf32>
  %g = decoder.all_gather %l {ranks = 2 : i64} : tensor<?x32xf32> -> tensor<?x64xf32>
  return %g : tensor<?x64xf32>
}

// -----

// A tensor-parallel rank's 2 ALiBi heads of the model's 4: the slopes of
// all 4, viewed from the rank (decc_rank, called once a forward call) x 2.
!cache = !decoder.kv_cache<layers = 1, kv_heads = 2, head_dim = 8, element = f32>
// CHECK: memref.global "private" constant @alibi_slopes_{{[0-9]+}} : memref<4xf32> = dense<[2.500000e-01, 6.250000e-02, 1.562500e-02, 3.906250e-03]>
// CHECK-LABEL: func.func @decc_forward(
// CHECK: %[[TABLE:.*]] = memref.get_global @alibi_slopes_{{[0-9]+}} : memref<4xf32>
// CHECK: %[[RANK:.*]] = call @decc_rank() : () -> i64
// CHECK: %[[R:.*]] = arith.index_cast %[[RANK]] : i64 to index
// CHECK: %[[FIRST:.*]] = arith.muli %[[R]], %{{.*}} : index
// CHECK: memref.subview %[[TABLE]][%[[FIRST]]] [2] [1] : memref<4xf32> to memref<2xf32, strided<[1], offset: ?>>
// CHECK-NOT: call @decc_rank
// CHECK: func.func private @decc_rank() -> i64
func.func @forward(%tokens: tensor<?xi64>, %pos: tensor<?xi64>, %c: !cache) -> tensor<?x64xf32> {
  %e = decoder.weight "embed.weight" : tensor<64x16xf32>
  %h = decoder.embedding %tokens, %e : tensor<?xi64>, tensor<64x16xf32> -> tensor<?x16xf32>
  %w = decoder.weight "qkv.weight" {shard_dim = 0 : i64, shard_ranges = array<i64: 0, 16, 32, 48, 64, 80, 16, 32, 48, 64, 80, 96>} : tensor<48x16xf32>
  %q, %k, %v = decoder.linear %h, %w : tensor<?x16xf32>, tensor<48x16xf32> -> tensor<?x2x8xf32>, tensor<?x2x8xf32>, tensor<?x2x8xf32>
  %a = decoder.attention %q, %k, %v, %pos, %c {layer = 0 : i64, config = #decoder.attention<num_heads = 2, num_kv_heads = 2, head_dim = 8, softmax_scale = 0.35355339059327373, alibi_bias_max = 8.0, alibi_heads = 4>} : tensor<?x2x8xf32>, tensor<?x2x8xf32>, tensor<?x2x8xf32>, tensor<?xi64>, !cache -> tensor<?x2x8xf32>
  %wo = decoder.weight "o.weight" : tensor<16x16xf32>
  %o = decoder.linear %a, %wo : tensor<?x2x8xf32>, tensor<16x16xf32> -> tensor<?x16xf32>
  %l = decoder.lm_head %o, %e : tensor<?x16xf32>, tensor<64x16xf32> -> tensor<?x64xf32>
  return %l : tensor<?x64xf32>
}

// -----

// int4 (zero points, groups of 128): each token's sums of x over the groups
// are taken once before the dot products; a group's loop over its columns
// carries only the dot products' accumulators (a decode step's unit: 2 rows
// x low and high nibbles), no sum of x.
!cache = !decoder.kv_cache<layers = 1, kv_heads = 1, head_dim = 8, element = f32>
// CHECK-LABEL: func.func private @decc_kernel_1(
// CHECK: %[[SUMS:.*]] = memref.alloc(%{{.*}}) {{.*}} : memref<?x2xf32>
// (Its decode rows are prefetched, as quantized rows are: the end of the
// first case's PREFETCH-NOT.)
// PREFETCH-LABEL: memref.alloc(%{{.*}}) {{.*}} : memref<?x2xf32>
// PREFETCH: memref.prefetch
// CHECK: memref.store %{{.*}}, %[[SUMS]][%{{.*}}, %{{.*}}] : memref<?x2xf32>
// CHECK: memref.load %[[SUMS]]
// CHECK: to %c128{{[_0-9]*}} step %c16{{[_0-9]*}} iter_args({{[^)]*}}) -> (vector<8xf32>, vector<8xf32>, vector<8xf32>, vector<8xf32>) {
// CHECK: memref.dealloc %[[SUMS]] : memref<?x2xf32>
// CHECK-LABEL: func.func private @decc_kernel_2(
// With int16-dots each token's x is rounded to int16 once (a scale a
// group), the sums the offsets multiply are the rounded x's, and a group's
// columns go in blocks of 32 (AVX2) or 64 (AVX-512): 16 or 32 bytes of a
// row widened to i16 words, their nibbles multiplied with x's words in
// pairs summed into i32 (vpmaddwd), a group's i32 sums converted once.
// INT16-LABEL: func.func private @decc_kernel_1(
// INT16: %[[SUMS:.*]] = memref.alloc(%{{.*}}) {{.*}} : memref<?x2xf32>
// INT16: %[[X16:.*]] = memref.alloc(%{{.*}}) {{.*}} : memref<?x256xi16>
// INT16: %[[XS:.*]] = memref.alloc(%{{.*}}) {{.*}} : memref<?x2xf32>
// INT16: scf.parallel
// INT16: vector.reduction <maximumf>
// INT16: memref.store %{{.*}}, %[[XS]]
// INT16: math.roundeven %{{.*}} : vector<8xf32>
// INT16: %[[Q:.*]] = arith.fptosi %{{.*}} : vector<8xf32> to vector<8xi16>
// INT16: vector.store %[[Q]], %[[X16]]
// INT16: memref.store %{{.*}}, %[[SUMS]]
// INT16: to %c128{{[_0-9]*}} step %c32{{[_0-9]*}} iter_args({{[^)]*}}) -> (vector<8xi32>
// INT16: vector.load %{{.*}} : memref<256x128xi8>, vector<16xi8>
// INT16: arith.extui %{{.*}} : vector<16xi8> to vector<16xi16>
// INT16: vector.load %[[X16]]{{.*}} : memref<?x256xi16>, vector<16xi16>
// INT16: llvm.call_intrinsic "llvm.x86.avx2.pmadd.wd"
// INT16: arith.sitofp %{{.*}} : vector<8xi32> to vector<8xf32>
// INT16: memref.dealloc %[[X16]]
// INT16-512-LABEL: func.func private @decc_kernel_1(
// INT16-512: memref.alloc(%{{.*}}) {{.*}} : memref<?x256xi16>
// INT16-512: to %c128{{[_0-9]*}} step %c64{{[_0-9]*}} iter_args({{[^)]*}}) -> (vector<16xi32>
// INT16-512: arith.extui %{{.*}} : vector<32xi8> to vector<32xi16>
// INT16-512: llvm.call_intrinsic "llvm.x86.avx512.pmaddw.d.512"{{.*}} -> vector<16xi32>
func.func @forward(%tokens: tensor<?xi64>, %pos: tensor<?xi64>, %c: !cache) -> tensor<?x64xf32> {
  %e = decoder.weight "embed.weight" : tensor<64x256xf32>
  %h = decoder.embedding %tokens, %e : tensor<?xi64>, tensor<64x256xf32> -> tensor<?x256xf32>
  %w = decoder.weight "up.weight" : tensor<256x256xi4, #decoder.quantized<bits = 4, group_size = 128>>
  %u = decoder.fused_linear %h, %w : (tensor<?x256xf32>, tensor<256x256xi4, #decoder.quantized<bits = 4, group_size = 128>>) -> tensor<?x256xf32>
  %l = decoder.fused_linear %u, %e : (tensor<?x256xf32>, tensor<64x256xf32>) -> tensor<?x64xf32>
  return %l : tensor<?x64xf32>
}
