/* real_instantiate.h: one source, two precisions (DESIGN §3, STYLE 2).
 *
 * A family's typed kernels live in `<family>_real.inc`, written once against
 *   REAL       the element type (float or double)
 *   R(name)    the function name with its precision suffix (name_f32 / name_f64)
 *   GEMM       cblas_sgemm / cblas_dgemm
 * The family's .c file sets REAL_INC to that file and includes this header, which
 * includes it twice. The .c file then picks the instance by the tensors' dtype. */
#ifndef REAL_INC
#error "define REAL_INC before including real_instantiate.h"
#endif

#define REAL float
#define R(name) name##_f32
#define GEMM cblas_sgemm
#include REAL_INC
#undef REAL
#undef R
#undef GEMM

#define REAL double
#define R(name) name##_f64
#define GEMM cblas_dgemm
#include REAL_INC
#undef REAL
#undef R
#undef GEMM

#undef REAL_INC
