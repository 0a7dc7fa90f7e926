// gpu_membw.cu - the baseline of the GPU decode benchmark: how fast this
// card streams memory. `read`: a grid-stride kernel summing 16-byte loads
// (what a decode GEMV does with the weights); `copy`: cudaMemcpy device to
// device (read + write bytes counted). Best of 10 over 2 GiB.
//
//   nvcc -O3 -arch=sm_90a -o gpu_membw gpu_membw.cu   (built here, run there)
#include <cstdio>
#include <cuda_runtime.h>

__global__ void readAll(const uint4 *p, size_t n, unsigned *out) {
  unsigned s = 0;
  for (size_t i = blockIdx.x * size_t(blockDim.x) + threadIdx.x; i < n;
       i += size_t(gridDim.x) * blockDim.x) {
    uint4 v = p[i];
    s ^= v.x ^ v.y ^ v.z ^ v.w;
  }
  if (s == 0x12345678)
    *out = s;
}

int main() {
  size_t bytes = size_t(2) << 30;
  void *a, *b;
  unsigned *out;
  cudaMalloc(&a, bytes);
  cudaMalloc(&b, bytes);
  cudaMalloc(&out, 4);
  cudaMemset(a, 1, bytes);
  cudaEvent_t start, stop;
  cudaEventCreate(&start);
  cudaEventCreate(&stop);
  int sms;
  cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, 0);
  float bestRead = 1e30f, bestCopy = 1e30f, ms;
  for (int rep = 0; rep < 10; ++rep) {
    cudaEventRecord(start);
    readAll<<<sms * 8, 512>>>((const uint4 *)a, bytes / 16, out);
    cudaEventRecord(stop);
    cudaEventSynchronize(stop);
    cudaEventElapsedTime(&ms, start, stop);
    bestRead = ms < bestRead ? ms : bestRead;
    cudaEventRecord(start);
    cudaMemcpy(b, a, bytes, cudaMemcpyDeviceToDevice);
    cudaEventRecord(stop);
    cudaEventSynchronize(stop);
    cudaEventElapsedTime(&ms, start, stop);
    bestCopy = ms < bestCopy ? ms : bestCopy;
  }
  cudaDeviceProp prop;
  cudaGetDeviceProperties(&prop, 0);
  printf("gpu_membw: %s: read %.0f GB/s, copy %.0f GB/s (read+write)\n",
         prop.name, bytes / (bestRead * 1e-3) / 1e9,
         2 * bytes / (bestCopy * 1e-3) / 1e9);
  return 0;
}
