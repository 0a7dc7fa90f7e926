# projection-threads.awk: reads PTX and prints, in order, each decode GEMV
# kernel's (projection_N) .maxntid bound, "-" where it has none.
/\.entry / { if (name != "") out = out " " bound; name = ""; if ($3 ~ /^projection_/) { name = $3; bound = "-" } }
name != "" && /^\.maxntid / { bound = $2; sub(/,/, "", bound) }
END { if (name != "") out = out " " bound; print "projection blocks:" out }
