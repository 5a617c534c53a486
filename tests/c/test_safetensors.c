/*
** test_safetensors.c — the safetensors layout: a round trip of tensors of
** every rank (0 to 8, empty ones too) and metadata with escapes and UTF-8;
** the bytes of a known file; and rejection, whole and with a message, of
** every truncation of a valid file, of seeded random corruptions (never a
** crash: a clean load or EG_EFORMAT), and of each way a header can lie.
*/
#include <stdlib.h>
#include <unistd.h>

#include "check.h"
#include "rng.h"
#include "safetensors.h"

static char path[256];

static unsigned char *slurp(const char *p, size_t *n) {
  FILE *f = fopen(p, "rb");
  if (!f) return NULL;
  fseek(f, 0, SEEK_END);
  long k = ftell(f);
  fseek(f, 0, SEEK_SET);
  unsigned char *b = malloc((size_t)k + 1);
  *n = fread(b, 1, (size_t)k, f);
  fclose(f);
  return b;
}

/* A file of the given header text and data bytes, parsed from memory. */
static int parse_text(const char *hdr, size_t data, eg_st_file **f) {
  size_t hl = strlen(hdr), n = 8 + hl + data;
  unsigned char *b = calloc(1, n);
  for (int k = 0; k < 8; k++) b[k] = (unsigned char)((uint64_t)hl >> (8 * k));
  memcpy(b + 8, hdr, hl);
  int st = eg_st_parse(f, b, n, "test");
  free(b);
  return st;
}

static void test_round_trip_of_every_rank_and_metadata(void) {
  eg_tensor t[10];
  const char *names[10];
  char nb[10][32];
  eg_rng r;
  eg_rng_seed(&r, 3);
  for (int i = 0; i < 9; i++) { /* rank i: sizes 2, 1, 3, 1, ... */
    int64_t sh[8];
    for (int d = 0; d < i; d++) sh[d] = d % 2 ? 1 : 2 + d % 3;
    t[i] = (eg_tensor)EG_TENSOR_INIT;
    eg_tensor_new(&t[i], i, sh);
    eg_fill_uniform(&t[i], &r, -3, 3);
    snprintf(nb[i], sizeof nb[i], "layer.%d \"w\"\\\x01", i);
    names[i] = nb[i];
  }
  int64_t empty[2] = {0, 4};
  t[9] = (eg_tensor)EG_TENSOR_INIT;
  eg_tensor_new(&t[9], 2, empty);
  names[9] = "empty \xc3\xa9t\xc3\xa9"; /* UTF-8 "été" */
  const eg_tensor *tp[10];
  for (int i = 0; i < 10; i++) tp[i] = &t[i];
  const char *keys[2] = {"task", "note"}, *vals[2] = {"3", "line\nbreak \xe2\x82\xac"};
  CHECK_OK(eg_st_save(path, 10, names, tp, 2, keys, vals));
  eg_st_file *f = NULL;
  CHECK_OK(eg_st_open(&f, path));
  CHECK(eg_st_count(f) == 10);
  for (int i = 0; i < 10; i++) {
    int64_t j = eg_st_find(f, names[i]);
    CHECK(j >= 0);
    eg_tensor u = EG_TENSOR_INIT;
    CHECK_OK(eg_st_tensor(f, j, &u));
    CHECK(u.ndim == t[i].ndim && eg_same_shape(&u, &t[i]));
    if (eg_numel(&u)) CHECK(!memcmp(eg_data(&u), eg_data(&t[i]), sizeof(float) * (size_t)eg_numel(&u)));
    eg_tensor_release(&u);
  }
  CHECK(eg_st_meta_count(f) == 2);
  CHECK(!strcmp(eg_st_meta_value(f, 1), "line\nbreak \xe2\x82\xac"));
  eg_st_close(f);
  for (int i = 0; i < 10; i++) eg_tensor_release(&t[i]);
}

static void test_the_bytes_of_a_known_file(void) {
  eg_tensor a = EG_TENSOR_INIT;
  int64_t sh[1] = {2};
  eg_tensor_new(&a, 1, sh);
  eg_data(&a)[0] = 1.0f, eg_data(&a)[1] = -2.0f;
  const char *names[1] = {"a"};
  const eg_tensor *tp[1] = {&a};
  CHECK_OK(eg_st_save(path, 1, names, tp, 0, NULL, NULL));
  size_t n;
  unsigned char *b = slurp(path, &n);
  const char *hdr = "{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}";
  size_t hl = strlen(hdr), padded = (hl + 7) / 8 * 8;
  CHECK(n == 8 + padded + 8);
  CHECK(b[0] == padded && b[1] == 0 && b[7] == 0); /* little-endian length */
  CHECK(!memcmp(b + 8, hdr, hl));
  for (size_t k = hl; k < padded; k++) CHECK(b[8 + k] == ' ');
  const unsigned char one[4] = {0x00, 0x00, 0x80, 0x3f}, m2[4] = {0x00, 0x00, 0x00, 0xc0};
  CHECK(!memcmp(b + 8 + padded, one, 4) && !memcmp(b + 12 + padded, m2, 4));
  free(b);
  eg_tensor_release(&a);
}

static void test_every_truncation_and_random_corruption_is_rejected_cleanly(void) {
  eg_tensor a = EG_TENSOR_INIT, c = EG_TENSOR_INIT;
  int64_t sa[2] = {3, 4}, sc[1] = {5};
  eg_tensor_new(&a, 2, sa), eg_tensor_new(&c, 1, sc);
  eg_fill(&a, 0.5f), eg_fill(&c, -1.0f);
  const char *names[2] = {"alpha", "gamma"};
  const eg_tensor *tp[2] = {&a, &c};
  const char *keys[1] = {"k"}, *vals[1] = {"v"};
  CHECK_OK(eg_st_save(path, 2, names, tp, 1, keys, vals));
  size_t n;
  unsigned char *b = slurp(path, &n);
  eg_st_file *f;
  int bad_truncation = 0;
  for (size_t k = 0; k < n; k++) { /* every proper prefix */
    if (eg_st_parse(&f, b, k, "truncated") != EG_EFORMAT || f != NULL) bad_truncation++;
  }
  CHECK(bad_truncation == 0);
  CHECK_OK(eg_st_parse(&f, b, n, "whole"));
  eg_st_close(f);
  eg_rng r;
  eg_rng_seed(&r, 11);
  unsigned char *m = malloc(n);
  int odd = 0;
  for (int trial = 0; trial < 3000; trial++) {
    memcpy(m, b, n);
    int flips = 1 + (int)(eg_rng_uniform(&r) * 4);
    for (int k = 0; k < flips; k++) m[(size_t)(eg_rng_uniform(&r) * (double)n)] = (unsigned char)(eg_rng_uniform(&r) * 256);
    int st = eg_st_parse(&f, m, n, "corrupt");
    if (st == EG_OK) { /* a flip in the data, or one the header survives: still consistent */
      for (int64_t i = 0; i < eg_st_count(f); i++) {
        eg_tensor u = EG_TENSOR_INIT;
        if (eg_st_tensor(f, i, &u) != EG_OK) odd++;
        eg_tensor_release(&u);
      }
      eg_st_close(f);
    } else if (st != EG_EFORMAT || f != NULL) {
      odd++;
    }
  }
  CHECK(odd == 0);
  free(m);
  free(b);
  eg_tensor_release(&a), eg_tensor_release(&c);
}

static void test_headers_that_lie_are_rejected_with_a_reason(void) {
  struct {
    const char *hdr;
    size_t data;
    const char *reason;
  } cases[] = {
      {"{\"a\":{\"dtype\":\"F64\",\"shape\":[1],\"data_offsets\":[0,8]}}", 8, "dtype F64"},
      {"{\"a\":{\"dtype\":\"F32\",\"shape\":[3],\"data_offsets\":[0,8]}}", 8, "do not hold its 3 floats"},
      {"{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4,8]}}", 8, "gap or overlap"},
      {"{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}}", 8, "cover 4 bytes of data, the file holds 8"},
      {"{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]},"
       "\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4,8]}}", 8, "two tensors are named 'a'"},
      {"{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4],\"x\":1}}", 4, "unknown or repeated field"},
      {"{\"a\":{\"dtype\":\"F32\",\"shape\":[1,1,1,1,1,1,1,1,1],\"data_offsets\":[0,4]}}", 4, "more dimensions"},
      {"{\"a\":{\"dtype\":\"F32\",\"shape\":[-1],\"data_offsets\":[0,4]}}", 4, "non-negative integer"},
      {"{\"a\":{\"dtype\":\"F32\",\"shape\":[1.5],\"data_offsets\":[0,4]}}", 4, "not an integer"},
      {"{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]},}", 4, "expected a string"},
      {"{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}} x", 4, "more than one JSON object"},
      {"{\"\\ud800\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}}", 4, "not valid"},
      {"{\"a\xff\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}}", 4, "not valid"},
      {"{\"a\":{\"dtype\":\"F32\",\"shape\":[1]}}", 4, "lacks dtype, shape or data_offsets"},
      {"{\"__metadata__\":{\"k\":1}}", 0, "not a string"},
      {"{\"a\":{\"dtype\":\"F32\",\"shape\":[100000000000],\"data_offsets\":[0,4]}}", 4, "its 100000000000 floats"},
      {"{\"a\":{\"dtype\":\"F32\",\"shape\":[1073741824,1073741824],\"data_offsets\":[0,4]}}", 4, "too large"},
  };
  for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
    eg_st_file *f = (eg_st_file *)&f;
    int st = parse_text(cases[i].hdr, cases[i].data, &f);
    CHECK(st == EG_EFORMAT && f == NULL);
    if (!strstr(eg_errmsg(), cases[i].reason)) {
      fprintf(stderr, "  case %zu: message \"%s\" lacks \"%s\"\n", i, eg_errmsg(), cases[i].reason);
      CHECK(0);
    }
  }
  /* a length that runs past the end, and one over the format's limit */
  unsigned char b[16] = {0xff, 0, 0, 0, 0, 0, 0, 0, '{', '}'};
  eg_st_file *f;
  CHECK(eg_st_parse(&f, b, 10, "long") == EG_EFORMAT && strstr(eg_errmsg(), "past the end"));
  b[4] = 1;
  CHECK(eg_st_parse(&f, b, 10, "huge") == EG_EFORMAT && strstr(eg_errmsg(), "100 MB"));
  CHECK(eg_st_open(&f, "/nonexistent/x.safetensors") == EG_EIO);
  /* an empty file of tensors is fine */
  CHECK_OK(parse_text("{}", 0, &f));
  CHECK(eg_st_count(f) == 0);
  eg_st_close(f);
  /* the writer's own checks */
  const char *names[2] = {"a", "a"};
  eg_tensor t = EG_TENSOR_INIT;
  int64_t sh[1] = {1};
  eg_tensor_new(&t, 1, sh);
  const eg_tensor *tp[2] = {&t, &t};
  CHECK_ERR(eg_st_save(path, 2, names, tp, 0, NULL, NULL), EG_EINVAL);
  CHECK(strstr(eg_errmsg(), "two tensors are named 'a'") != NULL);
  names[1] = "__metadata__";
  CHECK_ERR(eg_st_save(path, 2, names, tp, 0, NULL, NULL), EG_EINVAL);
  names[1] = "bad \xff";
  CHECK_ERR(eg_st_save(path, 2, names, tp, 0, NULL, NULL), EG_EINVAL);
  eg_tensor_release(&t);
}

int main(void) {
  snprintf(path, sizeof path, "%s/engram-st-%ld.safetensors", getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp",
           (long)getpid());
  RUN(test_round_trip_of_every_rank_and_metadata);
  RUN(test_the_bytes_of_a_known_file);
  RUN(test_every_truncation_and_random_corruption_is_rejected_cleanly);
  RUN(test_headers_that_lie_are_rejected_with_a_reason);
  unlink(path);
  return CHECK_DONE("safetensors");
}
