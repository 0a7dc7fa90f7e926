//===- WeightNames.h - checkpoint tensor names per backbone -----*- C++ -*-===//
//
// The Hub names of every parameter, and how the projections are packed. The
// builder asks here and never spells a name itself.
//
//===----------------------------------------------------------------------===//

#ifndef DECC_FRONTEND_WEIGHTNAMES_H
#define DECC_FRONTEND_WEIGHTNAMES_H

#include "compiler/Config/ModelSpec.h"

#include <string>

namespace decc {

enum class QKVPacking {
  Separate,  // q_proj, k_proj, v_proj
  Concat,    // rows [q | k | v]: Phi-3 qkv_proj, MPT Wqkv
  KVGrouped, // per KV head [queries | key | value]: InternLM2 wqkv
};

struct LayerWeightNames {
  std::string attnNorm, mlpNorm; // ".weight"; ".bias" added when present
  QKVPacking qkvPacking = QKVPacking::Separate;
  std::string qkv;     // packed projection (no suffix)
  std::string q, k, v; // separate projections (no suffix)
  std::string out;
  bool gateUpPacked = false; // Phi-3 gate_up_proj rows [gate | up]
  std::string gateUp, gate, up, down;
};

struct ModelWeightNames {
  std::string embedding; // with ".weight"
  std::string finalNorm; // without suffix
  std::string lmHead;    // with ".weight"; the embedding when tied
};

ModelWeightNames modelWeightNames(const ModelSpec &spec);
LayerWeightNames layerWeightNames(const ModelSpec &spec, int64_t layer);

} // namespace decc

#endif // DECC_FRONTEND_WEIGHTNAMES_H
