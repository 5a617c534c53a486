/*
** params.h — parameter groups: one flat arena for a model's parameters and
** one, same layout, for their gradients.
**
** Two phases, as in ggml: declare every entry (name and shape), then build
** once. Building allocates one contiguous float storage for the values and
** one for the gradients (both zeroed); every entry is a view into them from
** then on, and the arena is never re-flattened. Growing a model later (a task
** head, adapters, LoRA factors) means a NEW group with its own arena.
**
** The storages are reference-counted: views handed out (eg_params_flat,
** eg_params_entry) retain them, so they stay valid after eg_params_free.
**
**   eg_param_group *g;
**   eg_params_new(&g, "base");
**   eg_params_declare(g, "1.weight", 2, (int64_t[]){400, 784}, NULL);
**   eg_params_declare(g, "1.bias", 1, (int64_t[]){400}, NULL);
**   eg_params_build(g);
**   eg_params_entry(g, 0, &W, &gW);   // W, gW: views into the arena
*/
#ifndef EG_PARAMS_H
#define EG_PARAMS_H

#include "tensor.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct eg_param_group eg_param_group;

/* A new empty group named name (copied) in *out; free with eg_params_free. */
EG_API int eg_params_new(eg_param_group **out, const char *name);
/* Frees the group; views already handed out keep the arena alive. Accepts NULL. */
EG_API void eg_params_free(eg_param_group *g);
/* Declares an entry; *index (may be NULL) receives its 0-based position.
** EG_ESTATE after eg_params_build; EG_EINVAL on a duplicate name. */
EG_API int eg_params_declare(eg_param_group *g, const char *name, int ndim, const int64_t *shape, int *index);
/* Allocates the two arenas (zero-filled) for everything declared. Once only. */
EG_API int eg_params_build(eg_param_group *g);
EG_API int eg_params_built(const eg_param_group *g);
EG_API const char *eg_params_name(const eg_param_group *g); /* the group's name, owned by g */
EG_API int eg_params_count(const eg_param_group *g);        /* number of entries */
EG_API int64_t eg_params_numel(const eg_param_group *g);    /* total floats of all entries */
/* Entry i's name (owned by g) and shape (*ndim, shape[EG_MAXDIM]); NULL if out of range. */
EG_API const char *eg_params_entry_info(const eg_param_group *g, int i, int *ndim, int64_t *shape, int64_t *offset);
/* value and grad (either may be NULL) become views of entry i (retained). */
EG_API int eg_params_entry(const eg_param_group *g, int i, eg_tensor *value, eg_tensor *grad);
/* params and grads (either may be NULL) become 1-D views of the whole arenas. */
EG_API int eg_params_flat(const eg_param_group *g, eg_tensor *params, eg_tensor *grads);
/* Zeroes the gradient arena (one memset). */
EG_API int eg_params_zero_grad(eg_param_group *g);
/* Frozen groups are skipped by optimisers and keep no parameter gradients. */
EG_API void eg_params_set_frozen(eg_param_group *g, int frozen);
EG_API int eg_params_frozen(const eg_param_group *g);
/* Copies the values of src into dst; both built with the same layout. */
EG_API int eg_params_copy(eg_param_group *dst, const eg_param_group *src);

#ifdef __cplusplus
}
#endif

#endif
