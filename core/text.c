/*
** text.c — the byte-level and char-level tokenizers and the next-token
** sampler (text.h). Window datasets are in data_text.c.
*/
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "base_impl.h"
#include "text.h"

struct eg_tokenizer {
  int kind;
  int64_t vocab;
  int32_t *cps;       /* char-level: the code points, ascending */
  int32_t ascii[128]; /* char-level: id of each ASCII code point, -1 when absent */
  int32_t unk;        /* char-level: id of U+FFFD */
};

static int nomem(const char *op) { return eg_seterr(EG_ENOMEM, "%s: out of memory", op); }

/* ------------------------------------------------------------------ UTF-8 */

/* Decodes one code point at s[0..n-1] (n >= 1); *len gets the bytes used.
** Invalid, overlong, surrogate or truncated sequences give U+FFFD for one byte. */
static int32_t utf8_next(const unsigned char *s, size_t n, size_t *len) {
  unsigned c = s[0];
  *len = 1;
  if (c < 0x80) return (int32_t)c;
  int k;
  uint32_t cp, min;
  if ((c & 0xE0) == 0xC0) {
    k = 1, cp = c & 0x1F, min = 0x80;
  } else if ((c & 0xF0) == 0xE0) {
    k = 2, cp = c & 0x0F, min = 0x800;
  } else if ((c & 0xF8) == 0xF0) {
    k = 3, cp = c & 0x07, min = 0x10000;
  } else {
    return EG_TOKEN_REPLACEMENT;
  }
  if ((size_t)k >= n) return EG_TOKEN_REPLACEMENT;
  for (int i = 1; i <= k; i++) {
    if ((s[i] & 0xC0) != 0x80) return EG_TOKEN_REPLACEMENT;
    cp = (cp << 6) | (s[i] & 0x3F);
  }
  if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return EG_TOKEN_REPLACEMENT;
  *len = (size_t)k + 1;
  return (int32_t)cp;
}

static size_t utf8_put(int32_t cp, char *out) {
  unsigned char *o = (unsigned char *)out;
  uint32_t c = (uint32_t)cp;
  if (c < 0x80) {
    o[0] = (unsigned char)c;
    return 1;
  }
  if (c < 0x800) {
    o[0] = (unsigned char)(0xC0 | (c >> 6));
    o[1] = (unsigned char)(0x80 | (c & 0x3F));
    return 2;
  }
  if (c < 0x10000) {
    o[0] = (unsigned char)(0xE0 | (c >> 12));
    o[1] = (unsigned char)(0x80 | ((c >> 6) & 0x3F));
    o[2] = (unsigned char)(0x80 | (c & 0x3F));
    return 3;
  }
  o[0] = (unsigned char)(0xF0 | (c >> 18));
  o[1] = (unsigned char)(0x80 | ((c >> 12) & 0x3F));
  o[2] = (unsigned char)(0x80 | ((c >> 6) & 0x3F));
  o[3] = (unsigned char)(0x80 | (c & 0x3F));
  return 4;
}

/* ------------------------------------------------------------- tokenizers */

int eg_tokenizer_byte(eg_tokenizer **out) {
  *out = eg_calloc(1, sizeof **out);
  if (!*out) return nomem("tokenizer");
  (*out)->kind = EG_TOKENIZER_BYTE;
  (*out)->vocab = 256;
  return EG_OK;
}

int eg_tokenizer_char(eg_tokenizer **out, const int32_t *cps, int64_t n) {
  *out = NULL;
  int has_unk = 0;
  if (n < 1 || n > EG_TEXT_MAX_VOCAB)
    return eg_seterr(EG_EINVAL, "tokenizer: a vocabulary of %lld code points (1 to %d)", (long long)n,
                     EG_TEXT_MAX_VOCAB);
  for (int64_t i = 0; i < n; i++) {
    int32_t c = cps[i];
    if (c < 0 || c > 0x10FFFF || (c >= 0xD800 && c <= 0xDFFF))
      return eg_seterr(EG_EINVAL, "tokenizer: entry %lld (%ld) is not a Unicode code point", (long long)i, (long)c);
    if (i > 0 && c <= cps[i - 1])
      return eg_seterr(EG_EINVAL, "tokenizer: the vocabulary must be ascending and distinct (entry %lld)",
                       (long long)i);
    if (c == EG_TOKEN_REPLACEMENT) has_unk = 1;
  }
  if (!has_unk) return eg_seterr(EG_EINVAL, "tokenizer: the vocabulary lacks U+FFFD (the unknown character)");
  eg_tokenizer *t = eg_calloc(1, sizeof *t);
  if (!t) return nomem("tokenizer");
  t->cps = eg_malloc(sizeof(int32_t) * (size_t)n);
  if (!t->cps) {
    eg_free(t);
    return nomem("tokenizer");
  }
  memcpy(t->cps, cps, sizeof(int32_t) * (size_t)n);
  t->kind = EG_TOKENIZER_CHAR;
  t->vocab = n;
  for (int c = 0; c < 128; c++) t->ascii[c] = -1;
  for (int64_t i = 0; i < n; i++) {
    if (cps[i] < 128) t->ascii[cps[i]] = (int32_t)i;
    if (cps[i] == EG_TOKEN_REPLACEMENT) t->unk = (int32_t)i;
  }
  *out = t;
  return EG_OK;
}

int eg_tokenizer_char_from_text(eg_tokenizer **out, const char *s, size_t n) {
  *out = NULL;
  /* A bitmap of the code points seen (0x110000 bits, 136 KiB). */
  uint8_t *seen = eg_calloc(0x110000 / 8, 1);
  if (!seen) return nomem("tokenizer");
  const unsigned char *p = (const unsigned char *)s;
  for (size_t i = 0; i < n;) {
    size_t len;
    int32_t c = utf8_next(p + i, n - i, &len);
    seen[c >> 3] |= (uint8_t)(1u << (c & 7));
    i += len;
  }
  seen[EG_TOKEN_REPLACEMENT >> 3] |= (uint8_t)(1u << (EG_TOKEN_REPLACEMENT & 7));
  int64_t count = 0;
  for (int32_t c = 0; c < 0x110000; c++) count += (seen[c >> 3] >> (c & 7)) & 1;
  int st;
  if (count > EG_TEXT_MAX_VOCAB) {
    st = eg_seterr(EG_EINVAL, "tokenizer: the text holds %lld distinct characters (at most %d)", (long long)count,
                   EG_TEXT_MAX_VOCAB);
  } else {
    int32_t *cps = eg_malloc(sizeof(int32_t) * (size_t)count);
    if (!cps) {
      st = nomem("tokenizer");
    } else {
      int64_t k = 0;
      for (int32_t c = 0; c < 0x110000; c++)
        if ((seen[c >> 3] >> (c & 7)) & 1) cps[k++] = c;
      st = eg_tokenizer_char(out, cps, count);
      eg_free(cps);
    }
  }
  eg_free(seen);
  return st;
}

void eg_tokenizer_free(eg_tokenizer *tk) {
  if (!tk) return;
  eg_free(tk->cps);
  eg_free(tk);
}

int eg_tokenizer_kind(const eg_tokenizer *tk) { return tk->kind; }
int64_t eg_tokenizer_vocab(const eg_tokenizer *tk) { return tk->vocab; }

int32_t eg_tokenizer_symbol(const eg_tokenizer *tk, int64_t id) {
  if (id < 0 || id >= tk->vocab) return -1;
  return tk->kind == EG_TOKENIZER_BYTE ? (int32_t)id : tk->cps[id];
}

static int32_t char_id(const eg_tokenizer *tk, int32_t c) {
  if (c < 128) return tk->ascii[c] >= 0 ? tk->ascii[c] : tk->unk;
  int64_t lo = 0, hi = tk->vocab - 1;
  while (lo <= hi) {
    int64_t mid = (lo + hi) / 2;
    if (tk->cps[mid] == c) return (int32_t)mid;
    if (tk->cps[mid] < c)
      lo = mid + 1;
    else
      hi = mid - 1;
  }
  return tk->unk;
}

void eg_tokenizer_encode(const eg_tokenizer *tk, const char *s, size_t n, int32_t *out, int64_t *count) {
  const unsigned char *p = (const unsigned char *)s;
  int64_t k = 0;
  if (tk->kind == EG_TOKENIZER_BYTE) {
    for (size_t i = 0; i < n; i++) out[i] = p[i];
    *count = (int64_t)n;
    return;
  }
  for (size_t i = 0; i < n;) {
    if (p[i] < 128) { /* the common case, without decoding */
      out[k++] = tk->ascii[p[i]] >= 0 ? tk->ascii[p[i]] : tk->unk;
      i++;
      continue;
    }
    size_t len;
    out[k++] = char_id(tk, utf8_next(p + i, n - i, &len));
    i += len;
  }
  *count = k;
}

int eg_tokenizer_decode(const eg_tokenizer *tk, const float *ids, int64_t n, char *buf, size_t *len) {
  size_t k = 0;
  for (int64_t i = 0; i < n; i++) {
    float v = ids[i];
    if (!(v >= 0 && v < (float)tk->vocab) || v != floorf(v)) {
      *len = 0;
      return eg_seterr(EG_ERANGE, "decode: id %g at position %lld is not a token id in [0, %lld)", (double)v,
                       (long long)i + 1, (long long)tk->vocab);
    }
    int64_t id = (int64_t)v;
    if (tk->kind == EG_TOKENIZER_BYTE)
      buf[k++] = (char)(unsigned char)id;
    else
      k += utf8_put(tk->cps[id], buf + k);
  }
  *len = k;
  return EG_OK;
}

/* ---------------------------------------------------------------- sampler */

typedef struct {
  float v;
  int64_t id;
} scored;

/* Descending by value, then ascending by id (a total order: ties are stable). */
static int cmp_scored(const void *a, const void *b) {
  const scored *x = a, *y = b;
  if (x->v != y->v) return x->v < y->v ? 1 : -1;
  return (x->id > y->id) - (x->id < y->id);
}

int eg_sample_logits(const float *logits, int64_t V, double temperature, int64_t top_k, eg_rng *rng, int64_t *id) {
  *id = 0;
  if (V < 1) return eg_seterr(EG_EINVAL, "sample: no logits");
  if (!(temperature >= 0) || !isfinite(temperature))
    return eg_seterr(EG_EINVAL, "sample: temperature %g (must be finite and >= 0)", temperature);
  int64_t best = 0;
  for (int64_t j = 0; j < V; j++) {
    if (isnan(logits[j])) return eg_seterr(EG_EINVAL, "sample: logit %lld is NaN", (long long)j);
    if (logits[j] > logits[best]) best = j;
  }
  if (temperature == 0 || top_k == 1) {
    *id = best;
    return EG_OK;
  }
  if (!isfinite(logits[best])) { /* all -inf, or +inf somewhere: the argmax */
    *id = best;
    return EG_OK;
  }
  if (top_k <= 0 || top_k > V) top_k = V;
  scored *s = eg_malloc(sizeof(scored) * (size_t)V);
  if (!s) return nomem("sample");
  for (int64_t j = 0; j < V; j++) s[j].v = logits[j], s[j].id = j;
  if (top_k < V) qsort(s, (size_t)V, sizeof *s, cmp_scored);
  double mx = logits[best], total = 0;
  for (int64_t j = 0; j < top_k; j++) total += exp(((double)s[j].v - mx) / temperature);
  double u = eg_rng_uniform(rng) * total, acc = 0;
  *id = s[top_k - 1].id;
  for (int64_t j = 0; j < top_k; j++) {
    acc += exp(((double)s[j].v - mx) / temperature);
    if (u < acc) {
      *id = s[j].id;
      break;
    }
  }
  eg_free(s);
  return EG_OK;
}
