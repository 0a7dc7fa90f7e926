# matmul-spills.awk: reads `ptxas -v` output and fails (exit 1) when a
# prefill matmul kernel spills.
/Compiling entry function/ { matmul = ($0 ~ /'matmul_[0-9]+'/); name = $0 }
matmul && /bytes spill stores/ && $5 + 0 > 0 { print "spills: " name; bad = 1 }
matmul && /bytes spill stores/ { seen = 1 }
END { if (!seen) print "no matmul kernel"; exit bad || !seen }
