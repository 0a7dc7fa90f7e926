//===- ReadVision.cpp - InternVL's vision_config --------------------------===//
//
// The vision half of an InternVL config: InternViT's own keys under
// `vision_config` (configuration_intern_vit.py) and, at the wrapper's top
// level, how pictures become tokens (force_image_size, the dynamic tiles,
// the thumbnail, the pixel shuffle's downsample_ratio, the layer whose
// features the projector takes).
//
//===----------------------------------------------------------------------===//

#include "compiler/Config/Readers.h"

#include <cmath>

namespace decc {

void readVision(const JsonObject &wrapper, ModelSpec &s) {
  std::optional<JsonObject> v = wrapper.object("vision_config");
  if (!v)
    return;
  VisionSpec vs;
  vs.modelType = v->string("model_type", "intern_vit_6b");
  if (vs.modelType != "intern_vit_6b")
    v->fail("unknown " + v->keyPath("model_type") + " '" + vs.modelType +
            "'; accepted: intern_vit_6b (InternViT)");
  vs.hiddenSize = v->integerIn("hidden_size", 1, kMaxHidden);
  vs.intermediateSize = v->integerIn("intermediate_size", 1, kMaxIntermediate);
  vs.numLayers = v->integerIn("num_hidden_layers", 1, kMaxLayers);
  vs.numHeads = v->integerIn("num_attention_heads", 1, kMaxHeads);
  if (vs.hiddenSize % vs.numHeads != 0)
    v->fail(v->keyPath("hidden_size") + " (" + std::to_string(vs.hiddenSize) +
            ") is not divisible by " + v->keyPath("num_attention_heads") +
            " (" + std::to_string(vs.numHeads) + ")");
  vs.numChannels = v->integerIn("num_channels", 3, 1, 4);
  vs.patchSize = v->integerIn("patch_size", 1, 1024);
  vs.imageSize = wrapper.has("force_image_size")
                     ? wrapper.integerIn("force_image_size", 1, 8192)
                     : v->integerIn("image_size", 1, 8192);
  if (vs.imageSize % vs.patchSize != 0)
    v->fail("the image size " + std::to_string(vs.imageSize) +
            " is not a whole number of " + v->keyPath("patch_size") + " " +
            std::to_string(vs.patchSize) + " patches");
  std::string norm = v->string("norm_type", "rms_norm");
  if (norm == "layer_norm")
    vs.norm = NormKind::LayerNorm;
  else if (norm == "rms_norm")
    vs.norm = NormKind::RMSNorm;
  else
    v->fail("unknown " + v->keyPath("norm_type") + " '" + norm +
            "'; accepted: layer_norm, rms_norm");
  vs.normEps = readEpsilon(*v, "layer_norm_eps", 1e-6);
  std::string act = v->string("hidden_act", "gelu");
  if (act != "gelu")
    v->fail("unknown " + v->keyPath("hidden_act") + " '" + act +
            "'; accepted: gelu");
  vs.qkvBias = v->boolean("qkv_bias", false);
  vs.qkNormalization = v->boolean("qk_normalization", false);

  // How tiles become the language model's tokens.
  vs.downsampleRatio = wrapper.number("downsample_ratio", 0.5);
  int64_t side = vs.imageSize / vs.patchSize;
  double scaled = side * vs.downsampleRatio;
  if (!(vs.downsampleRatio > 0 && vs.downsampleRatio <= 1) ||
      scaled != std::floor(scaled))
    wrapper.fail(wrapper.keyPath("downsample_ratio") + " " +
                 formatNumber(vs.downsampleRatio) +
                 " must be in (0, 1] and shrink the " + std::to_string(side) +
                 " x " + std::to_string(side) +
                 " patches of a tile to a whole number");
  vs.minTiles = wrapper.integerIn("min_dynamic_patch", 1, 1, 64);
  vs.maxTiles = wrapper.integerIn("max_dynamic_patch", 12, vs.minTiles, 64);
  vs.dynamicTiles = wrapper.boolean("dynamic_image_size", true);
  vs.useThumbnail = wrapper.boolean("use_thumbnail", true);
  vs.selectLayer =
      wrapper.integerIn("select_layer", -1, -vs.numLayers, vs.numLayers - 1);
  std::string ps = wrapper.string("ps_version", "v2");
  if (ps != "v1" && ps != "v2")
    wrapper.fail("unknown " + wrapper.keyPath("ps_version") + " '" + ps +
                 "'; accepted: v1, v2 (InternVL's pixel shuffle)");
  vs.pixelShuffleV2 = ps == "v2";
  vs.chatTemplate = wrapper.string("template", "");
  s.vision = vs;
}

} // namespace decc
