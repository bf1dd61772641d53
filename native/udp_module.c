/* natkit_udp — Module glue: the addon's exports (open, buffers, flush, close, stats, the fast path's fastInstall, fastPurge, fastCount, takeFast, setGso, and the layout constants). See udp_batch.h for the design and layouts. */
#include "udp_batch.h"

napi_value constant (napi_env env, napi_value exports, const char *name, int value) {
  napi_value v;
  if (napi_create_int32(env, value, &v) != napi_ok || napi_set_named_property(env, exports, name, v) != napi_ok) return NULL;
  return exports;
}

NAPI_MODULE_INIT () {
  shared_t *sh = NULL;
  if (napi_get_instance_data(env, (void **)&sh) != napi_ok) return NULL;
  if (sh == NULL) {
    sh = calloc(1, sizeof *sh);
    if (sh == NULL) return NULL;
    sh->env = env;
    const char *gso = getenv("NATKIT_UDP_GSO");
    sh->gso = !(gso != NULL && (strcmp(gso, "0") == 0 || strcmp(gso, "off") == 0 || strcmp(gso, "false") == 0));
    if (napi_set_instance_data(env, sh, free_shared, NULL) != napi_ok) { free(sh); return NULL; }
  }
  const napi_property_descriptor props[] = {
    { "open", NULL, js_open, NULL, NULL, NULL, napi_default, NULL },
    { "buffers", NULL, js_buffers, NULL, NULL, NULL, napi_default, NULL },
    { "flush", NULL, js_flush, NULL, NULL, NULL, napi_default, NULL },
    { "close", NULL, js_close, NULL, NULL, NULL, napi_default, NULL },
    { "stats", NULL, js_stats, NULL, NULL, NULL, napi_default, NULL },
    { "fastInstall", NULL, js_fast_install, NULL, NULL, NULL, napi_default, NULL },
    { "fastPurge", NULL, js_fast_purge, NULL, NULL, NULL, napi_default, NULL },
    { "fastCount", NULL, js_fast_count, NULL, NULL, NULL, napi_default, NULL },
    { "takeFast", NULL, js_take_fast, NULL, NULL, NULL, napi_default, NULL },
    { "setGso", NULL, js_set_gso, NULL, NULL, NULL, napi_default, NULL },
  };
  if (napi_define_properties(env, exports, sizeof props / sizeof props[0], props) != napi_ok) return NULL;
  if (constant(env, exports, "BATCH", BATCH) == NULL || constant(env, exports, "SLOT", SLOT) == NULL ||
      constant(env, exports, "META", META) == NULL || constant(env, exports, "SEND_META", SEND_META) == NULL ||
      constant(env, exports, "SEND_BYTES", SEND_BYTES) == NULL) return NULL;
  return exports;
}
