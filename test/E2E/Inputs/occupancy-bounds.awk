# occupancy-bounds.awk PTX REPORT: for each decode GEMV (projection_*) entry
# of PTX with launch bounds (.maxntid T, maybe .minnctapersm B; the GEMVs
# ask for 16 warps an SM, B = 512 / T), whether ptxas's -v REPORT on that
# PTX meets them: "met NAME" when its registers (allocated a warp at a
# time, in units of 256) fit B blocks of T threads in an SM's 65536
# registers without spilling, else "unmet NAME"; then how many have bounds.
FNR == NR && /\.entry projection_/ { name = $3; sub(/\(.*/, "", name); next }
FNR == NR && name != "" && /^\.maxntid/ { threads[name] = $2 + 0; next }
FNR == NR && name != "" && /^\.minnctapersm/ { blocks[name] = $2 + 0; next }
FNR == NR && /^\{/ { name = ""; next }
FNR == NR { next }
/Compiling entry function/ { kernel = $0; sub(/.*function '/, "", kernel); sub(/'.*/, "", kernel) }
/bytes spill stores/ && $5 + 0 > 0 { spills[kernel] = 1 }
/Used [0-9]+ registers/ { registers[kernel] = $5 + 0 }
END {
  n = 0
  for (k in threads) {
    n++
    b = (k in blocks) ? blocks[k] : 512 / threads[k]
    perWarp = int((registers[k] * 32 + 255) / 256) * 256
    fits = registers[k] > 0 && perWarp * (threads[k] / 32) * b <= 65536
    print (fits && !(k in spills) ? "met " : "unmet ") k
  }
  print n " bounded"
}
