/*
** ltensor.h — what the engram.Tensor sources share (ltensor.c registers the
** type; ltensor_math.c and ltensor_print.c add methods). Internal.
*/
#ifndef EG_LTENSOR_H
#define EG_LTENSOR_H

#include "lutil.h"

#define MAXSTR 96

static inline const char *shape_str(const eg_tensor *t, char *buf) { return eg_shape_str(t, buf, MAXSTR); }

/* Methods, metamethods and module functions of ltensor_math.c. */
EG_HIDDEN extern const luaL_Reg eg_lua_tensor_math_methods[];
EG_HIDDEN extern const luaL_Reg eg_lua_tensor_math_meta[];
EG_HIDDEN extern const luaL_Reg eg_lua_tensor_math_functions[];
/* __tostring (ltensor_print.c). */
EG_HIDDEN int eg_lua_tensor_tostring(lua_State *L);

#endif
