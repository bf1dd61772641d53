/* natkit_udp — Receive: on a readable event, recvmmsg into the shared receive buffer and hand the batch to JS in one call. See udp_batch.h for the design and layouts. */
#include "udp_batch.h"

/* Open a handle scope and fetch the socket's callback and resource; 1 on success, else -1 (scope closed again). */
static int need_js (sock_t *s, napi_handle_scope *scope, napi_value *cb, napi_value *self) {
  if (napi_open_handle_scope(s->env, scope) != napi_ok) { *scope = NULL; return -1; }
  if (napi_get_reference_value(s->env, s->callback, cb) != napi_ok || napi_get_reference_value(s->env, s->resource, self) != napi_ok ||
      *cb == NULL || *self == NULL) {
    napi_close_handle_scope(s->env, *scope);
    *scope = NULL;
    return -1;
  }
  return 1;
}

void on_readable (uv_poll_t *h, int status, int events) {
  (void)events;
  sock_t *s = (sock_t *)h->data;
  if (s->closing) return;
  napi_env env = s->env;
  shared_t *sh = s->shared;
  /* The JS callback and its handle scope are fetched only when JS is called: a batch the fast path (udp_fast.c)
   * forwards in full makes no N-API call at all. */
  napi_handle_scope scope = NULL;
  napi_value cb = NULL, self = NULL;
  int js = 0; /* 0: not fetched yet, 1: cb and self usable, -1: fetching failed */
#define NEED_JS() (js != 0 ? js > 0 : (js = need_js(s, &scope, &cb, &self)) > 0)
  if (sh->ready && status >= 0) goto read;
  if (!NEED_JS()) goto out;
  if (!ensure_shared(env, sh)) {
    /* Out of memory: say so and stop polling rather than spin on a readable fd that cannot be read. */
    bool pending = false;
    napi_is_exception_pending(env, &pending);
    if (pending) { napi_value e; napi_get_and_clear_last_exception(env, &e); }
    uv_poll_stop(&s->poll);
    s->rx_errors++;
    report_error(s, cb, self, ENOMEM);
    goto out;
  }
  if (status < 0) {
    /* libuv stops a poll handle on POLLERR. A pending socket error is cleared by the next recvmmsg (which returns it),
     * so report it, poll again and read on: the socket must not go deaf. */
    report_error(s, cb, self, -status);
    if (s->closing || uv_poll_start(&s->poll, UV_READABLE, on_readable) != 0) goto out;
  }
read:
  for (int round = 0; round < MAX_BATCHES_PER_EVENT && !s->closing; round++) {
    for (int i = 0; i < BATCH; i++) {
      sh->rmsg[i].msg_hdr.msg_namelen = sizeof sh->raddr[i];
      sh->rmsg[i].msg_hdr.msg_flags = 0;
      sh->riov[i].iov_len = SLOT;
    }
    int n = recvmmsg(s->fd, sh->rmsg, BATCH, MSG_DONTWAIT, NULL);
    if (n < 0) {
      int err = errno;
      if (err == EINTR) continue;
      if (err == EAGAIN || err == EWOULDBLOCK) break;
      /* ICMP errors queued on the socket (ECONNREFUSED etc.) surface here; report and keep polling. */
      s->rx_errors++;
      if (NEED_JS()) report_error(s, cb, self, err);
      break;
    }
    if (n == 0) break;
    s->rx_batches++;
    for (int i = 0; i < n; i++) {
      int32_t *m = sh->recv_meta + i * META;
      const struct msghdr *mh = &sh->rmsg[i].msg_hdr;
      unsigned int len = sh->rmsg[i].msg_len;
      memset(m, 0, META * sizeof *m);
      if ((mh->msg_flags & MSG_TRUNC) != 0 || len > SLOT) {
        m[0] = -1;
        s->rx_truncated++;
        continue;
      }
      m[0] = (int32_t)len;
      const struct sockaddr_storage *a = &sh->raddr[i];
      if (a->ss_family == AF_INET && mh->msg_namelen >= sizeof(struct sockaddr_in)) {
        const struct sockaddr_in *a4 = (const struct sockaddr_in *)a;
        m[1] = ntohs(a4->sin_port);
        m[2] = 4;
        memcpy(m + 4, &a4->sin_addr, 4);
      } else if (a->ss_family == AF_INET6 && mh->msg_namelen >= sizeof(struct sockaddr_in6)) {
        const struct sockaddr_in6 *a6 = (const struct sockaddr_in6 *)a;
        m[1] = ntohs(a6->sin6_port);
        m[2] = 6;
        memcpy(m + 4, &a6->sin6_addr, 16);
      } else {
        m[0] = -1; /* no usable source address: cannot be answered, skip it */
        s->rx_truncated++;
        continue;
      }
      s->rx_packets++;
    }
    /* Established channels are forwarded here (udp_fast.c); JS gets the rest, and no call when nothing is left. */
    int fast = fast_forward(sh, s, n);
    if (fast == n) {
      if (n < BATCH) break;
      continue;
    }
    if (!NEED_JS()) break;
    napi_value arg, result;
    napi_create_int32(env, n, &arg);
    if (napi_make_callback(env, s->async, self, cb, 1, &arg, &result) == napi_pending_exception) {
      napi_value exc;
      napi_get_and_clear_last_exception(env, &exc);
      napi_fatal_exception(env, exc);
      break;
    }
    if (n < BATCH) break;
  }
out:
  if (scope != NULL) napi_close_handle_scope(env, scope);
#undef NEED_JS
}
