# projection-mma.awk: reads PTX and prints, for the decode GEMV kernels
# (projection_N), how many multiply on tensor cores (an mma.sync with
# nibbles or'ed under 0x43004300, bf16 128.0 twice: the int4 GEMV of
# GPUGemvMma.cpp) and how many walk a row a lane a column (GPUGemv.cpp).
/\.entry / { name = $3; sub(/\(.*/, "", name); isGemv = (name ~ /^projection_/); if (isGemv) gemvs[name] = 1 }
isGemv && /mma\.sync\.aligned\.m16n8k16\.row\.col\.f32\.bf16\.bf16\.f32/ { mma[name] = 1 }
isGemv && /or\.b32.*, 1124090624;/ { magic[name] = 1 }
END {
  for (k in gemvs) { if (mma[k] && magic[k]) tc++; else lanes++ }
  printf "decode GEMVs: %d on tensor cores, %d a lane a column\n", tc, lanes
}
