/* libFuzzer harness for the IDX reader (`make fuzz` builds and runs it; `make test` runs
** the deterministic corruption driver tests/c/test_idx_corrupt.c instead).
**
**   clang -std=c11 -D_GNU_SOURCE -g -O1 -fsanitize=fuzzer,address,undefined -Icore \
**     tests/fuzz/fuzz_idx.c core/[a-z]*.c -lopenblas -lz -lm -lpthread -o build/fuzz_idx
**   build/fuzz_idx -max_total_time=60
**
** Each input is written to a file (the reader takes a path) and read as an
** IDX file; it must be rejected with a status or loaded with consistent sizes. */
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "data.h"

int LLVMFuzzerTestOneInput(const uint8_t *buf, size_t n);

int LLVMFuzzerTestOneInput(const uint8_t *buf, size_t n) {
  static char path[64];
  if (!path[0]) snprintf(path, sizeof path, "/tmp/eg_fuzz_idx_%ld", (long)getpid());
  FILE *f = fopen(path, "wb");
  if (!f) return 0;
  fwrite(buf, 1, n, f);
  fclose(f);
  eg_idx idx;
  if (eg_idx_read(path, &idx) == EG_OK) {
    int64_t prod = 1;
    for (int d = 0; d < idx.ndim; d++) prod *= idx.dims[d];
    if (prod != idx.numel || !idx.data) abort();
    eg_idx_free(&idx);
  } else if (idx.data || idx.numel) {
    abort(); /* a failure must leave nothing loaded */
  }
  eg_dataset *ds;
  if (eg_dataset_from_idx(&ds, path, path) == EG_OK) eg_dataset_release(ds);
  return 0;
}
