// RUN: decc-opt %s --decoder-select-attention-backend | FileCheck %s --check-prefix=CONFIG
// RUN: decc-opt %s --decoder-select-attention-backend=backend=eager | FileCheck %s --check-prefix=EAGER
// RUN: decc-opt %s --decoder-select-attention-backend=backend=flash_attention_2 | FileCheck %s --check-prefix=FLASH
// RUN: decc-opt %s --decoder-select-attention-backend=backend=flex_attention | FileCheck %s --check-prefix=FLASH
// RUN: not decc-opt %s --decoder-select-attention-backend=backend=math 2>&1 | FileCheck %s --check-prefix=BAD

!cache = !decoder.kv_cache<layers = 2, kv_heads = 1, head_dim = 32, element = f32>

// CONFIG-LABEL: func.func @two_layers
// EAGER-LABEL: func.func @two_layers
// FLASH-LABEL: func.func @two_layers
func.func @two_layers(%q: tensor<?x4x32xf32>, %k: tensor<?x1x32xf32>, %pos: tensor<?xi64>, %c: !cache) -> tensor<?x4x32xf32> {
  // The default keeps each op's own choice; an override replaces only the
  // backend and leaves the rest of the config as it was.
  // CONFIG: #decoder.attention<num_heads = 4, num_kv_heads = 1, head_dim = 32, softmax_scale = 0.125, alibi_bias_max = 8.0, backend = eager>
  // CONFIG: #decoder.attention<num_heads = 4, num_kv_heads = 1, head_dim = 32, softmax_scale = 0.125, sliding_window = 16>
  // EAGER: #decoder.attention<num_heads = 4, num_kv_heads = 1, head_dim = 32, softmax_scale = 0.125, alibi_bias_max = 8.0, backend = eager>
  // EAGER: #decoder.attention<num_heads = 4, num_kv_heads = 1, head_dim = 32, softmax_scale = 0.125, sliding_window = 16, backend = eager>
  // FLASH: #decoder.attention<num_heads = 4, num_kv_heads = 1, head_dim = 32, softmax_scale = 0.125, alibi_bias_max = 8.0>
  // FLASH: #decoder.attention<num_heads = 4, num_kv_heads = 1, head_dim = 32, softmax_scale = 0.125, sliding_window = 16>
  %a = decoder.attention %q, %k, %k, %pos, %c {layer = 0 : i64,
         config = #decoder.attention<num_heads = 4, num_kv_heads = 1, head_dim = 32, softmax_scale = 0.125, alibi_bias_max = 8.0, backend = eager>}
      : tensor<?x4x32xf32>, tensor<?x1x32xf32>, tensor<?x1x32xf32>, tensor<?xi64>, !cache -> tensor<?x4x32xf32>
  %b = decoder.attention %a, %k, %k, %pos, %c {layer = 1 : i64,
         config = #decoder.attention<num_heads = 4, num_kv_heads = 1, head_dim = 32, softmax_scale = 0.125, sliding_window = 16, backend = flash>}
      : tensor<?x4x32xf32>, tensor<?x1x32xf32>, tensor<?x1x32xf32>, tensor<?xi64>, !cache -> tensor<?x4x32xf32>
  return %b : tensor<?x4x32xf32>
}

// The option is an enum of contract's names and `config`; anything else is
// refused when the pipeline is parsed.
// BAD: for the --backend option: Cannot find option named 'math'!
