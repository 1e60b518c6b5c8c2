// The row kernels' tables of one ISA level: included by rows_<isa>.cc after rows_impl.h and
// rows_winograd_impl.h.
#pragma once

namespace fastconv::FASTCONV_ROWS_NS {

extern const RowsKernels<float> rows_f32_kernels;
extern const RowsKernels<double> rows_f64_kernels;
const RowsKernels<float> rows_f32_kernels = {
    forward_rows<float>, forward<float>, forward_pairs<float>, kPairRows, forward_channels<float>,
    weight<float>, row_winograd::any_input<float>, row_winograd::any_output<float>,
    V<float>::lanes, FASTCONV_ROWS_NAME("f32")};
const RowsKernels<double> rows_f64_kernels = {
    forward_rows<double>, forward<double>, forward_pairs<double>, kPairRows,
    forward_channels<double>, weight<double>, row_winograd::any_input<double>,
    row_winograd::any_output<double>, V<double>::lanes, FASTCONV_ROWS_NAME("f64")};

}  // namespace fastconv::FASTCONV_ROWS_NS
