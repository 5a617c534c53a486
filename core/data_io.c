/*
** data_io.c — the IDX and CSV readers and Fashion-MNIST. Every length read
** from a file is checked before it is trusted: header dimensions against
** overflow and against what the file can hold, then the data actually read.
*/
#include <errno.h>
#include <locale.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#include "data_impl.h"

/* Deflate expands at most about 1032:1, so a gzip file of s bytes cannot
** hold more than this: a header claiming more is a lie, found before allocating. */
#define GZ_MAX_RATIO 1040u
/* Beyond this a size from a header is not believed (64 GiB). */
#define IDX_MAX_BYTES ((size_t)1 << 36)

static int io_err(const char *op, const char *path) {
  return eg_seterr(EG_EIO, "%s: cannot open %s: %s", op, path, strerror(errno));
}

/* Reads up to n bytes; *got receives how many. EG_EFORMAT on a zlib error
** (corrupt data, bad checksum), EG_EIO on a read error. */
static int gz_read_all(gzFile g, void *buf, size_t n, size_t *got, const char *op, const char *path) {
  size_t done = 0;
  unsigned char *p = buf;
  while (done < n) {
    size_t want = n - done;
    if (want > (1u << 30)) want = 1u << 30;
    int r = gzread(g, p + done, (unsigned)want);
    if (r < 0) {
      int errnum;
      const char *msg = gzerror(g, &errnum);
      *got = done;
      if (errnum == Z_ERRNO) return eg_seterr(EG_EIO, "%s: %s: read error: %s", op, path, strerror(errno));
      return eg_seterr(EG_EFORMAT, "%s: %s: corrupt compressed data (%s)", op, path, msg);
    }
    if (r == 0) break;
    done += (size_t)r;
  }
  *got = done;
  return EG_OK;
}

static size_t elsize(int type) {
  switch (type) {
    case EG_IDX_U8: case EG_IDX_I8: return 1;
    case EG_IDX_I16: return 2;
    case EG_IDX_I32: case EG_IDX_F32: return 4;
    case EG_IDX_F64: return 8;
    default: return 0;
  }
}

/* IDX stores big-endian; swap elements in place on little-endian hosts. */
static void to_host(unsigned char *p, size_t count, size_t es) {
  const uint16_t one = 1;
  if (es == 1 || *(const unsigned char *)&one == 0) return;
  for (size_t i = 0; i < count; i++, p += es)
    for (size_t a = 0, b = es - 1; a < b; a++, b--) {
      unsigned char t = p[a];
      p[a] = p[b];
      p[b] = t;
    }
}

void eg_idx_free(eg_idx *idx) {
  if (!idx) return;
  eg_free(idx->data);
  memset(idx, 0, sizeof *idx);
}

int eg_idx_read(const char *path, eg_idx *out) {
  static const char *op = "idx";
  memset(out, 0, sizeof *out);
  struct stat sb;
  if (stat(path, &sb) != 0) return io_err(op, path);
  if (!S_ISREG(sb.st_mode)) return eg_seterr(EG_EIO, "%s: %s is not a regular file", op, path);
  size_t fsize = (size_t)sb.st_size;
  gzFile g = gzopen(path, "rb");
  if (!g) return io_err(op, path);
  unsigned char hdr[4 + 4 * 255];
  size_t got;
  void *data = NULL;
  int st = gz_read_all(g, hdr, 4, &got, op, path);
  if (st) goto done;
  if (got < 4) {
    st = eg_seterr(EG_EFORMAT, "%s: %s is truncated: %zu of the 4 header bytes", op, path, got);
    goto done;
  }
  if (hdr[0] != 0 || hdr[1] != 0 || elsize(hdr[2]) == 0) {
    st = eg_seterr(EG_EFORMAT, "%s: %s has a wrong magic number 0x%02x%02x%02x%02x (not an IDX file)", op, path,
                   hdr[0], hdr[1], hdr[2], hdr[3]);
    goto done;
  }
  int type = hdr[2], ndim = hdr[3];
  size_t es = elsize(type);
  if (ndim < 1 || ndim > EG_MAXDIM) {
    st = eg_seterr(EG_EFORMAT, "%s: %s has %d dimensions (1 to %d supported)", op, path, ndim, EG_MAXDIM);
    goto done;
  }
  st = gz_read_all(g, hdr + 4, 4 * (size_t)ndim, &got, op, path);
  if (st) goto done;
  if (got < 4 * (size_t)ndim) {
    st = eg_seterr(EG_EFORMAT, "%s: %s is truncated in its header (%zu of %d dimension bytes)", op, path, got,
                   4 * ndim);
    goto done;
  }
  size_t numel = 1, bytes;
  for (int d = 0; d < ndim; d++) {
    const unsigned char *q = hdr + 4 + 4 * d;
    uint32_t v = ((uint32_t)q[0] << 24) | ((uint32_t)q[1] << 16) | ((uint32_t)q[2] << 8) | q[3];
    if (v == 0) {
      st = eg_seterr(EG_EFORMAT, "%s: %s: dimension %d has size 0", op, path, d + 1);
      goto done;
    }
    out->dims[d] = (int64_t)v;
    if (eg_size_mul(numel, v, &numel, op) || numel > IDX_MAX_BYTES) {
      st = eg_seterr(EG_EFORMAT, "%s: %s: the header's dimensions multiply to an impossible size", op, path);
      goto done;
    }
  }
  bytes = numel * es;
  if (bytes > IDX_MAX_BYTES) {
    st = eg_seterr(EG_EFORMAT, "%s: %s: the header's dimensions multiply to an impossible size", op, path);
    goto done;
  }
  size_t hsize = 4 + 4 * (size_t)ndim;
  if (gzdirect(g)) {
    if (fsize != hsize + bytes) {
      st = eg_seterr(EG_EFORMAT, "%s: %s is %s: the header promises %zu data bytes, the file holds %zu", op, path,
                     fsize < hsize + bytes ? "truncated" : "too long", bytes, fsize - hsize);
      goto done;
    }
  } else if (bytes / GZ_MAX_RATIO > fsize) {
    st = eg_seterr(EG_EFORMAT, "%s: %s is truncated: the header promises %zu data bytes, more than %zu compressed bytes can hold",
                   op, path, bytes, fsize);
    goto done;
  }
  data = eg_malloc(bytes);
  if (!data) {
    st = eg_seterr(EG_ENOMEM, "%s: out of memory for %zu bytes of %s", op, bytes, path);
    goto done;
  }
  st = gz_read_all(g, data, bytes, &got, op, path);
  if (st) goto done;
  if (got < bytes) {
    st = eg_seterr(EG_EFORMAT, "%s: %s is truncated: the header promises %zu data bytes, the file holds %zu", op,
                   path, bytes, got);
    goto done;
  }
  unsigned char extra;
  st = gz_read_all(g, &extra, 1, &got, op, path);
  if (st) goto done;
  if (got) {
    st = eg_seterr(EG_EFORMAT, "%s: %s is too long: data continues after the %zu bytes the header promises", op, path,
                   bytes);
    goto done;
  }
  int errnum;
  const char *zmsg = gzerror(g, &errnum);
  if (errnum != Z_OK) {
    st = eg_seterr(EG_EFORMAT, "%s: %s: corrupt or truncated compressed data (%s)", op, path, zmsg);
    goto done;
  }
  to_host(data, numel, es);
  out->type = type;
  out->ndim = ndim;
  out->numel = (int64_t)numel;
  out->data = data;
  data = NULL;
done:
  {
    int zc = gzclose(g);
    if (!st && zc != Z_OK) {
      st = eg_seterr(EG_EFORMAT, "%s: %s: the compressed stream ends early or is corrupt", op, path);
      eg_free(out->data);
    }
  }
  eg_free(data);
  if (st) memset(out, 0, sizeof *out);
  return st;
}

int eg_dataset_from_idx(eg_dataset **out, const char *images_path, const char *labels_path) {
  *out = NULL;
  eg_idx im, lb;
  int st = eg_idx_read(images_path, &im);
  if (st) return st;
  st = eg_idx_read(labels_path, &lb);
  if (st) {
    eg_idx_free(&im);
    return st;
  }
  if (im.type != EG_IDX_U8 || im.ndim < 2) {
    st = eg_seterr(EG_EFORMAT, "idx: %s must hold unsigned bytes [n, ...] (type 0x%02x, %d dimensions)", images_path,
                   im.type, im.ndim);
    goto fail;
  }
  if (lb.ndim != 1 || (lb.type != EG_IDX_U8 && lb.type != EG_IDX_I8 && lb.type != EG_IDX_I16 && lb.type != EG_IDX_I32)) {
    st = eg_seterr(EG_EFORMAT, "idx: %s must hold integer labels [n] (type 0x%02x, %d dimensions)", labels_path,
                   lb.type, lb.ndim);
    goto fail;
  }
  if (lb.dims[0] != im.dims[0]) {
    st = eg_seterr(EG_EFORMAT, "idx: %lld labels in %s for %lld images in %s", (long long)lb.dims[0], labels_path,
                   (long long)im.dims[0], images_path);
    goto fail;
  }
  int64_t n = im.dims[0];
  int32_t *labels = eg_malloc(sizeof(int32_t) * (size_t)n);
  if (!labels) {
    st = eg_seterr(EG_ENOMEM, "idx: out of memory");
    goto fail;
  }
  for (int64_t i = 0; i < n; i++) {
    switch (lb.type) {
      case EG_IDX_U8: labels[i] = ((uint8_t *)lb.data)[i]; break;
      case EG_IDX_I8: labels[i] = ((int8_t *)lb.data)[i]; break;
      case EG_IDX_I16: labels[i] = ((int16_t *)lb.data)[i]; break;
      default: labels[i] = ((int32_t *)lb.data)[i]; break;
    }
    /* Checked here too (the dataset builder would reject it) so that the
    ** message names the labels file. */
    if (labels[i] < 0 || labels[i] >= (1 << 24)) {
      st = eg_seterr(EG_EFORMAT, "idx: %s: label %ld (entry %lld of %lld) is not a class id in [0, 2^24)", labels_path,
                     (long)labels[i], (long long)i + 1, (long long)n);
      eg_free(labels);
      goto fail;
    }
  }
  eg_idx_free(&lb);
  int64_t shape[EG_MAXDIM];
  int nd = 0;
  if (im.ndim == 3) shape[nd++] = 1; /* greyscale images: one channel */
  for (int d = 1; d < im.ndim; d++) shape[nd++] = im.dims[d];
  uint8_t *px = im.data;
  im.data = NULL;
  return eg__dataset_wrap(out, n, nd, shape, px, NULL, labels, 0, "idx");
fail:
  eg_idx_free(&im);
  eg_idx_free(&lb);
  return st;
}

/* path = dir/name(.gz); prefers the gzipped file. 0 when neither exists. */
static int find_file(char *path, size_t n, const char *dir, const char *name) {
  snprintf(path, n, "%s/%s.gz", dir, name);
  if (access(path, R_OK) == 0) return 1;
  snprintf(path, n, "%s/%s", dir, name);
  if (access(path, R_OK) == 0) return 1;
  snprintf(path, n, "%s/%s.gz", dir, name);
  return 0;
}

int eg_fashion_mnist_files(const char *dir, char files[4][EG_FMNIST_PATH]) {
  char root[4096];
  if (dir) {
    snprintf(root, sizeof root, "%s", dir);
  } else if (getenv("ENGRAM_DATA") && *getenv("ENGRAM_DATA")) {
    struct stat sb;
    snprintf(root, sizeof root, "%s/fashion-mnist", getenv("ENGRAM_DATA"));
    if (stat(root, &sb) != 0 || !S_ISDIR(sb.st_mode)) snprintf(root, sizeof root, "%s", getenv("ENGRAM_DATA"));
  } else {
    snprintf(root, sizeof root, "/usr/share/datasets/fashion-mnist");
  }
  static const char *names[4] = {"train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte",
                                 "t10k-labels-idx1-ubyte"};
  for (int k = 0; k < 4; k++)
    if (!find_file(files[k], EG_FMNIST_PATH, root, names[k]))
      return eg_seterr(EG_EIO,
                       "fashion_mnist: %s not found; install the Debian package with "
                       "`apt-get install dataset-fashion-mnist`, or give the directory that holds the files "
                       "(path argument or ENGRAM_DATA)",
                       files[k]);
  return EG_OK;
}

int eg_dataset_fashion_mnist_from(const char *const files[4], eg_dataset **train, eg_dataset **test) {
  *train = *test = NULL;
  int st = eg_dataset_from_idx(train, files[0], files[1]);
  if (!st) st = eg_dataset_from_idx(test, files[2], files[3]);
  if (st) {
    eg_dataset_release(*train);
    *train = NULL;
  }
  return st;
}

int eg_dataset_fashion_mnist(const char *dir, eg_dataset **train, eg_dataset **test) {
  char p[4][EG_FMNIST_PATH];
  const char *files[4] = {p[0], p[1], p[2], p[3]};
  *train = *test = NULL;
  int st = eg_fashion_mnist_files(dir, p);
  return st ? st : eg_dataset_fashion_mnist_from(files, train, test);
}

/* ------------------------------------------------------------------- CSV */

/* The whole (decompressed) file, NUL-terminated, in *buf. */
static int slurp(const char *path, char **buf, size_t *len, const char *op) {
  *buf = NULL;
  gzFile g = gzopen(path, "rb");
  if (!g) return io_err(op, path);
  size_t cap = 1 << 16, n = 0;
  char *b = eg_malloc(cap);
  int st = b ? EG_OK : eg_seterr(EG_ENOMEM, "%s: out of memory", op);
  while (!st) {
    if (cap - n < 2) {
      char *nb = cap > IDX_MAX_BYTES ? NULL : eg_realloc(b, cap * 2);
      if (!nb) {
        st = eg_seterr(EG_ENOMEM, "%s: out of memory reading %s", op, path);
        break;
      }
      b = nb;
      cap *= 2;
    }
    size_t got, want = cap - n - 1;
    st = gz_read_all(g, b + n, want, &got, op, path);
    n += got;
    if (got < want) break; /* end of file */
  }
  if (!st) {
    int errnum;
    const char *zmsg = gzerror(g, &errnum);
    if (errnum != Z_OK) st = eg_seterr(EG_EFORMAT, "%s: %s: corrupt or truncated compressed data (%s)", op, path, zmsg);
  }
  gzclose(g);
  if (st) {
    eg_free(b);
    return st;
  }
  b[n] = '\0';
  *buf = b;
  *len = n;
  return EG_OK;
}

/* Splits line [p, end) at sep into fields (trimmed, NUL-terminated in place). */
static int split_fields(char *p, char *end, char sep, char **fields, int cap) {
  int k = 0;
  for (;;) {
    char *q = p;
    while (q < end && *q != sep) q++;
    char *a = p, *z = q;
    while (a < z && (*a == ' ' || *a == '\t')) a++;
    while (z > a && (z[-1] == ' ' || z[-1] == '\t' || z[-1] == '\r')) z--;
    if (z - a >= 2 && *a == '"' && z[-1] == '"') a++, z--;
    if (k < cap) fields[k] = a;
    k++;
    *z = '\0';
    if (q >= end) break;
    p = q + 1;
  }
  return k;
}

static int blank(const char *p, const char *end) {
  for (; p < end; p++)
    if (*p != ' ' && *p != '\t' && *p != '\r') return 0;
  return 1;
}

int eg_dataset_from_csv(eg_dataset **out, const char *path, const eg_csv_opts *opts) {
  static const char *op = "csv";
  *out = NULL;
  eg_csv_opts o = {0};
  if (opts) o = *opts;
  char sep = o.sep ? o.sep : ',';
  /* Numbers in files use '.', whatever locale the host application set. */
  locale_t cloc = newlocale(LC_NUMERIC_MASK, "C", (locale_t)0);
  if (!cloc) return eg_seterr(EG_ENOMEM, "%s: cannot create the C locale", op);
  char *buf;
  size_t len = 0;
  int st = slurp(path, &buf, &len, op);
  if (st) {
    freelocale(cloc);
    return st;
  }
  /* Count fields of the first line and the data lines. */
  char *end = buf + len;
  int64_t lines = 0;
  for (char *p = buf; p < end; p++) lines += *p == '\n';
  lines++;
  int ncols = -1, lab = -1;
  char **fields = NULL;
  float *f = NULL;
  int32_t *labels = NULL;
  int64_t rows = 0, lineno = 0, nfeat = 0;
  char *p = buf;
  while (p < end) {
    char *e = memchr(p, '\n', (size_t)(end - p));
    if (!e) e = end;
    lineno++;
    if (blank(p, e)) {
      p = e + 1;
      continue;
    }
    if (ncols < 0) {
      /* First non-blank line: fix the column count and the label column. */
      char *tmp = eg_malloc((size_t)(e - p) + 1);
      if (!tmp) {
        st = eg_seterr(EG_ENOMEM, "%s: out of memory", op);
        goto done;
      }
      memcpy(tmp, p, (size_t)(e - p));
      char *dummy[1];
      ncols = split_fields(tmp, tmp + (e - p), sep, dummy, 0);
      fields = eg_malloc(sizeof(char *) * (size_t)ncols);
      if (!fields) {
        eg_free(tmp);
        st = eg_seterr(EG_ENOMEM, "%s: out of memory", op);
        goto done;
      }
      memcpy(tmp, p, (size_t)(e - p));
      split_fields(tmp, tmp + (e - p), sep, fields, ncols);
      if (!o.no_labels) {
        if (o.label_name) {
          if (!o.header) {
            eg_free(tmp);
            st = eg_seterr(EG_EINVAL, "%s: a label column by name (\"%s\") needs a header line", op, o.label_name);
            goto done;
          }
          for (int c = 0; c < ncols; c++)
            if (strcmp(fields[c], o.label_name) == 0) lab = c;
          if (lab < 0) {
            eg_free(tmp);
            st = eg_seterr(EG_EINVAL, "%s: %s has no column named \"%s\"", op, path, o.label_name);
            goto done;
          }
        } else {
          lab = o.label_column < 0 ? ncols + o.label_column : o.label_column;
          if (lab < 0 || lab >= ncols) {
            eg_free(tmp);
            /* Counted from 1 in the message: Lua users number columns that way. */
            st = eg_seterr(EG_ERANGE,
                           "%s: label column %d (counting from 1, negative from the end) out of range: %s has %d columns",
                           op, o.label_column >= 0 ? o.label_column + 1 : o.label_column, path, ncols);
            goto done;
          }
        }
      }
      eg_free(tmp);
      nfeat = ncols - (lab >= 0);
      if (nfeat < 1) {
        st = eg_seterr(EG_EFORMAT, "%s: %s has no feature columns", op, path);
        goto done;
      }
      size_t total;
      if (eg_size_mul((size_t)lines, (size_t)nfeat, &total, op) ||
          eg_size_mul(total, sizeof(float), &total, op)) {
        st = EG_ENOMEM;
        goto done;
      }
      f = eg_malloc(total);
      labels = eg_calloc((size_t)lines, sizeof(int32_t));
      if (!f || !labels) {
        st = eg_seterr(EG_ENOMEM, "%s: out of memory for %s", op, path);
        goto done;
      }
      if (o.header) {
        p = e + 1;
        continue;
      }
    }
    int k = split_fields(p, e, sep, fields, ncols);
    if (k != ncols) {
      st = eg_seterr(EG_EFORMAT, "%s: %s line %lld has %d fields, expected %d", op, path, (long long)lineno, k, ncols);
      goto done;
    }
    for (int c = 0, j = 0; c < ncols; c++) {
      char *q;
      errno = 0;
      double v = strtod_l(fields[c], &q, cloc);
      if (q == fields[c] || *q != '\0' || !isfinite(v)) {
        st = eg_seterr(EG_EFORMAT, "%s: %s line %lld column %d: \"%.40s\" is not a finite number", op, path,
                       (long long)lineno, c + 1, fields[c]);
        goto done;
      }
      if (c == lab) {
        if (v < 0 || v >= (1 << 24) || v != floor(v)) {
          st = eg_seterr(EG_EFORMAT, "%s: %s line %lld column %d: label %g is not a class id (integer in [0, 2^24))",
                         op, path, (long long)lineno, c + 1, v);
          goto done;
        }
        labels[rows] = (int32_t)v;
      } else {
        float fv = (float)v;
        if (!isfinite(fv)) { /* finite as a double, beyond float32's range (1e39) */
          st = eg_seterr(EG_EFORMAT, "%s: %s line %lld column %d: %.40s is out of float32 range (|x| < 3.4e38)", op,
                         path, (long long)lineno, c + 1, fields[c]);
          goto done;
        }
        f[rows * nfeat + j++] = fv;
      }
    }
    rows++;
    p = e + 1;
  }
  if (rows == 0) {
    st = eg_seterr(EG_EFORMAT, "%s: %s has no data rows", op, path);
    goto done;
  }
  {
    int64_t shape[1] = {nfeat};
    eg_free(fields);
    eg_free(buf);
    freelocale(cloc);
    return eg__dataset_wrap(out, rows, 1, shape, NULL, f, labels, 0, op);
  }
done:
  freelocale(cloc);
  eg_free(fields);
  eg_free(buf);
  eg_free(f);
  eg_free(labels);
  return st;
}
