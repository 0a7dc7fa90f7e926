//===- DecoderTypes.td - decoder dialect types -------------*- tablegen -*-===//

#ifndef DECODER_TYPES_TD
#define DECODER_TYPES_TD

include "DecoderBase.td"

def Decoder_KVCacheType : TypeDef<Decoder_Dialect, "KVCache"> {
  let mnemonic = "kv_cache";
  let summary = "the key/value cache of every layer";
  let description = [{
    Keys and values of every layer for the tokens seen so far, written by
    `decoder.attention` at the positions of the tokens it is given. Its length
    is a property of the executable (`--max-context`), not of the IR.

    Example:

    ```mlir
    !decoder.kv_cache<layers = 3, kv_heads = 2, head_dim = 32, element = f32>
    ```
  }];
  let parameters = (ins "int64_t":$layers, "int64_t":$kv_heads,
                        "int64_t":$head_dim, "::mlir::Type":$element);
  let assemblyFormat = "`<` struct(params) `>`";
  let genVerifyDecl = 1;
}

#endif // DECODER_TYPES_TD
