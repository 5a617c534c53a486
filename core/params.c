/*
** params.c — parameter groups (see params.h).
*/
#include <string.h>

#include "params.h"

typedef struct {
  char *name;
  int ndim;
  int64_t shape[EG_MAXDIM];
  int64_t offset, numel;
} entry;

struct eg_param_group {
  char *name;
  entry *e;
  int n, cap;
  int64_t numel;
  int frozen;
  eg_storage *values, *grads; /* NULL until built */
};

static char *dupstr(const char *s) {
  size_t n = strlen(s) + 1;
  char *d = eg_malloc(n);
  if (d) memcpy(d, s, n);
  return d;
}

int eg_params_new(eg_param_group **out, const char *name) {
  *out = NULL;
  eg_param_group *g = eg_calloc(1, sizeof *g);
  if (!g || !(g->name = dupstr(name ? name : ""))) {
    eg_free(g);
    return eg_seterr(EG_ENOMEM, "params: out of memory");
  }
  *out = g;
  return EG_OK;
}

void eg_params_free(eg_param_group *g) {
  if (!g) return;
  for (int i = 0; i < g->n; i++) eg_free(g->e[i].name);
  eg_free(g->e);
  eg_free(g->name);
  eg_storage_release(g->values);
  eg_storage_release(g->grads);
  eg_free(g);
}

int eg_params_declare(eg_param_group *g, const char *name, int ndim, const int64_t *shape, int *index) {
  if (g->values) return eg_seterr(EG_ESTATE, "params: group '%s' is already built; declare '%s' in a new group", g->name, name);
  if (ndim < 0 || ndim > EG_MAXDIM) return eg_seterr(EG_EINVAL, "params: '%s' has %d dimensions", name, ndim);
  int64_t n = 1;
  for (int d = 0; d < ndim; d++) {
    if (shape[d] < 0) return eg_seterr(EG_EINVAL, "params: '%s' has a negative size", name);
    if (shape[d] && n > ((int64_t)1 << 40) / shape[d]) return eg_seterr(EG_ENOMEM, "params: '%s' is too large", name);
    n *= shape[d];
  }
  for (int i = 0; i < g->n; i++)
    if (strcmp(g->e[i].name, name) == 0) return eg_seterr(EG_EINVAL, "params: '%s' declared twice in group '%s'", name, g->name);
  if (g->numel + n > ((int64_t)1 << 40)) return eg_seterr(EG_ENOMEM, "params: group '%s' is too large", g->name);
  if (g->n == g->cap) {
    int cap = g->cap ? 2 * g->cap : 8;
    entry *e = eg_realloc(g->e, sizeof *e * (size_t)cap);
    if (!e) return eg_seterr(EG_ENOMEM, "params: out of memory");
    g->e = e, g->cap = cap;
  }
  entry *e = &g->e[g->n];
  memset(e, 0, sizeof *e);
  if (!(e->name = dupstr(name))) return eg_seterr(EG_ENOMEM, "params: out of memory");
  e->ndim = ndim;
  if (ndim) memcpy(e->shape, shape, sizeof(int64_t) * (size_t)ndim);
  e->offset = g->numel, e->numel = n;
  g->numel += n;
  if (index) *index = g->n;
  g->n++;
  return EG_OK;
}

int eg_params_build(eg_param_group *g) {
  if (g->values) return eg_seterr(EG_ESTATE, "params: group '%s' is already built", g->name);
  eg_storage *v = eg_storage_new(g->numel), *gr = v ? eg_storage_new(g->numel) : NULL;
  if (!v || !gr) {
    eg_storage_release(v);
    return eg_seterr(EG_ENOMEM, "params: cannot allocate %lld parameters for group '%s'", (long long)g->numel, g->name);
  }
  g->values = v, g->grads = gr;
  return EG_OK;
}

int eg_params_built(const eg_param_group *g) { return g->values != NULL; }
const char *eg_params_name(const eg_param_group *g) { return g->name; }
int eg_params_count(const eg_param_group *g) { return g->n; }
int64_t eg_params_numel(const eg_param_group *g) { return g->numel; }

const char *eg_params_entry_info(const eg_param_group *g, int i, int *ndim, int64_t *shape, int64_t *offset) {
  if (i < 0 || i >= g->n) return NULL;
  if (ndim) *ndim = g->e[i].ndim;
  if (shape) memcpy(shape, g->e[i].shape, sizeof g->e[i].shape);
  if (offset) *offset = g->e[i].offset;
  return g->e[i].name;
}

static int need_built(const eg_param_group *g) {
  return g->values ? EG_OK : eg_seterr(EG_ESTATE, "params: group '%s' is not built", g->name);
}

int eg_params_entry(const eg_param_group *g, int i, eg_tensor *value, eg_tensor *grad) {
  int st = need_built(g);
  if (st) return st;
  if (i < 0 || i >= g->n) return eg_seterr(EG_ERANGE, "params: entry %d out of range (group '%s' has %d)", i, g->name, g->n);
  const entry *e = &g->e[i];
  if (value && (st = eg_tensor_from_storage(value, g->values, e->offset, e->ndim, e->shape, NULL))) return st;
  if (grad && (st = eg_tensor_from_storage(grad, g->grads, e->offset, e->ndim, e->shape, NULL))) return st;
  return EG_OK;
}

int eg_params_flat(const eg_param_group *g, eg_tensor *params, eg_tensor *grads) {
  int st = need_built(g);
  if (st) return st;
  int64_t n[1] = {g->numel};
  if (params && (st = eg_tensor_from_storage(params, g->values, 0, 1, n, NULL))) return st;
  if (grads && (st = eg_tensor_from_storage(grads, g->grads, 0, 1, n, NULL))) return st;
  return EG_OK;
}

int eg_params_zero_grad(eg_param_group *g) {
  int st = need_built(g);
  if (st) return st;
  if (g->numel) memset(g->grads->data, 0, sizeof(float) * (size_t)g->numel);
  return EG_OK;
}

void eg_params_set_frozen(eg_param_group *g, int frozen) { g->frozen = frozen != 0; }
int eg_params_frozen(const eg_param_group *g) { return g->frozen; }

int eg_params_copy(eg_param_group *dst, const eg_param_group *src) {
  int st;
  if ((st = need_built(dst)) || (st = need_built(src))) return st;
  int same = dst->n == src->n && dst->numel == src->numel;
  for (int i = 0; same && i < dst->n; i++)
    same = dst->e[i].ndim == src->e[i].ndim &&
           memcmp(dst->e[i].shape, src->e[i].shape, sizeof(int64_t) * (size_t)dst->e[i].ndim) == 0;
  if (!same)
    return eg_seterr(EG_ESHAPE, "params: groups '%s' and '%s' have different layouts", dst->name, src->name);
  if (dst->numel) memmove(dst->values->data, src->values->data, sizeof(float) * (size_t)dst->numel);
  return EG_OK;
}
