// RUN: decc-opt %s -split-input-file -verify-diagnostics

// expected-error @+1 {{kv_cache layers must be positive, got 0}}
func.func @layers(%c: !decoder.kv_cache<layers = 0, kv_heads = 2, head_dim = 32, element = f32>) {
  return
}

// -----

// expected-error @+1 {{kv_cache kv_heads must be positive, got -2}}
func.func @kv_heads(%c: !decoder.kv_cache<layers = 1, kv_heads = -2, head_dim = 32, element = f32>) {
  return
}

// -----

// expected-error @+1 {{kv_cache head_dim must be positive, got 0}}
func.func @head_dim(%c: !decoder.kv_cache<layers = 1, kv_heads = 2, head_dim = 0, element = f32>) {
  return
}

// -----

// expected-error @+1 {{kv_cache element must be a float type, got 'i8'}}
func.func @element(%c: !decoder.kv_cache<layers = 1, kv_heads = 2, head_dim = 32, element = i8>) {
  return
}
