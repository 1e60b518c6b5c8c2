// fastconv's own FFT: batched mixed-radix (2, 3, 4, 5) complex transforms over split-complex lanes
// (the butterflies run across many transforms of one length at once), real transforms by the
// two-for-one trick, in place: forward leaves bins in digit-reversed order, inverse takes them
// back.
#pragma once
#include <cstdint>

namespace fastconv::fft {

constexpr int kMaxStages = 40;  // 2^40 points at the least, far past any int64 size we accept

// True when n = 2^a 3^b 5^c (n >= 1): the lengths these transforms handle.
bool is_smooth(int64_t n);
// Smallest smooth length >= n.
int64_t next_smooth(int64_t n);

struct Stage {
  int radix;
  int64_t lp;         // length of the sub-transforms this stage combines
  int64_t tw_offset;  // into Plan::tw: (re, im) pairs, lp * (radix - 1) of them
};

// Twiddles and the digit-reversal map for one length; a view over memory sized by plan_bytes().
template <typename T>
struct Plan {
  int64_t n = 1;
  int nstages = 0;
  Stage stages[kMaxStages];
  const T* tw = nullptr;
  const int32_t* perm = nullptr;  // perm[k]: the position frequency k sits at after forward()
};

// Bytes of table memory make_plan() writes for length n (a multiple of 64).
template <typename T>
int64_t plan_bytes(int64_t n);
// Builds the plan for smooth n in `mem` (plan_bytes<T>(n) bytes, 8-byte aligned).
template <typename T>
Plan<T> make_plan(int64_t n, void* mem);

// In-place complex transforms over `lanes` transforms: element (position p, lane b) has its real
// part at data[p * ps + b] and imaginary part at data[p * ps + io + b]. forward: natural order in,
// bins in perm order out, exp(-2 pi i jk / n). inverse: perm order in, natural out, unnormalised.
template <typename T>
void forward(const Plan<T>& plan, T* data, int64_t ps, int64_t io, int64_t lanes);
template <typename T>
void inverse(const Plan<T>& plan, T* data, int64_t ps, int64_t io, int64_t lanes);

// Real transforms of 2 * half real sequences stored as x[p * xps + b], b < 2 * half; lanes b and
// half + b travel together as one complex transform. rfft handles pairs [b0, b1) (b1 <= half):
// transforms x in place, then writes bins 0 .. n/2 of each sequence b to
// out[k * ops + b] (re) and out[k * ops + oio + b] (im). irfft is the inverse (unnormalised):
// reads those bins of pairs [b0, b1) and leaves the real sequences in x.
template <typename T>
void rfft(const Plan<T>& plan, T* x, int64_t xps, int64_t half, int64_t b0, int64_t b1, T* out,
          int64_t ops, int64_t oio);
template <typename T>
void irfft(const Plan<T>& plan, const T* in, int64_t ips, int64_t iio, T* x, int64_t xps,
           int64_t half, int64_t b0, int64_t b1);

}  // namespace fastconv::fft
