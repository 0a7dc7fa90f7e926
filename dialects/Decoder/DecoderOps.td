//===- DecoderOps.td - decoder dialect ops -----------------*- tablegen -*-===//
//
// One op per part of a decoder block. Shapes are checked by the verifiers in
// DecoderOps.cpp; every message names the values that disagree.
//
//===----------------------------------------------------------------------===//

#ifndef DECODER_OPS_TD
#define DECODER_OPS_TD

include "DecoderBase.td"
include "DecoderAttrs.td"
include "DecoderTypes.td"
include "mlir/IR/OpAsmInterface.td"
include "mlir/Interfaces/InferTypeOpInterface.td"
include "mlir/Interfaces/SideEffectInterfaces.td"

def Decoder_FloatTensor : RankedTensorOf<[F32, BF16, F16]>;
// A projection's weights: floats, or integers with a #decoder.quantized
// encoding.
def Decoder_QuantizedTensor : Type<
    And<[RankedTensorOf<[I8, I<4>]>.predicate,
         CPred<"::mlir::decoder::isQuantizedWeightType("
               "::llvm::cast<::mlir::RankedTensorType>($_self))">]>,
    "i8 or i4 tensor with a #decoder.quantized encoding of as many bits",
    "::mlir::RankedTensorType">;
def Decoder_WeightTensor : AnyTypeOf<[Decoder_FloatTensor, Decoder_QuantizedTensor],
    "float tensor or quantized weight tensor", "::mlir::RankedTensorType">;
def Decoder_Activation : RankedTensorOf<[F32]>;
def Decoder_TokenIds : 1DTensorOf<[I64]>;

// Printed IR names values after what they are (%layers.0.attention.wqkv,
// %q, %attn) so a layer reads like the paper.
def Decoder_NamedResults
    : DeclareOpInterfaceMethods<OpAsmOpInterface, ["getAsmResultNames"]>;

// An op whose single result always prints under one name (%norm, %attn).
class Decoder_NamedOp<string mnemonic, string resultName,
                      list<Trait> traits = []>
    : Decoder_Op<mnemonic, !listconcat(traits, [Decoder_NamedResults])> {
  let extraClassDefinition = [{
    void $cppClass::getAsmResultNames(::mlir::OpAsmSetValueNameFn setNameFn) {
      setNameFn(getResult(), "}] # resultName # [{");
    }
  }];
}

//===----------------------------------------------------------------------===//
// Weights and embedding
//===----------------------------------------------------------------------===//

def Decoder_WeightOp : Decoder_Op<"weight", [Pure, Decoder_NamedResults]> {
  let summary = "a parameter tensor of the checkpoint";
  let description = [{
    Names one tensor of the checkpoint by its Hugging Face name. The result
    type is the shape as stored on the Hub (projections are `[out, in]`) and
    the element type the model computes with; the runtime converts the stored
    dtype once at load.

    Example:

    ```mlir
    %wqkv = decoder.weight "model.layers.0.attention.wqkv.weight" : tensor<512x256xf32>
    ```

    Under tensor parallelism (`decoder-tensor-parallel`) a weight may be a
    shard: `shard_ranges` lists, for every rank in turn, the same number of
    `[begin, end)` pairs of indices along dimension `shard_dim` of the
    stored tensor, whose concatenation is that rank's tensor. Every rank
    runs the same code on tensors of the same shape; only what it loads
    differs.

    ```mlir
    // Rank 0 loads rows [0, 64), rank 1 rows [64, 128).
    %wq = decoder.weight "model.layers.0.self_attn.q_proj.weight"
        {shard_dim = 0 : i64, shard_ranges = array<i64: 0, 64, 64, 128>} : tensor<64x128xf32>
    ```
  }];
  let arguments = (ins StrAttr:$name, OptionalAttr<I64Attr>:$shard_dim,
                       OptionalAttr<DenseI64ArrayAttr>:$shard_ranges);
  let builders = [
    OpBuilder<(ins "::mlir::Type":$type, "::mlir::StringAttr":$name), [{
      build($_builder, $_state, type, name, nullptr, nullptr);
    }]>
  ];
  let results = (outs Decoder_WeightTensor:$result);
  let assemblyFormat = "$name attr-dict `:` type($result)";
  let hasVerifier = 1;
}

def Decoder_EmbeddingOp : Decoder_NamedOp<"embedding", "embed", [Pure]> {
  let summary = "token embedding lookup";
  let description = [{
    Row `ids[i]` of `table` for every token `i`. A quantized table (a
    quantized build's LM head tied to the embedding: one tensor, streamed
    by the head every step) is dequantized row by row as it is gathered.

    With `extra` (an InternVL model's image embeddings, the vision
    encoder's output), an id of `vocab + j` takes row `j` of `extra`
    instead: the runtime gives each `<IMG_CONTEXT>` token of a prompt its
    image row that way.

    Example:

    ```mlir
    %h = decoder.embedding %ids, %table : tensor<?xi64>, tensor<1024x256xf32> -> tensor<?x256xf32>
    %v = decoder.embedding %ids, %table, %image : tensor<?xi64>, tensor<1024x256xf32>, tensor<?x256xf32> -> tensor<?x256xf32>
    ```
  }];
  let arguments = (ins Decoder_TokenIds:$ids, Decoder_WeightTensor:$table,
                       Optional<Decoder_Activation>:$extra);
  let results = (outs Decoder_Activation:$result);
  let assemblyFormat = [{
    $ids `,` $table (`,` $extra^)? attr-dict `:` type($ids) `,` type($table)
    (`,` type($extra)^)? `->` type($result)
  }];
  let hasVerifier = 1;
}

//===----------------------------------------------------------------------===//
// Normalization
//===----------------------------------------------------------------------===//

def Decoder_RMSNormOp : Decoder_NamedOp<"rms_norm", "norm",
    [Pure, AllTypesMatch<["input", "result"]>]> {
  let summary = "root-mean-square normalization";
  let description = [{
    `weight * x / sqrt(mean(x^2) + epsilon)` over a token's features: the
    last dimension, or for tokens x heads x head_dim every head of the
    token together (InternViT-6B's qk_normalization normalizes queries and
    keys so, with a weight of heads x head_dim).

    Example:

    ```mlir
    %n = decoder.rms_norm %h, %w {epsilon = 1.0e-05 : f64} : tensor<?x256xf32>, tensor<256xf32>
    %q = decoder.rms_norm %qh, %wq {epsilon = 1.0e-06 : f64} : tensor<?x4x16xf32>, tensor<64xf32>
    ```
  }];
  let arguments = (ins Decoder_Activation:$input, Decoder_FloatTensor:$weight,
                       F64Attr:$epsilon);
  let results = (outs Decoder_Activation:$result);
  let assemblyFormat = [{
    $input `,` $weight attr-dict `:` type($input) `,` type($weight)
  }];
  let hasVerifier = 1;
}

def Decoder_LayerNormOp : Decoder_NamedOp<"layer_norm", "norm",
    [Pure, AllTypesMatch<["input", "result"]>]> {
  let summary = "layer normalization, bias optional";
  let description = [{
    `(x - mean(x)) / sqrt(var(x) + epsilon) * weight (+ bias)` over the last
    dimension, with the biased variance (as torch.nn.LayerNorm).

    Example:

    ```mlir
    %n = decoder.layer_norm %h, %w {epsilon = 1.0e-05 : f64} : tensor<?x128xf32>, tensor<128xf32>
    %m = decoder.layer_norm %h, %w, %b {epsilon = 1.0e-05 : f64} : tensor<?x128xf32>, tensor<128xf32>, tensor<128xf32>
    ```
  }];
  let arguments = (ins Decoder_Activation:$input, Decoder_FloatTensor:$weight,
                       Optional<Decoder_FloatTensor>:$bias, F64Attr:$epsilon);
  let results = (outs Decoder_Activation:$result);
  let assemblyFormat = [{
    $input `,` $weight (`,` $bias^)? attr-dict `:` type($input) `,` type($weight)
    (`,` type($bias)^)?
  }];
  let hasVerifier = 1;
}

//===----------------------------------------------------------------------===//
// Projections
//===----------------------------------------------------------------------===//

def Decoder_LinearOp : Decoder_Op<"linear", [Pure, Decoder_NamedResults]> {
  let summary = "projection `x W^T (+ b)`, split into one or more results";
  let description = [{
    Multiplies every token by the transpose of `weight` (`[out, in]`, as stored
    on the Hub) and adds `bias` if given. A per-head input
    `tensor<? x heads x head_dim>` is read as `tensor<? x heads*head_dim>`.

    The `out` rows feed the results in order. Each result is
    `tensor<? x n>` or, per head, `tensor<? x heads x head_dim>`; their widths
    add up to `out`. `packing` says how the rows are laid out:

    - `concat` (default): the rows of result 0, then of result 1, ... (Phi-3's
      `qkv_proj` and `gate_up_proj`, MPT's `Wqkv`).
    - `kv_grouped`: InternLM2's `wqkv`, three per-head results q, k, v whose
      rows are grouped per KV head: for each KV head `g`, its `num_heads /
      num_kv_heads` query heads, then its key head, then its value head.

    Example:

    ```mlir
    %q, %k, %v = decoder.linear %x, %wqkv {packing = #decoder.packing<kv_grouped>}
        : tensor<?x256xf32>, tensor<384x256xf32>
        -> tensor<?x8x32xf32>, tensor<?x2x32xf32>, tensor<?x2x32xf32>
    %o = decoder.linear %a, %wo : tensor<?x8x32xf32>, tensor<256x256xf32> -> tensor<?x256xf32>
    %y = decoder.linear %a, %w bias %b : tensor<?x128xf32>, tensor<128x128xf32>, tensor<128xf32> -> tensor<?x128xf32>
    ```
  }];
  let arguments = (ins Decoder_Activation:$input, Decoder_WeightTensor:$weight,
                       Optional<Decoder_FloatTensor>:$bias,
                       DefaultValuedAttr<Decoder_PackingAttr,
                                         "::mlir::decoder::Packing::Concat">:$packing);
  let results = (outs Variadic<Decoder_Activation>:$results);
  let assemblyFormat = [{
    $input `,` $weight (`bias` $bias^)? attr-dict `:` type($input) `,` type($weight)
    (`,` type($bias)^)? `->` type($results)
  }];
  let hasVerifier = 1;
}

def Decoder_LMHeadOp : Decoder_NamedOp<"lm_head", "logits", [Pure]> {
  let summary = "vocabulary logits of the final hidden states";
  let description = [{
    `logits = x W^T` with `weight` of shape `[vocab, hidden]` (the embedding
    table itself when the model ties them), computed in f32.

    Example:

    ```mlir
    %logits = decoder.lm_head %h, %wout : tensor<?x256xf32>, tensor<1024x256xf32> -> tensor<?x1024xf32>
    ```
  }];
  let arguments = (ins Decoder_Activation:$input, Decoder_WeightTensor:$weight);
  let results = (outs Decoder_Activation:$result);
  let assemblyFormat = [{
    $input `,` $weight attr-dict `:` type($input) `,` type($weight) `->` type($result)
  }];
  let hasVerifier = 1;
}

//===----------------------------------------------------------------------===//
// Positions and attention
//===----------------------------------------------------------------------===//

def Decoder_RoPEOp : Decoder_NamedOp<"rope", "rotated",
    [Pure, AllTypesMatch<["input", "result"]>]> {
  let summary = "rotary position embedding of query or key heads";
  let description = [{
    Rotates the first `rotary_dim` features of every head of token `i` by the
    angles of `positions[i]` as `rope` specifies; the remaining features pass
    through. For `dynamic` and `longrope` the sequence length is
    `max(positions) + 1`.

    Example:

    ```mlir
    %qr = decoder.rope %q, %pos {rope = #decoder.rope<kind = default, theta = 10000.0, rotary_dim = 32>}
        : tensor<?x4x32xf32>, tensor<?xi64>
    ```
  }];
  let arguments = (ins Decoder_Activation:$input, Decoder_TokenIds:$positions,
                       Decoder_RoPEAttr:$rope);
  let results = (outs Decoder_Activation:$result);
  let assemblyFormat = [{
    $input `,` $positions attr-dict `:` type($input) `,` type($positions)
  }];
  let hasVerifier = 1;
}

def Decoder_AttentionOp : Decoder_NamedOp<"attention", "attn", []> {
  let summary = "causal attention of new tokens over the KV cache";
  let description = [{
    Writes `key` and `value` of each token into layer `layer` of `cache` at
    the token's position, then lets every query head attend to the cached keys
    at positions up to its own (causal), with the grouping, scale, ALiBi bias
    and clamping of `config`. The result has the shape of `query`.

    Example:

    ```mlir
    %a = decoder.attention %q, %k, %v, %pos, %cache {layer = 0 : i64,
           config = #decoder.attention<num_heads = 8, num_kv_heads = 2, head_dim = 32,
                                       softmax_scale = 0.17677669529663687>}
        : tensor<?x8x32xf32>, tensor<?x2x32xf32>, tensor<?x2x32xf32>, tensor<?xi64>,
          !decoder.kv_cache<layers = 3, kv_heads = 2, head_dim = 32, element = f32>
        -> tensor<?x8x32xf32>
    ```
  }];
  let arguments = (ins Decoder_Activation:$query, Decoder_Activation:$key,
                       Decoder_Activation:$value, Decoder_TokenIds:$positions,
                       Arg<Decoder_KVCacheType, "the cache",
                           [MemRead, MemWrite]>:$cache,
                       I64Attr:$layer, Decoder_AttentionConfigAttr:$config);
  let results = (outs Decoder_Activation:$result);
  let assemblyFormat = [{
    $query `,` $key `,` $value `,` $positions `,` $cache attr-dict `:`
    type($query) `,` type($key) `,` type($value) `,` type($positions) `,`
    qualified(type($cache)) `->` type($result)
  }];
  let hasVerifier = 1;
}

//===----------------------------------------------------------------------===//
// Collectives (tensor parallelism)
//===----------------------------------------------------------------------===//

def Decoder_AllReduceOp : Decoder_NamedOp<"all_reduce", "reduced",
    [AllTypesMatch<["input", "result"]>]> {
  let summary = "sum of a tensor over the tensor-parallel ranks";
  let description = [{
    Every one of the `ranks` ranks contributes its `input` (a row-parallel
    projection's partial products) and receives the elementwise sum. All
    ranks must reach the same collectives in the same order: the op is not
    `Pure`, so no pass moves or merges it.

    Example:

    ```mlir
    %o = decoder.all_reduce %partial {ranks = 2 : i64} : tensor<?x128xf32>
    ```
  }];
  let arguments = (ins Decoder_Activation:$input, I64Attr:$ranks);
  let results = (outs Decoder_Activation:$result);
  let assemblyFormat = "$input attr-dict `:` type($result)";
  let hasVerifier = 1;
}

def Decoder_AllGatherOp : Decoder_NamedOp<"all_gather", "gathered", []> {
  let summary = "concatenation of the ranks' tensors along the last dimension";
  let description = [{
    Rank `r`'s `input` (tokens x n: its share of a vocabulary-parallel LM
    head's logits) becomes columns `[r n, (r + 1) n)` of the result, which
    every rank receives.

    Example:

    ```mlir
    %logits = decoder.all_gather %part {ranks = 2 : i64} : tensor<?x256xf32> -> tensor<?x512xf32>
    ```
  }];
  let arguments = (ins Decoder_Activation:$input, I64Attr:$ranks);
  let results = (outs Decoder_Activation:$result);
  let assemblyFormat = "$input attr-dict `:` type($input) `->` type($result)";
  let hasVerifier = 1;
}

//===----------------------------------------------------------------------===//
// Elementwise
//===----------------------------------------------------------------------===//

def Decoder_SwiGLUOp : Decoder_NamedOp<"swiglu", "act", [Pure, SameOperandsAndResultType]> {
  let summary = "gated SiLU, `silu(gate) * up`";
  let description = [{
    The activation of the SwiGLU MLP: `gate / (1 + exp(-gate)) * up`.

    Example:

    ```mlir
    %a = decoder.swiglu %gate, %up : tensor<?x688xf32>
    ```
  }];
  let arguments = (ins Decoder_Activation:$gate, Decoder_Activation:$up);
  let results = (outs Decoder_Activation:$result);
  let assemblyFormat = "$gate `,` $up attr-dict `:` type($result)";
}

def Decoder_GeluOp : Decoder_NamedOp<"gelu", "act", [Pure, SameOperandsAndResultType]> {
  let summary = "GELU activation";
  let description = [{
    `x * Phi(x)` with the exact erf (`approximate = none`, the default) or the
    tanh approximation.

    Example:

    ```mlir
    %a = decoder.gelu %x : tensor<?x512xf32>
    %b = decoder.gelu %x {approximate = #decoder.gelu_approximation<tanh>} : tensor<?x512xf32>
    ```
  }];
  let arguments = (ins Decoder_Activation:$input,
                       DefaultValuedAttr<Decoder_GeluApproximationAttr,
                           "::mlir::decoder::GeluApproximation::None">:$approximate);
  let results = (outs Decoder_Activation:$result);
  let assemblyFormat = "$input attr-dict `:` type($result)";
}

def Decoder_AddOp : Decoder_NamedOp<"add", "residual", [Pure, Commutative, SameOperandsAndResultType]> {
  let summary = "residual addition";
  let description = [{
    Adds a block's output to its residual stream.

    Example:

    ```mlir
    %h1 = decoder.add %h0, %o : tensor<?x256xf32>
    ```
  }];
  let arguments = (ins Decoder_Activation:$lhs, Decoder_Activation:$rhs);
  let results = (outs Decoder_Activation:$result);
  let assemblyFormat = "$lhs `,` $rhs attr-dict `:` type($result)";
}

//===----------------------------------------------------------------------===//
// Kernel-level ops: what the fusion passes produce
//===----------------------------------------------------------------------===//

def Decoder_ConcatWeightsOp : Decoder_NamedOp<"concat_weights", "packed",
    [Pure]> {
  let summary = "checkpoint tensors stacked along their rows at load time";
  let description = [{
    One parameter made of several checkpoint tensors, their rows in operand
    order. The fusion passes use it to pack sibling projections (q, k and v;
    gate and up) into one weight; the runtime assembles it once at load, so
    no kernel ever reads two weights.
    Example:
    ```mlir
    %gate_up = decoder.concat_weights %gate, %up
        : tensor<344x128xbf16>, tensor<344x128xbf16> -> tensor<688x128xbf16>
    ```
  }];
  let arguments = (ins Variadic<Decoder_WeightTensor>:$parts);
  let results = (outs Decoder_WeightTensor:$result);
  let assemblyFormat = "$parts attr-dict `:` type($parts) `->` type($result)";
  let hasVerifier = 1;
}

def Decoder_FusedLinearOp : Decoder_Op<"fused_linear",
    [AttrSizedOperandSegments, Decoder_NamedResults]> {
  let summary = "one projection kernel with its fused prologue and epilogue";
  let description = [{
    A `decoder.linear` together with the work the fusion passes moved into
    it, in the order the kernel does it:

    1. prologue `norm` (`rms` or `layer`, with `norm_weight`, optional
       `norm_bias` and `norm_epsilon`): the input is normalized on the fly;
    2. `x W^T (+ bias)` with the weight packed as `packing` says;
    3. epilogue, at most one of:
       - `activation = swiglu`: rows are `[gate | up]`, the result is
         `silu(gate) * up` (half the rows); `gelu` / `gelu_tanh`: GELU;
       - `residual`: the result is `residual + x W^T`;
       - `append(positions, cache)` with `layer` and optional `rope`: rows
         are `[q | k | v]` (or `kv_grouped`); q and k are rotated by `rope`,
         k and v are written into layer `layer` of `cache` at each token's
         position and the only result is the rotated q.
    Example:
    ```mlir
    %q = decoder.fused_linear %h, %wqkv norm(%g) append(%pos, %cache)
           {norm = #decoder.norm<rms>, norm_epsilon = 1.0e-05 : f64, layer = 0 : i64,
            rope = #decoder.rope<kind = default, theta = 10000.0, rotary_dim = 32>}
         : (tensor<?x128xf32>, tensor<256x128xf32>, tensor<128xf32>, tensor<?xi64>,
            !decoder.kv_cache<layers = 2, kv_heads = 2, head_dim = 32, element = f32>)
           -> tensor<?x4x32xf32>
    ```
  }];
  let arguments = (ins Decoder_Activation:$input, Decoder_WeightTensor:$weight,
                       Optional<Decoder_FloatTensor>:$bias,
                       Optional<Decoder_FloatTensor>:$norm_weight,
                       Optional<Decoder_FloatTensor>:$norm_bias,
                       Optional<Decoder_Activation>:$residual,
                       Optional<Decoder_TokenIds>:$positions,
                       Arg<Optional<Decoder_KVCacheType>, "the cache appended to",
                           [MemWrite]>:$cache,
                       DefaultValuedAttr<Decoder_PackingAttr,
                                         "::mlir::decoder::Packing::Concat">:$packing,
                       OptionalAttr<Decoder_NormKindAttr>:$norm,
                       OptionalAttr<F64Attr>:$norm_epsilon,
                       OptionalAttr<Decoder_ActivationAttr>:$activation,
                       OptionalAttr<Decoder_RoPEAttr>:$rope,
                       OptionalAttr<I64Attr>:$layer);
  let results = (outs Variadic<Decoder_Activation>:$results);
  let assemblyFormat = [{
    $input `,` $weight (`bias` $bias^)?
    (`norm` `(` $norm_weight^ (`,` $norm_bias^)? `)`)?
    (`residual` $residual^)? (`append` `(` $positions^ `,` $cache `)`)?
    attr-dict `:` functional-type(operands, results)
  }];
  let hasVerifier = 1;
}

def Decoder_CachedAttentionOp : Decoder_NamedOp<"cached_attention", "attn",
    []> {
  let summary = "attention over keys and values already in the cache";
  let description = [{
    What remains of `decoder.attention` once the QKV projection appends this
    step's keys and values itself: every query head attends to the keys of
    layer `layer` at positions up to its own, as `config` says (grouping,
    scale, ALiBi, backend).
    Example:
    ```mlir
    %a = decoder.cached_attention %q, %pos, %cache {layer = 0 : i64,
           config = #decoder.attention<num_heads = 4, num_kv_heads = 2, head_dim = 32,
                                       softmax_scale = 0.17677669529663687>}
        : tensor<?x4x32xf32>, tensor<?xi64>,
          !decoder.kv_cache<layers = 2, kv_heads = 2, head_dim = 32, element = f32>
        -> tensor<?x4x32xf32>
    ```
  }];
  let arguments = (ins Decoder_Activation:$query, Decoder_TokenIds:$positions,
                       Arg<Decoder_KVCacheType, "the cache", [MemRead]>:$cache,
                       I64Attr:$layer, Decoder_AttentionConfigAttr:$config);
  let results = (outs Decoder_Activation:$result);
  let assemblyFormat = [{
    $query `,` $positions `,` $cache attr-dict `:` type($query) `,`
    type($positions) `,` qualified(type($cache)) `->` type($result)
  }];
  let hasVerifier = 1;
}

//===----------------------------------------------------------------------===//
// Vision encoder (InternViT and InternVL's projector)
//
// An image is a batch of tiles; the encoder's activations are one row per
// token of every tile, tile after tile (`sequence` rows a tile), so that
// norms, projections, GELU and residual adds are the decoder's own ops.
//===----------------------------------------------------------------------===//

def Decoder_PatchEmbeddingOp : Decoder_NamedOp<"patch_embedding", "embed",
    [Pure]> {
  let summary = "a ViT's patch embedding, class token and position embeddings";
  let description = [{
    For every tile of `pixels` (`[tiles, channels, size, size]`, normalized):
    one row for the class token, then one row per `patch x patch` patch in
    raster order, the patch multiplied by `weight` (a convolution of stride
    `patch`, `[features, channels, patch, patch]` as stored) plus `bias`;
    row `i` of a tile then adds row `i` of `position` (`[1, 1 + patches,
    features]`). The result has `tiles x (1 + patches)` rows. InternViT's
    `embeddings` (its position embeddings used at the size they were
    trained at).

    Example:

    ```mlir
    %x = decoder.patch_embedding %pixels, %w, %b, %cls, %pos
        : tensor<?x3x448x448xf32>, tensor<64x3x14x14xf32>, tensor<64xf32>,
          tensor<1x1x64xf32>, tensor<1x1025x64xf32> -> tensor<?x64xf32>
    ```
  }];
  let arguments = (ins RankedTensorOf<[F32]>:$pixels, Decoder_FloatTensor:$weight,
                       Decoder_FloatTensor:$bias, Decoder_FloatTensor:$class_embedding,
                       Decoder_FloatTensor:$position);
  let results = (outs Decoder_Activation:$result);
  let assemblyFormat = [{
    $pixels `,` $weight `,` $bias `,` $class_embedding `,` $position attr-dict `:`
    type($pixels) `,` type($weight) `,` type($bias) `,` type($class_embedding) `,`
    type($position) `->` type($result)
  }];
  let hasVerifier = 1;
}

def Decoder_EncoderAttentionOp : Decoder_NamedOp<"encoder_attention", "attn",
    [Pure, AllTypesMatch<["query", "key", "value", "result"]>]> {
  let summary = "bidirectional attention within each tile";
  let description = [{
    Every query head attends to the keys of the same head in its own run of
    `sequence` rows (one tile), before and after it alike: no mask, no
    positions, no cache. Scores are scaled by `softmax_scale` before the
    softmax. InternViT's self-attention.

    Example:

    ```mlir
    %a = decoder.encoder_attention %q, %k, %v {sequence = 1025 : i64, softmax_scale = 0.25 : f64}
        : tensor<?x4x16xf32>
    ```
  }];
  let arguments = (ins Decoder_Activation:$query, Decoder_Activation:$key,
                       Decoder_Activation:$value, I64Attr:$sequence,
                       F64Attr:$softmax_scale);
  let results = (outs Decoder_Activation:$result);
  let assemblyFormat = "$query `,` $key `,` $value attr-dict `:` type($result)";
  let hasVerifier = 1;
}

def Decoder_LayerScaleOp : Decoder_NamedOp<"layer_scale", "scaled",
    [Pure, AllTypesMatch<["input", "result"]>]> {
  let summary = "a block's output scaled feature by feature";
  let description = [{
    `x * gamma` with one learned factor a feature (InternViT's `ls1` and
    `ls2`, applied to the attention and MLP outputs before the residual
    add).

    Example:

    ```mlir
    %s = decoder.layer_scale %x, %ls1 : tensor<?x64xf32>, tensor<64xf32>
    ```
  }];
  let arguments = (ins Decoder_Activation:$input, Decoder_FloatTensor:$gamma);
  let results = (outs Decoder_Activation:$result);
  let assemblyFormat = "$input `,` $gamma attr-dict `:` type($input) `,` type($gamma)";
  let hasVerifier = 1;
}

def Decoder_PixelShuffleOp : Decoder_NamedOp<"pixel_shuffle", "shuffled",
    [Pure]> {
  let summary = "InternVL's pixel shuffle: neighbouring patches folded into features";
  let description = [{
    Per tile of `sequence` rows: drops the first `skip` rows (the class
    token), reads the remaining `side x side` rows as a grid (row-major)
    and folds each `f x f` block of neighbours into one row of `f^2`
    times the features, `f = 1 / ratio`; the result has `(side / f)^2`
    rows a tile. The order of the features is that of InternVL's
    `pixel_shuffle` (`ps_version` v2; with `transposed`, v1's, whose grid
    comes out transposed).

    Example:

    ```mlir
    %s = decoder.pixel_shuffle %x {sequence = 1025 : i64, skip = 1 : i64, ratio = 5.0e-01 : f64}
        : tensor<?x64xf32> -> tensor<?x256xf32>
    ```
  }];
  let arguments = (ins Decoder_Activation:$input, I64Attr:$sequence,
                       I64Attr:$skip, F64Attr:$ratio, UnitAttr:$transposed);
  let results = (outs Decoder_Activation:$result);
  let assemblyFormat = "$input attr-dict `:` type($input) `->` type($result)";
  let extraClassDeclaration = [{
    /// The side of a tile's grid: sqrt(sequence - skip).
    int64_t getGridSide();
    /// Neighbours folded along a side: 1 / ratio.
    int64_t getFold();
    /// Rows a tile has after the shuffle: (side / fold)^2.
    int64_t getRowsPerTileAfter();
  }];
  let hasVerifier = 1;
}

#endif // DECODER_OPS_TD
