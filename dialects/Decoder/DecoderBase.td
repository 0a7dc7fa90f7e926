//===- DecoderBase.td - the decoder dialect ----------------*- tablegen -*-===//
//
// The dialect definition and the base class of its ops, shared by the attribute,
// type and op files.
//
//===----------------------------------------------------------------------===//

#ifndef DECODER_BASE_TD
#define DECODER_BASE_TD

include "mlir/IR/OpBase.td"
include "mlir/IR/AttrTypeBase.td"

def Decoder_Dialect : Dialect {
  let name = "decoder";
  let cppNamespace = "::mlir::decoder";
  let summary = "Decoder-only transformer language models, one op per block part.";
  let description = [{
    The `decoder` dialect describes a decoder-only language model at the level
    a paper draws it: token embedding, normalization, projections, rotary
    embeddings, attention over a KV cache, the MLP activation, residual adds and
    the LM head. Every shape, head count and RoPE constant is static, except the
    number of tokens in flight (the leading `?` of activations), so one function
    serves both the prompt (prefill) and single-token decode steps.

    Weights enter through `decoder.weight`, named by their checkpoint name; a
    packed checkpoint tensor (InternLM2's `wqkv`, Phi-3's `qkv_proj`) is read by
    one `decoder.linear` with several results and a `packing` that says how its
    rows are laid out.

    Activations are `f32` tensors `tensor<? x hidden>` or, per head,
    `tensor<? x heads x head_dim>`; weights may be `f32`, `bf16` or `f16`.
  }];
  let useDefaultAttributePrinterParser = 1;
  let useDefaultTypePrinterParser = 1;
  let extraClassDeclaration = [{
  private:
    void registerAttributes();
    void registerTypes();
  public:
  }];
}

class Decoder_Op<string mnemonic, list<Trait> traits = []>
    : Op<Decoder_Dialect, mnemonic, traits>;

#endif // DECODER_BASE_TD
