/* natkit_udp — The shared arena: the receive and send buffers every socket of an N-API environment shares with JS (allocated on first use), and the socket id table. See udp_batch.h for the design and layouts. */
#include "udp_batch.h"

napi_value make_ab (napi_env env, size_t bytes, void **data, napi_ref *ref) {
  napi_value ab;
  if (napi_create_arraybuffer(env, bytes, data, &ab) != napi_ok) return NULL;
  if (napi_create_reference(env, ab, 1, ref) != napi_ok) return NULL;
  return ab;
}

void unmap_buffer (napi_env env, void *data, void *hint) {
  (void)env;
  munmap(data, (size_t)(uintptr_t)hint);
}

/*
 * The receive buffer (BATCH * SLOT = 4 MiB) and the send buffer are mmap()ed: pages are committed only when a datagram
 * touches them, so only as much of them is resident as the largest batch needed (a calloc of this size may come zeroed
 * from the heap, all resident). They are unmapped when JS has collected the ArrayBuffer. Where external buffers are not
 * allowed, V8 allocates them.
 */
napi_value make_lazy_ab (napi_env env, size_t bytes, void **data, napi_ref *ref) {
  void *p = mmap(NULL, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (p != MAP_FAILED) {
    napi_value ab;
    if (napi_create_external_arraybuffer(env, p, bytes, unmap_buffer, (void *)(uintptr_t)bytes, &ab) == napi_ok) {
      if (napi_create_reference(env, ab, 1, ref) != napi_ok) return NULL;
      *data = p;
      return ab;
    }
    munmap(p, bytes);
    bool pending = false;
    napi_is_exception_pending(env, &pending);
    if (pending) { napi_value e; napi_get_and_clear_last_exception(env, &e); }
  }
  return make_ab(env, bytes, data, ref);
}


/* Create the environment's shared buffers on first use; 1 when they exist. May leave a JS exception pending. */
int ensure_shared (napi_env env, shared_t *sh) {
  if (sh->ready) return 1;
  void *p;
  if (sh->recv == NULL) {
    if (make_lazy_ab(env, (size_t)BATCH * SLOT, &p, &sh->recv_ab) == NULL) return 0;
    sh->recv = p;
  }
  if (sh->recv_meta == NULL) {
    if (make_ab(env, (size_t)BATCH * META * 4, &p, &sh->recv_meta_ab) == NULL) return 0;
    sh->recv_meta = p;
  }
  if (sh->send == NULL) {
    if (make_lazy_ab(env, SEND_BYTES, &p, &sh->send_ab) == NULL) return 0;
    sh->send = p;
  }
  if (sh->send_meta == NULL) {
    if (make_ab(env, (size_t)BATCH * SEND_META * 4, &p, &sh->send_meta_ab) == NULL) return 0;
    sh->send_meta = p;
  }
  for (int i = 0; i < BATCH; i++) {
    sh->riov[i].iov_base = sh->recv + (size_t)i * SLOT;
    sh->riov[i].iov_len = SLOT;
    sh->rmsg[i].msg_hdr.msg_iov = &sh->riov[i];
    sh->rmsg[i].msg_hdr.msg_iovlen = 1;
    sh->rmsg[i].msg_hdr.msg_name = &sh->raddr[i];
    sh->smsg[i].msg_hdr.msg_iov = &sh->siov[i];
    sh->smsg[i].msg_hdr.msg_iovlen = 1;
    sh->smsg[i].msg_hdr.msg_name = &sh->saddr[i];
  }
  sh->ready = 1;
  return 1;
}

/* Make sure a socket id is free (growing the table if needed); 0 when out of memory. */
int reserve_id (shared_t *sh) {
  if (sh->n_free > 0) return 1;
  int32_t cap = sh->cap == 0 ? 64 : sh->cap * 2;
  sock_t **socks = realloc(sh->socks, (size_t)cap * sizeof *socks);
  if (socks == NULL) return 0;
  sh->socks = socks;
  int32_t *free_ids = realloc(sh->free_ids, (size_t)cap * sizeof *free_ids);
  if (free_ids == NULL) return 0;
  sh->free_ids = free_ids;
  /* Ids old cap .. cap-1 become free (id 0 stays unused); pushed so the lowest is taken first. */
  for (int32_t id = cap - 1; id >= (sh->cap == 0 ? 1 : sh->cap); id--) { socks[id] = NULL; free_ids[sh->n_free++] = id; }
  if (sh->cap == 0) socks[0] = NULL;
  sh->cap = cap;
  return 1;
}

/* buffers() -> { recv, recvMeta, send, sendMeta }: this environment's shared buffers, created on the first call. */
napi_value js_buffers (napi_env env, napi_callback_info info) {
  (void)info;
  shared_t *sh = NULL;
  CHECK(napi_get_instance_data(env, (void **)&sh));
  if (sh == NULL || !ensure_shared(env, sh)) { throw_last(env, "buffers (allocating shared buffers)"); return NULL; }
  napi_value out, v;
  CHECK(napi_create_object(env, &out));
  const struct { const char *name; napi_ref ref; } fields[] = {
    { "recv", sh->recv_ab }, { "recvMeta", sh->recv_meta_ab }, { "send", sh->send_ab }, { "sendMeta", sh->send_meta_ab }
  };
  for (size_t i = 0; i < sizeof fields / sizeof fields[0]; i++) {
    CHECK(napi_get_reference_value(env, fields[i].ref, &v));
    CHECK(napi_set_named_property(env, out, fields[i].name, v));
  }
  return out;
}

static void free_pending_check (uv_handle_t *h) { free(h); }

/* The environment is going away: its sockets no longer use the table (see stop_io); the buffers belong to V8. */
void free_shared (napi_env env, void *data, void *hint) {
  (void)env; (void)hint;
  shared_t *sh = (shared_t *)data;
  fast_free_all(sh);
  if (sh->pcheck != NULL) {
    sh->pcheck->data = NULL;
    uv_check_stop(sh->pcheck);
    uv_close((uv_handle_t *)sh->pcheck, free_pending_check);
  }
  pending_free(sh);
  free(sh->socks);
  free(sh->free_ids);
  free(sh);
}
