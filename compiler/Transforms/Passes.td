//===- Passes.td - decoder -> decoder passes ---------------*- tablegen -*-===//

#ifndef DECC_TRANSFORMS_PASSES_TD
#define DECC_TRANSFORMS_PASSES_TD

include "mlir/Pass/PassBase.td"

def SelectAttentionBackend
    : Pass<"decoder-select-attention-backend", "::mlir::ModuleOp"> {
  let summary = "Choose eager or flash attention for every decoder.attention";
  let description = [{
    Sets the `backend` of every `decoder.attention` config. With
    `backend=config` (the default) each op keeps what the model's config
    asked for; `eager` or `flash` override it (decc's `--attention`).
    Hugging Face's names are accepted: `sdpa` and `flash_attention_2` mean
    `flash`.

    Example: `decc-opt --decoder-select-attention-backend=backend=eager`.
  }];
  let options = [
    Option<"backend", "backend", "std::string", /*default=*/"\"config\"",
           "eager, flash (sdpa, flash_attention_2), or config">
  ];
  let dependentDialects = ["::mlir::decoder::DecoderDialect"];
}

#endif // DECC_TRANSFORMS_PASSES_TD
