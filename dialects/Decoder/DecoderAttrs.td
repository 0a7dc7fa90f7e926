//===- DecoderAttrs.td - decoder dialect attributes --------*- tablegen -*-===//
//
// Enums and the two structured attributes: how positions are encoded (RoPE)
// and how attention is configured.
//
//===----------------------------------------------------------------------===//

#ifndef DECODER_ATTRS_TD
#define DECODER_ATTRS_TD

include "DecoderBase.td"
include "mlir/IR/EnumAttr.td"

//===----------------------------------------------------------------------===//
// Parameters
//===----------------------------------------------------------------------===//

// Doubles print in their shortest exact form, so RoPE factor lists survive a
// round trip bit for bit.
class Decoder_F64Parameter<string desc, string default = "">
    : AttrParameter<"::mlir::decoder::F64", desc> {
  let parser = "::mlir::decoder::parseF64($_parser)";
  let printer = "::mlir::decoder::printF64($_printer, $_self)";
  let comparator = "double($_lhs) == double($_rhs)";
  let defaultValue = default;
}

class Decoder_I64Parameter<string desc, string default = "">
    : AttrParameter<"int64_t", desc> {
  let defaultValue = default;
}

class Decoder_BoolParameter<string desc, string default>
    : AttrParameter<"bool", desc> {
  let parser = "::mlir::decoder::parseBool($_parser)";
  let printer = "$_printer << ($_self ? \"true\" : \"false\")";
  let defaultValue = default;
}

def Decoder_F64ArrayParameter
    : OptionalArrayRefParameter<"::mlir::decoder::F64", "per-dimension factors"> {
  let parser = "::mlir::decoder::parseF64Array($_parser)";
  let printer = "::mlir::decoder::printF64Array($_printer, $_self)";
}

//===----------------------------------------------------------------------===//
// Enums
//===----------------------------------------------------------------------===//

def Decoder_RoPEKind : I32EnumAttr<"RoPEKind", "RoPE frequency scaling", [
    I32EnumAttrCase<"Default", 0, "default">,
    I32EnumAttrCase<"Linear", 1, "linear">,
    I32EnumAttrCase<"Dynamic", 2, "dynamic">,
    I32EnumAttrCase<"LongRoPE", 3, "longrope">,
    I32EnumAttrCase<"YaRN", 4, "yarn">,
    I32EnumAttrCase<"Llama3", 5, "llama3">]> {
  let cppNamespace = "::mlir::decoder";
  let genSpecializedAttr = 0;
}

def Decoder_AttentionBackend : I32EnumAttr<"AttentionBackend",
    "how attention is computed", [
    I32EnumAttrCase<"Eager", 0, "eager">,
    I32EnumAttrCase<"Flash", 1, "flash">]> {
  let cppNamespace = "::mlir::decoder";
  let genSpecializedAttr = 0;
}

def Decoder_Packing : I32EnumAttr<"Packing",
    "row layout of a packed projection weight", [
    I32EnumAttrCase<"Concat", 0, "concat">,
    I32EnumAttrCase<"KVGrouped", 1, "kv_grouped">]> {
  let cppNamespace = "::mlir::decoder";
  let genSpecializedAttr = 0;
}

def Decoder_GeluApproximation : I32EnumAttr<"GeluApproximation",
    "GELU formula", [
    I32EnumAttrCase<"None", 0, "none">,
    I32EnumAttrCase<"Tanh", 1, "tanh">]> {
  let cppNamespace = "::mlir::decoder";
  let genSpecializedAttr = 0;
}

def Decoder_NormKind : I32EnumAttr<"NormKind",
    "normalization fused into a projection", [
    I32EnumAttrCase<"RMS", 0, "rms">,
    I32EnumAttrCase<"Layer", 1, "layer">]> {
  let cppNamespace = "::mlir::decoder";
  let genSpecializedAttr = 0;
}

def Decoder_ActivationKind : I32EnumAttr<"Activation",
    "activation applied in a projection's epilogue", [
    I32EnumAttrCase<"SwiGLU", 0, "swiglu">,
    I32EnumAttrCase<"Gelu", 1, "gelu">,
    I32EnumAttrCase<"GeluTanh", 2, "gelu_tanh">]> {
  let cppNamespace = "::mlir::decoder";
  let genSpecializedAttr = 0;
}

class Decoder_EnumAttr<EnumAttrInfo info, string mnemonic>
    : EnumAttr<Decoder_Dialect, info, mnemonic> {
  let assemblyFormat = "`<` $value `>`";
}

def Decoder_PackingAttr : Decoder_EnumAttr<Decoder_Packing, "packing">;
def Decoder_NormKindAttr : Decoder_EnumAttr<Decoder_NormKind, "norm">;
def Decoder_ActivationAttr : Decoder_EnumAttr<Decoder_ActivationKind, "activation">;
def Decoder_GeluApproximationAttr
    : Decoder_EnumAttr<Decoder_GeluApproximation, "gelu_approximation">;

//===----------------------------------------------------------------------===//
// RoPE
//===----------------------------------------------------------------------===//

def Decoder_RoPEAttr : AttrDef<Decoder_Dialect, "RoPE"> {
  let mnemonic = "rope";
  let summary = "rotary position embedding and its frequency scaling";
  let description = [{
    Rotary embedding in the rotate-half convention: the first `rotary_dim`
    features of each head are split in two halves `x1, x2` and become
    `x1*cos - x2*sin, x2*cos + x1*sin` with angle `position * inv_freq_i`,
    `inv_freq_i = theta^(-2i/rotary_dim)` before scaling. `kind` selects the
    scaling:

    - `default`: none.
    - `linear`: positions are divided by `factor`.
    - `dynamic`: NTK-aware; once the sequence (max position + 1) exceeds
      `max_positions`, `theta` becomes
      `theta * (factor*seq/max_positions - (factor-1))^(d/(d-2))` for the
      tokens being computed; keys already cached keep their rotation.
    - `longrope`: `inv_freq_i` is divided by `short_factor[i]` while the
      sequence fits `original_max_positions`, by `long_factor[i]` beyond it.
    - `yarn`: frequencies ramp between interpolation (`/factor`) and
      extrapolation between the dimensions given by `beta_fast`/`beta_slow`
      against `original_max_positions`.
    - `llama3`: wavelengths longer than `original_max_positions/low_freq_factor`
      are divided by `factor`, shorter than `/high_freq_factor` are kept, and
      the band between is interpolated smoothly.

    `attention_factor` multiplies cos and sin (longrope and yarn set it).

    Example:

    ```mlir
    #decoder.rope<kind = dynamic, theta = 1000000.0, rotary_dim = 32,
                  factor = 2.0, max_positions = 64>
    ```
  }];
  let parameters = (ins
    EnumParameter<Decoder_RoPEKind>:$kind,
    Decoder_F64Parameter<"base of the frequencies">:$theta,
    Decoder_I64Parameter<"number of rotated features per head">:$rotary_dim,
    Decoder_F64Parameter<"scaling factor", "1.0">:$factor,
    Decoder_I64Parameter<"context length the model was trained with (dynamic)",
                         "0">:$max_positions,
    Decoder_I64Parameter<"pre-extension context length (longrope, yarn, llama3)",
                         "0">:$original_max_positions,
    Decoder_F64ArrayParameter:$short_factor,
    Decoder_F64ArrayParameter:$long_factor,
    Decoder_F64Parameter<"multiplier of cos and sin", "1.0">:$attention_factor,
    Decoder_F64Parameter<"yarn: fast rotation bound", "32.0">:$beta_fast,
    Decoder_F64Parameter<"yarn: slow rotation bound", "1.0">:$beta_slow,
    Decoder_F64Parameter<"llama3: low frequency factor", "1.0">:$low_freq_factor,
    Decoder_F64Parameter<"llama3: high frequency factor", "4.0">:$high_freq_factor
  );
  let assemblyFormat = "`<` struct(params) `>`";
  let genVerifyDecl = 1;
}

//===----------------------------------------------------------------------===//
// Attention
//===----------------------------------------------------------------------===//

def Decoder_QuantizedAttr : AttrDef<Decoder_Dialect, "Quantized"> {
  let mnemonic = "quantized";
  let summary = "how a weight tensor's integers stand for its values";
  let description = [{
    The encoding of an integer weight tensor `tensor<rows x cols x iN>`
    (N = `bits`): each row is cut into groups of `group_size` columns (the
    last group of a row shorter when `group_size` does not divide `cols`).
    With `bits = 8` a group's values are `q * scale` with `q` in
    [-127, 127] (symmetric, one f16 scale a group); with `bits = 4` they
    are `(q - zero) * scale` with `q` and `zero` in [0, 15] (asymmetric,
    an f16 scale and an integer zero point a group: AWQ's format). The
    shape is the logical one (the checkpoint's `[out, in]`); the runtime
    quantizes the checkpoint's floats when it loads them, and the arena
    holds the integers row by row (4 bits: two a byte), then the scales
    (`[rows][groups]`, f16), then with 4 bits the zero points
    (`[rows][groups]`, one a byte); contract::WeightSlot has the byte
    layout.

    Example:

    ```mlir
    %w = decoder.weight "model.layers.0.mlp.down_proj.weight"
        : tensor<64x172xi8, #decoder.quantized<bits = 8, group_size = 32>>
    %u = decoder.weight "model.layers.0.mlp.up_proj.weight"
        : tensor<172x64xi4, #decoder.quantized<bits = 4, group_size = 128>>
    ```
  }];
  let parameters = (ins
    Decoder_I64Parameter<"bits a value">:$bits,
    Decoder_I64Parameter<"columns that share a scale">:$group_size);
  let assemblyFormat = "`<` struct(params) `>`";
  let genVerifyDecl = 1;
}

def Decoder_AttentionConfigAttr : AttrDef<Decoder_Dialect, "AttentionConfig"> {
  let mnemonic = "attention";
  let summary = "head counts, masking, position bias and backend of attention";
  let description = [{
    `num_heads` query heads share `num_kv_heads` key/value heads in groups of
    `num_heads / num_kv_heads` (MHA when equal, MQA when `num_kv_heads` is 1).
    Scores are `q.k * softmax_scale`; with `alibi_bias_max > 0` each head `h`
    adds `slope_h * (j - i)` for key `j` and query `i` (the MPT/BLOOM slopes
    for `alibi_bias_max`). A rank's share of a tensor-parallel model's heads
    has `alibi_heads` (the model's heads) > `num_heads`: its heads take the
    slopes of the model's heads `rank * num_heads ..`, the rank known only
    when it runs. `clip_qkv > 0` clamps q, k and v to
    `[-clip_qkv, clip_qkv]`. With `sliding_window = W > 0` query `i` sees
    only keys `j > i - W`. `backend` is `eager` (scores materialized) or
    `flash` (tiled online softmax).

    Example:

    ```mlir
    #decoder.attention<num_heads = 8, num_kv_heads = 2, head_dim = 32,
                       softmax_scale = 0.17677669529663687, backend = eager>
    ```
  }];
  let parameters = (ins
    Decoder_I64Parameter<"query heads">:$num_heads,
    Decoder_I64Parameter<"key/value heads">:$num_kv_heads,
    Decoder_I64Parameter<"features per head">:$head_dim,
    Decoder_F64Parameter<"multiplier of q.k">:$softmax_scale,
    Decoder_BoolParameter<"mask keys after the query", "true">:$causal,
    Decoder_I64Parameter<"keys visible per query (itself included); 0: all",
                         "0">:$sliding_window,
    Decoder_F64Parameter<"ALiBi bias max; 0 disables ALiBi", "0.0">:$alibi_bias_max,
    Decoder_I64Parameter<"heads of the model whose ALiBi slopes the heads "
                         "take; 0: num_heads", "0">:$alibi_heads,
    Decoder_F64Parameter<"clamp bound of q, k, v; 0 disables", "0.0">:$clip_qkv,
    DefaultValuedParameter<"::mlir::decoder::AttentionBackend",
        "::mlir::decoder::AttentionBackend::Flash", "backend">:$backend
  );
  let assemblyFormat = "`<` struct(params) `>`";
  let genVerifyDecl = 1;
}

#endif // DECODER_ATTRS_TD
