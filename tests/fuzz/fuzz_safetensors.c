/* libFuzzer harness for the safetensors reader (`make fuzz` builds and runs
** it; `make test` runs the deterministic truncation and corruption driver in
** tests/c/test_safetensors.c instead).
**
**   clang -std=c11 -D_GNU_SOURCE -g -O1 -fsanitize=fuzzer,address,undefined -Icore \
**     tests/fuzz/fuzz_safetensors.c core/[a-z]*.c -lopenblas -lz -lm -lpthread -o build/fuzz_safetensors
**   build/fuzz_safetensors -max_total_time=60
**
** Each input is parsed as a whole file; it must be rejected with a status, or
** loaded with every tensor readable at its declared size. */
#include <stdlib.h>

#include "safetensors.h"

int LLVMFuzzerTestOneInput(const uint8_t *buf, size_t n);

int LLVMFuzzerTestOneInput(const uint8_t *buf, size_t n) {
  eg_st_file *f = NULL;
  if (eg_st_parse(&f, buf, n, "fuzz") != EG_OK) {
    if (f) abort();
    return 0;
  }
  for (int64_t i = 0; i < eg_st_count(f); i++) {
    eg_tensor t = EG_TENSOR_INIT;
    if (eg_st_tensor(f, i, &t) != EG_OK) abort();
    eg_tensor_release(&t);
  }
  for (int64_t i = 0; i < eg_st_meta_count(f); i++)
    if (!eg_st_meta_key(f, i) || !eg_st_meta_value(f, i)) abort();
  eg_st_close(f);
  return 0;
}
