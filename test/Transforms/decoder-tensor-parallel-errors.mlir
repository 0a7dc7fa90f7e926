// RUN: decc-opt %s --decoder-tensor-parallel=ranks=2 --split-input-file -verify-diagnostics

func.func @heads(%x: tensor<?x48xf32>, %pos: tensor<?xi64>,
                 %cache: !decoder.kv_cache<layers = 1, kv_heads = 3, head_dim = 16, element = f32>) -> tensor<?x3x16xf32> {
  %w = decoder.weight "qkv.weight" : tensor<144x48xf32>
  %q, %k, %v = decoder.linear %x, %w : tensor<?x48xf32>, tensor<144x48xf32> -> tensor<?x3x16xf32>, tensor<?x3x16xf32>, tensor<?x3x16xf32>
  // expected-error @+1 {{'decoder.attention' op has 3 attention heads, which 2 ranks do not divide}}
  %a = decoder.attention %q, %k, %v, %pos, %cache {layer = 0 : i64,
         config = #decoder.attention<num_heads = 3, num_kv_heads = 3, head_dim = 16, softmax_scale = 0.25>}
      : tensor<?x3x16xf32>, tensor<?x3x16xf32>, tensor<?x3x16xf32>, tensor<?xi64>,
        !decoder.kv_cache<layers = 1, kv_heads = 3, head_dim = 16, element = f32> -> tensor<?x3x16xf32>
  return %a : tensor<?x3x16xf32>
}

// -----

func.func @kv_heads(%x: tensor<?x96xf32>, %pos: tensor<?xi64>,
                    %cache: !decoder.kv_cache<layers = 1, kv_heads = 3, head_dim = 16, element = f32>) -> tensor<?x6x16xf32> {
  %w = decoder.weight "qkv.weight" : tensor<192x96xf32>
  %q, %k, %v = decoder.linear %x, %w : tensor<?x96xf32>, tensor<192x96xf32> -> tensor<?x6x16xf32>, tensor<?x3x16xf32>, tensor<?x3x16xf32>
  // expected-error @+1 {{'decoder.attention' op has 3 key/value heads: 2 ranks must divide them or be a multiple}}
  %a = decoder.attention %q, %k, %v, %pos, %cache {layer = 0 : i64,
         config = #decoder.attention<num_heads = 6, num_kv_heads = 3, head_dim = 16, softmax_scale = 0.25>}
      : tensor<?x6x16xf32>, tensor<?x3x16xf32>, tensor<?x3x16xf32>, tensor<?xi64>,
        !decoder.kv_cache<layers = 1, kv_heads = 3, head_dim = 16, element = f32> -> tensor<?x6x16xf32>
  return %a : tensor<?x6x16xf32>
}

// -----

func.func @o_bias(%x: tensor<?x64xf32>, %pos: tensor<?xi64>,
                  %cache: !decoder.kv_cache<layers = 1, kv_heads = 4, head_dim = 16, element = f32>) -> tensor<?x64xf32> {
  %w = decoder.weight "qkv.weight" : tensor<192x64xf32>
  %q, %k, %v = decoder.linear %x, %w : tensor<?x64xf32>, tensor<192x64xf32> -> tensor<?x4x16xf32>, tensor<?x4x16xf32>, tensor<?x4x16xf32>
  %a = decoder.attention %q, %k, %v, %pos, %cache {layer = 0 : i64,
         config = #decoder.attention<num_heads = 4, num_kv_heads = 4, head_dim = 16, softmax_scale = 0.25>}
      : tensor<?x4x16xf32>, tensor<?x4x16xf32>, tensor<?x4x16xf32>, tensor<?xi64>,
        !decoder.kv_cache<layers = 1, kv_heads = 4, head_dim = 16, element = f32> -> tensor<?x4x16xf32>
  %wo = decoder.weight "o.weight" : tensor<64x64xf32>
  %bo = decoder.weight "o.bias" : tensor<64xf32>
  // expected-error @+1 {{'decoder.linear' op has a bias: a row-parallel projection's bias would be added once a rank (not supported yet)}}
  %o = decoder.linear %a, %wo bias %bo : tensor<?x4x16xf32>, tensor<64x64xf32>, tensor<64xf32> -> tensor<?x64xf32>
  return %o : tensor<?x64xf32>
}

// -----

func.func @intermediate(%x: tensor<?x64xf32>) -> tensor<?x64xf32> {
  %wg = decoder.weight "gate.weight" : tensor<3x64xf32>
  %g = decoder.linear %x, %wg : tensor<?x64xf32>, tensor<3x64xf32> -> tensor<?x3xf32>
  %wu = decoder.weight "up.weight" : tensor<3x64xf32>
  %u = decoder.linear %x, %wu : tensor<?x64xf32>, tensor<3x64xf32> -> tensor<?x3xf32>
  // expected-error @+1 {{'decoder.swiglu' op has 3 intermediate features, which 2 ranks do not divide}}
  %a = decoder.swiglu %g, %u : tensor<?x3xf32>
  %wd = decoder.weight "down.weight" : tensor<64x3xf32>
  %d = decoder.linear %a, %wd : tensor<?x3xf32>, tensor<64x3xf32> -> tensor<?x64xf32>
  return %d : tensor<?x64xf32>
}

// -----

// A projection the pass does not know (not q/k/v, O, gate/up or down).
func.func @stray(%x: tensor<?x64xf32>) -> tensor<?x64xf32> {
  %w = decoder.weight "w" : tensor<64x64xf32>
  // expected-error @+1 {{'decoder.linear' op is not a projection tensor parallelism partitions (q/k/v, O, gate/up, down)}}
  %y = decoder.linear %x, %w : tensor<?x64xf32>, tensor<64x64xf32> -> tensor<?x64xf32>
  return %y : tensor<?x64xf32>
}

// -----

func.func @quantized_groups(%x: tensor<?x64xf32>, %pos: tensor<?xi64>,
                            %cache: !decoder.kv_cache<layers = 1, kv_heads = 4, head_dim = 16, element = f32>) -> tensor<?x64xf32> {
  %w = decoder.weight "qkv.weight" : tensor<192x64xf32>
  %q, %k, %v = decoder.linear %x, %w : tensor<?x64xf32>, tensor<192x64xf32> -> tensor<?x4x16xf32>, tensor<?x4x16xf32>, tensor<?x4x16xf32>
  %a = decoder.attention %q, %k, %v, %pos, %cache {layer = 0 : i64,
         config = #decoder.attention<num_heads = 4, num_kv_heads = 4, head_dim = 16, softmax_scale = 0.25>}
      : tensor<?x4x16xf32>, tensor<?x4x16xf32>, tensor<?x4x16xf32>, tensor<?xi64>,
        !decoder.kv_cache<layers = 1, kv_heads = 4, head_dim = 16, element = f32> -> tensor<?x4x16xf32>
  %wo = decoder.weight "o.weight" : tensor<64x64xi4, #decoder.quantized<bits = 4, group_size = 64>>
  // expected-error @+1 {{'decoder.linear' op is row-parallel over columns [0, 32), which do not fall on its quantization groups of 64}}
  %o = decoder.linear %a, %wo : tensor<?x4x16xf32>, tensor<64x64xi4, #decoder.quantized<bits = 4, group_size = 64>> -> tensor<?x64xf32>
  return %o : tensor<?x64xf32>
}
