// RUN: decc-opt %s --decoder-tensor-parallel=ranks=2 --split-input-file | FileCheck %s
// RUN: decc-opt %s --decoder-tensor-parallel=ranks=4 --split-input-file | FileCheck %s --check-prefix=FOUR

// A layer of separate q/k/v projections (4 heads, 2 KV heads of 16): each
// rank's rows are its heads' (q: 2 heads, k and v: 1), RoPE and attention
// take the per-rank shapes, O takes the matching columns and its partial
// products are summed before the residual add; the cache holds a rank's KV
// heads.
// CHECK-LABEL: func.func @layer
// CHECK-SAME: !decoder.kv_cache<layers = 1, kv_heads = 1, head_dim = 16, element = f32>
// CHECK: %[[WQ:.*]] = decoder.weight "q.weight" {shard_dim = 0 : i64, shard_ranges = array<i64: 0, 32, 32, 64>} : tensor<32x64xf32>
// CHECK: decoder.linear %arg0, %[[WQ]] : tensor<?x64xf32>, tensor<32x64xf32> -> tensor<?x2x16xf32>
// CHECK: decoder.weight "k.weight" {shard_dim = 0 : i64, shard_ranges = array<i64: 0, 16, 16, 32>} : tensor<16x64xf32>
// CHECK: decoder.weight "v.weight" {shard_dim = 0 : i64, shard_ranges = array<i64: 0, 16, 16, 32>} : tensor<16x64xf32>
// CHECK: decoder.rope {{.*}} : tensor<?x2x16xf32>, tensor<?xi64>
// CHECK: decoder.rope {{.*}} : tensor<?x1x16xf32>, tensor<?xi64>
// CHECK: decoder.attention {{.*}}num_heads = 2, num_kv_heads = 1, head_dim = 16{{.*}} -> tensor<?x2x16xf32>
// CHECK: %[[WO:.*]] = decoder.weight "o.weight" {shard_dim = 1 : i64, shard_ranges = array<i64: 0, 32, 32, 64>} : tensor<64x32xf32>
// CHECK: %[[O:.*]] = decoder.linear %{{.*}}, %[[WO]] : tensor<?x2x16xf32>, tensor<64x32xf32> -> tensor<?x64xf32>
// CHECK: %[[R:.*]] = decoder.all_reduce %[[O]] {ranks = 2 : i64} : tensor<?x64xf32>
// CHECK: decoder.add %arg0, %[[R]]
// With 4 ranks the 2 KV heads are not split: ranks 0 and 1 keep head 0,
// ranks 2 and 3 head 1.
// FOUR-LABEL: func.func @layer
// FOUR: decoder.weight "q.weight" {shard_dim = 0 : i64, shard_ranges = array<i64: 0, 16, 16, 32, 32, 48, 48, 64>} : tensor<16x64xf32>
// FOUR: decoder.weight "k.weight" {shard_dim = 0 : i64, shard_ranges = array<i64: 0, 16, 0, 16, 16, 32, 16, 32>} : tensor<16x64xf32>
// FOUR: decoder.attention {{.*}}num_heads = 1, num_kv_heads = 1
func.func @layer(%x: tensor<?x64xf32>, %pos: tensor<?xi64>,
                 %cache: !decoder.kv_cache<layers = 1, kv_heads = 2, head_dim = 16, element = f32>) -> tensor<?x64xf32> {
  %wq = decoder.weight "q.weight" : tensor<64x64xf32>
  %q = decoder.linear %x, %wq : tensor<?x64xf32>, tensor<64x64xf32> -> tensor<?x4x16xf32>
  %wk = decoder.weight "k.weight" : tensor<32x64xf32>
  %k = decoder.linear %x, %wk : tensor<?x64xf32>, tensor<32x64xf32> -> tensor<?x2x16xf32>
  %wv = decoder.weight "v.weight" : tensor<32x64xf32>
  %v = decoder.linear %x, %wv : tensor<?x64xf32>, tensor<32x64xf32> -> tensor<?x2x16xf32>
  %qr = decoder.rope %q, %pos {rope = #decoder.rope<kind = default, theta = 10000.0, rotary_dim = 16>} : tensor<?x4x16xf32>, tensor<?xi64>
  %kr = decoder.rope %k, %pos {rope = #decoder.rope<kind = default, theta = 10000.0, rotary_dim = 16>} : tensor<?x2x16xf32>, tensor<?xi64>
  %a = decoder.attention %qr, %kr, %v, %pos, %cache {layer = 0 : i64,
         config = #decoder.attention<num_heads = 4, num_kv_heads = 2, head_dim = 16, softmax_scale = 0.25>}
      : tensor<?x4x16xf32>, tensor<?x2x16xf32>, tensor<?x2x16xf32>, tensor<?xi64>,
        !decoder.kv_cache<layers = 1, kv_heads = 2, head_dim = 16, element = f32> -> tensor<?x4x16xf32>
  %wo = decoder.weight "o.weight" : tensor<64x64xf32>
  %o = decoder.linear %a, %wo : tensor<?x4x16xf32>, tensor<64x64xf32> -> tensor<?x64xf32>
  %r = decoder.add %x, %o : tensor<?x64xf32>
  return %r : tensor<?x64xf32>
}

// -----

// InternLM2's wqkv, rows grouped per KV head (2 query heads, its key, its
// value): 2 ranks take a group each; 4 ranks a query head each with its
// group's key and value.
// CHECK-LABEL: func.func @kv_grouped
// CHECK: decoder.weight "wqkv.weight" {shard_dim = 0 : i64, shard_ranges = array<i64: 0, 64, 64, 128>} : tensor<64x64xf32>
// CHECK: decoder.linear {{.*}}packing = #decoder.packing<kv_grouped>{{.*}} -> tensor<?x2x16xf32>, tensor<?x1x16xf32>, tensor<?x1x16xf32>
// FOUR-LABEL: func.func @kv_grouped
// FOUR: decoder.weight "wqkv.weight" {shard_dim = 0 : i64, shard_ranges = array<i64: 0, 16, 32, 64, 16, 32, 32, 64, 64, 80, 96, 128, 80, 96, 96, 128>} : tensor<48x64xf32>
// FOUR: -> tensor<?x1x16xf32>, tensor<?x1x16xf32>, tensor<?x1x16xf32>
func.func @kv_grouped(%x: tensor<?x64xf32>, %pos: tensor<?xi64>,
                      %cache: !decoder.kv_cache<layers = 1, kv_heads = 2, head_dim = 16, element = f32>) -> tensor<?x64xf32> {
  %w = decoder.weight "wqkv.weight" : tensor<128x64xf32>
  %q, %k, %v = decoder.linear %x, %w {packing = #decoder.packing<kv_grouped>}
      : tensor<?x64xf32>, tensor<128x64xf32> -> tensor<?x4x16xf32>, tensor<?x2x16xf32>, tensor<?x2x16xf32>
  %a = decoder.attention %q, %k, %v, %pos, %cache {layer = 0 : i64,
         config = #decoder.attention<num_heads = 4, num_kv_heads = 2, head_dim = 16, softmax_scale = 0.25>}
      : tensor<?x4x16xf32>, tensor<?x2x16xf32>, tensor<?x2x16xf32>, tensor<?xi64>,
        !decoder.kv_cache<layers = 1, kv_heads = 2, head_dim = 16, element = f32> -> tensor<?x4x16xf32>
  %wo = decoder.weight "wo.weight" : tensor<64x64xf32>
  %o = decoder.linear %a, %wo : tensor<?x4x16xf32>, tensor<64x64xf32> -> tensor<?x64xf32>
  return %o : tensor<?x64xf32>
}

// -----

// Phi-3's packed qkv_proj and gate_up_proj: a rank's rows come from each
// part of the packing.
// CHECK-LABEL: func.func @packed
// CHECK: decoder.weight "qkv.weight" {shard_dim = 0 : i64, shard_ranges = array<i64: 0, 32, 64, 96, 128, 160, 32, 64, 96, 128, 160, 192>} : tensor<96x64xf32>
// CHECK: decoder.weight "gate_up.weight" {shard_dim = 0 : i64, shard_ranges = array<i64: 0, 64, 128, 192, 64, 128, 192, 256>} : tensor<128x64xf32>
// CHECK: decoder.swiglu {{.*}} : tensor<?x64xf32>
// CHECK: decoder.weight "down.weight" {shard_dim = 1 : i64, shard_ranges = array<i64: 0, 64, 64, 128>} : tensor<64x64xf32>
// CHECK: decoder.all_reduce
func.func @packed(%x: tensor<?x64xf32>, %pos: tensor<?xi64>,
                  %cache: !decoder.kv_cache<layers = 1, kv_heads = 4, head_dim = 16, element = f32>) -> tensor<?x64xf32> {
  %w = decoder.weight "qkv.weight" : tensor<192x64xf32>
  %q, %k, %v = decoder.linear %x, %w : tensor<?x64xf32>, tensor<192x64xf32> -> tensor<?x4x16xf32>, tensor<?x4x16xf32>, tensor<?x4x16xf32>
  %a = decoder.attention %q, %k, %v, %pos, %cache {layer = 0 : i64,
         config = #decoder.attention<num_heads = 4, num_kv_heads = 4, head_dim = 16, softmax_scale = 0.25>}
      : tensor<?x4x16xf32>, tensor<?x4x16xf32>, tensor<?x4x16xf32>, tensor<?xi64>,
        !decoder.kv_cache<layers = 1, kv_heads = 4, head_dim = 16, element = f32> -> tensor<?x4x16xf32>
  %wo = decoder.weight "o.weight" : tensor<64x64xf32>
  %o = decoder.linear %a, %wo : tensor<?x4x16xf32>, tensor<64x64xf32> -> tensor<?x64xf32>
  %wgu = decoder.weight "gate_up.weight" : tensor<256x64xf32>
  %gate, %up = decoder.linear %o, %wgu : tensor<?x64xf32>, tensor<256x64xf32> -> tensor<?x128xf32>, tensor<?x128xf32>
  %act = decoder.swiglu %gate, %up : tensor<?x128xf32>
  %wd = decoder.weight "down.weight" : tensor<64x128xf32>
  %d = decoder.linear %act, %wd : tensor<?x128xf32>, tensor<64x128xf32> -> tensor<?x64xf32>
  return %d : tensor<?x64xf32>
}

// -----

// The LM head over the vocabulary, its logits gathered; tied to the
// embedding, whose table stays whole.
// CHECK-LABEL: func.func @head
// CHECK: %[[HEAD:.*]] = decoder.weight "embed.weight" {shard_dim = 0 : i64, shard_ranges = array<i64: 0, 64, 64, 128>} : tensor<64x64xf32>
// CHECK: %[[TABLE:.*]] = decoder.weight "embed.weight" : tensor<128x64xf32>
// CHECK: decoder.embedding %arg0, %[[TABLE]]
// CHECK: %[[L:.*]] = decoder.lm_head %{{.*}}, %[[HEAD]] : tensor<?x64xf32>, tensor<64x64xf32> -> tensor<?x64xf32>
// CHECK: %[[G:.*]] = decoder.all_gather %[[L]] {ranks = 2 : i64} : tensor<?x64xf32> -> tensor<?x128xf32>
// CHECK: return %[[G]]
func.func @head(%ids: tensor<?xi64>) -> tensor<?x128xf32> {
  %t = decoder.weight "embed.weight" : tensor<128x64xf32>
  %h = decoder.embedding %ids, %t : tensor<?xi64>, tensor<128x64xf32> -> tensor<?x64xf32>
  %l = decoder.lm_head %h, %t : tensor<?x64xf32>, tensor<128x64xf32> -> tensor<?x128xf32>
  return %l : tensor<?x128xf32>
}

// -----

// A vocabulary the ranks do not divide: every rank computes the whole head.
// CHECK-LABEL: func.func @uneven_head
// CHECK: decoder.weight "head.weight" : tensor<129x64xf32>
// CHECK-NOT: decoder.all_gather
func.func @uneven_head(%h: tensor<?x64xf32>) -> tensor<?x129xf32> {
  %w = decoder.weight "head.weight" : tensor<129x64xf32>
  %l = decoder.lm_head %h, %w : tensor<?x64xf32>, tensor<129x64xf32> -> tensor<?x129xf32>
  return %l : tensor<?x129xf32>
}

// -----

// Quantized weights: rows split freely, columns on their groups (16; 4 ranks
// take 16 columns each).
// CHECK-LABEL: func.func @quantized
// CHECK: decoder.weight "up.weight" {shard_dim = 0 : i64, shard_ranges = array<i64: 0, 32, 32, 64>} : tensor<32x64xi4, #decoder.quantized<bits = 4, group_size = 16>>
// CHECK: decoder.weight "down.weight" {shard_dim = 1 : i64, shard_ranges = array<i64: 0, 32, 32, 64>} : tensor<64x32xi4, #decoder.quantized<bits = 4, group_size = 16>>
func.func @quantized(%x: tensor<?x64xf32>) -> tensor<?x64xf32> {
  %wu = decoder.weight "up.weight" : tensor<64x64xi4, #decoder.quantized<bits = 4, group_size = 16>>
  %u = decoder.linear %x, %wu : tensor<?x64xf32>, tensor<64x64xi4, #decoder.quantized<bits = 4, group_size = 16>> -> tensor<?x64xf32>
  %a = decoder.gelu %u : tensor<?x64xf32>
  %wd = decoder.weight "down.weight" : tensor<64x64xi4, #decoder.quantized<bits = 4, group_size = 16>>
  %d = decoder.linear %a, %wd : tensor<?x64xf32>, tensor<64x64xi4, #decoder.quantized<bits = 4, group_size = 16>> -> tensor<?x64xf32>
  return %d : tensor<?x64xf32>
}
