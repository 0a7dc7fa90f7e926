//===- Passes.td - decoder -> decoder passes ---------------*- tablegen -*-===//

#ifndef DECC_TRANSFORMS_PASSES_TD
#define DECC_TRANSFORMS_PASSES_TD

include "mlir/Pass/PassBase.td"

def SelectAttentionBackend
    : Pass<"decoder-select-attention-backend", "::mlir::ModuleOp"> {
  let summary = "Choose eager or flash attention for every decoder.attention";
  let description = [{
    Sets the `backend` of every `decoder.attention` and
    `decoder.cached_attention` config. With
    `backend=config` (the default) each op keeps what the model's config
    asked for; `eager` or `flash` override it (decc's `--attention`).
    Hugging Face's `attn_implementation` names are accepted: `sdpa`,
    `flash_attention_2`, `flash_attention_3` and `flex_attention` mean
    `flash` (contract/Contract.h holds the one list).

    Example: `decc-opt --decoder-select-attention-backend=backend=eager`.
  }];
  let options = [
    Option<"backend", "backend", "::decc::AttentionChoice",
           /*default=*/"::decc::AttentionChoice::Config",
           "config (keep each op's), eager, or flash (or a Hugging Face name)",
           [{::decc::attentionChoiceValues()}]>
  ];
  let dependentDialects = ["::mlir::decoder::DecoderDialect"];
}

def FuseProjections : Pass<"decoder-fuse-projections", "::mlir::ModuleOp"> {
  let summary = "Pack sibling projections of one input into one projection";
  let description = [{
    Projections that read the same input (q, k and v; gate and up) become
    one `decoder.linear` over a `decoder.concat_weights` of their weights,
    so the input is read once and one kernel does the work. Biases are
    packed the same way; all or none of the siblings must have one.
  }];
  let dependentDialects = ["::mlir::decoder::DecoderDialect"];
}

def FuseActivation : Pass<"decoder-fuse-activation", "::mlir::ModuleOp"> {
  let summary = "Move SwiGLU and GELU into the epilogue of their projection";
  let description = [{
    `swiglu(gate, up)` of the two results of one packed projection, and
    `gelu(x W^T)`, become a `decoder.fused_linear` with `activation`: the
    kernel computes the gate and up rows of a feature together and stores
    only the activation.
  }];
  let dependentDialects = ["::mlir::decoder::DecoderDialect"];
}

def FuseRoPEKVAppend : Pass<"decoder-fuse-rope-kv-append", "::mlir::ModuleOp"> {
  let summary = "Fuse RoPE and the KV-cache append into the QKV projection";
  let description = [{
    A packed q/k/v projection whose q and k are rotated by `decoder.rope`
    and whose outputs feed `decoder.attention` becomes one
    `decoder.fused_linear ... append(positions, cache)`, which rotates q and
    k in its epilogue and writes k and v straight into the cache, followed by
    a `decoder.cached_attention`. Keys and values never exist as tensors.
  }];
  let dependentDialects = ["::mlir::decoder::DecoderDialect"];
}

def FuseNorm : Pass<"decoder-fuse-norm", "::mlir::ModuleOp"> {
  let summary = "Fuse RMSNorm / LayerNorm into the projections that read it";
  let description = [{
    A normalization whose every user is a projection (or the LM head)
    disappears: each projection normalizes its input in its prologue.
  }];
  let dependentDialects = ["::mlir::decoder::DecoderDialect"];
}

def FuseResidual : Pass<"decoder-fuse-residual", "::mlir::ModuleOp"> {
  let summary = "Fuse the residual add into the epilogue of the projection";
  let description = [{
    `add(h, x W^T)` becomes a `decoder.fused_linear` with `residual` h: the
    projection's kernel adds the residual stream as it stores its output.
  }];
  let dependentDialects = ["::mlir::decoder::DecoderDialect"];
}

def TensorParallel : Pass<"decoder-tensor-parallel", "::mlir::ModuleOp"> {
  let summary = "Partition the model over tensor-parallel ranks";
  let description = [{
    Runs on the model as built, before the fusions. Attention heads and the
    MLP's intermediate features are divided over `ranks`: q/k/v and
    gate/up become column-parallel (each rank's weights are the rows of
    its heads or features, `shard_ranges` on `decoder.weight`), O and down
    row-parallel (the matching columns) followed by `decoder.all_reduce`;
    the LM head is split over the vocabulary and gathered with
    `decoder.all_gather` when the ranks divide the vocabulary, else
    computed whole on every rank. Embeddings, norms and the residual
    stream stay replicated. Key/value heads are split when the ranks divide
    them; with fewer KV heads than ranks each rank keeps the one its query
    heads read. The KV cache type holds a rank's KV heads.

    Quantized weights split by rows freely and by columns on their groups.
    Not partitioned yet (an error names the op): ALiBi, a bias on O or
    down, quantized columns that do not fall on their groups, projections
    other than q/k/v, O, gate/up, down.

    Example: `decc-opt --decoder-tensor-parallel=ranks=2`.
  }];
  let options = [
    Option<"ranks", "ranks", "int64_t", /*default=*/"2",
           "tensor-parallel ranks the model is divided over">
  ];
  let dependentDialects = ["::mlir::decoder::DecoderDialect",
                           "::mlir::func::FuncDialect"];
}

#endif // DECC_TRANSFORMS_PASSES_TD
