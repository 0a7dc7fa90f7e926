//===- KernelBuilder.h - loops and vector helpers of the CPU kernels -*- C++
//-*-===//
//
// The CPU kernels are written directly as scf loops over memrefs with vector
// bodies: the loop structure (what runs in parallel, what stays in
// registers) is the decision of the lowering, not of a later auto-vectorizer.
//
//===----------------------------------------------------------------------===//

#ifndef DECC_CONVERSION_COMMON_KERNELBUILDER_H
#define DECC_CONVERSION_COMMON_KERNELBUILDER_H

#include "mlir/IR/ImplicitLocOpBuilder.h"

#include <functional>

namespace decc {

/// A quantized weight matrix's encoding as the dot products read it
/// (contract::WeightSlot's layout with f32 group terms): `bits` 8 (q *
/// scale) or 4 (q * scale + offset, two columns a byte), `scales` and
/// `offsets` (-zero * scale; 4 bits) [row][group] f32.
struct QuantizedDots {
  int64_t bits = 0, groupSize = 0;
  /// f32 lanes of the widened vectors: 8 (AVX2) or 16 (AVX-512).
  int64_t lanes = 8;
  mlir::Value scales, offsets;
  /// int4: each input row's sums over the groups ([row][group], indexed
  /// as the inputs are, the last group possibly shorter), which the
  /// offsets multiply; null: the dot products sum x as they go.
  mlir::Value xGroupSums;
  /// int4 in 16-bit integer products (set with xGroupSums): each input row
  /// rounded to int16 with one scale a group ([row][group] f32,
  /// `xScales`), each int16Block() of its columns in the order the
  /// block's bytes widen to ([row][col] i16, `xInt16`); null: the products
  /// are f32's.
  mlir::Value xInt16, xScales;

  /// Columns of one widening of int4 bytes into int16 words: a vector of
  /// `lanes` i32 sums takes 2 x lanes words, each word two columns. x's
  /// columns in a block: the low nibbles' (0-7 of each run of 16) first,
  /// then the high nibbles' (8-15), so that one load of x meets each.
  int64_t int16Block() const { return 4 * lanes; }
};

/// A builder for one kernel body. Every helper inserts at the builder's
/// current point; loop helpers hand the body a builder placed inside it.
class KernelBuilder {
public:
  using Body = std::function<void(KernelBuilder &, mlir::ValueRange ivs)>;
  using IterBody = std::function<llvm::SmallVector<mlir::Value>(
      KernelBuilder &, mlir::Value iv, mlir::ValueRange args)>;

  explicit KernelBuilder(mlir::ImplicitLocOpBuilder &b) : b(b) {}

  mlir::ImplicitLocOpBuilder &builder() { return b; }

  // Constants.
  mlir::Value index(int64_t v);
  mlir::Value f32(double v);
  mlir::Value i64(int64_t v);

  // Scalar arithmetic on f32 / index.
  mlir::Value add(mlir::Value a, mlir::Value c);
  mlir::Value sub(mlir::Value a, mlir::Value c);
  mlir::Value mul(mlir::Value a, mlir::Value c);
  mlir::Value div(mlir::Value a, mlir::Value c);
  mlir::Value fmax(mlir::Value a, mlir::Value c);
  /// The smaller of two indices (unsigned).
  mlir::Value umin(mlir::Value a, mlir::Value c);
  mlir::Value umax(mlir::Value a, mlir::Value c);
  /// a / c rounded up (unsigned indices).
  mlir::Value ceilDiv(mlir::Value a, mlir::Value c);
  /// Where the whole steps of `step` from `lo` toward `hi` end: lo + (hi -
  /// lo) / step * step (a blocked loop's end; its remainder follows).
  mlir::Value wholeStepsEnd(mlir::Value lo, mlir::Value hi, int64_t step);
  mlir::Value exp(mlir::Value a);
  mlir::Value indexToF32(mlir::Value i);
  mlir::Value toIndex(mlir::Value i64);
  /// A float (or vector of floats) extended to f32; f32 and integers stay.
  mlir::Value toF32(mlir::Value v);

  /// Loads `memref[indices]` and extends it to f32.
  mlir::Value loadF32(mlir::Value memref, mlir::ValueRange indices);
  /// Loads `width` contiguous elements of the innermost dimension as a
  /// vector<width x f32> (integers stay as they are); `align` (bytes), when
  /// given, is promised to the backend so the load can be one wide access.
  mlir::Value loadVector(mlir::Value memref, mlir::ValueRange indices,
                         int64_t width, int64_t align = 0);
  /// Stores `value` (rounded to the memref's element type when that is a
  /// narrower float: a half-precision KV cache).
  void store(mlir::Value value, mlir::Value memref, mlir::ValueRange indices);

  /// `for iv in [lb, ub) step`, no loop-carried values.
  void forLoop(mlir::Value lb, mlir::Value ub, int64_t step, const Body &body);
  /// The same with a step known only at run time.
  void forLoop(mlir::Value lb, mlir::Value ub, mlir::Value step,
               const Body &body);
  /// `for` with loop-carried values; returns their final values.
  llvm::SmallVector<mlir::Value> forLoop(mlir::Value lb, mlir::Value ub,
                                         int64_t step, mlir::ValueRange inits,
                                         const IterBody &body);
  /// A parallel loop nest over `[0, ub_i)`; the outermost becomes an OpenMP
  /// worksharing loop.
  void parallel(mlir::ValueRange ubs, const Body &body);
  /// `if (cond) then()`.
  void ifThen(mlir::Value cond,
              const std::function<void(KernelBuilder &)> &then);

  /// Dot products of row `rowA` of `a` (f32, last dim contiguous) with each
  /// row in `rowsB` of `b` (any float type), over `length` elements of the
  /// last dimension. `prefixA` / `prefixB` are the leading indices of the
  /// row, `offsetA` where the row of `a` starts in its last dimension. The
  /// `a` vector is loaded once for all rows.
  llvm::SmallVector<mlir::Value>
  dots(mlir::Value a, mlir::ValueRange prefixA, mlir::Value b,
       llvm::ArrayRef<mlir::SmallVector<mlir::Value>> prefixesB, int64_t length,
       mlir::Value offsetA = {});

  /// The dot products of every row in `prefixesA` with every row in
  /// `prefixesB` ([i][j]): each vector of `b` is loaded once for all rows of
  /// `a` and the other way round, which is what makes a block of tokens
  /// times a block of weight rows cheaper than its dot products one by one.
  /// When both are bf16 the products are AVX512-BF16 dot products
  /// (x86vector.avx512.dot); the caller knows the CPU has them.
  /// `registers`: the vector registers the CPU has (16 AVX2, 32 AVX-512),
  /// which decides how wide the accumulators can be. `offsetA` and
  /// `offsetB` are where the products start in the last dimension of `a`
  /// and of `b` (a slice of the rows' length `length`).
  /// `pairedBF16`: `a` is f32 in kBF16PairColumns' order (storePairedOrder) and
  /// `b` bf16 rows, which a step takes 16 columns at a time as 8 words:
  /// each word's high half is an f32 as it stands (a mask), its low half
  /// one shift away, where widening 8 bf16 costs a shuffle and a shift.
  /// `prefetchAhead` (index, elements of `b`; null: none): with one row of
  /// `a`, each step also prefetches every row of `b` that far ahead.
  llvm::SmallVector<llvm::SmallVector<mlir::Value>> dotGrid(
      mlir::Value a, llvm::ArrayRef<mlir::SmallVector<mlir::Value>> prefixesA,
      mlir::Value b, llvm::ArrayRef<mlir::SmallVector<mlir::Value>> prefixesB,
      int64_t length, mlir::Value offsetA = {}, int64_t registers = 16,
      mlir::Value offsetB = {}, bool pairedBF16 = false,
      mlir::Value prefetchAhead = {});

  /// Columns a block of pairedBF16 inputs reorders: columns k + 2i, then
  /// k + 2i + 1 (i < 8), the order a block of 16 bf16 weights widens in.
  static constexpr int64_t kBF16PairColumns = 16;
  /// Stores row `row` of f32 `src` (its 16 columns from `k`) into `dst` in
  /// pairedBF16's order: the even columns, then the odd ones.
  void storePairedOrder(mlir::Value src, mlir::Value dst,
                        llvm::ArrayRef<mlir::Value> row, mlir::Value k);

  /// dotGrid for quantized rows of `b` (bytes, encoded as `q` says): each
  /// group's integers widened to f32 in registers into a partial sum
  /// x . q that the group's scale then multiplies into the row's
  /// accumulator; with offsets, s (x . q) + offset x sum(x), the group's
  /// sum of x computed once for all rows.
  llvm::SmallVector<llvm::SmallVector<mlir::Value>> quantizedDotGrid(
      mlir::Value a, llvm::ArrayRef<mlir::SmallVector<mlir::Value>> prefixesA,
      mlir::Value b, const QuantizedDots &q,
      llvm::ArrayRef<mlir::SmallVector<mlir::Value>> prefixesB, int64_t length);

  /// quantizedDotGrid's int4 rows against inputs rounded to int16
  /// (`q.xInt16`): a block's bytes widened to int16 words, nibbles masked
  /// and shifted, multiplied with x's words and summed in pairs into i32
  /// (vpmaddwd), a group's i32 sums converted once and scaled by the
  /// weight's scale times x's. Half the instructions a weight of the f32
  /// products (widen, mask, shift, two conversions, two FMAs a 16-column
  /// run), which bound the int4 decode on AVX2. Groups of whole blocks.
  /// `prefixesA` index q.xInt16's rows.
  llvm::SmallVector<llvm::SmallVector<mlir::Value>>
  int16DotGrid(llvm::ArrayRef<mlir::SmallVector<mlir::Value>> prefixesA,
               mlir::Value b, const QuantizedDots &q,
               llvm::ArrayRef<mlir::SmallVector<mlir::Value>> prefixesB,
               int64_t length);

  /// The integer of column `k` of quantized row `row` (indices into `b`),
  /// as f32: int8 signed, int4 the column's nibble. A flat `b` (the GPU's
  /// arena views) has no row indices but `rowStart`, the row's first byte.
  mlir::Value quantizedInteger(mlir::Value b, int64_t bits,
                               llvm::ArrayRef<mlir::Value> row, mlir::Value k,
                               mlir::Value rowStart = {});
  /// quantizedInteger of columns [k, k + n) as a vector<n x f32>, n of 4 or
  /// 8 and k a multiple of n, so that the run is n bytes of one load (int4:
  /// in one 16-column run, its low or high nibbles); `align` (bytes, 0:
  /// none) is promised for that load.
  mlir::Value quantizedIntegers(mlir::Value b, int64_t bits,
                                llvm::ArrayRef<mlir::Value> row, mlir::Value k,
                                int64_t n, mlir::Value rowStart = {},
                                int64_t align = 0);
  /// Weight (row, k) of quantized `b` as the float it stands for.
  mlir::Value dequantized(mlir::Value b, const QuantizedDots &q,
                          mlir::Value row, mlir::Value k);

  /// Visits `[0, length)` of a contiguous dimension in vector chunks, then
  /// the remainder one element at a time (`width` 1: scalar values).
  void forEachChunk(int64_t length,
                    const std::function<void(KernelBuilder &, mlir::Value k,
                                             int64_t width)> &body);
  /// `width` elements at `indices` as f32 (a scalar when `width` is 1).
  mlir::Value loadN(mlir::Value memref, mlir::ValueRange indices,
                    int64_t width);
  /// `scalar` broadcast to `width` lanes (itself when `width` is 1).
  mlir::Value splat(mlir::Value scalar, int64_t width);

  /// Vector width used for a contiguous run of `length` f32 elements by
  /// `accumulators` sums on a CPU of `registers` vector registers.
  static int64_t vectorWidth(int64_t length, int64_t accumulators = 1,
                             int64_t registers = 16);

private:
  mlir::ImplicitLocOpBuilder &b;
};

} // namespace decc

#endif // DECC_CONVERSION_COMMON_KERNELBUILDER_H
