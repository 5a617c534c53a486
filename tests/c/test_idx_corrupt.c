/* Corruption driver for the IDX reader: truncates, flips and overwrites the
** bytes of small valid IDX files (plain and gzipped) in every position and
** with seeded random multi-byte damage. Every case must either fail with a
** status and a message and leave nothing loaded, or load data consistent
** with the bytes on disk; none may crash (run it under make check-asan). */
#include <stdlib.h>
#include <unistd.h>
#include <zlib.h>

#include "check.h"
#include "data.h"

static char dir[256], path[300], lpath[300];
static long cases, rejected, loaded;

static void write_file(const char *p, const unsigned char *buf, size_t n, int gz) {
  if (gz) {
    gzFile g = gzopen(p, "wb");
    if (n) gzwrite(g, buf, (unsigned)n);
    gzclose(g);
  } else {
    FILE *f = fopen(p, "wb");
    fwrite(buf, 1, n, f);
    fclose(f);
  }
}

static void write_raw(const char *p, const unsigned char *buf, size_t n) { write_file(p, buf, n, 0); }

static unsigned char *read_raw(const char *p, size_t *n) {
  FILE *f = fopen(p, "rb");
  unsigned char *b = malloc(1 << 16);
  *n = fread(b, 1, 1 << 16, f);
  fclose(f);
  return b;
}

/* What a correct reader must return for the plain bytes buf[0..n-1], or 0 if invalid. */
static int expect_plain(const unsigned char *buf, size_t n, int *ndim, int64_t *dims, size_t *off, size_t *numel) {
  size_t es = buf[2] == EG_IDX_U8 || buf[2] == EG_IDX_I8 ? 1 : buf[2] == EG_IDX_I16 ? 2
            : buf[2] == EG_IDX_I32 || buf[2] == EG_IDX_F32 ? 4 : buf[2] == EG_IDX_F64 ? 8 : 0;
  if (n < 4 || buf[0] || buf[1] || !es) return 0;
  *ndim = buf[3];
  if (*ndim < 1 || *ndim > EG_MAXDIM || n < 4 + 4 * (size_t)*ndim) return 0;
  size_t m = 1;
  for (int d = 0; d < *ndim; d++) {
    const unsigned char *q = buf + 4 + 4 * d;
    dims[d] = ((int64_t)q[0] << 24) | (q[1] << 16) | (q[2] << 8) | q[3];
    if (dims[d] == 0 || (uint64_t)dims[d] > (uint64_t)(n / m + 1)) return 0;
    m *= (size_t)dims[d];
  }
  *off = 4 + 4 * (size_t)*ndim;
  *numel = m;
  return n == *off + m * es;
}

/* Reads path and checks the outcome against the bytes it was made from. */
static void check_case(const unsigned char *plain, size_t n, int gz, const unsigned char *orig, size_t orig_n) {
  eg_idx idx;
  cases++;
  eg_clearerr();
  int st = eg_idx_read(path, &idx);
  if (st != EG_OK) {
    rejected++;
    CHECK(st == EG_EFORMAT || st == EG_EIO);
    CHECK(idx.data == NULL && idx.ndim == 0 && idx.numel == 0);
    CHECK(eg_errmsg()[0] != '\0');
    return;
  }
  loaded++;
  int64_t prod = 1;
  for (int d = 0; d < idx.ndim; d++) prod *= idx.dims[d];
  CHECK(idx.numel == prod && idx.data != NULL);
  int ndim;
  int64_t dims[EG_MAXDIM];
  size_t off, numel;
  /* A gzip stream whose checksum still holds decodes to the original bytes
  ** (damage in the gzip header's free fields is harmless). */
  int still_gz = gz && n >= 2 && plain[0] == 0x1f && plain[1] == 0x8b;
  const unsigned char *truth = still_gz ? orig : plain;
  size_t tn = still_gz ? orig_n : n;
  int ok = expect_plain(truth, tn, &ndim, dims, &off, &numel);
  CHECK(ok);
  if (!ok) {
    fprintf(stderr, "    accepted %s bytes (%zu):", gz ? "gz" : "plain", n);
    for (size_t i = 0; i < n && i < 24; i++) fprintf(stderr, " %02x", plain[i]);
    fprintf(stderr, "\n");
  }
  if (ok) {
    CHECK(idx.ndim == ndim && (size_t)idx.numel == numel);
    if (idx.type == EG_IDX_U8 || idx.type == EG_IDX_I8) CHECK(memcmp(idx.data, truth + off, numel) == 0);
  }
  eg_idx_free(&idx);
}

static void mutate_all(const unsigned char *orig, size_t on, int gz) {
  /* The bytes on disk: plain, or the compressed stream of orig. */
  write_file(path, orig, on, gz);
  size_t n;
  unsigned char *disk = read_raw(path, &n), *buf = malloc(n + 8);
  for (size_t cut = 0; cut < n; cut++) { /* every truncation */
    write_raw(path, disk, cut);
    check_case(disk, cut, gz, orig, on);
  }
  for (size_t i = 0; i < n; i++) /* every single-bit flip, and 0x00 / 0xff */
    for (int k = 0; k < 10; k++) {
      memcpy(buf, disk, n);
      buf[i] = k < 8 ? (unsigned char)(buf[i] ^ (1u << k)) : k == 8 ? 0x00 : 0xff;
      if (buf[i] == disk[i] && k >= 8) continue;
      write_raw(path, buf, n);
      check_case(buf, n, gz, orig, on);
    }
  eg_rng r;
  eg_rng_seed(&r, 1234 + (uint64_t)gz);
  for (int t = 0; t < 1500; t++) { /* random multi-byte damage, sometimes extended */
    memcpy(buf, disk, n);
    int hits = 1 + (int)eg_rng_below(&r, 4);
    for (int h = 0; h < hits; h++) buf[eg_rng_below(&r, n)] = (unsigned char)eg_rng_below(&r, 256);
    size_t m = n + (eg_rng_below(&r, 4) == 0 ? eg_rng_below(&r, 8) : 0);
    for (size_t j = n; j < m; j++) buf[j] = (unsigned char)eg_rng_below(&r, 256);
    write_raw(path, buf, m);
    check_case(buf, m, gz, orig, on);
  }
  free(disk);
  free(buf);
}

static void test_every_corruption_is_rejected_or_loaded_consistently(void) {
  /* A 3x4x5 image file. */
  unsigned char img[4 + 12 + 60];
  img[0] = img[1] = 0;
  img[2] = EG_IDX_U8;
  img[3] = 3;
  uint32_t dims[3] = {3, 4, 5};
  for (int d = 0; d < 3; d++) {
    img[4 + 4 * d] = 0;
    img[5 + 4 * d] = 0;
    img[6 + 4 * d] = 0;
    img[7 + 4 * d] = (unsigned char)dims[d];
  }
  for (int i = 0; i < 60; i++) img[16 + i] = (unsigned char)(i * 37);
  mutate_all(img, sizeof img, 0);
  mutate_all(img, sizeof img, 1);
  CHECK(rejected > 0 && loaded > 0);
}

static void test_damaged_label_file_never_gives_half_loaded_dataset(void) {
  unsigned char img[4 + 12 + 24] = {0, 0, EG_IDX_U8, 3, 0, 0, 0, 2, 0, 0, 0, 3, 0, 0, 0, 4};
  unsigned char lab[4 + 4 + 2] = {0, 0, EG_IDX_U8, 1, 0, 0, 0, 2, 1, 0};
  snprintf(lpath, sizeof lpath, "%s/labels", dir);
  write_file(path, img, sizeof img, 1);
  for (size_t i = 0; i < sizeof lab; i++)
    for (int k = 0; k < 8; k++) {
      unsigned char b[sizeof lab];
      memcpy(b, lab, sizeof lab);
      b[i] ^= (unsigned char)(1u << k);
      write_file(lpath, b, sizeof b, 0);
      eg_dataset *ds = (eg_dataset *)1;
      int st = eg_dataset_from_idx(&ds, path, lpath);
      if (st) {
        CHECK(ds == NULL);
      } else {
        /* a changed label value or a still-valid element type may pass: two samples */
        CHECK(ds && eg_dataset_size(ds) == 2);
        if (ds) CHECK(eg_dataset_label(ds, 0) < eg_dataset_nclasses(ds) && eg_dataset_label(ds, 1) < eg_dataset_nclasses(ds));
        eg_dataset_release(ds);
      }
    }
}

int main(void) {
  snprintf(dir, sizeof dir, "/tmp/eg_idx_corrupt_XXXXXX");
  if (!mkdtemp(dir)) return 1;
  snprintf(path, sizeof path, "%s/f", dir);
  RUN(test_every_corruption_is_rejected_or_loaded_consistently);
  RUN(test_damaged_label_file_never_gives_half_loaded_dataset);
  printf("  idx corruption: %ld cases, %ld rejected, %ld loaded consistently\n", cases, rejected, loaded);
  char cmd[300];
  snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
  if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", dir);
  return CHECK_DONE("c/idx_corrupt");
}
