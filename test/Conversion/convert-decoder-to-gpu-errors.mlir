// RUN: decc-opt %s --convert-decoder-to-gpu -verify-diagnostics

!cache = !decoder.kv_cache<layers = 1, kv_heads = 2, head_dim = 32, element = f32>

// A tensor-parallel rank's ALiBi heads take the slopes of the model's heads
// from rank x heads on; the CUDA kernels have no rank to offset them by.
func.func @forward(%tokens: tensor<?xi64>, %pos: tensor<?xi64>, %c: !cache) -> tensor<?x64xf32> {
  %e = decoder.weight "embed.weight" : tensor<512x64xf32>
  %h = decoder.embedding %tokens, %e : tensor<?xi64>, tensor<512x64xf32> -> tensor<?x64xf32>
  %w = decoder.weight "qkv.weight" : tensor<192x64xf32>
  %q = decoder.fused_linear %h, %w append(%pos, %c) {layer = 0 : i64} : (tensor<?x64xf32>, tensor<192x64xf32>, tensor<?xi64>, !cache) -> tensor<?x2x32xf32>
  // expected-error @+1 {{'decoder.cached_attention' op is a tensor-parallel rank's share of ALiBi heads, which the CUDA lowering has no rank for yet}}
  %a = decoder.cached_attention %q, %pos, %c {layer = 0 : i64, config = #decoder.attention<num_heads = 2, num_kv_heads = 2, head_dim = 32, softmax_scale = 0.17677669529663687, alibi_bias_max = 8.0, alibi_heads = 4>} : tensor<?x2x32xf32>, tensor<?xi64>, !cache -> tensor<?x2x32xf32>
  %wo = decoder.weight "o.weight" : tensor<64x64xf32>
  %r = decoder.fused_linear %a, %wo residual %h : (tensor<?x2x32xf32>, tensor<64x64xf32>, tensor<?x64xf32>) -> tensor<?x64xf32>
  return %r : tensor<?x64xf32>
}
