/* libFuzzer harness for the CSV reader (`make fuzz` runs it; the
** deterministic checks of bad files are in tests/c/test_data.c).
**
** Each input is written to a file (the reader takes a path) and read with
** and without a header and with the label first or last; it must be
** rejected with a status or loaded with consistent sizes. */
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "data.h"

int LLVMFuzzerTestOneInput(const uint8_t *buf, size_t n);

int LLVMFuzzerTestOneInput(const uint8_t *buf, size_t n) {
  static char path[64];
  if (!path[0]) snprintf(path, sizeof path, "/tmp/eg_fuzz_csv_%ld.csv", (long)getpid());
  FILE *f = fopen(path, "wb");
  if (!f) return 0;
  fwrite(buf, 1, n, f);
  fclose(f);
  eg_csv_opts variants[3] = {{0, 1, -1, NULL, 0}, {0, 0, 0, NULL, 0}, {';', 1, 0, NULL, 1}};
  for (int v = 0; v < 3; v++) {
    eg_dataset *ds = NULL;
    if (eg_dataset_from_csv(&ds, path, &variants[v]) == EG_OK) {
      if (!ds) abort();
      eg_dataset_release(ds);
    } else if (ds) {
      abort(); /* a failure must leave nothing loaded */
    }
  }
  return 0;
}
