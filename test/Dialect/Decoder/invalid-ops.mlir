// RUN: decc-opt %s -split-input-file -verify-diagnostics

func.func @weight_dynamic() {
  // expected-error @+1 {{'decoder.weight' op weight 'w' must have a static shape, got 'tensor<?x4xf32>'}}
  %w = decoder.weight "w" : tensor<?x4xf32>
  return
}

// -----

func.func @weight_unnamed() {
  // expected-error @+1 {{'decoder.weight' op needs a checkpoint tensor name}}
  %w = decoder.weight "" : tensor<4xf32>
  return
}

// -----

// An integer weight needs the #decoder.quantized encoding that says what its
// integers mean.
func.func @weight_int() {
  // expected-error @+1 {{'decoder.weight' op result #0 must be float tensor or quantized weight tensor, but got 'tensor<4xi8>'}}
  %w = decoder.weight "w" : tensor<4xi8>
  return
}

// -----

// The elements hold as many bits as the encoding says.
func.func @weight_bits() {
  // expected-error @+1 {{'decoder.weight' op result #0 must be float tensor or quantized weight tensor, but got 'tensor<8x64xi8, #decoder.quantized<bits = 4, group_size = 32>>'}}
  %w = decoder.weight "w" : tensor<8x64xi8, #decoder.quantized<bits = 4, group_size = 32>>
  return
}

// -----

func.func @embedding_width(%ids: tensor<?xi64>, %t: tensor<64x16xf32>) {
  // expected-error @+1 {{'decoder.embedding' op result must be tokens x 16, got 'tensor<?x32xf32>'}}
  %h = decoder.embedding %ids, %t : tensor<?xi64>, tensor<64x16xf32> -> tensor<?x32xf32>
  return
}

// -----

func.func @embedding_tokens(%ids: tensor<3xi64>, %t: tensor<64x16xf32>) {
  // expected-error @+1 {{'decoder.embedding' op result has 4 tokens but ids has 3}}
  %h = decoder.embedding %ids, %t : tensor<3xi64>, tensor<64x16xf32> -> tensor<4x16xf32>
  return
}

// -----

func.func @embedding_ids_type(%ids: tensor<?xf32>, %t: tensor<64x16xf32>) {
  // expected-error @+1 {{'decoder.embedding' op operand #0 must be 1D tensor of 64-bit signless integer values, but got 'tensor<?xf32>'}}
  %h = decoder.embedding %ids, %t : tensor<?xf32>, tensor<64x16xf32> -> tensor<?x16xf32>
  return
}

// -----

func.func @rms_norm_weight(%x: tensor<?x16xf32>, %w: tensor<8xf32>) {
  // expected-error @+1 {{'decoder.rms_norm' op weight must be tensor<16x...>, got 'tensor<8xf32>'}}
  %n = decoder.rms_norm %x, %w {epsilon = 1.0e-05 : f64} : tensor<?x16xf32>, tensor<8xf32>
  return
}

// -----

// Per head (tokens x heads x head_dim): the weight covers every head.
func.func @rms_norm_heads_weight(%x: tensor<?x4x16xf32>, %w: tensor<16xf32>) {
  // expected-error @+1 {{'decoder.rms_norm' op weight must be tensor<64x...>, got 'tensor<16xf32>'}}
  %n = decoder.rms_norm %x, %w {epsilon = 1.0e-05 : f64} : tensor<?x4x16xf32>, tensor<16xf32>
  return
}

// -----

func.func @rms_norm_rank(%x: tensor<?x2x4x16xf32>, %w: tensor<128xf32>) {
  // expected-error @+1 {{'decoder.rms_norm' op input must be tokens x features or tokens x heads x head_dim, got 'tensor<?x2x4x16xf32>'}}
  %n = decoder.rms_norm %x, %w {epsilon = 1.0e-05 : f64} : tensor<?x2x4x16xf32>, tensor<128xf32>
  return
}

// -----

func.func @rms_norm_epsilon(%x: tensor<?x16xf32>, %w: tensor<16xf32>) {
  // expected-error @+1 {{'decoder.rms_norm' op epsilon must be positive, got 0}}
  %n = decoder.rms_norm %x, %w {epsilon = 0.0 : f64} : tensor<?x16xf32>, tensor<16xf32>
  return
}

// -----

func.func @rms_norm_no_epsilon(%x: tensor<?x16xf32>, %w: tensor<16xf32>) {
  // expected-error @+1 {{'decoder.rms_norm' op requires attribute 'epsilon'}}
  %n = decoder.rms_norm %x, %w : tensor<?x16xf32>, tensor<16xf32>
  return
}

// -----

func.func @layer_norm_bias(%x: tensor<?x16xf32>, %w: tensor<16xf32>, %b: tensor<15xf32>) {
  // expected-error @+1 {{'decoder.layer_norm' op bias must be tensor<16x...>, got 'tensor<15xf32>'}}
  %n = decoder.layer_norm %x, %w, %b {epsilon = 1.0e-05 : f64} : tensor<?x16xf32>, tensor<16xf32>, tensor<15xf32>
  return
}

// -----

func.func @layer_norm_rank(%x: tensor<?x2x8xf32>, %w: tensor<8xf32>) {
  // expected-error @+1 {{'decoder.layer_norm' op input must be tokens x features, got 'tensor<?x2x8xf32>'}}
  %n = decoder.layer_norm %x, %w {epsilon = 1.0e-05 : f64} : tensor<?x2x8xf32>, tensor<8xf32>
  return
}

// -----

func.func @linear_in(%x: tensor<?x16xf32>, %w: tensor<32x8xf32>) {
  // expected-error @+1 {{'decoder.linear' op weight has 8 input features but the input has 16}}
  %y = decoder.linear %x, %w : tensor<?x16xf32>, tensor<32x8xf32> -> tensor<?x32xf32>
  return
}

// -----

func.func @linear_widths(%x: tensor<?x16xf32>, %w: tensor<48x16xf32>) {
  // expected-error @+1 {{'decoder.linear' op result widths add up to 40 but the weight has 48 rows}}
  %a, %b = decoder.linear %x, %w : tensor<?x16xf32>, tensor<48x16xf32> -> tensor<?x32xf32>, tensor<?x8xf32>
  return
}

// -----

func.func @linear_bias(%x: tensor<?x16xf32>, %w: tensor<32x16xf32>, %b: tensor<16xf32>) {
  // expected-error @+1 {{'decoder.linear' op bias must be tensor<32x...>, got 'tensor<16xf32>'}}
  %y = decoder.linear %x, %w bias %b : tensor<?x16xf32>, tensor<32x16xf32>, tensor<16xf32> -> tensor<?x32xf32>
  return
}

// -----

func.func @linear_tokens(%x: tensor<3x16xf32>, %w: tensor<32x16xf32>) {
  // expected-error @+1 {{'decoder.linear' op result 0 has 4 tokens but the input has 3}}
  %y = decoder.linear %x, %w : tensor<3x16xf32>, tensor<32x16xf32> -> tensor<4x32xf32>
  return
}

// -----

func.func @linear_no_result(%x: tensor<?x16xf32>, %w: tensor<32x16xf32>) {
  // expected-error @+1 {{'decoder.linear' op needs at least one result}}
  "decoder.linear"(%x, %w) : (tensor<?x16xf32>, tensor<32x16xf32>) -> ()
  return
}

// -----

func.func @kv_grouped_count(%x: tensor<?x16xf32>, %w: tensor<32x16xf32>) {
  // expected-error @+1 {{'decoder.linear' op kv_grouped packing needs 3 results (q, k, v), got 2}}
  %a, %b = decoder.linear %x, %w {packing = #decoder.packing<kv_grouped>} : tensor<?x16xf32>, tensor<32x16xf32> -> tensor<?x16xf32>, tensor<?x16xf32>
  return
}

// -----

func.func @kv_grouped_heads(%x: tensor<?x16xf32>, %w: tensor<56x16xf32>) {
  // expected-error @+1 {{'decoder.linear' op kv_grouped: 3 query heads are not divisible by 2 kv heads}}
  %q, %k, %v = decoder.linear %x, %w {packing = #decoder.packing<kv_grouped>}
      : tensor<?x16xf32>, tensor<56x16xf32> -> tensor<?x3x8xf32>, tensor<?x2x8xf32>, tensor<?x2x8xf32>
  return
}

// -----

func.func @kv_grouped_head_dim(%x: tensor<?x16xf32>, %w: tensor<48x16xf32>) {
  // expected-error @+1 {{'decoder.linear' op kv_grouped q, k, v must share head_dim and k, v their head count}}
  %q, %k, %v = decoder.linear %x, %w {packing = #decoder.packing<kv_grouped>}
      : tensor<?x16xf32>, tensor<48x16xf32> -> tensor<?x4x8xf32>, tensor<?x2x4xf32>, tensor<?x2x4xf32>
  return
}

// -----

func.func @lm_head_vocab(%h: tensor<?x16xf32>, %w: tensor<64x16xf32>) {
  // expected-error @+1 {{'decoder.lm_head' op result has 65 logits per token but the vocabulary is 64}}
  %l = decoder.lm_head %h, %w : tensor<?x16xf32>, tensor<64x16xf32> -> tensor<?x65xf32>
  return
}

// -----

func.func @lm_head_hidden(%h: tensor<?x16xf32>, %w: tensor<64x8xf32>) {
  // expected-error @+1 {{'decoder.lm_head' op weight hidden size 8 differs from the input's 16}}
  %l = decoder.lm_head %h, %w : tensor<?x16xf32>, tensor<64x8xf32> -> tensor<?x64xf32>
  return
}

// -----

func.func @rope_rotary(%q: tensor<?x4x16xf32>, %pos: tensor<?xi64>) {
  // expected-error @+1 {{'decoder.rope' op rotary_dim 32 exceeds head_dim 16}}
  %r = decoder.rope %q, %pos {rope = #decoder.rope<kind = default, theta = 10000.0, rotary_dim = 32>} : tensor<?x4x16xf32>, tensor<?xi64>
  return
}

// -----

func.func @rope_rank(%q: tensor<?x64xf32>, %pos: tensor<?xi64>) {
  // expected-error @+1 {{'decoder.rope' op input must be tokens x heads x head_dim, got 'tensor<?x64xf32>'}}
  %r = decoder.rope %q, %pos {rope = #decoder.rope<kind = default, theta = 10000.0, rotary_dim = 32>} : tensor<?x64xf32>, tensor<?xi64>
  return
}

// -----

func.func @rope_positions(%q: tensor<2x4x16xf32>, %pos: tensor<3xi64>) {
  // expected-error @+1 {{'decoder.rope' op input has 2 tokens but positions has 3}}
  %r = decoder.rope %q, %pos {rope = #decoder.rope<kind = default, theta = 10000.0, rotary_dim = 16>} : tensor<2x4x16xf32>, tensor<3xi64>
  return
}

// -----

!cache = !decoder.kv_cache<layers = 2, kv_heads = 2, head_dim = 16, element = f32>
func.func @attention_heads(%q: tensor<?x4x16xf32>, %k: tensor<?x2x16xf32>, %pos: tensor<?xi64>, %c: !cache) {
  // expected-error @+1 {{'decoder.attention' op query must have 8 heads of 16 features, got 'tensor<?x4x16xf32>'}}
  %a = decoder.attention %q, %k, %k, %pos, %c {layer = 0 : i64,
         config = #decoder.attention<num_heads = 8, num_kv_heads = 2, head_dim = 16, softmax_scale = 0.25>}
      : tensor<?x4x16xf32>, tensor<?x2x16xf32>, tensor<?x2x16xf32>, tensor<?xi64>, !cache -> tensor<?x4x16xf32>
  return
}

// -----

!cache = !decoder.kv_cache<layers = 2, kv_heads = 2, head_dim = 16, element = f32>
func.func @attention_kv_heads(%q: tensor<?x4x16xf32>, %k: tensor<?x1x16xf32>, %pos: tensor<?xi64>, %c: !cache) {
  // expected-error @+1 {{'decoder.attention' op key must have 2 heads of 16 features, got 'tensor<?x1x16xf32>'}}
  %a = decoder.attention %q, %k, %k, %pos, %c {layer = 0 : i64,
         config = #decoder.attention<num_heads = 4, num_kv_heads = 2, head_dim = 16, softmax_scale = 0.25>}
      : tensor<?x4x16xf32>, tensor<?x1x16xf32>, tensor<?x1x16xf32>, tensor<?xi64>, !cache -> tensor<?x4x16xf32>
  return
}

// -----

!cache = !decoder.kv_cache<layers = 2, kv_heads = 2, head_dim = 16, element = f32>
func.func @attention_layer(%q: tensor<?x4x16xf32>, %k: tensor<?x2x16xf32>, %pos: tensor<?xi64>, %c: !cache) {
  // expected-error @+1 {{'decoder.attention' op layer 2 is outside the cache's 2 layers}}
  %a = decoder.attention %q, %k, %k, %pos, %c {layer = 2 : i64,
         config = #decoder.attention<num_heads = 4, num_kv_heads = 2, head_dim = 16, softmax_scale = 0.25>}
      : tensor<?x4x16xf32>, tensor<?x2x16xf32>, tensor<?x2x16xf32>, tensor<?xi64>, !cache -> tensor<?x4x16xf32>
  return
}

// -----

!cache = !decoder.kv_cache<layers = 2, kv_heads = 1, head_dim = 16, element = f32>
func.func @attention_cache(%q: tensor<?x4x16xf32>, %k: tensor<?x2x16xf32>, %pos: tensor<?xi64>, %c: !cache) {
  // expected-error @+1 {{'decoder.attention' op cache holds 1 kv heads of 16 features but attention uses 2 of 16}}
  %a = decoder.attention %q, %k, %k, %pos, %c {layer = 0 : i64,
         config = #decoder.attention<num_heads = 4, num_kv_heads = 2, head_dim = 16, softmax_scale = 0.25>}
      : tensor<?x4x16xf32>, tensor<?x2x16xf32>, tensor<?x2x16xf32>, tensor<?xi64>, !cache -> tensor<?x4x16xf32>
  return
}

// -----

!cache = !decoder.kv_cache<layers = 2, kv_heads = 2, head_dim = 16, element = f32>
func.func @attention_result(%q: tensor<?x4x16xf32>, %k: tensor<?x2x16xf32>, %pos: tensor<?xi64>, %c: !cache) {
  // expected-error @+1 {{'decoder.attention' op result type 'tensor<?x64xf32>' differs from the query type 'tensor<?x4x16xf32>'}}
  %a = decoder.attention %q, %k, %k, %pos, %c {layer = 0 : i64,
         config = #decoder.attention<num_heads = 4, num_kv_heads = 2, head_dim = 16, softmax_scale = 0.25>}
      : tensor<?x4x16xf32>, tensor<?x2x16xf32>, tensor<?x2x16xf32>, tensor<?xi64>, !cache -> tensor<?x64xf32>
  return
}

// -----

func.func @swiglu_types(%a: tensor<?x8xf32>, %b: tensor<?x4xf32>) {
  // expected-error @+1 {{'decoder.swiglu' op requires the same type for all operands and results}}
  %s = "decoder.swiglu"(%a, %b) : (tensor<?x8xf32>, tensor<?x4xf32>) -> tensor<?x8xf32>
  return
}

// -----

func.func @gelu_types(%a: tensor<?x8xf32>) {
  // expected-error @+1 {{'decoder.gelu' op requires the same type for all operands and results}}
  %s = "decoder.gelu"(%a) : (tensor<?x8xf32>) -> tensor<?x4xf32>
  return
}

// -----

func.func @add_types(%a: tensor<?x8xf32>, %b: tensor<?x8xbf16>) {
  // expected-error @+1 {{'decoder.add' op operand #1 must be ranked tensor of 32-bit float values, but got 'tensor<?x8xbf16>'}}
  %s = "decoder.add"(%a, %b) : (tensor<?x8xf32>, tensor<?x8xbf16>) -> tensor<?x8xf32>
  return
}

// -----

// Parts of a quantized concat share its encoding.
func.func @concat_groups() {
  %a = decoder.weight "a" : tensor<8x64xi8, #decoder.quantized<bits = 8, group_size = 32>>
  %b = decoder.weight "b" : tensor<8x64xi8, #decoder.quantized<bits = 8, group_size = 64>>
  // expected-error @+1 {{part 'tensor<8x64xi8, #decoder.quantized<bits = 8, group_size = 64>>' does not stack into 'tensor<16x64xi8, #decoder.quantized<bits = 8, group_size = 32>>'}}
  %c = decoder.concat_weights %a, %b : tensor<8x64xi8, #decoder.quantized<bits = 8, group_size = 32>>, tensor<8x64xi8, #decoder.quantized<bits = 8, group_size = 64>> -> tensor<16x64xi8, #decoder.quantized<bits = 8, group_size = 32>>
  return
}

// -----

// The vision encoder: a tile is a whole number of patches, the position
// table covers the class token and every patch, the pixel shuffle folds a
// square grid.
func.func @patch_not_dividing(%pixels: tensor<?x3x30x30xf32>, %w: tensor<8x3x14x14xf32>, %b: tensor<8xf32>, %cls: tensor<1x1x8xf32>, %pos: tensor<1x5x8xf32>) {
  // expected-error @+1 {{'decoder.patch_embedding' op the tile's 30 pixels are not a whole number of 14-pixel patches}}
  %x = decoder.patch_embedding %pixels, %w, %b, %cls, %pos : tensor<?x3x30x30xf32>, tensor<8x3x14x14xf32>, tensor<8xf32>, tensor<1x1x8xf32>, tensor<1x5x8xf32> -> tensor<?x8xf32>
  return
}

// -----

func.func @positions_short(%pixels: tensor<?x3x28x28xf32>, %w: tensor<8x3x14x14xf32>, %b: tensor<8xf32>, %cls: tensor<1x1x8xf32>, %pos: tensor<1x4x8xf32>) {
  // expected-error @+1 {{'decoder.patch_embedding' op position must be tensor<1x5x8x...> (the class token and 4 patches), got 'tensor<1x4x8xf32>'}}
  %x = decoder.patch_embedding %pixels, %w, %b, %cls, %pos : tensor<?x3x28x28xf32>, tensor<8x3x14x14xf32>, tensor<8xf32>, tensor<1x1x8xf32>, tensor<1x4x8xf32> -> tensor<?x8xf32>
  return
}

// -----

func.func @channels(%pixels: tensor<?x3x28x28xf32>, %w: tensor<8x1x14x14xf32>, %b: tensor<8xf32>, %cls: tensor<1x1x8xf32>, %pos: tensor<1x5x8xf32>) {
  // expected-error @+1 {{'decoder.patch_embedding' op weight must be features x 3 x patch x patch, got 'tensor<8x1x14x14xf32>'}}
  %x = decoder.patch_embedding %pixels, %w, %b, %cls, %pos : tensor<?x3x28x28xf32>, tensor<8x1x14x14xf32>, tensor<8xf32>, tensor<1x1x8xf32>, tensor<1x5x8xf32> -> tensor<?x8xf32>
  return
}

// -----

func.func @shuffle_not_square(%x: tensor<?x8xf32>) {
  // expected-error @+1 {{'decoder.pixel_shuffle' op the 6 rows a tile after the first 1 are not a square grid}}
  %p = decoder.pixel_shuffle %x {sequence = 7 : i64, skip = 1 : i64, ratio = 0.5 : f64} : tensor<?x8xf32> -> tensor<?x32xf32>
  return
}

// -----

func.func @shuffle_ratio(%x: tensor<?x8xf32>) {
  // expected-error @+1 {{'decoder.pixel_shuffle' op ratio 3.000000e-01 must be 1 / f for an f dividing the grid's side 4}}
  %p = decoder.pixel_shuffle %x {sequence = 17 : i64, skip = 1 : i64, ratio = 0.3 : f64} : tensor<?x8xf32> -> tensor<?x32xf32>
  return
}

// -----

func.func @shuffle_width(%x: tensor<?x8xf32>) {
  // expected-error @+1 {{'decoder.pixel_shuffle' op result must be tokens x 32, got 'tensor<?x16xf32>'}}
  %p = decoder.pixel_shuffle %x {sequence = 17 : i64, skip = 1 : i64, ratio = 0.5 : f64} : tensor<?x8xf32> -> tensor<?x16xf32>
  return
}

// -----

func.func @layer_scale_width(%x: tensor<?x8xf32>, %g: tensor<4xf32>) {
  // expected-error @+1 {{'decoder.layer_scale' op gamma must be tensor<8x...>, got 'tensor<4xf32>'}}
  %s = decoder.layer_scale %x, %g : tensor<?x8xf32>, tensor<4xf32>
  return
}

// -----

func.func @encoder_sequence(%q: tensor<?x2x4xf32>) {
  // expected-error @+1 {{'decoder.encoder_attention' op sequence must be at least 1, got 0}}
  %a = decoder.encoder_attention %q, %q, %q {sequence = 0 : i64, softmax_scale = 0.5 : f64} : tensor<?x2x4xf32>
  return
}

// -----

func.func @embedding_image_width(%ids: tensor<?xi64>, %table: tensor<64x16xf32>, %image: tensor<?x8xf32>) {
  // expected-error @+1 {{'decoder.embedding' op extra rows must be rows x 16, got 'tensor<?x8xf32>'}}
  %h = decoder.embedding %ids, %table, %image : tensor<?xi64>, tensor<64x16xf32>, tensor<?x8xf32> -> tensor<?x16xf32>
  return
}

// -----

func.func @shard_without_ranges() {
  // expected-error @+1 {{'decoder.weight' op weight 'w': shard_dim and shard_ranges go together}}
  %w = decoder.weight "w" {shard_dim = 0 : i64} : tensor<4x4xf32>
  return
}

// -----

func.func @shard_dim_out_of_range() {
  // expected-error @+1 {{'decoder.weight' op weight 'w': shard_dim 2 is not a dimension of 'tensor<4x4xf32>'}}
  %w = decoder.weight "w" {shard_dim = 2 : i64, shard_ranges = array<i64: 0, 4, 4, 8>} : tensor<4x4xf32>
  return
}

// -----

func.func @shard_odd_ranges() {
  // expected-error @+1 {{'decoder.weight' op weight 'w': shard_ranges must be [begin, end) pairs}}
  %w = decoder.weight "w" {shard_dim = 0 : i64, shard_ranges = array<i64: 0, 4, 4>} : tensor<4x4xf32>
  return
}

// -----

func.func @shard_empty_range() {
  // expected-error @+1 {{'decoder.weight' op weight 'w': shard range [4, 4) is empty or negative}}
  %w = decoder.weight "w" {shard_dim = 0 : i64, shard_ranges = array<i64: 0, 4, 4, 4>} : tensor<4x4xf32>
  return
}

// -----

func.func @shard_too_long() {
  // expected-error @+1 {{'decoder.weight' op weight 'w': a rank's shard ranges hold more than the 4 of dimension 1}}
  %w = decoder.weight "w" {shard_dim = 1 : i64, shard_ranges = array<i64: 0, 6>} : tensor<4x4xf32>
  return
}

// -----

func.func @shard_short_last_rank() {
  // expected-error @+1 {{'decoder.weight' op weight 'w': the last rank's shard ranges hold 2 of the 4 of dimension 0}}
  %w = decoder.weight "w" {shard_dim = 0 : i64, shard_ranges = array<i64: 0, 4, 4, 6>} : tensor<4x4xf32>
  return
}

// -----

func.func @shard_uneven_pairs() {
  // expected-error @+1 {{'decoder.weight' op weight 'w': every rank needs 1 shard ranges}}
  %w = decoder.weight "w" {shard_dim = 0 : i64, shard_ranges = array<i64: 0, 4, 4, 6, 8, 10>} : tensor<4x4xf32>
  return
}

// -----

func.func @all_reduce_one_rank(%x: tensor<?x4xf32>) {
  // expected-error @+1 {{'decoder.all_reduce' op needs 2 ranks or more, got 1}}
  %r = decoder.all_reduce %x {ranks = 1 : i64} : tensor<?x4xf32>
  return
}

// -----

func.func @all_gather_width(%x: tensor<?x4xf32>) {
  // expected-error @+1 {{'decoder.all_gather' op result must be the input with its last dimension times 2, got 'tensor<?x4xf32>' -> 'tensor<?x6xf32>'}}
  %r = decoder.all_gather %x {ranks = 2 : i64} : tensor<?x4xf32> -> tensor<?x6xf32>
  return
}
