# gemv-registers.awk: reads `ptxas -v` output and fails (exit 1) when a
# projection kernel (the decode GEMVs) spills or uses 192 registers or more.
/Compiling entry function/ { gemv = ($0 ~ /'projection_/); name = $0 }
gemv && /bytes spill stores/ && $5 + 0 > 0 { print "spills: " name; bad = 1 }
gemv && /Used [0-9]+ registers/ && $5 + 0 >= 192 { print "registers: " name ": " $0; bad = 1 }
END { exit bad }
