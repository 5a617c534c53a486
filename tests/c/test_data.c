/* Data tests: IDX and CSV readers, datasets, transforms, batches. Core only. */
#include <stdlib.h>
#include <unistd.h>
#include <zlib.h>

#include "check.h"
#include "data.h"

static char tmpdir[256];

static const char *tpath(const char *name) {
  static char buf[4][512];
  static int k;
  k = (k + 1) % 4;
  snprintf(buf[k], sizeof buf[k], "%s/%s", tmpdir, name);
  return buf[k];
}

static void put_be32(unsigned char *p, uint32_t v) {
  p[0] = (unsigned char)(v >> 24);
  p[1] = (unsigned char)(v >> 16);
  p[2] = (unsigned char)(v >> 8);
  p[3] = (unsigned char)v;
}

/* An IDX byte image: magic (type, ndim), dims, then payload. Returns its length. */
static size_t idx_bytes(unsigned char *buf, int type, int ndim, const uint32_t *dims, const void *payload,
                        size_t plen) {
  buf[0] = 0;
  buf[1] = 0;
  buf[2] = (unsigned char)type;
  buf[3] = (unsigned char)ndim;
  for (int d = 0; d < ndim; d++) put_be32(buf + 4 + 4 * d, dims[d]);
  memcpy(buf + 4 + 4 * ndim, payload, plen);
  return 4 + 4 * (size_t)ndim + plen;
}

static void write_file(const char *path, const void *buf, size_t n, int gz) {
  if (gz) {
    gzFile g = gzopen(path, "wb");
    gzwrite(g, buf, (unsigned)n);
    gzclose(g);
  } else {
    FILE *f = fopen(path, "wb");
    fwrite(buf, 1, n, f);
    fclose(f);
  }
}

/* n images of HxW where pixel (r, c) of image i is (i*7 + r*W + c) % 256; label i % 3. */
static void make_images(const char *ipath, const char *lpath, uint32_t n, uint32_t h, uint32_t w, int gz) {
  size_t plen = (size_t)n * h * w;
  unsigned char *px = malloc(plen), *buf = malloc(plen + 64), lab[256];
  for (uint32_t i = 0; i < n; i++)
    for (uint32_t q = 0; q < h * w; q++) px[(size_t)i * h * w + q] = (unsigned char)((i * 7 + q) % 256);
  for (uint32_t i = 0; i < n; i++) lab[i] = (unsigned char)(i % 3);
  uint32_t dims[3] = {n, h, w};
  write_file(ipath, buf, idx_bytes(buf, EG_IDX_U8, 3, dims, px, plen), gz);
  uint32_t ld[1] = {n};
  write_file(lpath, buf, idx_bytes(buf, EG_IDX_U8, 1, ld, lab, n), gz);
  free(px);
  free(buf);
}

static eg_dataset *load_small(int gz) {
  make_images(tpath("im"), tpath("lb"), 10, 4, 5, gz);
  eg_dataset *ds = NULL;
  CHECK_OK(eg_dataset_from_idx(&ds, tpath("im"), tpath("lb")));
  return ds;
}

static float px_at(const eg_tensor *x, int64_t k, int64_t q) { return eg_data(x)[k * x->stride[0] + q]; }

static void test_idx_reads_plain_and_gzipped_files_alike(void) {
  for (int gz = 0; gz < 2; gz++) {
    eg_dataset *ds = load_small(gz);
    if (!ds) return;
    CHECK(eg_dataset_size(ds) == 10);
    int64_t sh[EG_MAXDIM];
    CHECK(eg_dataset_shape(ds, sh) == 3 && sh[0] == 1 && sh[1] == 4 && sh[2] == 5);
    CHECK(eg_dataset_nclasses(ds) == 3);
    CHECK(eg_dataset_is_u8(ds));
    CHECK(eg_dataset_label(ds, 4) == 1);
    eg_tensor x = EG_TENSOR_INIT, y = EG_TENSOR_INIT;
    CHECK_OK(eg_dataset_range(ds, 0, 10, &x, &y, 0));
    CHECK(x.ndim == 4 && x.shape[0] == 10 && x.shape[1] == 1 && x.shape[2] == 4 && x.shape[3] == 5);
    CHECK_NEAR(px_at(&x, 3, 6), ((3 * 7 + 6) % 256) / 255.0, 1e-7);
    CHECK(eg_data(&y)[5] == 2.0f);
    char buf[128];
    CHECK(strcmp(eg_dataset_describe(ds, buf, sizeof buf), "Dataset(10 samples, 1x4x5 uint8, 3 classes)") == 0);
    eg_tensor_release(&x);
    eg_tensor_release(&y);
    eg_dataset_release(ds);
  }
}

static void test_idx_reads_big_endian_int32_and_float(void) {
  int32_t vals[3] = {1, -2, 70000};
  unsigned char pay[12], buf[64];
  for (int i = 0; i < 3; i++) put_be32(pay + 4 * i, (uint32_t)vals[i]);
  uint32_t d[1] = {3};
  write_file(tpath("i32"), buf, idx_bytes(buf, EG_IDX_I32, 1, d, pay, 12), 1);
  eg_idx idx;
  CHECK_OK(eg_idx_read(tpath("i32"), &idx));
  CHECK(idx.type == EG_IDX_I32 && idx.ndim == 1 && idx.numel == 3);
  if (idx.data) CHECK(((int32_t *)idx.data)[1] == -2 && ((int32_t *)idx.data)[2] == 70000);
  eg_idx_free(&idx);
  eg_idx_free(&idx);
  float fv = 1.5f;
  uint32_t bits;
  memcpy(&bits, &fv, 4);
  put_be32(pay, bits);
  d[0] = 1;
  write_file(tpath("f32"), buf, idx_bytes(buf, EG_IDX_F32, 1, d, pay, 4), 0);
  CHECK_OK(eg_idx_read(tpath("f32"), &idx));
  if (idx.data) CHECK(((float *)idx.data)[0] == 1.5f);
  eg_idx_free(&idx);
}

static void test_idx_rejects_wrong_magic(void) {
  unsigned char buf[64], pay[4] = {1, 2, 3, 4};
  uint32_t d[1] = {4};
  size_t n = idx_bytes(buf, EG_IDX_U8, 1, d, pay, 4);
  buf[0] = 0x1f;
  write_file(tpath("bad"), buf, n, 0);
  eg_idx idx;
  CHECK_ERR(eg_idx_read(tpath("bad"), &idx), EG_EFORMAT);
  CHECK(strstr(eg_errmsg(), "magic") != NULL);
  CHECK(idx.data == NULL);
  buf[0] = 0;
  buf[2] = 0x07; /* no such element type */
  write_file(tpath("bad"), buf, n, 1);
  CHECK_ERR(eg_idx_read(tpath("bad"), &idx), EG_EFORMAT);
  CHECK(strstr(eg_errmsg(), "magic") != NULL);
}

static void test_idx_rejects_truncation_at_every_point(void) {
  unsigned char pay[24], buf[64];
  for (int i = 0; i < 24; i++) pay[i] = (unsigned char)i;
  uint32_t d[3] = {2, 3, 4};
  size_t n = idx_bytes(buf, EG_IDX_U8, 3, d, pay, 24);
  for (int gz = 0; gz < 2; gz++)
    for (size_t cut = 0; cut < n; cut++) {
      write_file(tpath("cut"), buf, cut, gz);
      eg_idx idx;
      int st = eg_idx_read(tpath("cut"), &idx);
      CHECK(st == EG_EFORMAT);
      CHECK(idx.data == NULL && idx.ndim == 0);
      if (cut >= 16) CHECK(strstr(eg_errmsg(), "truncated") != NULL);
    }
}

static void test_idx_rejects_overlong_file(void) {
  unsigned char pay[8] = {0}, buf[64];
  uint32_t d[1] = {6};
  size_t n = idx_bytes(buf, EG_IDX_U8, 1, d, pay, 8); /* 2 extra bytes */
  for (int gz = 0; gz < 2; gz++) {
    write_file(tpath("long"), buf, n, gz);
    eg_idx idx;
    CHECK_ERR(eg_idx_read(tpath("long"), &idx), EG_EFORMAT);
    CHECK(strstr(eg_errmsg(), "too long") != NULL);
  }
}

static void test_idx_rejects_overflowing_and_oversized_dims(void) {
  unsigned char buf[64], pay[4] = {0};
  uint32_t d[4] = {0xffffffffu, 0xffffffffu, 0xffffffffu, 2};
  for (int gz = 0; gz < 2; gz++) {
    write_file(tpath("ovf"), buf, idx_bytes(buf, EG_IDX_F64, 4, d, pay, 4), gz);
    eg_idx idx;
    uint64_t before = eg_alloc_count();
    CHECK_ERR(eg_idx_read(tpath("ovf"), &idx), EG_EFORMAT);
    CHECK(eg_alloc_count() == before); /* rejected before any allocation */
    uint32_t big[2] = {60000, 100000}; /* 6 GB promised by a tiny file */
    write_file(tpath("big"), buf, idx_bytes(buf, EG_IDX_U8, 2, big, pay, 4), gz);
    before = eg_alloc_count();
    CHECK_ERR(eg_idx_read(tpath("big"), &idx), EG_EFORMAT);
    CHECK(strstr(eg_errmsg(), "truncated") != NULL || strstr(eg_errmsg(), "impossible") != NULL);
    CHECK(eg_alloc_count() == before);
    uint32_t zero[2] = {3, 0};
    write_file(tpath("zero"), buf, idx_bytes(buf, EG_IDX_U8, 2, zero, pay, 0), gz);
    CHECK_ERR(eg_idx_read(tpath("zero"), &idx), EG_EFORMAT);
  }
}

static void test_idx_missing_file_is_io_error(void) {
  eg_idx idx;
  CHECK_ERR(eg_idx_read(tpath("nope"), &idx), EG_EIO);
  CHECK(strstr(eg_errmsg(), "nope") != NULL);
}

static void test_idx_dataset_rejects_label_count_mismatch(void) {
  make_images(tpath("im2"), tpath("lb2"), 10, 4, 5, 1);
  make_images(tpath("im3"), tpath("lb3"), 9, 4, 5, 1);
  eg_dataset *ds = (eg_dataset *)1;
  CHECK_ERR(eg_dataset_from_idx(&ds, tpath("im2"), tpath("lb3")), EG_EFORMAT);
  CHECK(ds == NULL);
  CHECK(strstr(eg_errmsg(), "9 labels") != NULL);
  /* labels given as images: wrong rank */
  CHECK_ERR(eg_dataset_from_idx(&ds, tpath("im2"), tpath("im2")), EG_EFORMAT);
}

static void test_fashion_mnist_missing_dir_names_the_package(void) {
  eg_dataset *a, *b;
  CHECK_ERR(eg_dataset_fashion_mnist(tpath("nodir"), &a, &b), EG_EIO);
  CHECK(strstr(eg_errmsg(), "apt-get install dataset-fashion-mnist") != NULL);
  CHECK(a == NULL && b == NULL);
}

static void test_fashion_mnist_loads_when_installed(void) {
  if (access("/usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz", R_OK) != 0) {
    printf("  skipped test_fashion_mnist_loads_when_installed: dataset-fashion-mnist not installed\n");
    return;
  }
  eg_dataset *tr = NULL, *te = NULL;
  CHECK_OK(eg_dataset_fashion_mnist("/usr/share/datasets/fashion-mnist", &tr, &te));
  if (!tr) return;
  CHECK(eg_dataset_size(tr) == 60000 && eg_dataset_size(te) == 10000);
  CHECK(eg_dataset_nclasses(tr) == 10);
  int64_t counts[10];
  eg_dataset_class_counts(tr, counts);
  for (int c = 0; c < 10; c++) CHECK(counts[c] == 6000);
  eg_dataset_release(tr);
  eg_dataset_release(te);
}

static void test_csv_reads_numbers_with_header_and_label_column(void) {
  FILE *f = fopen(tpath("t.csv"), "w");
  fprintf(f, "a,b,label,c\n1.5, 2,1,3\r\n\n-4,5e-1,0,6\n7,8,2,9\n");
  fclose(f);
  eg_csv_opts o = {0};
  o.header = 1;
  o.label_name = "label";
  eg_dataset *ds = NULL;
  CHECK_OK(eg_dataset_from_csv(&ds, tpath("t.csv"), &o));
  if (!ds) return;
  CHECK(eg_dataset_size(ds) == 3 && eg_dataset_sample_numel(ds) == 3 && eg_dataset_nclasses(ds) == 3);
  CHECK(!eg_dataset_is_u8(ds));
  eg_tensor x = EG_TENSOR_INIT, y = EG_TENSOR_INIT;
  CHECK_OK(eg_dataset_range(ds, 0, 3, &x, &y, 0));
  CHECK(eg_data(&x)[0] == 1.5f && eg_data(&x)[2] == 3.0f && eg_data(&x)[4] == 0.5f && eg_data(&x)[8] == 9.0f);
  CHECK(eg_data(&y)[0] == 1.0f && eg_data(&y)[1] == 0.0f && eg_data(&y)[2] == 2.0f);
  eg_dataset_release(ds);
  o.label_name = NULL;
  o.label_column = -1;
  CHECK_OK(eg_dataset_from_csv(&ds, tpath("t.csv"), &o));
  if (ds) CHECK(eg_dataset_label(ds, 2) == 9);
  eg_dataset_release(ds);
  eg_tensor_release(&x);
  eg_tensor_release(&y);
}

static void test_csv_rejects_bad_fields_and_ragged_rows(void) {
  FILE *f = fopen(tpath("bad.csv"), "w");
  fprintf(f, "1,2,0\n3,x,1\n");
  fclose(f);
  eg_dataset *ds;
  eg_csv_opts o = {0};
  o.label_column = -1;
  CHECK_ERR(eg_dataset_from_csv(&ds, tpath("bad.csv"), &o), EG_EFORMAT);
  CHECK(strstr(eg_errmsg(), "line 2 column 2") != NULL);
  f = fopen(tpath("rag.csv"), "w");
  fprintf(f, "1,2,0\n3,1\n");
  fclose(f);
  CHECK_ERR(eg_dataset_from_csv(&ds, tpath("rag.csv"), &o), EG_EFORMAT);
  CHECK(strstr(eg_errmsg(), "line 2 has 2 fields") != NULL);
  f = fopen(tpath("lab.csv"), "w");
  fprintf(f, "1,2,0.5\n");
  fclose(f);
  CHECK_ERR(eg_dataset_from_csv(&ds, tpath("lab.csv"), &o), EG_EFORMAT);
  CHECK(strstr(eg_errmsg(), "class id") != NULL);
  o.label_column = 7;
  CHECK_ERR(eg_dataset_from_csv(&ds, tpath("lab.csv"), &o), EG_ERANGE);
}

static void test_csv_reads_gzip_and_rejects_empty_files(void) {
  const char *text = "1;2;1\n3;4;0\n";
  write_file(tpath("t.csv.gz"), text, strlen(text), 1);
  eg_csv_opts o = {0};
  o.sep = ';';
  o.label_column = -1;
  eg_dataset *ds = NULL;
  CHECK_OK(eg_dataset_from_csv(&ds, tpath("t.csv.gz"), &o));
  if (ds) CHECK(eg_dataset_size(ds) == 2 && eg_dataset_label(ds, 0) == 1);
  eg_dataset_release(ds);
  write_file(tpath("empty.csv"), "\n\n", 2, 0);
  CHECK_ERR(eg_dataset_from_csv(&ds, tpath("empty.csv"), &o), EG_EFORMAT);
  CHECK(strstr(eg_errmsg(), "no data rows") != NULL);
  o.header = 1;
  write_file(tpath("hdr.csv"), "a;b\n", 4, 0);
  CHECK_ERR(eg_dataset_from_csv(&ds, tpath("hdr.csv"), &o), EG_EFORMAT);
  CHECK_ERR(eg_dataset_from_csv(&ds, tpath("missing.csv"), &o), EG_EIO);
}

static void test_subset_by_labels_and_indices_shares_pixels(void) {
  eg_dataset *ds = load_small(0), *s = NULL, *s2 = NULL;
  if (!ds) return;
  int labs[2] = {0, 2};
  uint64_t before = eg_alloc_count();
  CHECK_OK(eg_dataset_subset_labels(&s, ds, labs, 2));
  CHECK(eg_alloc_count() - before < 10); /* an index array, not a copy of the pixels */
  CHECK(eg_dataset_size(s) == 7 && eg_dataset_nclasses(s) == 3);
  for (int64_t i = 0; i < eg_dataset_size(s); i++) CHECK(eg_dataset_label(s, i) != 1);
  int64_t idx[3] = {6, 0, 6};
  CHECK_OK(eg_dataset_subset(&s2, s, idx, 3));
  eg_tensor x = EG_TENSOR_INIT, y = EG_TENSOR_INIT, x2 = EG_TENSOR_INIT, y2 = EG_TENSOR_INIT;
  CHECK_OK(eg_dataset_range(s2, 0, 3, &x, &y, EG_BATCH_FLAT));
  /* s = {0,2,3,5,6,8,9}; s2 = s[6], s[0], s[6] = base 9, 0, 9 */
  CHECK(x.ndim == 2 && x.shape[1] == 20);
  CHECK(eg_data(&y)[0] == 0.0f && eg_data(&y)[1] == 0.0f);
  CHECK_NEAR(px_at(&x, 0, 0), (9 * 7 % 256) / 255.0, 1e-7);
  CHECK_NEAR(px_at(&x, 1, 0), 0.0, 1e-7);
  int64_t bad[1] = {7};
  eg_dataset *s3 = (eg_dataset *)1;
  CHECK_ERR(eg_dataset_subset(&s3, s, bad, 1), EG_ERANGE);
  CHECK(s3 == NULL);
  int badl[1] = {3};
  CHECK_ERR(eg_dataset_subset_labels(&s3, ds, badl, 1), EG_ERANGE);
  eg_dataset_release(ds); /* subsets keep the base alive */
  CHECK_OK(eg_dataset_range(s2, 0, 3, &x2, &y2, EG_BATCH_FLAT));
  CHECK(memcmp(eg_data(&x), eg_data(&x2), sizeof(float) * 60) == 0);
  eg_dataset_release(s);
  eg_dataset_release(s2);
  eg_tensor_release(&x);
  eg_tensor_release(&y);
  eg_tensor_release(&x2);
  eg_tensor_release(&y2);
}

static void test_split_partitions_the_dataset(void) {
  eg_dataset *ds = load_small(0), *a, *b;
  if (!ds) return;
  CHECK_OK(eg_dataset_split(&a, &b, ds, 0.7, 5));
  CHECK(eg_dataset_size(a) == 7 && eg_dataset_size(b) == 3);
  eg_tensor x = EG_TENSOR_INIT, y = EG_TENSOR_INIT;
  int seen[10] = {0};
  eg_dataset *parts[2] = {a, b};
  for (int p = 0; p < 2; p++) {
    CHECK_OK(eg_dataset_range(parts[p], 0, eg_dataset_size(parts[p]), &x, &y, EG_BATCH_FLAT));
    for (int64_t k = 0; k < eg_dataset_size(parts[p]); k++) seen[(int)lroundf(px_at(&x, k, 0) * 255) / 7]++;
  }
  for (int i = 0; i < 10; i++) CHECK(seen[i] == 1);
  eg_dataset_release(a);
  eg_dataset_release(b);
  eg_dataset_release(ds);
  eg_tensor_release(&x);
  eg_tensor_release(&y);
}

static void test_concat_same_base_shares_and_different_bases_copy(void) {
  eg_dataset *ds = load_small(0), *a, *b, *c, *p, *d;
  if (!ds) return;
  int l0[1] = {0}, l1[1] = {1};
  CHECK_OK(eg_dataset_subset_labels(&a, ds, l0, 1));
  CHECK_OK(eg_dataset_subset_labels(&b, ds, l1, 1));
  CHECK_OK(eg_dataset_concat(&c, a, b));
  CHECK(eg_dataset_size(c) == 7 && eg_dataset_is_u8(c));
  CHECK(eg_dataset_label(c, 3) == 0 && eg_dataset_label(c, 4) == 1);
  CHECK_OK(eg_dataset_permuted(&p, b, NULL, 3));
  CHECK_OK(eg_dataset_concat(&d, a, p)); /* different transforms: copied, permutation baked in */
  CHECK(eg_dataset_size(d) == 7 && eg_dataset_is_u8(d));
  eg_tensor x = EG_TENSOR_INIT, y = EG_TENSOR_INIT, x2 = EG_TENSOR_INIT, y2 = EG_TENSOR_INIT;
  CHECK_OK(eg_dataset_range(d, 4, 3, &x, &y, EG_BATCH_FLAT));
  CHECK_OK(eg_dataset_range(p, 0, 3, &x2, &y2, EG_BATCH_FLAT));
  CHECK(memcmp(eg_data(&x), eg_data(&x2), sizeof(float) * 60) == 0);
  eg_dataset *bl, *e;
  CHECK_OK(eg_dataset_blobs(&bl, 10, 2, 3, 1.0, 1));
  CHECK_ERR(eg_dataset_concat(&e, ds, bl), EG_ESHAPE);
  for (eg_dataset **q = (eg_dataset *[]){ds, a, b, c, p, d, bl, NULL}; *q; q++) eg_dataset_release(*q);
  eg_tensor_release(&x);
  eg_tensor_release(&y);
  eg_tensor_release(&x2);
  eg_tensor_release(&y2);
}

static void test_permutation_then_inverse_gives_original(void) {
  eg_dataset *ds = load_small(1), *p, *q;
  if (!ds) return;
  CHECK_OK(eg_dataset_permuted(&p, ds, NULL, 42));
  int64_t perm[20], inv[20];
  CHECK(eg_dataset_permutation(ds, perm) == 0);
  CHECK(eg_dataset_permutation(p, perm) == 1);
  int moved = 0;
  for (int j = 0; j < 20; j++) {
    inv[perm[j]] = j;
    moved += perm[j] != j;
  }
  CHECK(moved > 10);
  eg_tensor x = EG_TENSOR_INIT, y = EG_TENSOR_INIT, xp = EG_TENSOR_INIT, yp = EG_TENSOR_INIT;
  CHECK_OK(eg_dataset_range(ds, 0, 10, &x, &y, EG_BATCH_FLAT));
  CHECK_OK(eg_dataset_range(p, 0, 10, &xp, &yp, EG_BATCH_FLAT));
  for (int j = 0; j < 20; j++) CHECK(px_at(&xp, 2, j) == px_at(&x, 2, perm[j]));
  CHECK_OK(eg_dataset_permuted(&q, p, inv, 0));
  CHECK_OK(eg_dataset_range(q, 0, 10, &xp, &yp, EG_BATCH_FLAT));
  CHECK(memcmp(eg_data(&x), eg_data(&xp), sizeof(float) * 200) == 0);
  eg_dataset *r;
  inv[0] = inv[1];
  CHECK_ERR(eg_dataset_permuted(&r, ds, inv, 0), EG_EINVAL);
  eg_dataset *p2;
  CHECK_OK(eg_dataset_permuted(&p2, ds, NULL, 42));
  int64_t perm2[20];
  eg_dataset_permutation(p2, perm2);
  CHECK(memcmp(perm, perm2, sizeof perm) == 0); /* same seed, same permutation */
  for (eg_dataset **d = (eg_dataset *[]){ds, p, q, p2, NULL}; *d; d++) eg_dataset_release(*d);
  eg_tensor_release(&x);
  eg_tensor_release(&y);
  eg_tensor_release(&xp);
  eg_tensor_release(&yp);
}

static void test_rotation_by_0_is_identity_and_by_90_moves_pixels(void) {
  uint8_t px[2 * 5 * 5] = {0};
  int32_t lab[2] = {0, 1};
  px[0 * 5 + 4] = 200; /* top-right of image 0 */
  px[25 + 1 * 5 + 2] = 100;
  int64_t sh[3] = {1, 5, 5};
  eg_dataset *ds, *r0, *r90, *r360;
  CHECK_OK(eg_dataset_from_u8(&ds, px, lab, 2, 3, sh, 0));
  CHECK_OK(eg_dataset_rotated(&r0, ds, 0));
  CHECK_OK(eg_dataset_rotated(&r90, ds, 90));
  CHECK_OK(eg_dataset_rotated(&r360, r90, 270));
  eg_tensor x = EG_TENSOR_INIT, y = EG_TENSOR_INIT, x0 = EG_TENSOR_INIT, y0 = EG_TENSOR_INIT;
  CHECK_OK(eg_dataset_range(ds, 0, 2, &x, &y, EG_BATCH_FLAT));
  CHECK_OK(eg_dataset_range(r0, 0, 2, &x0, &y0, EG_BATCH_FLAT));
  CHECK(memcmp(eg_data(&x), eg_data(&x0), sizeof(float) * 50) == 0);
  CHECK_OK(eg_dataset_range(r90, 0, 2, &x0, &y0, EG_BATCH_FLAT));
  /* Counter-clockwise: top-right goes to top-left; (1,2) goes to (2,1). */
  CHECK_NEAR(px_at(&x0, 0, 0), 200 / 255.0, 1e-7);
  CHECK_NEAR(px_at(&x0, 0, 4), 0, 1e-7);
  CHECK_NEAR(px_at(&x0, 1, 2 * 5 + 1), 100 / 255.0, 1e-7);
  double sum = 0;
  for (int q = 0; q < 50; q++) sum += eg_data(&x0)[q];
  CHECK_NEAR(sum, 300 / 255.0, 1e-6);
  CHECK(eg_data(&y0)[1] == 1.0f);
  CHECK_OK(eg_dataset_range(r360, 0, 2, &x0, &y0, EG_BATCH_FLAT));
  CHECK(memcmp(eg_data(&x), eg_data(&x0), sizeof(float) * 50) == 0);
  eg_dataset *bl, *e;
  CHECK_OK(eg_dataset_blobs(&bl, 4, 2, 3, 1.0, 1));
  CHECK_ERR(eg_dataset_rotated(&e, bl, 10), EG_ESHAPE);
  for (eg_dataset **d = (eg_dataset *[]){ds, r0, r90, r360, bl, NULL}; *d; d++) eg_dataset_release(*d);
  eg_tensor_release(&x);
  eg_tensor_release(&y);
  eg_tensor_release(&x0);
  eg_tensor_release(&y0);
}

static void test_normalize_and_noise_compose_in_call_order(void) {
  eg_dataset *ds = load_small(0), *nm, *nz, *nz2, *both;
  if (!ds) return;
  CHECK_OK(eg_dataset_normalized(&nm, ds, 0.5, 0.25));
  eg_tensor x = EG_TENSOR_INIT, y = EG_TENSOR_INIT, xn = EG_TENSOR_INIT, yn = EG_TENSOR_INIT;
  CHECK_OK(eg_dataset_range(ds, 0, 10, &x, &y, EG_BATCH_FLAT));
  CHECK_OK(eg_dataset_range(nm, 0, 10, &xn, &yn, EG_BATCH_FLAT));
  for (int q = 0; q < 200; q++) CHECK_NEAR(eg_data(&xn)[q], (eg_data(&x)[q] - 0.5) / 0.25, 1e-5);
  CHECK_OK(eg_dataset_noisy(&nz, ds, 0.1, 9));
  CHECK_OK(eg_dataset_noisy(&nz2, ds, 0.1, 9));
  eg_tensor a = EG_TENSOR_INIT, b = EG_TENSOR_INIT;
  CHECK_OK(eg_dataset_range(nz, 0, 10, &a, &yn, EG_BATCH_FLAT));
  int64_t idx[2] = {9, 3};
  CHECK_OK(eg_dataset_gather(nz2, idx, 2, &b, &yn, EG_BATCH_FLAT));
  /* Noise is fixed per sample: the same values whichever way the sample is fetched. */
  CHECK(memcmp(eg_data(&b), eg_data(&a) + 9 * 20, sizeof(float) * 20) == 0);
  CHECK(memcmp(eg_data(&b) + 20, eg_data(&a) + 3 * 20, sizeof(float) * 20) == 0);
  double s = 0;
  for (int q = 0; q < 200; q++) s += (eg_data(&a)[q] - eg_data(&x)[q]) * (eg_data(&a)[q] - eg_data(&x)[q]);
  CHECK(sqrt(s / 200) > 0.07 && sqrt(s / 200) < 0.13);
  /* noisy then normalized: the noise is scaled too. */
  CHECK_OK(eg_dataset_normalized(&both, nz, 0.5, 0.25));
  CHECK_OK(eg_dataset_range(both, 0, 10, &b, &yn, EG_BATCH_FLAT));
  for (int q = 0; q < 200; q++) CHECK_NEAR(eg_data(&b)[q], (eg_data(&a)[q] - 0.5) / 0.25, 1e-4);
  eg_dataset *bad;
  CHECK_ERR(eg_dataset_normalized(&bad, ds, 0, 0), EG_EINVAL);
  CHECK_ERR(eg_dataset_noisy(&bad, ds, -1, 0), EG_EINVAL);
  for (eg_dataset **d = (eg_dataset *[]){ds, nm, nz, nz2, both, NULL}; *d; d++) eg_dataset_release(*d);
  for (eg_tensor *t = (eg_tensor[]){x, y, xn, yn, a, b}, *e = t + 6; t < e; t++) eg_tensor_release(t);
}

static void run_epoch(eg_batcher *b, eg_tensor *x, eg_tensor *y, int64_t *order, int64_t *nb, int64_t n) {
  int64_t cnt, k = 0;
  *nb = 0;
  for (;;) {
    CHECK_OK(eg_batcher_next(b, x, y, &cnt));
    if (cnt == 0) break;
    (*nb)++;
    int64_t c2;
    const int64_t *ix = eg_batcher_indices(b, &c2);
    CHECK(c2 == cnt && x->shape[0] == cnt && y->shape[0] == cnt);
    for (int64_t i = 0; i < cnt && k < n; i++) order[k++] = ix[i];
  }
  CHECK(k == n || k <= n);
}

static void test_batches_cover_every_sample_once_and_repeat_per_seed(void) {
  eg_dataset *ds;
  CHECK_OK(eg_dataset_blobs(&ds, 103, 4, 3, 0.5, 7));
  eg_batcher *b1, *b2;
  CHECK_OK(eg_batcher_new(&b1, ds, 10, 1, 0, 11, 0));
  CHECK_OK(eg_batcher_new(&b2, ds, 10, 1, 0, 11, 0));
  CHECK(eg_batcher_nbatches(b1) == 11);
  eg_tensor x = EG_TENSOR_INIT, y = EG_TENSOR_INIT;
  int64_t o1[103], o2[103], o3[103], nb;
  run_epoch(b1, &x, &y, o1, &nb, 103);
  CHECK(nb == 11);
  run_epoch(b2, &x, &y, o2, &nb, 103);
  CHECK(memcmp(o1, o2, sizeof o1) == 0);
  int seen[103] = {0}, inorder = 1;
  for (int i = 0; i < 103; i++) {
    seen[o1[i]]++;
    inorder &= o1[i] == i;
  }
  for (int i = 0; i < 103; i++) CHECK(seen[i] == 1);
  CHECK(!inorder);
  run_epoch(b1, &x, &y, o3, &nb, 103); /* a new order next epoch */
  CHECK(memcmp(o1, o3, sizeof o1) != 0);
  CHECK(eg_batcher_epoch(b1) == 2);
  /* y holds the labels of the samples the iterator reports */
  int64_t cnt, c2;
  CHECK_OK(eg_batcher_next(b2, &x, &y, &cnt));
  const int64_t *ix = eg_batcher_indices(b2, &c2);
  for (int64_t i = 0; i < cnt; i++) CHECK(eg_data(&y)[i] == (float)eg_dataset_label(ds, ix[i]));
  eg_batcher_free(b1);
  eg_batcher_free(b2);
  /* drop_last and in-order */
  CHECK_OK(eg_batcher_new(&b1, ds, 10, 0, 1, 0, 0));
  CHECK(eg_batcher_nbatches(b1) == 10);
  run_epoch(b1, &x, &y, o1, &nb, 103);
  CHECK(nb == 10);
  for (int i = 0; i < 100; i++) CHECK(o1[i] == i);
  eg_batcher_free(b1);
  eg_batcher *bad;
  CHECK_ERR(eg_batcher_new(&bad, ds, 0, 1, 0, 0, 0), EG_EINVAL);
  eg_dataset_release(ds);
  eg_tensor_release(&x);
  eg_tensor_release(&y);
}

static void test_warm_epoch_allocates_nothing(void) {
  eg_dataset *ds = load_small(0), *p, *n;
  if (!ds) return;
  CHECK_OK(eg_dataset_permuted(&p, ds, NULL, 1));
  CHECK_OK(eg_dataset_noisy(&n, p, 0.1, 2));
  eg_batcher *b;
  CHECK_OK(eg_batcher_new(&b, n, 4, 1, 0, 3, 0)); /* 4, 4, 2 */
  eg_tensor x = EG_TENSOR_INIT, y = EG_TENSOR_INIT;
  int64_t o[10], nb;
  run_epoch(b, &x, &y, o, &nb, 10);
  eg_storage *xs = x.storage;
  uint64_t before = eg_alloc_count();
  run_epoch(b, &x, &y, o, &nb, 10);
  run_epoch(b, &x, &y, o, &nb, 10);
  CHECK(eg_alloc_count() == before);
  CHECK(x.storage == xs);
  int64_t idx[3] = {1, 2, 3};
  CHECK_OK(eg_dataset_gather(n, idx, 3, &x, &y, 0));
  CHECK(eg_alloc_count() == before);
  CHECK(x.ndim == 4 && x.shape[0] == 3);
  eg_batcher_free(b);
  eg_dataset_release(ds);
  eg_dataset_release(p);
  eg_dataset_release(n);
  eg_tensor_release(&x);
  eg_tensor_release(&y);
}

static void test_synthetic_sets_are_seeded_and_balanced(void) {
  eg_dataset *a, *b, *s;
  CHECK_OK(eg_dataset_blobs(&a, 90, 3, 2, 0.1, 4));
  CHECK_OK(eg_dataset_blobs(&b, 90, 3, 2, 0.1, 4));
  eg_tensor x = EG_TENSOR_INIT, y = EG_TENSOR_INIT, x2 = EG_TENSOR_INIT, y2 = EG_TENSOR_INIT;
  CHECK_OK(eg_dataset_range(a, 0, 90, &x, &y, 0));
  CHECK_OK(eg_dataset_range(b, 0, 90, &x2, &y2, 0));
  CHECK(memcmp(eg_data(&x), eg_data(&x2), sizeof(float) * 180) == 0);
  int64_t counts[3];
  eg_dataset_class_counts(a, counts);
  CHECK(counts[0] == 30 && counts[1] == 30 && counts[2] == 30);
  /* same-class samples sit close to each other (std 0.1) */
  CHECK_NEAR(eg_data(&x)[0], eg_data(&x)[6], 0.8);
  CHECK_OK(eg_dataset_spirals(&s, 200, 2, 1.5, 0.0, 1));
  CHECK_OK(eg_dataset_range(s, 0, 200, &x, &y, 0));
  int64_t sh[EG_MAXDIM];
  CHECK(eg_dataset_shape(s, sh) == 1 && sh[0] == 2);
  double maxr = 0;
  for (int i = 0; i < 200; i++) maxr = fmax(maxr, hypot(eg_data(&x)[2 * i], eg_data(&x)[2 * i + 1]));
  CHECK_NEAR(maxr, 1.0, 1e-5);
  /* the two arms are point-symmetric: sample 2k+1 = -(sample 2k) */
  CHECK_NEAR(eg_data(&x)[2 * 100], -eg_data(&x)[2 * 101], 1e-5);
  CHECK_NEAR(eg_data(&x)[2 * 100 + 1], -eg_data(&x)[2 * 101 + 1], 1e-5);
  eg_dataset *bad;
  CHECK_ERR(eg_dataset_blobs(&bad, 0, 3, 2, 0.1, 4), EG_EINVAL);
  CHECK_ERR(eg_dataset_spirals(&bad, 10, 2, -1, 0.1, 4), EG_EINVAL);
  eg_dataset_release(a);
  eg_dataset_release(b);
  eg_dataset_release(s);
  for (eg_tensor *t = (eg_tensor[]){x, y, x2, y2}, *e = t + 4; t < e; t++) eg_tensor_release(t);
}

static void test_fractions_make_class_imbalance(void) {
  eg_dataset *a, *s;
  CHECK_OK(eg_dataset_blobs(&a, 300, 3, 2, 0.1, 4));
  double fr[3] = {1.0, 0.5, 0.1};
  CHECK_OK(eg_dataset_subset_fractions(&s, a, fr, 3, 8));
  int64_t c[3];
  eg_dataset_class_counts(s, c);
  CHECK(c[0] == 100 && c[1] == 50 && c[2] == 10);
  eg_dataset_release(s);
  fr[2] = 1.5;
  CHECK_ERR(eg_dataset_subset_fractions(&s, a, fr, 3, 8), EG_EINVAL);
  eg_dataset_release(a);
}

static void test_from_tensors_copies_and_checks_labels(void) {
  int64_t sh[2] = {3, 2}, sy[1] = {3};
  eg_tensor x = EG_TENSOR_INIT, y = EG_TENSOR_INIT, bx = EG_TENSOR_INIT, by = EG_TENSOR_INIT;
  eg_tensor_new(&x, 2, sh);
  eg_tensor_new(&y, 1, sy);
  eg_fill_range(&x, 0, 1);
  eg_data(&y)[0] = 1;
  eg_data(&y)[1] = 4;
  eg_dataset *ds;
  CHECK_OK(eg_dataset_from_tensors(&ds, &x, &y, 0));
  CHECK(eg_dataset_nclasses(ds) == 5);
  eg_fill(&x, -1); /* the dataset holds its own copy */
  CHECK_OK(eg_dataset_range(ds, 1, 2, &bx, &by, 0));
  CHECK(eg_data(&bx)[0] == 2.0f && eg_data(&by)[0] == 4.0f);
  eg_dataset_release(ds);
  eg_data(&y)[2] = 0.5f;
  CHECK_ERR(eg_dataset_from_tensors(&ds, &x, &y, 0), EG_EINVAL);
  for (eg_tensor *t = (eg_tensor[]){x, y, bx, by}, *e = t + 4; t < e; t++) eg_tensor_release(t);
}

static void test_range_and_gather_check_bounds(void) {
  eg_dataset *ds = load_small(0);
  if (!ds) return;
  eg_tensor x = EG_TENSOR_INIT, y = EG_TENSOR_INIT;
  CHECK_ERR(eg_dataset_range(ds, 8, 3, &x, &y, 0), EG_ERANGE);
  int64_t idx[1] = {10};
  CHECK_ERR(eg_dataset_gather(ds, idx, 1, &x, &y, 0), EG_ERANGE);
  CHECK_ERR(eg_dataset_range(ds, 0, 1, &x, &x, 0), EG_EINVAL);
  eg_dataset_release(ds);
}

int main(void) {
  snprintf(tmpdir, sizeof tmpdir, "/tmp/eg_test_data_XXXXXX");
  if (!mkdtemp(tmpdir)) {
    perror("mkdtemp");
    return 1;
  }
  RUN(test_idx_reads_plain_and_gzipped_files_alike);
  RUN(test_idx_reads_big_endian_int32_and_float);
  RUN(test_idx_rejects_wrong_magic);
  RUN(test_idx_rejects_truncation_at_every_point);
  RUN(test_idx_rejects_overlong_file);
  RUN(test_idx_rejects_overflowing_and_oversized_dims);
  RUN(test_idx_missing_file_is_io_error);
  RUN(test_idx_dataset_rejects_label_count_mismatch);
  RUN(test_fashion_mnist_missing_dir_names_the_package);
  RUN(test_fashion_mnist_loads_when_installed);
  RUN(test_csv_reads_numbers_with_header_and_label_column);
  RUN(test_csv_rejects_bad_fields_and_ragged_rows);
  RUN(test_csv_reads_gzip_and_rejects_empty_files);
  RUN(test_subset_by_labels_and_indices_shares_pixels);
  RUN(test_split_partitions_the_dataset);
  RUN(test_concat_same_base_shares_and_different_bases_copy);
  RUN(test_permutation_then_inverse_gives_original);
  RUN(test_rotation_by_0_is_identity_and_by_90_moves_pixels);
  RUN(test_normalize_and_noise_compose_in_call_order);
  RUN(test_batches_cover_every_sample_once_and_repeat_per_seed);
  RUN(test_warm_epoch_allocates_nothing);
  RUN(test_synthetic_sets_are_seeded_and_balanced);
  RUN(test_fractions_make_class_imbalance);
  RUN(test_from_tensors_copies_and_checks_labels);
  RUN(test_range_and_gather_check_bounds);
  char cmd[300];
  snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmpdir);
  if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", tmpdir);
  return CHECK_DONE("c/data");
}
