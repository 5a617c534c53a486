/*
** safetensors.c — the safetensors layout, written and read. See safetensors.h.
*/
#include "safetensors.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base_impl.h"
#include "io.h"

#define ST_MAX_HEADER ((uint64_t)100000000) /* the format's own limit */
#define ST_META "__metadata__"

typedef struct {
  char *name;
  int ndim;
  int64_t shape[EG_MAXDIM];
  uint64_t begin, end;
} st_entry;

struct eg_st_file {
  unsigned char *buf; /* the whole file */
  const unsigned char *data;
  uint64_t data_len;
  st_entry *e;
  int64_t n, cap;
  char **keys, **values;
  int64_t nmeta, capmeta;
};

static int host_is_le(void) {
  const uint16_t one = 1;
  unsigned char b;
  memcpy(&b, &one, 1);
  return b == 1;
}

/* ------------------------------------------------------------------ writing */

typedef struct {
  char *p;
  size_t n, cap;
  int oom;
} sbuf;

static void sb_put(sbuf *b, const char *s, size_t k) {
  if (b->oom) return;
  if (b->n + k + 1 > b->cap) {
    size_t c = b->cap ? b->cap : 256;
    while (c < b->n + k + 1) c *= 2;
    char *q = eg_realloc(b->p, c);
    if (!q) {
      b->oom = 1;
      return;
    }
    b->p = q, b->cap = c;
  }
  memcpy(b->p + b->n, s, k);
  b->n += k;
  b->p[b->n] = 0;
}
static void sb_str(sbuf *b, const char *s) { sb_put(b, s, strlen(s)); }

/* Whether s is valid UTF-8 (no overlong forms, no surrogates). */
static int utf8_ok(const unsigned char *s, size_t n) {
  for (size_t i = 0; i < n;) {
    unsigned c = s[i];
    if (c < 0x80) {
      i++;
      continue;
    }
    int k = c >= 0xf0 && c <= 0xf4 ? 3 : c >= 0xe0 ? 2 : c >= 0xc2 && c < 0xe0 ? 1 : -1;
    if (k < 0 || i + (size_t)k >= n + 0 + (i + (size_t)k < n ? 0 : 1)) return 0;
    uint32_t cp = c & (0x3f >> k);
    for (int j = 1; j <= k; j++) {
      if ((s[i + j] & 0xc0) != 0x80) return 0;
      cp = cp << 6 | (s[i + j] & 0x3f);
    }
    if ((k == 2 && cp < 0x800) || (k == 3 && (cp < 0x10000 || cp > 0x10ffff)) || (cp >= 0xd800 && cp <= 0xdfff))
      return 0;
    i += (size_t)k + 1;
  }
  return 1;
}

/* Appends s as a JSON string; 0 when s is not valid UTF-8. */
static int sb_json(sbuf *b, const char *s) {
  size_t n = strlen(s);
  if (!utf8_ok((const unsigned char *)s, n)) return 0;
  sb_put(b, "\"", 1);
  for (size_t i = 0; i < n; i++) {
    unsigned char c = (unsigned char)s[i];
    char esc[8];
    if (c == '"' || c == '\\') {
      esc[0] = '\\', esc[1] = (char)c;
      sb_put(b, esc, 2);
    } else if (c < 0x20) {
      snprintf(esc, sizeof esc, "\\u%04x", c);
      sb_put(b, esc, 6);
    } else {
      sb_put(b, (const char *)&c, 1);
    }
  }
  sb_put(b, "\"", 1);
  return 1;
}

int eg_st_save(const char *path, int64_t n, const char *const *names, const eg_tensor *const *tensors,
               int64_t nmeta, const char *const *keys, const char *const *values) {
  static const char op[] = "safetensors_save";
  if (n < 0 || nmeta < 0 || (n > 0 && (!names || !tensors)) || (nmeta > 0 && (!keys || !values)))
    return eg_seterr(EG_EINVAL, "%s: bad arguments", op);
  for (int64_t i = 0; i < n; i++) {
    if (!names[i] || !*names[i] || !strcmp(names[i], ST_META))
      return eg_seterr(EG_EINVAL, "%s: tensor %lld needs a name (not empty, not \"%s\")", op, (long long)i + 1,
                       ST_META);
    if (!tensors[i] || !tensors[i]->storage)
      return eg_seterr(EG_ESTATE, "%s: tensor '%s' is empty or released", op, names[i]);
    for (int64_t j = 0; j < i; j++)
      if (!strcmp(names[i], names[j])) return eg_seterr(EG_EINVAL, "%s: two tensors are named '%s'", op, names[i]);
  }
  sbuf h = {0};
  uint64_t off = 0;
  int st = EG_OK;
  sb_put(&h, "{", 1);
  for (int64_t i = 0; i < n && !st; i++) {
    const eg_tensor *t = tensors[i];
    if (i) sb_put(&h, ",", 1);
    if (!sb_json(&h, names[i])) {
      st = eg_seterr(EG_EINVAL, "%s: the name of tensor %lld is not valid UTF-8", op, (long long)i + 1);
      break;
    }
    sb_str(&h, ":{\"dtype\":\"F32\",\"shape\":[");
    for (int d = 0; d < t->ndim; d++) {
      char num[32];
      snprintf(num, sizeof num, "%s%lld", d ? "," : "", (long long)t->shape[d]);
      sb_str(&h, num);
    }
    uint64_t bytes = (uint64_t)eg_numel(t) * 4;
    char offs[80];
    snprintf(offs, sizeof offs, "],\"data_offsets\":[%llu,%llu]}", (unsigned long long)off,
             (unsigned long long)(off + bytes));
    sb_str(&h, offs);
    off += bytes;
  }
  if (!st && nmeta > 0) {
    sb_str(&h, n ? ",\"" ST_META "\":{" : "\"" ST_META "\":{");
    for (int64_t i = 0; i < nmeta && !st; i++) {
      if (i) sb_put(&h, ",", 1);
      if (!keys[i] || !values[i] || !sb_json(&h, keys[i]) || (sb_put(&h, ":", 1), !sb_json(&h, values[i])))
        st = eg_seterr(EG_EINVAL, "%s: metadata %lld must be two UTF-8 strings", op, (long long)i + 1);
    }
    sb_put(&h, "}", 1);
  }
  sb_put(&h, "}", 1);
  while (!h.oom && h.n % 8) sb_put(&h, " ", 1);
  if (!st && h.oom) st = eg_seterr(EG_ENOMEM, "%s: out of memory for the header", op);
  size_t total = 8 + h.n + (size_t)off;
  unsigned char *out = st ? NULL : eg_malloc(total ? total : 1);
  if (!st && !out) st = eg_seterr(EG_ENOMEM, "%s: out of memory for %zu bytes", op, total);
  if (!st) {
    uint64_t hl = h.n;
    for (int k = 0; k < 8; k++) out[k] = (unsigned char)(hl >> (8 * k));
    memcpy(out + 8, h.p, h.n);
    unsigned char *p = out + 8 + h.n;
    eg_tensor c = EG_TENSOR_INIT;
    for (int64_t i = 0; i < n && !st; i++) {
      if ((st = eg_contiguous(&c, tensors[i]))) break;
      size_t bytes = (size_t)eg_numel(&c) * 4;
      if (bytes) memcpy(p, eg_data(&c), bytes);
      if (!host_is_le())
        for (size_t k = 0; k < bytes; k += 4) {
          unsigned char t0 = p[k], t1 = p[k + 1];
          p[k] = p[k + 3], p[k + 1] = p[k + 2], p[k + 2] = t1, p[k + 3] = t0;
        }
      p += bytes;
      eg_tensor_release(&c);
    }
    eg_tensor_release(&c);
  }
  if (!st) st = eg_write_file_atomic(path, out, total);
  eg_free(out);
  eg_free(h.p);
  return st;
}

/* ------------------------------------------------------------------ reading */

typedef struct {
  const unsigned char *p, *end;
  const char *what;
} cur;

static int bad(const cur *c, const char *msg) {
  return eg_seterr(EG_EFORMAT, "safetensors: %s: %s", c->what, msg);
}

static void ws(cur *c) {
  while (c->p < c->end && (*c->p == ' ' || *c->p == '\t' || *c->p == '\n' || *c->p == '\r')) c->p++;
}

static int expect(cur *c, char ch) {
  ws(c);
  if (c->p >= c->end || *c->p != (unsigned char)ch) {
    char m[48];
    snprintf(m, sizeof m, "the header's JSON: expected '%c'", ch);
    return bad(c, m);
  }
  c->p++;
  return EG_OK;
}

static int hexval(int ch) {
  if (ch >= '0' && ch <= '9') return ch - '0';
  if (ch >= 'a' && ch <= 'f') return ch - 'a' + 10;
  if (ch >= 'A' && ch <= 'F') return ch - 'A' + 10;
  return -1;
}

static int hex4(cur *c, uint32_t *v) {
  if (c->end - c->p < 4) return 0;
  *v = 0;
  for (int i = 0; i < 4; i++) {
    int h = hexval(c->p[i]);
    if (h < 0) return 0;
    *v = *v << 4 | (uint32_t)h;
  }
  c->p += 4;
  return 1;
}

/* A JSON string into a new NUL-terminated UTF-8 string (no NUL inside). */
static int str(cur *c, char **out) {
  *out = NULL;
  ws(c);
  if (c->p >= c->end || *c->p != '"') return bad(c, "the header's JSON: expected a string");
  c->p++;
  const unsigned char *s = c->p;
  while (s < c->end && *s != '"') s += *s == '\\' && s + 1 < c->end ? 2 : 1;
  if (s >= c->end) return bad(c, "the header's JSON: a string does not end");
  size_t cap = (size_t)(s - c->p) + 1; /* escapes only shrink */
  unsigned char *o = eg_malloc(cap), *q = o;
  if (!o) return eg_seterr(EG_ENOMEM, "safetensors: %s: out of memory", c->what);
  while (*c->p != '"') {
    unsigned ch = *c->p++;
    if (ch < 0x20) goto fail;
    if (ch != '\\') {
      *q++ = (unsigned char)ch;
      continue;
    }
    ch = *c->p++;
    uint32_t cp;
    switch (ch) {
      case '"': case '\\': case '/': *q++ = (unsigned char)ch; continue;
      case 'b': *q++ = '\b'; continue;
      case 'f': *q++ = '\f'; continue;
      case 'n': *q++ = '\n'; continue;
      case 'r': *q++ = '\r'; continue;
      case 't': *q++ = '\t'; continue;
      case 'u':
        if (!hex4(c, &cp)) goto fail;
        if (cp >= 0xd800 && cp <= 0xdbff) { /* a surrogate pair */
          uint32_t lo;
          if (c->end - c->p < 6 || c->p[0] != '\\' || c->p[1] != 'u') goto fail;
          c->p += 2;
          if (!hex4(c, &lo) || lo < 0xdc00 || lo > 0xdfff) goto fail;
          cp = 0x10000 + ((cp - 0xd800) << 10) + (lo - 0xdc00);
        } else if ((cp >= 0xdc00 && cp <= 0xdfff) || cp == 0) {
          goto fail;
        }
        if (cp < 0x80) {
          *q++ = (unsigned char)cp;
        } else if (cp < 0x800) {
          *q++ = (unsigned char)(0xc0 | cp >> 6), *q++ = (unsigned char)(0x80 | (cp & 0x3f));
        } else if (cp < 0x10000) {
          *q++ = (unsigned char)(0xe0 | cp >> 12), *q++ = (unsigned char)(0x80 | ((cp >> 6) & 0x3f));
          *q++ = (unsigned char)(0x80 | (cp & 0x3f));
        } else {
          *q++ = (unsigned char)(0xf0 | cp >> 18), *q++ = (unsigned char)(0x80 | ((cp >> 12) & 0x3f));
          *q++ = (unsigned char)(0x80 | ((cp >> 6) & 0x3f)), *q++ = (unsigned char)(0x80 | (cp & 0x3f));
        }
        continue;
      default: goto fail;
    }
  }
  c->p++; /* the closing quote */
  *q = 0;
  if (!utf8_ok(o, (size_t)(q - o))) goto fail;
  *out = (char *)o;
  return EG_OK;
fail:
  eg_free(o);
  return bad(c, "the header's JSON: a string is not valid (escape, control character or UTF-8)");
}

/* A non-negative integer below 2^53, digits only. */
static int uint_(cur *c, uint64_t *v) {
  ws(c);
  const unsigned char *s = c->p;
  *v = 0;
  while (c->p < c->end && *c->p >= '0' && *c->p <= '9') {
    if (*v > ((uint64_t)1 << 53) / 10) return bad(c, "the header: a number is too large");
    *v = *v * 10 + (uint64_t)(*c->p++ - '0');
  }
  if (c->p == s) return bad(c, "the header's JSON: expected a non-negative integer");
  if (c->p - s > 1 && *s == '0') return bad(c, "the header's JSON: a number has a leading zero");
  if (c->p < c->end && (*c->p == '.' || *c->p == 'e' || *c->p == 'E'))
    return bad(c, "the header: a size or offset is not an integer");
  return EG_OK;
}

/* Whether the next non-space character is ch (consumed if so). */
static int next_is(cur *c, char ch) {
  ws(c);
  if (c->p < c->end && *c->p == (unsigned char)ch) {
    c->p++;
    return 1;
  }
  return 0;
}

static int push_entry(eg_st_file *f) {
  if (f->n == f->cap) {
    int64_t cap = f->cap ? 2 * f->cap : 16;
    st_entry *e = eg_realloc(f->e, sizeof *e * (size_t)cap);
    if (!e) return EG_ENOMEM;
    f->e = e, f->cap = cap;
  }
  memset(&f->e[f->n], 0, sizeof f->e[f->n]);
  f->n++;
  return EG_OK;
}

static int tensor_entry(cur *c, st_entry *e) {
  int st, seen_dtype = 0, seen_shape = 0, seen_offsets = 0;
  if ((st = expect(c, '{'))) return st;
  do {
    char *k;
    if ((st = str(c, &k)) || (st = expect(c, ':'))) {
      eg_free(k);
      return st;
    }
    if (!strcmp(k, "dtype") && !seen_dtype) {
      char *dt;
      seen_dtype = 1;
      if ((st = str(c, &dt))) {
        eg_free(k);
        return st;
      }
      int f32 = !strcmp(dt, "F32");
      if (!f32) {
        char m[160];
        snprintf(m, sizeof m, "tensor '%.60s' has dtype %.20s; engram reads F32 only", e->name, dt);
        eg_free(dt), eg_free(k);
        return bad(c, m);
      }
      eg_free(dt);
    } else if (!strcmp(k, "shape") && !seen_shape) {
      seen_shape = 1;
      st = expect(c, '[');
      if (!st && !next_is(c, ']')) {
        do {
          uint64_t d;
          if (e->ndim >= EG_MAXDIM) {
            st = bad(c, "a tensor has more dimensions than engram supports (8)");
            break;
          }
          if ((st = uint_(c, &d))) break;
          e->shape[e->ndim++] = (int64_t)d;
        } while (next_is(c, ','));
        if (!st) st = expect(c, ']');
      }
    } else if (!strcmp(k, "data_offsets") && !seen_offsets) {
      seen_offsets = 1;
      if (!(st = expect(c, '[')) && !(st = uint_(c, &e->begin)) && !(st = expect(c, ',')) &&
          !(st = uint_(c, &e->end)))
        st = expect(c, ']');
    } else {
      char m[160];
      snprintf(m, sizeof m, "tensor '%.60s': unknown or repeated field '%.40s'", e->name, k);
      st = bad(c, m);
    }
    eg_free(k);
    if (st) return st;
  } while (next_is(c, ','));
  if ((st = expect(c, '}'))) return st;
  if (!seen_dtype || !seen_shape || !seen_offsets) {
    char m[160];
    snprintf(m, sizeof m, "tensor '%.60s' lacks dtype, shape or data_offsets", e->name);
    return bad(c, m);
  }
  return EG_OK;
}

static int metadata(cur *c, eg_st_file *f) {
  int st;
  if ((st = expect(c, '{'))) return st;
  if (next_is(c, '}')) return EG_OK;
  do {
    if (f->nmeta == f->capmeta) {
      int64_t cap = f->capmeta ? 2 * f->capmeta : 8;
      char **k = eg_realloc(f->keys, sizeof *k * (size_t)cap), **v;
      if (!k) return eg_seterr(EG_ENOMEM, "safetensors: %s: out of memory", c->what);
      f->keys = k;
      v = eg_realloc(f->values, sizeof *v * (size_t)cap);
      if (!v) return eg_seterr(EG_ENOMEM, "safetensors: %s: out of memory", c->what);
      f->values = v, f->capmeta = cap;
    }
    int64_t i = f->nmeta++;
    f->keys[i] = f->values[i] = NULL;
    if ((st = str(c, &f->keys[i])) || (st = expect(c, ':'))) return st;
    ws(c);
    if (c->p < c->end && *c->p != '"') return bad(c, "__metadata__ holds a value that is not a string");
    if ((st = str(c, &f->values[i]))) return st;
  } while (next_is(c, ','));
  return expect(c, '}');
}

static int by_begin(const void *a, const void *b) {
  const st_entry *x = a, *y = b;
  return x->begin < y->begin ? -1 : x->begin > y->begin ? 1 : (x->end > y->end) - (x->end < y->end);
}

static int by_name(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

static int header(cur *c, eg_st_file *f) {
  int st, seen_meta = 0;
  if ((st = expect(c, '{'))) return st;
  if (!next_is(c, '}')) {
    do {
      char *k;
      if ((st = str(c, &k))) return st;
      if ((st = expect(c, ':'))) {
        eg_free(k);
        return st;
      }
      if (!strcmp(k, ST_META)) {
        eg_free(k);
        if (seen_meta) return bad(c, "__metadata__ appears twice");
        seen_meta = 1;
        if ((st = metadata(c, f))) return st;
        continue;
      }
      if (push_entry(f)) {
        eg_free(k);
        return eg_seterr(EG_ENOMEM, "safetensors: %s: out of memory", c->what);
      }
      f->e[f->n - 1].name = k;
      if ((st = tensor_entry(c, &f->e[f->n - 1]))) return st;
    } while (next_is(c, ','));
    if ((st = expect(c, '}'))) return st;
  }
  ws(c);
  if (c->p != c->end) return bad(c, "the header holds more than one JSON object");
  /* names distinct */
  if (f->n > 1) {
    char **names = eg_malloc(sizeof *names * (size_t)f->n);
    if (!names) return eg_seterr(EG_ENOMEM, "safetensors: %s: out of memory", c->what);
    for (int64_t i = 0; i < f->n; i++) names[i] = f->e[i].name;
    qsort(names, (size_t)f->n, sizeof *names, by_name);
    for (int64_t i = 1; i < f->n && !st; i++)
      if (!strcmp(names[i], names[i - 1])) {
        char m[120];
        snprintf(m, sizeof m, "two tensors are named '%.60s'", names[i]);
        st = bad(c, m);
      }
    eg_free(names);
    if (st) return st;
  }
  /* each tensor's bytes match its shape; together they tile the data */
  for (int64_t i = 0; i < f->n; i++) {
    st_entry *e = &f->e[i];
    uint64_t numel = 1;
    for (int d = 0; d < e->ndim; d++) {
      if (e->shape[d] != 0 && numel > ((uint64_t)1 << 40) / (uint64_t)e->shape[d])
        return bad(c, "a tensor's shape is too large");
      numel *= (uint64_t)e->shape[d];
    }
    if (e->end < e->begin || e->end - e->begin != numel * 4) {
      char m[160];
      snprintf(m, sizeof m, "tensor '%.60s': data_offsets [%llu, %llu] do not hold its %llu floats", e->name,
               (unsigned long long)e->begin, (unsigned long long)e->end, (unsigned long long)numel);
      return bad(c, m);
    }
  }
  if (f->n > 1) qsort(f->e, (size_t)f->n, sizeof *f->e, by_begin);
  uint64_t at = 0;
  for (int64_t i = 0; i < f->n; i++) {
    if (f->e[i].begin != at) return bad(c, "the tensors' data_offsets leave a gap or overlap");
    at = f->e[i].end;
  }
  if (at != f->data_len) {
    char m[120];
    snprintf(m, sizeof m, "the tensors cover %llu bytes of data, the file holds %llu", (unsigned long long)at,
             (unsigned long long)f->data_len);
    return bad(c, m);
  }
  return EG_OK;
}

void eg_st_close(eg_st_file *f) {
  if (!f) return;
  for (int64_t i = 0; i < f->n; i++) eg_free(f->e[i].name);
  for (int64_t i = 0; i < f->nmeta; i++) eg_free(f->keys[i]), eg_free(f->values[i]);
  eg_free(f->e);
  eg_free(f->keys);
  eg_free(f->values);
  eg_free(f->buf);
  eg_free(f);
}

/* Takes ownership of buf (n bytes) into a new file object. */
static int parse_owned(eg_st_file **out, unsigned char *buf, size_t n, const char *what) {
  *out = NULL;
  cur c = {NULL, NULL, what};
  if (n < 8) {
    eg_free(buf);
    return bad(&c, "shorter than the 8-byte header length");
  }
  uint64_t hl = 0;
  for (int k = 0; k < 8; k++) hl |= (uint64_t)buf[k] << (8 * k);
  if (hl > ST_MAX_HEADER || hl > n - 8) {
    eg_free(buf);
    return bad(&c, hl > ST_MAX_HEADER ? "the header length is over the format's 100 MB" :
                                        "the header length runs past the end of the file");
  }
  eg_st_file *f = eg_calloc(1, sizeof *f);
  if (!f) {
    eg_free(buf);
    return eg_seterr(EG_ENOMEM, "safetensors: %s: out of memory", what);
  }
  f->buf = buf;
  f->data = buf + 8 + hl;
  f->data_len = n - 8 - hl;
  c.p = buf + 8, c.end = buf + 8 + hl;
  int st = header(&c, f);
  if (st) {
    eg_st_close(f);
    return st;
  }
  *out = f;
  return EG_OK;
}

int eg_st_parse(eg_st_file **out, const void *data, size_t n, const char *what) {
  if (!out) return eg_seterr(EG_EINVAL, "safetensors: no place for the result");
  *out = NULL;
  unsigned char *buf = eg_malloc(n ? n : 1);
  if (!buf) return eg_seterr(EG_ENOMEM, "safetensors: %s: out of memory for %zu bytes", what, n);
  if (n) memcpy(buf, data, n);
  return parse_owned(out, buf, n, what ? what : "(buffer)");
}

int eg_st_open(eg_st_file **out, const char *path) {
  if (!out) return eg_seterr(EG_EINVAL, "safetensors: no place for the result");
  *out = NULL;
  FILE *fp = fopen(path, "rb");
  if (!fp) return eg_seterr(EG_EIO, "safetensors: cannot open %s: %s", path, strerror(errno));
  unsigned char *buf = NULL;
  size_t n = 0, cap = 0;
  int err = 0;
  for (;;) {
    if (n == cap) {
      size_t c = cap ? cap * 2 : 65536;
      unsigned char *q = eg_realloc(buf, c);
      if (!q) {
        err = ENOMEM;
        break;
      }
      buf = q, cap = c;
    }
    size_t k = fread(buf + n, 1, cap - n, fp);
    n += k;
    if (k == 0) {
      if (ferror(fp)) err = errno ? errno : EIO;
      break;
    }
  }
  fclose(fp);
  if (err) {
    eg_free(buf);
    return err == ENOMEM ? eg_seterr(EG_ENOMEM, "safetensors: %s: out of memory", path)
                         : eg_seterr(EG_EIO, "safetensors: cannot read %s: %s", path, strerror(err));
  }
  return parse_owned(out, buf, n, path);
}

int64_t eg_st_count(const eg_st_file *f) { return f ? f->n : 0; }
const char *eg_st_name(const eg_st_file *f, int64_t i) { return f && i >= 0 && i < f->n ? f->e[i].name : NULL; }
int64_t eg_st_meta_count(const eg_st_file *f) { return f ? f->nmeta : 0; }
const char *eg_st_meta_key(const eg_st_file *f, int64_t i) {
  return f && i >= 0 && i < f->nmeta ? f->keys[i] : NULL;
}
const char *eg_st_meta_value(const eg_st_file *f, int64_t i) {
  return f && i >= 0 && i < f->nmeta ? f->values[i] : NULL;
}

int64_t eg_st_find(const eg_st_file *f, const char *name) {
  if (!f || !name) return -1;
  for (int64_t i = 0; i < f->n; i++)
    if (!strcmp(f->e[i].name, name)) return i;
  return -1;
}

int eg_st_tensor(const eg_st_file *f, int64_t i, eg_tensor *t) {
  if (!f || i < 0 || i >= f->n) return eg_seterr(EG_ERANGE, "safetensors: no tensor %lld", (long long)i + 1);
  const st_entry *e = &f->e[i];
  int st = eg_tensor_new(t, e->ndim, e->shape);
  if (st) return st;
  size_t bytes = (size_t)(e->end - e->begin);
  unsigned char *p = (unsigned char *)eg_data(t);
  if (bytes) memcpy(p, f->data + e->begin, bytes);
  if (!host_is_le())
    for (size_t k = 0; k < bytes; k += 4) {
      unsigned char t0 = p[k], t1 = p[k + 1];
      p[k] = p[k + 3], p[k + 1] = p[k + 2], p[k + 2] = t1, p[k + 3] = t0;
    }
  return EG_OK;
}
