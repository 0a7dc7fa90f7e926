"""gpu_matrate.py: the card's measured dense matrix rate, the denominator of
DESIGN.md's prefill measure: torch.matmul of 8192^3 in bf16 (f32 accumulate,
cuBLAS), and in f32 with TF32 allowed (the rate decc's split-TF32 mma steps
draw on, 2 or 3 of them per product). Timed with CUDA events after warm-up."""
import torch

n = 8192
for name, dtype, tf32 in [("bf16", torch.bfloat16, False), ("tf32", torch.float32, True)]:
    torch.backends.cuda.matmul.allow_tf32 = tf32
    a = torch.randn(n, n, device="cuda", dtype=dtype)
    b = torch.randn(n, n, device="cuda", dtype=dtype)
    for _ in range(3):
        a @ b
    start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    start.record()
    reps = 10
    for _ in range(reps):
        a @ b
    end.record()
    torch.cuda.synchronize()
    seconds = start.elapsed_time(end) / 1e3 / reps
    print(f"gpu_matrate: {name} {2 * n**3 / seconds / 1e12:.0f} TFLOP/s ({n}^3 matmul, torch {torch.__version__})")
